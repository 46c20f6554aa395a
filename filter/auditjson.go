package filter

import (
	"bytes"
	"errors"
	"fmt"
	"time"
	"unsafe"

	jsoniter "github.com/json-iterator/go"
	"github.com/tinylib/msgp/msgp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
)

// auditJSON decodes audit JSON the way encoding/json would into the
// apiserver's types, but without its reflection cost, and with a lenient
// timestamp parser (any RFC 3339 fraction length, not only six digits).
var auditJSON = func() jsoniter.API {
	api := jsoniter.Config{EscapeHTML: false, SortMapKeys: true, ValidateJsonRawMessage: true}.Froze()
	api.RegisterExtension(&microTimeExtension{})
	return api
}()

type microTimeExtension struct{ jsoniter.DummyExtension }

func (microTimeExtension) CreateDecoder(typ reflectType) jsoniter.ValDecoder {
	if typ.Type1() == microTimeType {
		return microTimeDecoder{}
	}
	return nil
}

type microTimeDecoder struct{}

func (microTimeDecoder) Decode(ptr unsafe.Pointer, iter *jsoniter.Iterator) {
	mt := (*metav1.MicroTime)(ptr)
	if iter.WhatIsNext() == jsoniter.NilValue {
		iter.Skip()
		mt.Time = time.Time{}
		return
	}
	s := iter.ReadStringAsSlice()
	t, err := ParseTime(s)
	if err != nil {
		iter.ReportError("decode timestamp", err.Error())
		return
	}
	mt.Time = t
}

// eventOrList is what one audit JSON document can be: an Event, or an
// EventList as the apiserver's webhook backend posts it.
type eventOrList struct {
	auditv1.Event
	Items []auditv1.Event `json:"items"`
}

// AuditError is a record that does not hold an audit event.
type AuditError struct {
	Reason  string
	Excerpt string
	// AuditID is the auditID found in the broken record, if any, so the
	// log line names the event that was lost.
	AuditID string
}

func (e *AuditError) Error() string {
	msg := e.Reason
	if e.AuditID != "" {
		msg = "auditID " + e.AuditID + ": " + msg
	}
	if e.Excerpt == "" {
		return msg
	}
	return fmt.Sprintf("%s: %q", msg, e.Excerpt)
}

var auditIDKey = []byte(`"auditID":"`)

// sniffAuditID finds the auditID of a record that does not decode (a line
// truncated by Fluent Bit, say), without trusting the rest of it.
func sniffAuditID(data []byte) string {
	i := bytes.Index(data, auditIDKey)
	if i < 0 {
		return ""
	}
	rest := data[i+len(auditIDKey):]
	end := bytes.IndexByte(rest, '"')
	if end <= 0 || end > 64 {
		return ""
	}
	return string(rest[:end])
}

// Excerpt returns at most n bytes of b, for error messages.
func Excerpt(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

const excerptLen = 120

// DecodeAudit decodes one JSON document into events: an Event yields one,
// an EventList each of its items. fn is called for each.
func DecodeAudit(data []byte, fn func(*auditv1.Event)) error {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return &AuditError{Reason: "empty record"}
	}
	if data[0] != '{' {
		return &AuditError{Reason: "not a JSON object", Excerpt: Excerpt(data, excerptLen)}
	}
	var v eventOrList
	if err := auditJSON.Unmarshal(data, &v); err != nil {
		return &AuditError{Reason: "invalid audit JSON: " + shortErr(err), Excerpt: Excerpt(data, excerptLen), AuditID: sniffAuditID(data)}
	}
	if v.Kind == "EventList" {
		for i := range v.Items {
			if err := checkEvent(&v.Items[i]); err != nil {
				return fmt.Errorf("EventList item %d: %w", i, err)
			}
		}
		for i := range v.Items {
			fn(&v.Items[i])
		}
		return nil
	}
	if err := checkEvent(&v.Event); err != nil {
		return &AuditError{Reason: err.Error(), Excerpt: Excerpt(data, excerptLen)}
	}
	fn(&v.Event)
	return nil
}

// checkEvent rejects JSON that decoded but is not an audit event.
func checkEvent(e *auditv1.Event) error {
	if e.Kind != "" && e.Kind != "Event" {
		return fmt.Errorf("kind %q is not an audit Event", e.Kind)
	}
	if e.AuditID == "" || e.Stage == "" || e.Verb == "" && e.RequestURI == "" {
		return errors.New("not an audit event (auditID, stage and verb or requestURI are required)")
	}
	return nil
}

func shortErr(err error) string {
	s := err.Error()
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// BodyJSON returns the audit JSON a record body carries: the string (or
// binary) value of recordKey, or, when the body has no such key, the whole
// map converted to JSON (a record already parsed by Fluent Bit). The
// returned slice may alias the chunk; scratch is reused for conversions.
func BodyJSON(body []byte, recordKey string, scratch *bytes.Buffer) ([]byte, error) {
	n, b, err := msgp.ReadMapHeaderBytes(body)
	if err != nil {
		return nil, &AuditError{Reason: "record body is not a map"}
	}
	for i := uint32(0); i < n; i++ {
		var key []byte
		key, b, err = msgp.ReadMapKeyZC(b)
		if err != nil {
			return nil, &AuditError{Reason: "record body has a non-string key"}
		}
		if string(key) != recordKey {
			if b, err = msgp.Skip(b); err != nil {
				return nil, &AuditError{Reason: "record body is truncated"}
			}
			continue
		}
		switch msgp.NextType(b) {
		case msgp.StrType:
			v, _, err := msgp.ReadStringZC(b)
			if err != nil {
				return nil, &AuditError{Reason: fmt.Sprintf("field %q: %v", recordKey, err)}
			}
			return v, nil
		case msgp.BinType:
			v, _, err := msgp.ReadBytesZC(b)
			if err != nil {
				return nil, &AuditError{Reason: fmt.Sprintf("field %q: %v", recordKey, err)}
			}
			return v, nil
		case msgp.MapType:
			return toJSON(b, scratch)
		default:
			return nil, &AuditError{Reason: fmt.Sprintf("field %q is a %s, want a string holding audit JSON", recordKey, msgp.NextType(b))}
		}
	}
	return toJSON(body, scratch)
}

func toJSON(m []byte, scratch *bytes.Buffer) ([]byte, error) {
	scratch.Reset()
	if _, err := msgp.UnmarshalAsJSON(scratch, m); err != nil {
		return nil, &AuditError{Reason: "record map cannot be read as JSON: " + shortErr(err)}
	}
	return scratch.Bytes(), nil
}
