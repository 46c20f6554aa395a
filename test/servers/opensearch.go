package servers

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// OpenSearch is a real single-node OpenSearch 2.19 started from the Maven
// Central jars by the launcher in test/opensearch (no distribution, no
// Docker): HTTP on a loopback port, security off, data in a temp dir.
type OpenSearch struct {
	URL     string // http://127.0.0.1:PORT, no trailing slash
	Dir     string // the node's path.home (data, logs, the launcher's log file)
	LogPath string // the node's stdout+stderr

	// StartupTime is how long the JVM took from exec to the ready line.
	StartupTime time.Duration

	cmd      *exec.Cmd
	stdin    io.WriteCloser
	done     chan struct{} // closed when the process has exited
	waitErr  error
	stopOnce sync.Once
	client   *http.Client
}

const (
	openSearchReadyPrefix  = "OPENSEARCH_READY "
	openSearchStartTimeout = 3 * time.Minute
	openSearchStopTimeout  = 30 * time.Second
	openSearchLauncherMain = "io.kaudit.opensearch.Launcher"
)

// StartOpenSearch starts a fresh node for this test alone and stops it (and
// removes its temp dir) when the test ends. It skips the test (fails under
// KAUDIT_E2E=required) when java or mvn are missing or the launcher does not
// build, and fails it when the node does not come up.
func StartOpenSearch(t testing.TB) *OpenSearch {
	t.Helper()
	launcher := openSearchLauncherOrUnavailable(t)
	dir := t.TempDir() // removed after Stop: cleanups run last-in first-out
	node, err := startOpenSearch(launcher, dir, false)
	if err != nil {
		t.Fatalf("start OpenSearch: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("OpenSearch log tail (%s):\n%s", node.LogPath, node.LogTail(60))
		}
		t0 := time.Now()
		node.Stop()
		t.Logf("OpenSearch stopped in %v (%v)", time.Since(t0).Round(time.Millisecond), node.waitErr)
	})
	t.Logf("OpenSearch ready at %s in %v (pid %d, RSS %d MiB)",
		node.URL, node.StartupTime.Round(time.Millisecond), node.cmd.Process.Pid, node.RSS()>>20)
	return node
}

var sharedOpenSearch struct {
	mu   sync.Mutex
	node *OpenSearch
	err  error
}

// SharedOpenSearch returns the node shared by every test of this test binary
// that asks for it, starting it on first use. Tests sharing it must use
// distinct index, template and data stream names.
//
// Lifetime: the node lives until the test binary exits. It reads its stdin,
// a pipe from this process, and shuts down (removing its temp dir) when that
// pipe closes, which the kernel does however the test binary ends. A
// TestMain may call StopSharedOpenSearch after m.Run to stop it explicitly.
func SharedOpenSearch(t testing.TB) *OpenSearch {
	t.Helper()
	launcher := openSearchLauncherOrUnavailable(t)

	sharedOpenSearch.mu.Lock()
	defer sharedOpenSearch.mu.Unlock()
	if sharedOpenSearch.node == nil && sharedOpenSearch.err == nil {
		dir, err := os.MkdirTemp("", "kaudit-opensearch-")
		if err == nil {
			sharedOpenSearch.node, err = startOpenSearch(launcher, dir, true)
			if err != nil {
				os.RemoveAll(dir)
			}
		}
		sharedOpenSearch.err = err
		if err == nil {
			t.Logf("shared OpenSearch ready at %s in %v (pid %d, RSS %d MiB)", sharedOpenSearch.node.URL,
				sharedOpenSearch.node.StartupTime.Round(time.Millisecond), sharedOpenSearch.node.cmd.Process.Pid, sharedOpenSearch.node.RSS()>>20)
		}
	}
	if sharedOpenSearch.err != nil {
		t.Fatalf("start shared OpenSearch: %v", sharedOpenSearch.err)
	}
	node := sharedOpenSearch.node
	select {
	case <-node.done:
		t.Fatalf("shared OpenSearch has exited (%v); log tail:\n%s", node.waitErr, node.LogTail(60))
	default:
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("shared OpenSearch log tail (%s):\n%s", node.LogPath, node.LogTail(60))
		}
	})
	return node
}

// StopSharedOpenSearch stops the shared node if one was started. For
// TestMain, after m.Run; safe to call when none was.
func StopSharedOpenSearch() {
	sharedOpenSearch.mu.Lock()
	defer sharedOpenSearch.mu.Unlock()
	if sharedOpenSearch.node != nil {
		sharedOpenSearch.node.Stop()
	}
}

