package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/kaudit/kaudit/test/esfake"
)

// bulkHalf splits a bulk request for a fault proxy that forwards only
// every other item and answers 429 for the rest, as an engine under
// pressure does item by item.
type bulkHalf struct {
	ops  []esfake.Op
	kept []int // indexes of the forwarded ops
}

// newBulkHalf parses body and returns the request to forward (the
// even-numbered items).
func newBulkHalf(body []byte) (*bulkHalf, []byte, error) {
	ops, err := esfake.ParseBulk(body)
	if err != nil {
		return nil, nil, err
	}
	h := &bulkHalf{ops: ops}
	var fwd bytes.Buffer
	for i, op := range ops {
		if i%2 == 1 {
			continue
		}
		h.kept = append(h.kept, i)
		a, _ := json.Marshal(map[string]any{op.Action: map[string]any{"_index": op.Index, "_id": op.ID}})
		fwd.Write(a)
		fwd.WriteByte('\n')
		fwd.Write(op.Source)
		fwd.WriteByte('\n')
	}
	return h, fwd.Bytes(), nil
}

// answer merges the engine's answer to the forwarded half into an answer
// for every item, the others a synthesised per-item 429; synthesised
// counts them.
func (h *bulkHalf) answer(engine []byte) (out []byte, synthesised int, err error) {
	var real struct {
		Took  int               `json:"took"`
		Items []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(engine, &real); err != nil {
		return nil, 0, err
	}
	if len(real.Items) != len(h.kept) {
		return nil, 0, fmt.Errorf("engine answered %d items for %d forwarded", len(real.Items), len(h.kept))
	}
	items := make([]json.RawMessage, len(h.ops))
	for j, i := range h.kept {
		items[i] = real.Items[j]
	}
	for i, op := range h.ops {
		if items[i] == nil {
			synthesised++
			items[i], _ = json.Marshal(map[string]any{op.Action: map[string]any{
				"_index": op.Index, "_id": op.ID, "status": 429,
				"error": map[string]any{"type": "es_rejected_execution_exception", "reason": "fault proxy: item not forwarded"},
			}})
		}
	}
	out, err = json.Marshal(map[string]any{"took": real.Took, "errors": true, "items": items})
	return out, synthesised, err
}
