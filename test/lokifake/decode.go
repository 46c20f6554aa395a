package lokifake

// Push body decoding, written from Loki's documented push.proto and HTTP
// API, independently of the kaudit encoder: protobuf is read field by
// field with protowire, snappy with github.com/golang/snappy.

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/golang/snappy"
	"google.golang.org/protobuf/encoding/protowire"
)

// Pair is a label or structured metadata pair.
type Pair struct{ Name, Value string }

// PushEntry is one decoded entry of a push request.
type PushEntry struct {
	Timestamp time.Time
	Line      string
	Metadata  []Pair
}

// PushStream is one decoded stream of a push request.
type PushStream struct {
	Labels  string // as sent
	Entries []PushEntry
}

// DecodeBody decodes a push body by Content-Type and Content-Encoding the
// way Loki does: application/json is the JSON body (optionally gzip), any
// other type a snappy-compressed protobuf PushRequest.
func DecodeBody(contentType, contentEncoding string, body []byte) ([]PushStream, error) {
	ct := strings.ToLower(strings.TrimSpace(strings.SplitN(contentType, ";", 2)[0]))
	if ct == "application/json" {
		if strings.EqualFold(contentEncoding, "gzip") {
			zr, err := gzip.NewReader(bytes.NewReader(body))
			if err != nil {
				return nil, err
			}
			if body, err = io.ReadAll(zr); err != nil {
				return nil, err
			}
		}
		return DecodeJSON(body)
	}
	raw, err := snappy.Decode(nil, body)
	if err != nil {
		return nil, fmt.Errorf("snappy: %w", err)
	}
	return DecodeProtobuf(raw)
}

// DecodeProtobuf reads a PushRequest:
// streams=1 { labels=1 string, entries=2 { timestamp=1 {seconds=1, nanos=2},
// line=2 string, structuredMetadata=3 { name=1, value=2 } }, hash=3 }.
func DecodeProtobuf(b []byte) ([]PushStream, error) {
	var out []PushStream
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if num != 1 {
			return nil
		}
		if typ != protowire.BytesType {
			return errors.New("PushRequest.streams: wrong wire type")
		}
		s, err := decodeStream(v)
		if err != nil {
			return err
		}
		out = append(out, s)
		return nil
	})
	return out, err
}

func decodeStream(b []byte) (PushStream, error) {
	var s PushStream
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		switch num {
		case 1:
			if typ != protowire.BytesType {
				return errors.New("StreamAdapter.labels: wrong wire type")
			}
			s.Labels = string(v)
		case 2:
			if typ != protowire.BytesType {
				return errors.New("StreamAdapter.entries: wrong wire type")
			}
			e, err := decodeEntry(v)
			if err != nil {
				return err
			}
			s.Entries = append(s.Entries, e)
		}
		return nil
	})
	return s, err
}

func decodeEntry(b []byte) (PushEntry, error) {
	var e PushEntry
	var sec, nanos int64
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		switch num {
		case 1:
			if typ != protowire.BytesType {
				return errors.New("EntryAdapter.timestamp: wrong wire type")
			}
			return eachField(v, func(n protowire.Number, t protowire.Type, _ []byte, x uint64) error {
				if t != protowire.VarintType {
					return errors.New("Timestamp: wrong wire type")
				}
				switch n {
				case 1:
					sec = int64(x)
				case 2:
					nanos = int64(int32(x))
				}
				return nil
			})
		case 2:
			if typ != protowire.BytesType {
				return errors.New("EntryAdapter.line: wrong wire type")
			}
			e.Line = string(v)
		case 3:
			if typ != protowire.BytesType {
				return errors.New("EntryAdapter.structuredMetadata: wrong wire type")
			}
			var p Pair
			err := eachField(v, func(n protowire.Number, t protowire.Type, s []byte, _ uint64) error {
				if t != protowire.BytesType {
					return errors.New("LabelPairAdapter: wrong wire type")
				}
				switch n {
				case 1:
					p.Name = string(s)
				case 2:
					p.Value = string(s)
				}
				return nil
			})
			if err != nil {
				return err
			}
			e.Metadata = append(e.Metadata, p)
		}
		return nil
	})
	e.Timestamp = time.Unix(sec, nanos).UTC()
	return e, err
}

