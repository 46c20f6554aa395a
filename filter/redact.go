package filter

import (
	"bytes"
	"sort"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/runtime"
)

// The redaction stage removes credentials from request and response
// bodies before anything else sees them, whatever the audit policy asked
// the apiserver to record:
//
//   - Secret data and stringData values (a Secret, a SecretList's items,
//     a Table's rows[*].object, a JSON patch on a Secret, and a Secret in
//     a kubectl.kubernetes.io/last-applied-configuration annotation);
//   - TokenRequest status.token (serviceaccounts/token responses);
//   - TokenReview spec.token.
//
// Values are replaced by RedactedValue; keys stay, so an audit reader still
// sees which keys a request set or changed. The JSON paths are listed in
// Meta.Redacted. A body of a sensitive request that cannot be parsed is
// replaced whole (fail closed). `redact_secrets off` turns this off.
//
// The stage also enforces max_event_bytes: while the bodies of an event
// together exceed it, the largest is replaced by a stub saying how big it
// was, and Meta.Truncated names it. And it replaces invalid UTF-8 inside
// bodies with U+FFFD, so every document is valid UTF-8 JSON.
//
// Bodies are edited in place by splicing byte ranges: everything that is
// not redacted stays byte for byte, and the same input always gives the
// same output, so a re-sent event encodes to the same document.

// RedactedValue replaces each redacted value.
const RedactedValue = "[REDACTED]"

// LastAppliedAnnotation is kubectl's copy of the applied object.
const LastAppliedAnnotation = "kubectl.kubernetes.io/last-applied-configuration"

// Body names used in Meta.Redacted and Meta.Truncated paths.
const (
	requestObjectPath  = "requestObject"
	responseObjectPath = "responseObject"
)

// maxRedactDepth bounds the nesting the redactor walks. A sensitive body
// nested deeper is replaced whole; a body that jsoniter accepted is at
// most 10000 deep anyway.
const maxRedactDepth = 10000

var (
	redactedJSON    = []byte(`"` + RedactedValue + `"`)
	redactedBodyRaw = []byte(`{"kaudit_redacted":true}`)
)

// truncatedStub replaces a body beyond max_event_bytes.
func truncatedStub(size int) []byte {
	b := append(make([]byte, 0, 48), `{"kaudit_truncated":true,"bytes":`...)
	b = strconv.AppendInt(b, int64(size), 10)
	return append(b, '}')
}

type redactStage struct {
	redact   bool
	maxBytes int
}

func newRedactStage(o *Options) (Stage, error) {
	// The stage always runs: even with redact_secrets off and no size
	// limit it keeps bodies valid UTF-8.
	return &redactStage{redact: o.RedactSecrets, maxBytes: o.MaxEventBytes}, nil
}

func (s *redactStage) Process(ev *Event) Drop {
	if s.maxBytes > 0 {
		truncateBodies(ev, s.maxBytes)
	}
	for _, body := range []struct {
		u    *runtime.Unknown
		path string
	}{{ev.RequestObject, requestObjectPath}, {ev.ResponseObject, responseObjectPath}} {
		if body.u == nil || len(body.u.Raw) == 0 {
			continue
		}
		if !utf8.Valid(body.u.Raw) {
			body.u.Raw = validUTF8(body.u.Raw)
		}
		if s.redact {
			if raw, paths, ok := RedactBody(body.u.Raw, hintFor(ev), body.path); ok {
				body.u.Raw = raw
				ev.Kaudit.Redacted = append(ev.Kaudit.Redacted, paths...)
			}
		}
	}
	return Keep
}

// truncateBodies replaces the largest body by a stub until the bodies
// together fit max.
func truncateBodies(ev *Event, max int) {
	size := func(u *runtime.Unknown) int {
		if u == nil {
			return 0
		}
		return len(u.Raw)
	}
	for size(ev.RequestObject)+size(ev.ResponseObject) > max {
		u, name := ev.ResponseObject, responseObjectPath
		if size(ev.RequestObject) > size(ev.ResponseObject) {
			u, name = ev.RequestObject, requestObjectPath
		}
		n := len(u.Raw)
		stub := truncatedStub(n)
		if n <= len(stub) {
			return // nothing left to gain
		}
		u.Raw = stub
		ev.Kaudit.Truncated = append(ev.Kaudit.Truncated, name)
	}
}

