package deploy

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The deploy guide's commands and paths name files that exist, and the
// files it tells to apply are the manifests the tests check.
var repoPath = regexp.MustCompile(`(?:^|[\s=@(` + "`" + `'"])((?:conf|docs|test)/[A-Za-z0-9_./-]+[A-Za-z0-9_/-])`)

func TestDeployDocFilesExist(t *testing.T) {
	doc := string(readFile(t, "README.md"))
	for _, section := range []string{"## Deploy", "## Dashboards and alerts", "## What one node cannot see"} {
		if !strings.Contains(doc, section) {
			t.Errorf("README.md lacks the section %q", section)
		}
	}
	seen := map[string]bool{}
	for _, m := range repoPath.FindAllStringSubmatch(doc, -1) {
		p := strings.TrimSuffix(m[1], ".")
		if seen[p] {
			continue
		}
		seen[p] = true
		if _, err := os.Stat(filepath.Join(root(t), p)); err != nil {
			t.Errorf("README.md names %s, which does not exist", p)
		}
	}
	if len(seen) < 20 {
		t.Errorf("only %d paths found in README.md", len(seen))
	}
	// Every manifest the Deploy section applies is one the tests decode,
	// and every apply-able manifest is applied.
	applied := map[string]bool{}
	for _, m := range regexp.MustCompile(`kubectl apply -f (\S+)`).FindAllStringSubmatch(doc, -1) {
		applied[m[1]] = true
	}
	deployDir, _ := filepath.Glob(filepath.Join(root(t), "conf", "kubernetes", "deploy", "*.yaml"))
	for _, f := range deployDir {
		rel, _ := filepath.Rel(root(t), f)
		if !applied[rel] {
			t.Errorf("README.md never applies %s", rel)
		}
	}
	for _, m := range regexp.MustCompile(`--patch-file (\S+)`).FindAllStringSubmatch(doc, -1) {
		if !seen[m[1]] {
			t.Errorf("patch file %s not found", m[1])
		}
	}
}
