package elasticsearch

import (
	"fmt"
	"strings"
	"time"
)

// Pattern is a precompiled strftime index name: literal text and the
// fields %Y %y %m %d %H %M %S %j %G %V %u %% — all formatted in UTC from
// the document's own time, never the wall clock.
type Pattern struct {
	src   string
	segs  []seg
	fixed bool // no time fields
}

type seg struct {
	lit  string
	verb byte // 0 for a literal
}

// CompilePattern parses s; the error says which field is unsupported or
// why the resulting name would be invalid.
func CompilePattern(s string) (*Pattern, error) {
	p := &Pattern{src: s, fixed: true}
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			p.segs = append(p.segs, seg{lit: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '%' {
			lit.WriteByte(c)
			continue
		}
		if i+1 == len(s) {
			return nil, fmt.Errorf("%q ends with a lone %%", s)
		}
		i++
		switch v := s[i]; v {
		case '%':
			lit.WriteByte('%')
		case 'Y', 'y', 'm', 'd', 'H', 'M', 'S', 'j', 'G', 'V', 'u':
			flush()
			p.segs = append(p.segs, seg{verb: v})
			p.fixed = false
		default:
			return nil, fmt.Errorf("%%%c is not supported (use %%Y %%y %%m %%d %%H %%M %%S %%j %%G %%V %%u)", v)
		}
	}
	flush()
	sample := string(p.Append(nil, time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC)))
	if why := validIndexName(sample); why != "" {
		return nil, fmt.Errorf("the name (e.g. %q) %s", sample, why)
	}
	return p, nil
}

// Source is the pattern as written.
func (p *Pattern) Source() string { return p.src }

// Fixed reports whether the name does not depend on time.
func (p *Pattern) Fixed() bool { return p.fixed }

// Prefix is the literal text before the first time field.
func (p *Pattern) Prefix() string {
	if len(p.segs) > 0 && p.segs[0].verb == 0 {
		return p.segs[0].lit
	}
	return ""
}

// Glob is an index pattern matching every name the pattern can produce:
// each time field becomes *.
func (p *Pattern) Glob() string {
	var b strings.Builder
	for _, s := range p.segs {
		if s.verb == 0 {
			b.WriteString(s.lit)
		} else if !strings.HasSuffix(b.String(), "*") {
			b.WriteByte('*')
		}
	}
	return b.String()
}

// Append appends the name for t (converted to UTC).
func (p *Pattern) Append(b []byte, t time.Time) []byte {
	t = t.UTC()
	for _, s := range p.segs {
		switch s.verb {
		case 0:
			b = append(b, s.lit...)
		case 'Y':
			b = appendInt(b, t.Year(), 4)
		case 'y':
			b = appendInt(b, t.Year()%100, 2)
		case 'm':
			b = appendInt(b, int(t.Month()), 2)
		case 'd':
			b = appendInt(b, t.Day(), 2)
		case 'H':
			b = appendInt(b, t.Hour(), 2)
		case 'M':
			b = appendInt(b, t.Minute(), 2)
		case 'S':
			b = appendInt(b, t.Second(), 2)
		case 'j':
			b = appendInt(b, t.YearDay(), 3)
		case 'G':
			y, _ := t.ISOWeek()
			b = appendInt(b, y, 4)
		case 'V':
			_, w := t.ISOWeek()
			b = appendInt(b, w, 2)
		case 'u':
			wd := int(t.Weekday())
			if wd == 0 {
				wd = 7
			}
			b = appendInt(b, wd, 1)
		}
	}
	return b
}

// Format returns the name for t.
func (p *Pattern) Format(t time.Time) string { return string(p.Append(nil, t)) }

// appendInt appends a non-negative v zero-padded to width digits.
func appendInt(b []byte, v, width int) []byte {
	if v < 0 {
		v = 0
	}
	var tmp [20]byte
	i := len(tmp)
	for v > 0 || i == len(tmp) {
		i--
		tmp[i] = byte('0' + v%10)
		v /= 10
	}
	for n := len(tmp) - i; n < width; n++ {
		b = append(b, '0')
	}
	return append(b, tmp[i:]...)
}

// subDay reports whether a field changes within a UTC day (%H %M %S).
func (p *Pattern) subDay() bool {
	for _, s := range p.segs {
		if s.verb == 'H' || s.verb == 'M' || s.verb == 'S' {
			return true
		}
	}
	return false
}