// validUTF8 replaces each invalid byte by \ufffd. Invalid bytes can only
// stand inside JSON strings (jsoniter rejects them elsewhere), where the
// escape is valid.
func validUTF8(b []byte) []byte {
	out := make([]byte, 0, len(b)+16)
	for i := 0; i < len(b); {
		c := b[i]
		if c < utf8.RuneSelf {
			out = append(out, c)
			i++
			continue
		}
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			out = append(out, `\ufffd`...)
			i++
			continue
		}
		out = append(out, b[i:i+n]...)
		i += n
	}
	return out
}

// Hint says what the top-level body of an event is known to be, from its
// objectRef, before looking inside.
type Hint uint8

// Hints.
const (
	// HintNone: only objects whose own kind says Secret, SecretList,
	// TokenRequest or TokenReview are redacted.
	HintNone Hint = iota
	// HintSecret: the body is a Secret, a SecretList, a Table of
	// Secrets, or a patch of a Secret (objectRef resource "secrets").
	HintSecret
	// HintTokenRequest: serviceaccounts/token.
	HintTokenRequest
	// HintTokenReview: tokenreviews.authentication.k8s.io.
	HintTokenReview
)

func hintFor(ev *Event) Hint {
	r := ev.ObjectRef
	if r == nil {
		return HintNone
	}
	switch {
	case r.Resource == "secrets" && r.APIGroup == "":
		return HintSecret
	case r.Resource == "serviceaccounts" && r.Subresource == "token" && r.APIGroup == "":
		return HintTokenRequest
	case r.Resource == "tokenreviews" && r.APIGroup == "authentication.k8s.io":
		return HintTokenReview
	}
	return HintNone
}

// Cheap pre-check: without one of these byte strings a body can hold no
// Secret or token object whose kind announces it (also matches the
// escaped \"Secret inside an annotation string).
var (
	markSecret = []byte(`"Secret`)
	markToken  = []byte(`"Token`)
)

func mightHoldSecrets(raw []byte) bool {
	return bytes.Contains(raw, markSecret) || bytes.Contains(raw, markToken)
}

// RedactBody removes credentials from one JSON body. name is the path
// prefix of the paths it returns ("requestObject"). ok is false when
// nothing was changed; raw is then the input.
func RedactBody(raw []byte, hint Hint, name string) (out []byte, paths []string, ok bool) {
	deep := mightHoldSecrets(raw)
	if hint == HintNone && !deep {
		return raw, nil, false
	}
	r := redactor{b: raw, deep: deep}
	r.path = append(r.path, seg{key: name})
	pos := skipWS(raw, 0)
	if pos >= len(raw) {
		return raw, nil, false
	}
	err := r.index(pos)
	var end int
	if err == nil {
		end, err = r.value(pos, 0, topHint(hint))
	}
	if err == nil && skipWS(raw, end) != len(raw) {
		err = errSyntax
	}
	if err != nil {
		// A body that may hold credentials but cannot be read (YAML
		// apply patch, garbage, nesting beyond the bound): fail closed.
		return redactedBodyRaw, []string{name}, true
	}
	if len(r.edits) == 0 {
		return raw, nil, false
	}
	if r.more > 0 {
		r.paths = append(r.paths, name+": "+strconv.Itoa(r.more)+" more")
	}
	return r.apply(), r.paths, true
}

// role is what the redactor knows about the value it is at.
type role uint8

const (
	roleAny       role = iota // look at kind
	roleSecretTop             // top-level body of a secrets request
	roleSecret                // a Secret whatever its kind says
	roleRow                   // a Table row: its "object" is a Secret
	roleTokenReq              // a TokenRequest
	roleTokenRev              // a TokenReview
	roleJSONPatch             // JSON patch operation of a Secret
)

func topHint(h Hint) role {
	switch h {
	case HintSecret:
		return roleSecretTop
	case HintTokenRequest:
		return roleTokenReq
	case HintTokenReview:
		return roleTokenRev
	}
	return roleAny
}

type seg struct {
	key   string
	index int // used when key == "" and isIdx
	isIdx bool
}

type edit struct {
	start, end int
	repl       []byte
}

type redactor struct {
	b    []byte
	deep bool // the body holds "Secret or "Token somewhere: walk all of it
	// opens and closes are the offsets of matching brackets, in the
	// order of the opening ones, so a container is skipped in O(log n)
	// and the walk stays linear however deep the body nests.
	opens, closes []int32
	path          []seg
	edits         []edit
	paths         []string
	more          int // redactions beyond maxRedactedPaths
}

// maxRedactedPaths bounds the paths listed for one body (a list of
// thousands of Secrets); the rest are counted in one last entry.
const maxRedactedPaths = 64

type syntaxError struct{}

func (syntaxError) Error() string { return "invalid JSON" }

