package deploy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// No Docker engine runs here, so the image is not built in the tests; this
// checks what can be checked without one: every file the Dockerfile copies
// from the repository exists, the final stage is the pinned official
// Fluent Bit image, and the plugin lands where the image's plugins.conf
// loads it from.
func TestDockerfile(t *testing.T) {
	df := string(readFile(t, "Dockerfile"))
	// Join continuation lines.
	df = strings.ReplaceAll(df, "\\\n", " ")
	var copied []string
	for _, line := range strings.Split(df, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "COPY" || strings.HasPrefix(f[1], "--from") {
			continue
		}
		copied = append(copied, f[1:len(f)-1]...)
	}
	if len(copied) < 5 {
		t.Fatalf("only %d repository files copied: %v", len(copied), copied)
	}
	for _, src := range copied {
		if src == "." || src == "go.mod" || src == "go.sum" {
			continue
		}
		if _, err := os.Stat(filepath.Join(root(t), src)); err != nil {
			t.Errorf("Dockerfile copies %s, which does not exist", src)
		}
	}
	if !strings.Contains(df, "\nFROM fluent/fluent-bit:5.1.1\n") {
		t.Error("the final stage is not the pinned fluent/fluent-bit:5.1.1 image")
	}
	plugins := string(readFile(t, "conf/kubernetes/fluent-bit/plugins.conf"))
	if !strings.Contains(df, "/fluent-bit/plugins/out_kaudit.so") || !strings.Contains(plugins, "Path /fluent-bit/plugins/out_kaudit.so") {
		t.Error("the image's plugins.conf does not load the plugin from where the Dockerfile puts it")
	}
}
