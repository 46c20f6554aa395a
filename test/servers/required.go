// Package servers starts the real backends the end-to-end tests talk to
// (an OpenSearch node, a VictoriaLogs server) on loopback ports with temp
// dirs, and stops them when the test ends.
package servers

import (
	"os"
	"testing"
)

// Required reports whether end-to-end servers must be present
// (KAUDIT_E2E=required, as .ci/run sets it).
func Required() bool { return os.Getenv("KAUDIT_E2E") == "required" }

// Unavailable ends the test when a server cannot be had: a skip on a
// developer's laptop, a failure under KAUDIT_E2E=required.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if Required() {
		t.Fatalf("KAUDIT_E2E=required: "+format, args...)
	}
	t.Skipf(format, args...)
}