var errSyntax error = syntaxError{}

func (r *redactor) record(start, end int, repl []byte) {
	r.edits = append(r.edits, edit{start, end, repl})
	if len(r.paths) < maxRedactedPaths {
		r.paths = append(r.paths, renderPath(r.path))
	} else {
		r.more++
	}
}

func (r *redactor) apply() []byte {
	n := len(r.b)
	for _, e := range r.edits {
		n += len(e.repl) - (e.end - e.start)
	}
	out := make([]byte, 0, n)
	prev := 0
	for _, e := range r.edits {
		out = append(out, r.b[prev:e.start]...)
		out = append(out, e.repl...)
		prev = e.end
	}
	return append(out, r.b[prev:]...)
}

func renderPath(p []seg) string {
	var b []byte
	for i, s := range p {
		switch {
		case s.isIdx:
			b = append(b, '[')
			b = strconv.AppendInt(b, int64(s.index), 10)
			b = append(b, ']')
		case plainKey(s.key):
			if i > 0 {
				b = append(b, '.')
			}
			b = append(b, s.key...)
		default:
			b = append(b, '[')
			b = AppendString(b, s.key)
			b = append(b, ']')
		}
	}
	return string(b)
}

func plainKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// member is one "key": value of an object.
type member struct {
	key        string
	start, end int // the value
}

// value walks the value at pos; it returns the offset after it.
func (r *redactor) value(pos, depth int, ro role) (int, error) {
	if depth > maxRedactDepth {
		return 0, errSyntax
	}
	switch r.b[pos] {
	case '{':
		ms, end, err := r.members(pos)
		if err != nil {
			return 0, err
		}
		return end, r.object(ms, depth, ro)
	case '[':
		return r.array(pos, depth, ro)
	}
	return skipScalar(r.b, pos)
}

// members parses the object at pos into its members (values skipped).
func (r *redactor) members(pos int) ([]member, int, error) {
	var ms []member
	pos = skipWS(r.b, pos+1)
	if pos < len(r.b) && r.b[pos] == '}' {
		return nil, pos + 1, nil
	}
	for {
		if pos >= len(r.b) || r.b[pos] != '"' {
			return nil, 0, errSyntax
		}
		kend, err := skipString(r.b, pos)
		if err != nil {
			return nil, 0, err
		}
		key := unquote(r.b[pos:kend])
		pos = skipWS(r.b, kend)
		if pos >= len(r.b) || r.b[pos] != ':' {
			return nil, 0, errSyntax
		}
		vstart := skipWS(r.b, pos+1)
		if vstart >= len(r.b) {
			return nil, 0, errSyntax
		}
		vend, err := r.skip(vstart)
		if err != nil {
			return nil, 0, err
		}
		ms = append(ms, member{key: key, start: vstart, end: vend})
		pos = skipWS(r.b, vend)
		if pos >= len(r.b) {
			return nil, 0, errSyntax
		}
		switch r.b[pos] {
		case ',':
			pos = skipWS(r.b, pos+1)
		case '}':
			return ms, pos + 1, nil
		default:
			return nil, 0, errSyntax
		}
	}
}

func (r *redactor) array(pos, depth int, ro role) (int, error) {
	elem := roleAny
	switch ro {
	case roleSecretTop:
		elem = roleJSONPatch // a top-level array on a Secret is a JSON patch
	case roleSecret:
		elem = roleSecret // items of a list of Secrets
	case roleRow:
		elem = roleRow
	}
	if !r.deep && elem == roleAny {
		return r.skip(pos)
	}
	pos = skipWS(r.b, pos+1)
	if pos < len(r.b) && r.b[pos] == ']' {
		return pos + 1, nil
	}
	for i := 0; ; i++ {
		if pos >= len(r.b) {
			return 0, errSyntax
		}
		r.path = append(r.path, seg{index: i, isIdx: true})
		end, err := r.value(pos, depth+1, elem)
		r.path = r.path[:len(r.path)-1]
		if err != nil {
			return 0, err
		}
		pos = skipWS(r.b, end)
		if pos >= len(r.b) {
			return 0, errSyntax
		}
		switch r.b[pos] {
		case ',':
			pos = skipWS(r.b, pos+1)
		case ']':
			return pos + 1, nil
		default:
			return 0, errSyntax
		}
	}
}

func (r *redactor) stringValue(m member) (string, bool) {
	if r.b[m.start] != '"' {
		return "", false
	}
	return unquote(r.b[m.start:m.end]), true
}