func startOpenSearch(l *openSearchLauncher, dir string, deleteOnExit bool) (*OpenSearch, error) {
	home := dir
	logPath := filepath.Join(home, "opensearch.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child has its own copy

	args := []string{
		"-Xms512m", "-Xmx1g",
		"-XX:+ExitOnOutOfMemoryError",
		"-Djava.io.tmpdir=" + dir,
		"-cp", l.classpath,
		openSearchLauncherMain,
		"--home", home,
		// 0: the node binds a free loopback port itself and prints it, so no
		// other process can take it between our choosing and its binding.
		"--port", "0",
		"--cluster-name", "kaudit-e2e",
		"--node-name", "kaudit-os-0",
	}
	if deleteOnExit {
		args = append(args, "--delete-home-on-exit")
	}
	cmd := exec.Command(l.java, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "JAVA_TOOL_OPTIONS=", "_JAVA_OPTIONS=")
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	// Our own pipe rather than StdoutPipe, so that Wait does not close it
	// under the reader.
	stdout, stdoutW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout = stdoutW
	started := time.Now()
	err = cmd.Start()
	stdoutW.Close()
	if err != nil {
		stdout.Close()
		return nil, fmt.Errorf("exec %s: %w", l.java, err)
	}
	s := &OpenSearch{
		Dir:     home,
		LogPath: logPath,
		cmd:     cmd,
		stdin:   stdin,
		done:    make(chan struct{}),
		client:  &http.Client{Timeout: 2 * time.Minute},
	}

	// Copy stdout into the log and watch it for the ready line. The copier
	// keeps its own handle on the log file and drains stdout until EOF.
	ready := make(chan string, 1)
	go func() {
		s.waitErr = cmd.Wait()
		close(s.done)
	}()
	outLog, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		stdout.Close()
		s.kill()
		return nil, err
	}
	go func() {
		defer stdout.Close()
		defer outLog.Close()
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(outLog, line)
			if url, ok := strings.CutPrefix(line, openSearchReadyPrefix); ok {
				select {
				case ready <- strings.TrimRight(strings.TrimSpace(url), "/"):
				default:
				}
			}
		}
		io.Copy(io.Discard, stdout)
	}()

	timer := time.NewTimer(openSearchStartTimeout)
	defer timer.Stop()
	select {
	case url := <-ready:
		s.URL = url
		s.StartupTime = time.Since(started)
		return s, nil
	case <-s.done:
		return nil, fmt.Errorf("OpenSearch exited before it was ready (%v); log tail:\n%s", s.waitErr, s.LogTail(60))
	case <-timer.C:
		s.kill()
		return nil, fmt.Errorf("OpenSearch not ready after %v; log tail:\n%s", openSearchStartTimeout, s.LogTail(60))
	}
}

// Stop shuts the node down: closes its stdin and sends SIGTERM (a clean
// close), then SIGKILLs its process group if it has not exited in 30 s.
// Idempotent; StartOpenSearch registers it with t.Cleanup.
func (s *OpenSearch) Stop() {
	s.stopOnce.Do(func() {
		s.stdin.Close()
		s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(openSearchStopTimeout):
		}
		s.kill()
	})
}

// kill SIGKILLs the node's process group (it was started with Setpgid) if
// the node is still running, and waits for it to be reaped.
func (s *OpenSearch) kill() {
	select {
	case <-s.done:
		return
	default:
	}
	syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.done
}

