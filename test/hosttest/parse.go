package hosttest

import (
	"fmt"
	"strconv"
	"strings"
)

// Line is one stdout line of the host: a kind word, then key=value fields
// (values with spaces, quotes, '=' or control characters are double-quoted
// with \" \\ \n \xHH escapes).
type Line struct {
	Kind   string
	Fields map[string]string
	Text   string
}

// Register is the "register" line.
type Register struct {
	RC, Type, Proxy, Flags, EventType int
	Name, Desc                        string
}

// Symbols is the "symbols" line: which optional exports were found.
type Symbols struct {
	FlushCtx, Flush, ExitCtx, Exit, PreRun, PreExit, Unregister bool
}

// Init is an "init" line; Ctx tells whether the plugin set remote_context.
type Init struct {
	Idx, RC int
	Ctx     bool
}

// PreRun is a "prerun" line.
type PreRun struct{ Idx, RC int }

// Flush is one flush call ("flush" line). Chunk is -1 for a flush action and
// the chunk number for tail chunks. Skipped marks an empty chunk that was
// counted OK without calling the plugin (Attempt 0). Worker is -1 for the
// engine (main) thread.
type Flush struct {
	Idx                 int
	Tag, File           string
	Chunk               int
	Bytes, Records      int
	Attempt, RC, Worker int
	Skipped             bool
	Micros              int64
}

// Drop is a chunk Fluent Bit would drop ("drop" line): Reason is "error",
// "retries_exhausted" or "no_retries".
type Drop struct {
	Idx       int
	Tag, File string
	Chunk     int
	Attempts  int
	Reason    string
}

// Tail is a "tail" line. OK/Retry/Error count flush calls; Dropped chunks.
type Tail struct {
	Idx                                        int
	Tag, File                                  string
	Chunks, Records, OK, Retry, Error, Dropped int
}

// Exit is an "exit" line. Ctx tells whether remote_context was non-NULL;
// Legacy that FLBPluginExit was used; Missing that neither exit symbol
// exists; Skipped is "init_failed" for the instance whose Init failed.
type Exit struct {
	Idx, RC              int
	Ctx, Legacy, Missing bool
	Skipped              string
}

// Summary is the final "summary" line. Flushes counts calls, OK/Retry/Error
// their return codes; Chunks counts chunks, OKChunks those that ended OK
// (Skipped empty chunks included), DroppedChunks those dropped.
type Summary struct {
	Flushes, OK, Retry, Error, DroppedChunks int
	Chunks, OKChunks, Skipped                int
	InitFailed                               bool
}

// Rusage is the "rusage" line (--rusage).
type Rusage struct {
	UserS, SysS float64
	MaxRSSKB    int64
	// HWMKB is VmHWM from /proc/self/status: the host's own peak RSS
	// (MaxRSSKB includes that of the process that started it, on Linux);
	// -1 where there is no /proc.
	HWMKB int64
}

// Output is the parsed stdout of one host run.
type Output struct {
	Lines        []Line
	DlopenOK     bool
	PreRegister  *int
	Register     *Register
	Symbols      *Symbols
	Inits        []Init
	PreRuns      []PreRun
	PreExits     []int
	Flushes      []Flush
	Drops        []Drop
	Tails        []Tail
	Sleeps       []int
	Exits        []Exit
	Unregistered bool
	Summary      *Summary
	Rusage       *Rusage
}

// FlushesFor returns the flush calls of instance idx, in output order.
func (o Output) FlushesFor(idx int) []Flush {
	var r []Flush
	for _, f := range o.Flushes {
		if f.Idx == idx {
			r = append(r, f)
		}
	}
	return r
}

// ParseLine splits one output line into kind and fields.
func ParseLine(s string) (Line, error) {
	l := Line{Text: s, Fields: map[string]string{}}
	i := strings.IndexByte(s, ' ')
	if i < 0 {
		l.Kind = s
		return l, nil
	}
	l.Kind, s = s[:i], s[i+1:]
	for len(s) > 0 {
		if s[0] == ' ' {
			s = s[1:]
			continue
		}
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return l, fmt.Errorf("no key=value at %q", s)
		}
		key := s[:eq]
		s = s[eq+1:]
		var val string
		if strings.HasPrefix(s, `"`) {
			var b strings.Builder
			j := 1
			for ; j < len(s) && s[j] != '"'; j++ {
				if s[j] != '\\' {
					b.WriteByte(s[j])
					continue
				}
				if j+1 >= len(s) {
					return l, fmt.Errorf("dangling escape in %q", l.Text)
				}
				j++
				switch s[j] {
				case 'n':
					b.WriteByte('\n')
				case 'x':
					if j+2 >= len(s) {
						return l, fmt.Errorf("short \\x escape in %q", l.Text)
					}
					v, err := strconv.ParseUint(s[j+1:j+3], 16, 8)
					if err != nil {
						return l, fmt.Errorf("bad \\x escape in %q", l.Text)
					}
					b.WriteByte(byte(v))
					j += 2
				default:
					b.WriteByte(s[j])
				}
			}
			if j >= len(s) {
				return l, fmt.Errorf("unterminated quote in %q", l.Text)
			}
			val, s = b.String(), s[j+1:]
		} else {
			sp := strings.IndexByte(s, ' ')
			if sp < 0 {
				sp = len(s)
			}
			val, s = s[:sp], s[sp:]
		}
		l.Fields[key] = val
	}
	return l, nil
}

