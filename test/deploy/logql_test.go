package deploy

import (
	"fmt"
	"regexp"
	"strings"
)

// A small reader of the LogQL the dashboards and rules use (Loki is AGPL
// and stays out of the project): it finds the stream selectors, the
// `| json name="path"` extractions, the line_format fields, the label
// filters, `unwrap` and `by (...)` labels, skipping quoted strings.

type matcher struct {
	Name, Op, Value string
}

type logQuery struct {
	Expr       string
	Selectors  [][]matcher
	Extracted  map[string]string // name -> JSON path
	BareJSON   bool              // `| json` without parameters
	Formats    []string          // line_format templates
	Filters    [][]matcher       // label filter stages; several matchers = and/or chain
	Unwrapped  []string
	Grouping   []string
	RangeWidth []string // [5m] ...
	Stages     []string // parser/formatter stage keywords used
}

var grafanaVars = strings.NewReplacer("$__auto", "1m", "$__range", "24h", "$__interval", "1m", "$__rate_interval", "1m")

type tokKind int

const (
	tIdent tokKind = iota
	tString
	tOp
	tPunct
	tNumber
)

type token struct {
	kind tokKind
	text string // for strings: the unquoted value
}

func tokenize(s string) ([]token, error) {
	var out []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\n' || c == '\t' || c == '\r':
			i++
		case c == '"':
			var b strings.Builder
			j := i + 1
			for ; j < len(s) && s[j] != '"'; j++ {
				if s[j] == '\\' && j+1 < len(s) {
					j++
					switch s[j] {
					case 'n':
						b.WriteByte('\n')
					default:
						b.WriteByte(s[j])
					}
					continue
				}
				b.WriteByte(s[j])
			}
			if j >= len(s) {
				return nil, fmt.Errorf("unterminated string at %d", i)
			}
			out = append(out, token{tString, b.String()})
			i = j + 1
		case c == '`':
			j := strings.IndexByte(s[i+1:], '`')
			if j < 0 {
				return nil, fmt.Errorf("unterminated raw string at %d", i)
			}
			out = append(out, token{tString, s[i+1 : i+1+j]})
			i += j + 2
		case isIdentStart(c):
			j := i
			for j < len(s) && (isIdentStart(s[j]) || (s[j] >= '0' && s[j] <= '9')) {
				j++
			}
			out = append(out, token{tIdent, s[i:j]})
			i = j
		case c >= '0' && c <= '9':
			j := i
			for j < len(s) && (s[j] >= '0' && s[j] <= '9' || s[j] == '.') {
				j++
			}
			out = append(out, token{tNumber, s[i:j]})
			i = j
		case c == '[':
			j := strings.IndexByte(s[i:], ']')
			if j < 0 {
				return nil, fmt.Errorf("unterminated range at %d", i)
			}
			out = append(out, token{tPunct, s[i : i+j+1]})
			i += j + 1
		default:
			for _, op := range []string{"|=", "|~", "!=", "!~", "=~", ">=", "<=", "==", "|", "=", ">", "<", "{", "}", "(", ")", ",", "+", "-", "*", "/"} {
				if strings.HasPrefix(s[i:], op) {
					kind := tOp
					if strings.Contains("{}(),", op) {
						kind = tPunct
					}
					out = append(out, token{kind, op})
					i += len(op)
					goto next
				}
			}
			return nil, fmt.Errorf("unexpected %q at %d", c, i)
		next:
		}
	}
	return out, nil
}