// object applies the rules to one object and walks its children.
func (r *redactor) object(ms []member, depth int, ro role) error {
	secret, list, tokenReq, tokenRev := false, false, false, false
	switch ro {
	case roleSecretTop, roleSecret:
		secret, list = true, true
	case roleTokenReq:
		tokenReq = true
	case roleTokenRev:
		tokenRev = true
	case roleJSONPatch:
		for _, m := range ms {
			if m.key == "value" {
				r.path = append(r.path, seg{key: m.key})
				r.redactValue(m)
				r.path = r.path[:len(r.path)-1]
			}
		}
		return nil
	}
	for _, m := range ms {
		if m.key != "kind" {
			continue
		}
		switch k, _ := r.stringValue(m); k {
		case "Secret":
			secret = true
		case "SecretList":
			list = true
		case "TokenRequest":
			tokenReq = true
		case "TokenReview":
			tokenRev = true
		}
	}
	for _, m := range ms {
		r.path = append(r.path, seg{key: m.key})
		err := r.member(m, depth, ro, secret, list, tokenReq, tokenRev)
		r.path = r.path[:len(r.path)-1]
		if err != nil {
			return err
		}
	}
	return nil
}

func (r *redactor) member(m member, depth int, ro role, secret, list, tokenReq, tokenRev bool) error {
	switch {
	case secret && (m.key == "data" || m.key == "stringData"):
		return r.redactMap(m)
	case tokenReq && m.key == "status", tokenRev && m.key == "spec":
		if r.b[m.start] != '{' {
			return nil
		}
		ms, _, err := r.members(m.start)
		if err != nil {
			return err
		}
		for _, c := range ms {
			if c.key == "token" {
				r.path = append(r.path, seg{key: c.key})
				r.redactValue(c)
				r.path = r.path[:len(r.path)-1]
			} else if r.deep {
				r.path = append(r.path, seg{key: c.key})
				_, err := r.value(c.start, depth+2, roleAny)
				r.path = r.path[:len(r.path)-1]
				if err != nil {
					return err
				}
			}
		}
		return nil
	case m.key == "metadata" && r.b[m.start] == '{':
		return r.metadata(m, depth, secret)
	case list && m.key == "items":
		_, err := r.value(m.start, depth+1, roleSecret)
		return err
	case ro == roleSecretTop && m.key == "rows":
		_, err := r.value(m.start, depth+1, roleRow)
		return err
	case ro == roleRow && m.key == "object":
		_, err := r.value(m.start, depth+1, roleSecret)
		return err
	case r.deep:
		_, err := r.value(m.start, depth+1, roleAny)
		return err
	}
	return nil
}

// redactMap replaces each value of data/stringData; a value that is not
// an object (nor null) is replaced whole.
func (r *redactor) redactMap(m member) error {
	switch r.b[m.start] {
	case 'n':
		return nil
	case '{':
	default:
		r.redactValue(m)
		return nil
	}
	ms, _, err := r.members(m.start)
	if err != nil {
		return err
	}
	for _, c := range ms {
		r.path = append(r.path, seg{key: c.key})
		r.redactValue(c)
		r.path = r.path[:len(r.path)-1]
	}
	return nil
}

// redactValue replaces a value that holds something (not null, not "").
func (r *redactor) redactValue(m member) {
	v := r.b[m.start:m.end]
	if string(v) == "null" || string(v) == `""` || bytes.Equal(v, redactedJSON) {
		return
	}
	r.record(m.start, m.end, redactedJSON)
}

// metadata handles the last-applied annotation (a Secret, or anything,
// serialised as a JSON string) and walks the rest when deep.
func (r *redactor) metadata(m member, depth int, secret bool) error {
	ms, _, err := r.members(m.start)
	if err != nil {
		return err
	}
	for _, c := range ms {
		r.path = append(r.path, seg{key: c.key})
		var err error
		switch {
		case c.key == "annotations" && r.b[c.start] == '{':
			err = r.annotations(c, secret)
		case r.deep:
			_, err = r.value(c.start, depth+2, roleAny)
		}
		r.path = r.path[:len(r.path)-1]
		if err != nil {
			return err
		}
	}
	return nil
}

func (r *redactor) annotations(m member, secret bool) error {
	ms, _, err := r.members(m.start)
	if err != nil {
		return err
	}
	for _, c := range ms {
		if c.key != LastAppliedAnnotation || r.b[c.start] != '"' {
			continue
		}
		inner := []byte(unquote(r.b[c.start:c.end]))
		h := HintNone
		if secret {
			h = HintSecret
		}
		out, _, changed := RedactBody(inner, h, "")
		if !changed {
			continue
		}
		r.path = append(r.path, seg{key: c.key})
		r.record(c.start, c.end, AppendString(nil, string(out)))
		r.path = r.path[:len(r.path)-1]
	}
	return nil
}