// fieldReader converts fields, remembering the first error.
type fieldReader struct {
	l   Line
	err error
}

func (r *fieldReader) str(k string) string { return r.l.Fields[k] }

func (r *fieldReader) int(k string, def int) int { return int(r.int64(k, int64(def))) }

func (r *fieldReader) int64(k string, def int64) int64 {
	v, ok := r.l.Fields[k]
	if !ok {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil && r.err == nil {
		r.err = fmt.Errorf("field %s=%q in %q: %v", k, v, r.l.Text, err)
	}
	return n
}

func (r *fieldReader) float(k string) float64 {
	v := r.l.Fields[k]
	n, err := strconv.ParseFloat(v, 64)
	if err != nil && r.err == nil {
		r.err = fmt.Errorf("field %s=%q in %q: %v", k, v, r.l.Text, err)
	}
	return n
}

func (r *fieldReader) bool(k string) bool { return r.int(k, 0) != 0 }

// ParseOutput parses the host's stdout. Lines of unknown kinds (e.g. printed
// by a plugin) are kept in Lines only.
func ParseOutput(stdout string) (Output, error) {
	var o Output
	for _, text := range strings.Split(stdout, "\n") {
		if text == "" {
			continue
		}
		l, err := ParseLine(text)
		if err != nil {
			o.Lines = append(o.Lines, Line{Text: text})
			continue
		}
		o.Lines = append(o.Lines, l)
		r := &fieldReader{l: l}
		switch l.Kind {
		case "dlopen":
			o.DlopenOK = r.bool("ok")
		case "preregister":
			v := r.int("rc", 0)
			o.PreRegister = &v
		case "register":
			o.Register = &Register{RC: r.int("rc", 0), Type: r.int("type", 0), Proxy: r.int("proxy", 0),
				Flags: r.int("flags", 0), EventType: r.int("event_type", 0),
				Name: r.str("name"), Desc: r.str("desc")}
		case "symbols":
			o.Symbols = &Symbols{FlushCtx: r.bool("flush_ctx"), Flush: r.bool("flush"),
				ExitCtx: r.bool("exit_ctx"), Exit: r.bool("exit"), PreRun: r.bool("prerun"),
				PreExit: r.bool("preexit"), Unregister: r.bool("unregister")}
		case "init":
			o.Inits = append(o.Inits, Init{Idx: r.int("idx", 0), RC: r.int("rc", 0), Ctx: r.bool("ctx")})
		case "prerun":
			o.PreRuns = append(o.PreRuns, PreRun{Idx: r.int("idx", 0), RC: r.int("rc", 0)})
		case "preexit":
			o.PreExits = append(o.PreExits, r.int("idx", 0))
		case "flush":
			o.Flushes = append(o.Flushes, Flush{Idx: r.int("idx", 0), Tag: r.str("tag"), File: r.str("file"),
				Chunk: r.int("chunk", -1), Bytes: r.int("bytes", 0), Records: r.int("records", 0),
				Attempt: r.int("attempt", 0), RC: r.int("rc", 0), Worker: r.int("worker", -1),
				Skipped: r.bool("skipped"), Micros: r.int64("us", 0)})
		case "drop":
			o.Drops = append(o.Drops, Drop{Idx: r.int("idx", 0), Tag: r.str("tag"), File: r.str("file"),
				Chunk: r.int("chunk", -1), Attempts: r.int("attempts", 0), Reason: r.str("reason")})
		case "tail":
			o.Tails = append(o.Tails, Tail{Idx: r.int("idx", 0), Tag: r.str("tag"), File: r.str("file"),
				Chunks: r.int("chunks", 0), Records: r.int("records", 0), OK: r.int("ok", 0),
				Retry: r.int("retry", 0), Error: r.int("error", 0), Dropped: r.int("dropped", 0)})
		case "sleep":
			o.Sleeps = append(o.Sleeps, r.int("ms", 0))
		case "exit":
			o.Exits = append(o.Exits, Exit{Idx: r.int("idx", 0), RC: r.int("rc", 0), Ctx: r.bool("ctx"),
				Legacy: r.bool("legacy"), Missing: r.bool("missing"), Skipped: r.str("skipped")})
		case "unregister":
			o.Unregistered = !r.bool("missing")
		case "summary":
			o.Summary = &Summary{Flushes: r.int("flushes", 0), OK: r.int("ok", 0), Retry: r.int("retry", 0),
				Error: r.int("error", 0), DroppedChunks: r.int("dropped_chunks", 0),
				Chunks: r.int("chunks", 0), OKChunks: r.int("ok_chunks", 0),
				Skipped: r.int("skipped", 0), InitFailed: r.bool("init_failed")}
		case "rusage":
			o.Rusage = &Rusage{UserS: r.float("user_s"), SysS: r.float("sys_s"), MaxRSSKB: r.int64("maxrss_kb", 0), HWMKB: r.int64("hwm_kb", -1)}
		}
		if r.err != nil {
			return o, r.err
		}
	}
	return o, nil
}