// eachField walks the fields of a message; v is the payload of a
// length-delimited field, x the value of a varint or fixed field.
func eachField(b []byte, f func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		var v []byte
		var x uint64
		switch typ {
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		case protowire.Fixed32Type:
			var y uint32
			y, n = protowire.ConsumeFixed32(b)
			x = uint64(y)
		case protowire.Fixed64Type:
			x, n = protowire.ConsumeFixed64(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if err := f(num, typ, v, x); err != nil {
			return err
		}
	}
	return nil
}

// DecodeJSON reads {"streams":[{"stream":{…},"values":[["ns","line",{…}]]}]}.
func DecodeJSON(b []byte) ([]PushStream, error) {
	var req struct {
		Streams []struct {
			Stream map[string]string   `json:"stream"`
			Values [][]json.RawMessage `json:"values"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(b, &req); err != nil {
		return nil, err
	}
	out := make([]PushStream, 0, len(req.Streams))
	for _, s := range req.Streams {
		ps := make([]Pair, 0, len(s.Stream))
		for k, v := range s.Stream {
			ps = append(ps, Pair{k, v})
		}
		st := PushStream{Labels: FormatLabels(ps)}
		for _, v := range s.Values {
			if len(v) < 2 || len(v) > 3 {
				return nil, errors.New("each value must be [timestamp, line] or [timestamp, line, metadata]")
			}
			var tsText, line string
			if err := json.Unmarshal(v[0], &tsText); err != nil {
				return nil, fmt.Errorf("timestamp must be a string of nanoseconds: %w", err)
			}
			ns, err := strconv.ParseInt(tsText, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("timestamp %q: %w", tsText, err)
			}
			if err := json.Unmarshal(v[1], &line); err != nil {
				return nil, fmt.Errorf("line must be a string: %w", err)
			}
			e := PushEntry{Timestamp: time.Unix(0, ns).UTC(), Line: line}
			if len(v) == 3 {
				var md map[string]string
				if err := json.Unmarshal(v[2], &md); err != nil {
					return nil, fmt.Errorf("structured metadata must be an object of strings: %w", err)
				}
				for k, val := range md {
					e.Metadata = append(e.Metadata, Pair{k, val})
				}
				sort.Slice(e.Metadata, func(i, j int) bool { return e.Metadata[i].Name < e.Metadata[j].Name })
			}
			st.Entries = append(st.Entries, e)
		}
		out = append(out, st)
	}
	return out, nil
}

var labelNameRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// ParseLabels parses a stream selector as Loki takes it in the labels
// field: `{name="value", …}`, with Go-style escapes in values. Names must
// match [a-zA-Z_][a-zA-Z0-9_]*. The result is sorted by name.
func ParseLabels(s string) ([]Pair, error) {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, "{") || !strings.HasSuffix(s, "}") {
		return nil, errors.New("1:1: parse error: unexpected input, expected {")
	}
	rest := strings.TrimSpace(s[1 : len(s)-1])
	var out []Pair
	for rest != "" {
		i := strings.IndexByte(rest, '=')
		if i < 0 {
			return nil, fmt.Errorf("parse error: expected = after %q", rest)
		}
		name := strings.TrimSpace(rest[:i])
		if !labelNameRE.MatchString(name) {
			return nil, fmt.Errorf("parse error: invalid label name %q", name)
		}
		rest = strings.TrimSpace(rest[i+1:])
		q, err := strconv.QuotedPrefix(rest)
		if err != nil || !strings.HasPrefix(q, `"`) {
			return nil, fmt.Errorf("parse error: expected a quoted value for %s", name)
		}
		val, _ := strconv.Unquote(q)
		out = append(out, Pair{name, val})
		rest = strings.TrimSpace(rest[len(q):])
		if rest != "" {
			if rest[0] != ',' {
				return nil, fmt.Errorf("parse error: unexpected %q", rest)
			}
			rest = strings.TrimSpace(rest[1:])
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// FormatLabels prints pairs sorted by name as Loki does: {a="b", c="d"}.
func FormatLabels(ps []Pair) string {
	ps = append([]Pair(nil), ps...)
	sort.Slice(ps, func(i, j int) bool { return ps[i].Name < ps[j].Name })
	var b strings.Builder
	b.WriteByte('{')
	for i, p := range ps {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(p.Name)
		b.WriteByte('=')
		b.WriteString(strconv.Quote(p.Value))
	}
	b.WriteByte('}')
	return b.String()
}
