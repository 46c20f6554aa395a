package filter

import (
	"bytes"
	"strconv"
)

// A minimal JSON scanner over audit bodies (runtime.Unknown.Raw). It finds
// members by key and the byte ranges of their values without decoding the
// document, so the policy stage can cut metadata.managedFields and the
// critical stage can read metadata.labels without a full parse. Malformed
// input makes every function report "not found"; the caller then leaves
// the body as it is.

func pjWS(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// pjSkipString returns the index just past the string whose opening quote
// is at b[i], or -1.
func pjSkipString(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return -1
}

// pjSkipValue returns the index just past the value starting at or after i
// (leading whitespace skipped), or -1.
func pjSkipValue(b []byte, i int) int {
	i = pjWS(b, i)
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return pjSkipString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				j = pjSkipString(b, j)
				if j < 0 {
					return -1
				}
				j--
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	default:
		j := i
		for j < len(b) {
			switch b[j] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return j
			}
			j++
		}
		return j
	}
}

// pjMember is one "key": value of an object, as byte offsets into the
// document: key is the raw key (no quotes, escapes kept), keyAt the index
// of its opening quote, [valAt, valEnd) the value, next the index of the
// next member's key quote or -1 when this is the last member.
type pjMember struct {
	key                  []byte
	keyAt, valAt, valEnd int
	next                 int
}

// pjObjIter walks the members of one object.
type pjObjIter struct {
	b    []byte
	i    int // index of the next key quote, or -1 when done
	prev int // valEnd of the previous pjMember, -1 for none
}

// pjObject starts at the object whose '{' is at or after i.
func pjObject(b []byte, i int) (pjObjIter, bool) {
	i = pjWS(b, i)
	if i >= len(b) || b[i] != '{' {
		return pjObjIter{}, false
	}
	j := pjWS(b, i+1)
	if j >= len(b) {
		return pjObjIter{}, false
	}
	if b[j] == '}' {
		return pjObjIter{b: b, i: -1, prev: -1}, true
	}
	if b[j] != '"' {
		return pjObjIter{}, false
	}
	return pjObjIter{b: b, i: j, prev: -1}, true
}

// next returns the next member; ok is false at the end or on bad input.
func (it *pjObjIter) next() (m pjMember, ok bool) {
	if it.i < 0 {
		return m, false
	}
	b := it.b
	ke := pjSkipString(b, it.i)
	if ke < 0 {
		it.i = -1
		return m, false
	}
	m.key = b[it.i+1 : ke-1]
	m.keyAt = it.i
	c := pjWS(b, ke)
	if c >= len(b) || b[c] != ':' {
		it.i = -1
		return m, false
	}
	m.valAt = pjWS(b, c+1)
	m.valEnd = pjSkipValue(b, m.valAt)
	if m.valEnd < 0 {
		it.i = -1
		return m, false
	}
	m.next = -1
	d := pjWS(b, m.valEnd)
	if d < len(b) && b[d] == ',' {
		if n := pjWS(b, d+1); n < len(b) && b[n] == '"' {
			m.next = n
		}
	}
	it.i = m.next
	return m, true
}

// pjFind returns the member named key of the object at i, and the end
// of the value before it (-1 when it is the first member).
func pjFind(b []byte, i int, key string) (m pjMember, prevEnd int, ok bool) {
	it, ok := pjObject(b, i)
	if !ok {
		return m, -1, false
	}
	prevEnd = -1
	for {
		m, ok = it.next()
		if !ok {
			return m, -1, false
		}
		if string(m.key) == key {
			return m, prevEnd, true
		}
		prevEnd = m.valEnd
	}
}

// pjSpan is a byte range [from, to) to cut out of a document.
type pjSpan struct{ from, to int }

// pjCut is the range that removes m and one neighbouring comma.
func pjCut(m pjMember, prevEnd int) pjSpan {
	switch {
	case m.next >= 0:
		return pjSpan{m.keyAt, m.next}
	case prevEnd >= 0:
		return pjSpan{prevEnd, m.valEnd}
	default:
		return pjSpan{m.keyAt, m.valEnd}
	}
}