// ---- a minimal JSON scanner ------------------------------------------------

func skipWS(b []byte, pos int) int {
	for pos < len(b) {
		switch b[pos] {
		case ' ', '\t', '\n', '\r':
			pos++
		default:
			return pos
		}
	}
	return pos
}

// skipString returns the offset after the string starting at pos.
func skipString(b []byte, pos int) (int, error) {
	for i := pos + 1; i < len(b); {
		j := bytes.IndexAny(b[i:], "\"\\")
		if j < 0 {
			return 0, errSyntax
		}
		i += j
		if b[i] == '"' {
			return i + 1, nil
		}
		i += 2 // a backslash and the escaped byte
	}
	return 0, errSyntax
}

func skipScalar(b []byte, pos int) (int, error) {
	if b[pos] == '"' {
		return skipString(b, pos)
	}
	i := pos
	for i < len(b) {
		c := b[i]
		if c == '-' || c == '+' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' {
			i++
			continue
		}
		break
	}
	if i == pos {
		return 0, errSyntax
	}
	switch s := string(b[pos:i]); {
	case s == "true", s == "false", s == "null":
	case s[0] == '-' || s[0] >= '0' && s[0] <= '9':
		if _, err := strconv.ParseFloat(s, 64); err != nil {
			if ne, ok := err.(*strconv.NumError); !ok || ne.Err != strconv.ErrRange {
				return 0, errSyntax
			}
		}
	default:
		return 0, errSyntax
	}
	return i, nil
}

// index matches every bracket of the value at pos in one pass; it fails
// on unbalanced brackets, unterminated strings and nesting beyond
// maxRedactDepth.
func (r *redactor) index(pos int) error {
	b := r.b
	if b[pos] != '{' && b[pos] != '[' {
		return nil
	}
	if len(b) > 1<<31-1 {
		return errSyntax
	}
	var stack []int32 // ordinals into opens
	for i := pos; i < len(b); {
		switch c := b[i]; c {
		case '{', '[':
			if len(stack) >= maxRedactDepth {
				return errSyntax
			}
			stack = append(stack, int32(len(r.opens)))
			r.opens = append(r.opens, int32(i))
			r.closes = append(r.closes, -1)
			i++
		case '}', ']':
			if len(stack) == 0 {
				return errSyntax
			}
			o := stack[len(stack)-1]
			if open := b[r.opens[o]]; (c == '}') != (open == '{') {
				return errSyntax
			}
			r.closes[o] = int32(i)
			stack = stack[:len(stack)-1]
			i++
			if len(stack) == 0 {
				return nil
			}
		case '"':
			end, err := skipString(b, i)
			if err != nil {
				return err
			}
			i = end
		default:
			i++
		}
	}
	return errSyntax
}

// skip returns the offset after the value at pos.
func (r *redactor) skip(pos int) (int, error) {
	if r.b[pos] != '{' && r.b[pos] != '[' {
		return skipScalar(r.b, pos)
	}
	i := sort.Search(len(r.opens), func(i int) bool { return r.opens[i] >= int32(pos) })
	if i == len(r.opens) || r.opens[i] != int32(pos) || r.closes[i] < 0 {
		return 0, errSyntax
	}
	return int(r.closes[i]) + 1, nil
}

// unquote decodes a JSON string literal (with its quotes) leniently: a bad
// escape is kept as is.
func unquote(q []byte) string {
	s := q[1 : len(q)-1]
	if bytes.IndexByte(s, '\\') < 0 {
		return string(s)
	}
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 >= len(s) {
			out = append(out, c)
			continue
		}
		i++
		switch s[i] {
		case '"', '\\', '/':
			out = append(out, s[i])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r1, ok := hex4(s[i+1:])
			if !ok {
				out = append(out, '\\', 'u')
				continue
			}
			i += 4
			if utf16.IsSurrogate(r1) && i+2 < len(s) && s[i+1] == '\\' && s[i+2] == 'u' {
				if r2, ok := hex4(s[i+3:]); ok {
					if r := utf16.DecodeRune(r1, r2); r != utf8.RuneError {
						out = utf8.AppendRune(out, r)
						i += 6
						continue
					}
				}
			}
			out = utf8.AppendRune(out, r1)
		default:
			out = append(out, '\\', s[i])
		}
	}
	return string(out)
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}
