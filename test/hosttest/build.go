// Package hosttest runs Go output plugins under test/host/flbhost, a small C
// program that loads a c-shared .so and drives it the way Fluent Bit v5.1.1's
// Go proxy does. It builds the plugin and the host, writes property files and
// msgpack chunks, runs the host and parses what it prints.
package hosttest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Paths are the artefacts the end-to-end tests use.
type Paths struct {
	Plugin string // out_kaudit.so
	Host   string // test/host/flbhost
}

var (
	rootOnce sync.Once
	rootDir  string
	rootErr  error

	hostOnce sync.Once
	hostPath string
	hostErr  error

	pluginOnce sync.Once
	pluginPath string
	pluginErr  error
)

// RepoRoot returns the directory holding go.mod, found by walking up from
// the working directory.
func RepoRoot(t testing.TB) string {
	t.Helper()
	rootOnce.Do(func() {
		dir, err := os.Getwd()
		if err != nil {
			rootErr = err
			return
		}
		for {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				rootDir = dir
				return
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				rootErr = fmt.Errorf("no go.mod above the working directory")
				return
			}
			dir = parent
		}
	})
	if rootErr != nil {
		t.Fatalf("hosttest: %v", rootErr)
	}
	return rootDir
}

// Build returns the plugin and host, building each once per test binary
// (or taking $KAUDIT_SO / $KAUDIT_HOST when set).
func Build(t testing.TB) Paths {
	t.Helper()
	return Paths{Plugin: BuildPlugin(t), Host: BuildHost(t)}
}

// BuildHost compiles test/host/flbhost.c (or returns $KAUDIT_HOST).
func BuildHost(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("KAUDIT_HOST"); p != "" {
		return p
	}
	root := RepoRoot(t)
	hostOnce.Do(func() {
		dst := filepath.Join(root, "test", "host", "flbhost")
		tmp := fmt.Sprintf("%s.tmp%d", dst, os.Getpid())
		hostPath, hostErr = buildAtomically(root, tmp, dst, exec.Command("cc",
			"-O2", "-g", "-Wall", "-Wextra", "-o", tmp,
			filepath.Join(root, "test", "host", "flbhost.c"), "-ldl", "-lpthread"))
	})
	if hostErr != nil {
		t.Fatalf("hosttest: building flbhost: %v", hostErr)
	}
	return hostPath
}

// BuildPlugin builds out_kaudit.so at the repo root (or returns $KAUDIT_SO).
func BuildPlugin(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("KAUDIT_SO"); p != "" {
		return p
	}
	root := RepoRoot(t)
	pluginOnce.Do(func() {
		dst := filepath.Join(root, "out_kaudit.so")
		base := fmt.Sprintf("%s.tmp%d", strings.TrimSuffix(dst, ".so"), os.Getpid())
		cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", base+".so", ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
		pluginPath, pluginErr = buildAtomically(root, base+".so", dst, cmd)
		// go build also writes a C header named after the output file.
		if pluginErr == nil {
			os.Rename(base+".h", strings.TrimSuffix(dst, ".so")+".h")
		} else {
			os.Remove(base + ".h")
		}
	})
	if pluginErr != nil {
		t.Fatalf("hosttest: building out_kaudit.so: %v", pluginErr)
	}
	return pluginPath
}

// BuildCShared builds the Go main package in dir as a c-shared library at
// out, with extra environment entries (e.g. "GOFLAGS=-mod=mod").
func BuildCShared(t testing.TB, dir, out string, env ...string) {
	t.Helper()
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "CGO_ENABLED=1"), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hosttest: go build in %s: %v\n%s", dir, err, b)
	}
}

// buildAtomically builds into tmp (next to dst), then renames it over dst,
// so that a process still running the old file is not disturbed and parallel
// test binaries never see a half-written file.
func buildAtomically(root, tmp, dst string, cmd *exec.Cmd) (string, error) {
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("%v: %v\n%s", cmd.Args, err, b)
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return "", err
	}
	return dst, nil
}
