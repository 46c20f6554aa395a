package plugin

import (
	"bytes"
	"testing"
	"time"

	"github.com/kaudit/kaudit/filter"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
)

// TestDocArena: bodies from the shared buffers are exactly what
// NewDocument encodes, their capacity ends at their length (an append to
// one cannot overwrite the next), and a document larger than the free
// room is encoded whole.
func TestDocArena(t *testing.T) {
	a := newDocArena(1000)
	var docs []filter.Document
	var want [][]byte
	for i := 0; i < 2000; i++ {
		ev := &filter.Event{Event: auditv1.Event{AuditID: "id", Stage: "ResponseComplete", Verb: "get",
			RequestURI: "/api/v1/" + string(bytes.Repeat([]byte{'a' + byte(i%26)}, i%7*1000+i))}, RecordTime: time.Unix(int64(i), 0)}
		d := a.document(ev)
		if cap(d.Body) != len(d.Body) {
			t.Fatalf("body capacity %d > length %d", cap(d.Body), len(d.Body))
		}
		docs = append(docs, d)
		want = append(want, filter.NewDocument(ev, nil).Body)
	}
	for i := range docs {
		_ = append(docs[i].Body, "overwrite?"...)
	}
	for i := range docs {
		if !bytes.Equal(docs[i].Body, want[i]) {
			t.Fatalf("document %d changed:\n%s\n%s", i, docs[i].Body, want[i])
		}
	}
}