// LogTail returns the last n lines of the node's stdout+stderr.
func (s *OpenSearch) LogTail(n int) string {
	b, err := os.ReadFile(s.LogPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	return openSearchTail(string(b), n)
}

// RSS is the JVM's resident set size in bytes, 0 once it has exited.
func (s *OpenSearch) RSS() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// Do sends one request to the node. path is relative to the root ("/_bulk",
// "idx/_doc/1?refresh=true"); body may be nil. A path with _bulk or _msearch
// is sent as application/x-ndjson, anything else as application/json. The
// status and body come back for any HTTP answer; err is for transport
// failures only.
func (s *OpenSearch) Do(method, path string, body []byte) (status int, respBody []byte, err error) {
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, s.URL+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		ct := "application/json"
		if strings.Contains(path, "_bulk") || strings.Contains(path, "_msearch") {
			ct = "application/x-ndjson"
		}
		req.Header.Set("Content-Type", ct)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	respBody, err = io.ReadAll(resp.Body)
	return resp.StatusCode, respBody, err
}

// Refresh makes everything indexed so far in index (an index, alias, data
// stream or pattern) visible to search and _count.
func (s *OpenSearch) Refresh(index string) error {
	st, b, err := s.Do(http.MethodPost, "/"+index+"/_refresh", nil)
	if err != nil {
		return err
	}
	if st != http.StatusOK {
		return fmt.Errorf("refresh %s: HTTP %d: %s", index, st, b)
	}
	return nil
}

// Count refreshes index and returns its document count, or -1 if either
// request fails (the index does not exist, say).
func (s *OpenSearch) Count(index string) int {
	if err := s.Refresh(index); err != nil {
		return -1
	}
	st, b, err := s.Do(http.MethodGet, "/"+index+"/_count", nil)
	if err != nil || st != http.StatusOK {
		return -1
	}
	var r struct {
		Count *int `json:"count"`
	}
	if json.Unmarshal(b, &r) != nil || r.Count == nil {
		return -1
	}
	return *r.Count
}

// --- building the launcher -------------------------------------------------

type openSearchLauncher struct {
	java      string
	classpath string
}

var openSearchBuild struct {
	once sync.Once
	l    *openSearchLauncher
	err  error
}

// openSearchLauncherOrUnavailable builds the launcher once per test binary,
// or ends the test through Unavailable.
func openSearchLauncherOrUnavailable(t testing.TB) *openSearchLauncher {
	t.Helper()
	openSearchBuild.once.Do(func() {
		openSearchBuild.l, openSearchBuild.err = buildOpenSearchLauncher()
	})
	if openSearchBuild.err != nil {
		Unavailable(t, "OpenSearch launcher: %v", openSearchBuild.err)
	}
	return openSearchBuild.l
}

// openSearchRepoRoot is the directory holding go.mod, found by walking up
// from the working directory (a package's dir under go test).
func openSearchRepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// buildOpenSearchLauncher runs `mvn -B -q package` in test/opensearch unless
// target/.kaudit-build-stamp is newer than pom.xml and everything under
// src/. A file lock keeps test binaries of several packages from building
// at once.
func buildOpenSearchLauncher() (*openSearchLauncher, error) {
	java, err := openSearchJava()
	if err != nil {
		return nil, err
	}
	root, err := openSearchRepoRoot()
	if err != nil {
		return nil, err
	}
	proj := filepath.Join(root, "test", "opensearch")
	pom := filepath.Join(proj, "pom.xml")
	if _, err := os.Stat(pom); err != nil {
		return nil, err
	}
	target := filepath.Join(proj, "target")
	if err := os.MkdirAll(target, 0o755); err != nil {
		return nil, err
	}
	lock, err := os.OpenFile(filepath.Join(target, ".build.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return nil, err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)

	stamp := filepath.Join(target, ".kaudit-build-stamp")
	if !openSearchLauncherCurrent(proj, stamp) {
		mvn, err := exec.LookPath("mvn")
		if err != nil {
			return nil, errors.New("mvn not found in PATH (needed to build test/opensearch)")
		}
		// Stale jars from an older pom would stay on the classpath.
		os.RemoveAll(filepath.Join(target, "lib"))
		cmd := exec.Command(mvn, "-B", "-q", "-f", pom, "package")
		cmd.Dir = proj
		out, err := cmd.CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("mvn -B -q -f %s package: %v\n%s", pom, err, openSearchTail(string(out), 40))
		}
		if err := os.WriteFile(stamp, []byte(time.Now().Format(time.RFC3339Nano)+"\n"), 0o644); err != nil {
			return nil, err
		}
	}
	return &openSearchLauncher{
		java:      java,
		classpath: filepath.Join(target, "classes") + string(os.PathListSeparator) + filepath.Join(target, "lib", "*"),
	}, nil
}

// openSearchLauncherCurrent: the stamp exists and is newer than pom.xml and src/**.
func openSearchLauncherCurrent(proj, stamp string) bool {
	st, err := os.Stat(stamp)
	if err != nil {
		return false
	}
	built := st.ModTime()
	newer := false
	check := func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			newer = true
			return err
		}
		if info, err := d.Info(); err != nil || info.ModTime().After(built) {
			newer = true
			return fs.SkipAll
		}
		return nil
	}
	if info, err := os.Stat(filepath.Join(proj, "pom.xml")); err != nil || info.ModTime().After(built) {
		return false
	}
	filepath.WalkDir(filepath.Join(proj, "src"), check)
	if newer {
		return false
	}
	// The stamp alone is not proof: make sure the outputs are there.
	for _, p := range []string{"classes/io/kaudit/opensearch/Launcher.class", "lib"} {
		if _, err := os.Stat(filepath.Join(proj, "target", p)); err != nil {
			return false
		}
	}
	return true
}

func openSearchJava() (string, error) {
	if jh := os.Getenv("JAVA_HOME"); jh != "" {
		p := filepath.Join(jh, "bin", "java")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath("java")
	if err != nil {
		return "", errors.New("java not found (JAVA_HOME or PATH); OpenSearch needs Java 17+")
	}
	return p, nil
}

func openSearchTail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
