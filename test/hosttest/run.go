package hosttest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// DefaultTimeout bounds one host run when RunOptions.Timeout is zero.
var DefaultTimeout = 2 * time.Minute

// Host exit statuses.
const (
	ExitOK      = 0   // every instance initialised (whatever the flush results)
	ExitUsage   = 2   // bad command line, unreadable props/chunk/log file
	ExitStartup = 255 // an Init failed, or the plugin did not register
)

// RunOptions tune one host run.
type RunOptions struct {
	Host    string        // host binary; BuildHost(t) when empty
	Timeout time.Duration // DefaultTimeout when zero
	Env     []string      // added to the environment (e.g. for ${VAR} in props)
	Dir     string        // working directory
}

// Result is one host run: raw output, exit status and the parsed stdout.
type Result struct {
	Output
	Args     []string
	Stdout   string
	Stderr   string
	ExitCode int // -1 when killed by a signal
	Duration time.Duration
}

// Dump renders the run for failure messages.
func (r Result) Dump() string {
	return fmt.Sprintf("flbhost %s\nexit=%d after %v\n--- stdout\n%s--- stderr\n%s",
		strings.Join(r.Args, " "), r.ExitCode, r.Duration, r.Stdout, r.Stderr)
}

// Run runs the host with args (flbhost's own command line, starting with
// "-p PLUGIN.so") and returns its result. It fails the test only if the host
// cannot be started, times out, or prints lines it cannot parse; the exit
// status is left to the caller.
func Run(t testing.TB, args ...string) Result {
	t.Helper()
	return RunWith(t, RunOptions{}, args...)
}

// RunWith is Run with options.
func RunWith(t testing.TB, opts RunOptions, args ...string) Result {
	t.Helper()
	host := opts.Host
	if host == "" {
		host = BuildHost(t)
	}
	timeout := opts.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, host, args...)
	cmd.Env = append(os.Environ(), opts.Env...)
	cmd.Dir = opts.Dir
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	res := Result{Args: args, Stdout: stdout.String(), Stderr: stderr.String(), Duration: time.Since(start)}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		res.ExitCode = ee.ExitCode()
	default:
		t.Fatalf("hosttest: running %s: %v", host, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("hosttest: host timed out after %v\n%s", timeout, res.Dump())
	}
	out, perr := ParseOutput(res.Stdout)
	res.Output = out
	if perr != nil {
		t.Fatalf("hosttest: %v\n%s", perr, res.Dump())
	}
	return res
}

// ExportedSymbols lists the dynamic symbols a shared library defines
// (nm -D --defined-only).
func ExportedSymbols(t testing.TB, so string) map[string]bool {
	t.Helper()
	out, err := exec.Command("nm", "-D", "--defined-only", so).Output()
	if err != nil {
		t.Fatalf("hosttest: nm -D %s: %v", so, err)
	}
	syms := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) >= 3 {
			syms[f[2]] = true
		}
	}
	return syms
}