func isIdentStart(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func isMatchOp(s string) bool {
	switch s {
	case "=", "!=", "=~", "!~", ">", "<", ">=", "<=", "==":
		return true
	}
	return false
}

var templateField = regexp.MustCompile(`\{\{-?\s*(?:if\s+|with\s+|range\s+)?\.([A-Za-z_][A-Za-z0-9_]*)`)

// parseLogQL reads one expression.
func parseLogQL(expr string) (*logQuery, error) {
	q := &logQuery{Expr: expr, Extracted: map[string]string{}}
	toks, err := tokenize(grafanaVars.Replace(expr))
	if err != nil {
		return nil, err
	}
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		switch {
		case t.kind == tPunct && t.text == "{":
			var sel []matcher
			i++
			for ; i < len(toks) && toks[i].text != "}"; i++ {
				if toks[i].text == "," {
					continue
				}
				if i+2 >= len(toks) || toks[i].kind != tIdent || !isMatchOp(toks[i+1].text) || toks[i+2].kind != tString {
					return nil, fmt.Errorf("bad stream selector near %q", toks[i].text)
				}
				sel = append(sel, matcher{toks[i].text, toks[i+1].text, toks[i+2].text})
				i += 2
			}
			q.Selectors = append(q.Selectors, sel)
		case t.kind == tPunct && strings.HasPrefix(t.text, "["):
			q.RangeWidth = append(q.RangeWidth, strings.Trim(t.text, "[]"))
		case t.kind == tIdent && (t.text == "by" || t.text == "without") && i+1 < len(toks) && toks[i+1].text == "(":
			for i += 2; i < len(toks) && toks[i].text != ")"; i++ {
				if toks[i].kind == tIdent {
					q.Grouping = append(q.Grouping, toks[i].text)
				}
			}
		case t.kind == tOp && t.text == "|":
			if i+1 >= len(toks) {
				return nil, fmt.Errorf("dangling |")
			}
			i++
			kw := toks[i]
			if kw.kind != tIdent {
				return nil, fmt.Errorf("unexpected %q after |", kw.text)
			}
			end := stageEnd(toks, i+1)
			switch kw.text {
			case "json":
				q.Stages = append(q.Stages, "json")
				if end == i+1 {
					q.BareJSON = true
				}
				for j := i + 1; j < end; j++ {
					if toks[j].text == "," {
						continue
					}
					if j+2 >= len(toks) || toks[j].kind != tIdent || toks[j+1].text != "=" || toks[j+2].kind != tString {
						return nil, fmt.Errorf("bad json parameter near %q", toks[j].text)
					}
					q.Extracted[toks[j].text] = toks[j+2].text
					j += 2
				}
			case "line_format":
				q.Stages = append(q.Stages, "line_format")
				if i+1 >= len(toks) || toks[i+1].kind != tString {
					return nil, fmt.Errorf("line_format without a template")
				}
				q.Formats = append(q.Formats, toks[i+1].text)
			case "unwrap":
				q.Unwrapped = append(q.Unwrapped, toks[i+1].text)
			case "logfmt", "regexp", "pattern", "label_format", "unpack", "drop", "keep", "decolorize":
				return nil, fmt.Errorf("stage %s: only json, line_format, unwrap and label filters are checked", kw.text)
			default:
				var chain []matcher
				for j := i; j < end; j++ {
					if toks[j].kind == tIdent && j+2 < len(toks) && isMatchOp(toks[j+1].text) {
						chain = append(chain, matcher{toks[j].text, toks[j+1].text, toks[j+2].text})
						j += 2
					} else if toks[j].kind == tIdent && (toks[j].text == "or" || toks[j].text == "and") {
						continue
					} else {
						return nil, fmt.Errorf("bad label filter near %q", toks[j].text)
					}
				}
				q.Filters = append(q.Filters, chain)
			}
			i = end - 1
		}
	}
	if len(q.Selectors) == 0 {
		return nil, fmt.Errorf("no stream selector")
	}
	return q, nil
}

// stageEnd returns the index of the token ending the pipeline stage that
// starts at i: the next |, line filter, range, or closing parenthesis.
func stageEnd(toks []token, i int) int {
	for ; i < len(toks); i++ {
		switch t := toks[i]; {
		case t.kind == tOp && (t.text == "|" || t.text == "|=" || t.text == "|~"):
			return i
		case t.kind == tOp && (t.text == "!=" || t.text == "!~") && i+1 < len(toks) && toks[i+1].kind == tString && (i == 0 || toks[i-1].kind != tIdent):
			return i
		case t.kind == tPunct && (strings.HasPrefix(t.text, "[") || t.text == ")"):
			return i
		}
	}
	return i
}

// fields returns the names a template reads.
func templateFields(tmpl string) []string {
	var out []string
	for _, m := range templateField.FindAllStringSubmatch(tmpl, -1) {
		out = append(out, m[1])
	}
	return out
}
