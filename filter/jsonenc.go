package filter

import (
	"encoding/binary"
	"slices"
	"strconv"
	"unicode/utf8"
)

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD,
// so the output is always valid JSON whatever the input held.
func AppendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		// Eight plain bytes at a time: printable ASCII other than '"' and
		// '\\' is copied as it is.
		for i+8 <= len(s) && plain8(s[i:i+8]) {
			i += 8
		}
		if i >= len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// plain8 reports whether the 8 bytes of s are all printable ASCII other
// than '"' and '\\' (SWAR: a zero byte in w^c marks a byte equal to c, a
// borrow out of w-0x20 a byte below 0x20).
func plain8(s string) bool {
	w := uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
	q := w ^ (lsb * '"')
	bs := w ^ (lsb * '\\')
	bad := (w - lsb*0x20) | (q - lsb) | (bs - lsb) | w
	return bad&msb == 0
}

// plain8b is plain8 for bytes.
func plain8b(b []byte) bool {
	w := binary.LittleEndian.Uint64(b)
	q := w ^ (lsb * '"')
	bs := w ^ (lsb * '\\')
	bad := (w - lsb*0x20) | (q - lsb) | (bs - lsb) | w
	return bad&msb == 0
}

// AppendStrings appends a JSON array of strings.
func AppendStrings(b []byte, ss []string) []byte {
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendString(b, s)
	}
	return append(b, ']')
}

// AppendStringMap appends a JSON object with sorted keys.
func AppendStringMap(b []byte, m map[string]string) []byte {
	var arr [16]string // no allocation for the usual handful of annotations
	keys := arr[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendString(b, k)
		b = append(b, ':')
		b = AppendString(b, m[k])
	}
	return append(b, '}')
}

// jsonObject writes the members of one JSON object, tracking commas.
type jsonObject struct {
	b     []byte
	first bool
}

func openObject(b []byte) jsonObject { return jsonObject{b: append(b, '{'), first: true} }

func (o *jsonObject) key(k string) {
	if !o.first {
		o.b = append(o.b, ',')
	}
	o.first = false
	o.b = append(o.b, '"')
	o.b = append(o.b, k...)
	o.b = append(o.b, '"', ':')
}

// anyKey writes a key that may need escaping.
func (o *jsonObject) anyKey(k string) {
	if !o.first {
		o.b = append(o.b, ',')
	}
	o.first = false
	o.b = AppendString(o.b, k)
	o.b = append(o.b, ':')
}

func (o *jsonObject) str(k, v string) {
	o.key(k)
	o.b = AppendString(o.b, v)
}

// strOpt writes the member only when v is not empty.
func (o *jsonObject) strOpt(k, v string) {
	if v != "" {
		o.str(k, v)
	}
}

func (o *jsonObject) boolean(k string, v bool) {
	o.key(k)
	o.b = strconv.AppendBool(o.b, v)
}

func (o *jsonObject) integer(k string, v int64) {
	o.key(k)
	o.b = strconv.AppendInt(o.b, v, 10)
}

func (o *jsonObject) float(k string, v float64) {
	o.key(k)
	o.b = strconv.AppendFloat(o.b, v, 'f', -1, 64)
}

func (o *jsonObject) raw(k string, v []byte) {
	o.key(k)
	o.b = append(o.b, v...)
}

func (o *jsonObject) strings(k string, v []string) {
	o.key(k)
	o.b = AppendStrings(o.b, v)
}

func (o *jsonObject) close() []byte { return append(o.b, '}') }
