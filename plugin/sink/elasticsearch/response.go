package elasticsearch

import (
	"errors"
	"fmt"
	"io"
	"strings"

	jsoniter "github.com/json-iterator/go"
)

// itemResult is one entry of a bulk response's items array.
type itemResult struct {
	Status  int
	ErrType string
	Reason  string
}

// maxReason bounds the reasons kept and logged per item.
const maxReason = 1024

// parseBulk reads a bulk response body as a stream, calling fn for each
// item in order, and returns how many items it saw. Fields other than
// items are skipped; nothing but the item results is kept.
func parseBulk(r io.Reader, fn func(i int, res itemResult)) (int, error) {
	it := jsoniter.Parse(jsoniter.ConfigFastest, r, 16<<10)
	n := 0
	if it.WhatIsNext() != jsoniter.ObjectValue {
		return 0, errors.New("bulk response is not a JSON object")
	}
	it.ReadObjectCB(func(it *jsoniter.Iterator, field string) bool {
		if field != "items" {
			it.Skip()
			return true
		}
		if it.WhatIsNext() != jsoniter.ArrayValue {
			it.ReportError("items", "not an array")
			return false
		}
		it.ReadArrayCB(func(it *jsoniter.Iterator) bool {
			var res itemResult
			// {"create": {...}} (or index/update/delete: one key).
			it.ReadObjectCB(func(it *jsoniter.Iterator, _ string) bool {
				res = readItem(it)
				return true
			})
			fn(n, res)
			n++
			return it.Error == nil
		})
		return it.Error == nil
	})
	if it.Error != nil && it.Error != io.EOF {
		return n, fmt.Errorf("bulk response after %d items: %w", n, it.Error)
	}
	return n, nil
}

func readItem(it *jsoniter.Iterator) itemResult {
	var res itemResult
	it.ReadObjectCB(func(it *jsoniter.Iterator, field string) bool {
		switch field {
		case "status":
			res.Status = it.ReadInt()
		case "error":
			res.ErrType, res.Reason = readError(it)
		default:
			it.Skip()
		}
		return true
	})
	return res
}

// readError reads an error value: an object with type, reason and
// caused_by, or (very old servers) a string.
func readError(it *jsoniter.Iterator) (typ, reason string) {
	switch it.WhatIsNext() {
	case jsoniter.StringValue:
		return "", clip(it.ReadString())
	case jsoniter.ObjectValue:
	default:
		it.Skip()
		return "", ""
	}
	var causeType, causeReason string
	it.ReadObjectCB(func(it *jsoniter.Iterator, field string) bool {
		switch field {
		case "type":
			typ = it.ReadString()
		case "reason":
			reason = it.ReadString()
		case "caused_by":
			causeType, causeReason = readError(it)
		default:
			it.Skip()
		}
		return true
	})
	if causeType != "" || causeReason != "" {
		reason += " (caused by " + strings.TrimPrefix(causeType+": "+causeReason, ": ") + ")"
	}
	return typ, clip(reason)
}

// errorSummary reads a whole-request error body ({"error":{…},"status":N})
// into "type: reason"; the raw text (clipped) when it is not one.
func errorSummary(body []byte) string {
	it := jsoniter.ConfigFastest.BorrowIterator(body)
	defer jsoniter.ConfigFastest.ReturnIterator(it)
	var typ, reason string
	if it.WhatIsNext() == jsoniter.ObjectValue {
		it.ReadObjectCB(func(it *jsoniter.Iterator, field string) bool {
			if field == "error" {
				typ, reason = readError(it)
			} else {
				it.Skip()
			}
			return true
		})
	}
	if it.Error != nil && it.Error != io.EOF || typ == "" && reason == "" {
		return clip(strings.TrimSpace(string(body)))
	}
	return strings.TrimPrefix(typ+": "+reason, ": ")
}

func clip(s string) string {
	if len(s) > maxReason {
		return s[:maxReason] + "…"
	}
	return s
}