// pjManagedFieldsCut appends the cut that removes metadata.managedFields
// from the object at i, if it has one.
func pjManagedFieldsCut(b []byte, i int, cuts []pjSpan) []pjSpan {
	md, _, ok := pjFind(b, i, "metadata")
	if !ok {
		return cuts
	}
	mf, prev, ok := pjFind(b, md.valAt, "managedFields")
	if !ok {
		return cuts
	}
	return append(cuts, pjCut(mf, prev))
}

// stripManagedFields removes metadata.managedFields from the object in raw,
// from each item of a list (items[]) and each row object of a Table
// (rows[].object), as kube-apiserver's omitManagedFields does. It edits raw
// in place and returns the shortened slice; removed reports whether
// anything was cut. Everything else, byte order included, is kept, so the
// output is deterministic.
func stripManagedFields(raw []byte) (out []byte, removed bool) {
	if !bytes.Contains(raw, []byte(`"managedFields"`)) {
		return raw, false
	}
	var buf [8]pjSpan
	cuts := pjManagedFieldsCut(raw, 0, buf[:0])
	for _, list := range [...]struct{ key, sub string }{{"items", ""}, {"rows", "object"}} {
		arr, _, ok := pjFind(raw, 0, list.key)
		if !ok || raw[arr.valAt] != '[' {
			continue
		}
		for j := pjWS(raw, arr.valAt+1); j < arr.valEnd && raw[j] != ']'; {
			end := pjSkipValue(raw, j)
			if end < 0 {
				break
			}
			if list.sub == "" {
				cuts = pjManagedFieldsCut(raw, j, cuts)
			} else if obj, _, ok := pjFind(raw, j, list.sub); ok {
				cuts = pjManagedFieldsCut(raw, obj.valAt, cuts)
			}
			j = pjWS(raw, end)
			if j < len(raw) && raw[j] == ',' {
				j = pjWS(raw, j+1)
			}
		}
	}
	if len(cuts) == 0 {
		return raw, false
	}
	// Cuts are disjoint; put them in document order and compact once.
	for k := 1; k < len(cuts); k++ {
		for j := k; j > 0 && cuts[j].from < cuts[j-1].from; j-- {
			cuts[j], cuts[j-1] = cuts[j-1], cuts[j]
		}
	}
	w := cuts[0].from
	for k, c := range cuts {
		end := len(raw)
		if k+1 < len(cuts) {
			end = cuts[k+1].from
		}
		w += copy(raw[w:], raw[c.to:end])
	}
	return raw[:w], true
}

// pjUnquote decodes the JSON string value v (quotes included). Strings
// without escapes are copied as they are.
func pjUnquote(v []byte) (string, bool) {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return "", false
	}
	if bytes.IndexByte(v, '\\') < 0 {
		return string(v[1 : len(v)-1]), true
	}
	s, err := strconv.Unquote(string(v))
	return s, err == nil
}

// pjObjectMeta reads metadata.name and metadata.labels of the object in raw.
// hasMeta is false when raw is not an object with a metadata object.
func pjObjectMeta(raw []byte) (name string, lbls map[string]string, hasMeta bool) {
	md, _, ok := pjFind(raw, 0, "metadata")
	if !ok {
		return "", nil, false
	}
	it, ok := pjObject(raw, md.valAt)
	if !ok {
		return "", nil, false
	}
	for {
		m, ok := it.next()
		if !ok {
			break
		}
		switch string(m.key) {
		case "name":
			name, _ = pjUnquote(raw[m.valAt:m.valEnd])
		case "labels":
			li, ok := pjObject(raw, m.valAt)
			if !ok {
				continue
			}
			for {
				l, ok := li.next()
				if !ok {
					break
				}
				k, ok1 := pjUnquote(raw[l.keyAt : l.keyAt+len(l.key)+2])
				v, ok2 := pjUnquote(raw[l.valAt:l.valEnd])
				if ok1 && ok2 {
					if lbls == nil {
						lbls = make(map[string]string, 8)
					}
					lbls[k] = v
				}
			}
		}
	}
	return name, lbls, true
}
