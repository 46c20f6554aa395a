// Package flblog writes log lines in Fluent Bit's own format
// ("[2026/11/25 17:46:02.123] [error] [output:kaudit:kaudit.0] msg") so
// kaudit's lines read like the rest of Fluent Bit's output.
package flblog

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// Level is a Fluent Bit log level.
type Level int

// Fluent Bit's levels (flb_log.h).
const (
	Error Level = 1
	Warn  Level = 2
	Info  Level = 3
	Debug Level = 4
)

var names = map[Level]string{Error: "error", Warn: "warn", Info: "info", Debug: "debug"}

// ParseLevel maps a level name to a Level.
func ParseLevel(s string) (Level, bool) {
	for l, n := range names {
		if n == s {
			return l, true
		}
	}
	return 0, false
}

// Logger writes one instance's lines.
type Logger struct {
	mu     *sync.Mutex
	w      io.Writer
	prefix string
	level  Level
	now    func() time.Time
}

var stderrMu sync.Mutex

// New returns a logger for an instance writing to stderr.
func New(instance string, level Level) *Logger {
	return NewTo(os.Stderr, &stderrMu, instance, level)
}

// NewTo returns a logger writing to w, serialised by mu.
func NewTo(w io.Writer, mu *sync.Mutex, instance string, level Level) *Logger {
	prefix := "[output:kaudit] "
	if instance != "" {
		prefix = "[output:kaudit:" + instance + "] "
	}
	return &Logger{mu: mu, w: w, prefix: prefix, level: level, now: time.Now}
}

// Enabled reports whether l would write at level.
func (l *Logger) Enabled(level Level) bool { return l != nil && level <= l.level }

func (l *Logger) log(level Level, format string, args ...any) {
	if !l.Enabled(level) {
		return
	}
	msg := fmt.Sprintf(format, args...)
	ts := l.now().Format("2006/01/02 15:04:05.000")
	l.mu.Lock()
	fmt.Fprintf(l.w, "[%s] [%5s] %s%s\n", ts, names[level], l.prefix, msg)
	l.mu.Unlock()
}

// Errorf logs at error level.
func (l *Logger) Errorf(format string, args ...any) { l.log(Error, format, args...) }

// Warnf logs at warn level.
func (l *Logger) Warnf(format string, args ...any) { l.log(Warn, format, args...) }

// Infof logs at info level.
func (l *Logger) Infof(format string, args ...any) { l.log(Info, format, args...) }

// Debugf logs at debug level.
func (l *Logger) Debugf(format string, args ...any) { l.log(Debug, format, args...) }
