// Package testflag reads the switches of the test suite.
//
// A plain `go test ./...` runs every guarantee test, on SQLite (and on
// PostgreSQL when one is reachable, see internal/testdb), the short fault
// suite included. Tests that only repeat at length what those check, or
// exercise speed measurements — today every `runnel bench` scenario
// (cmd/runnel TestBenchScenariosRun) — run only with RUNNEL_TEST_LONG=1,
// which CI (.ci/run) sets. Mark such a test with SkipUnlessLong.
package testflag

import (
	"os"
	"strconv"
	"testing"
)

// LongEnv is the environment variable that turns the long tests on.
const LongEnv = "RUNNEL_TEST_LONG"

// Long reports whether the long tests run: RUNNEL_TEST_LONG is set to a
// true value ("1", "true"). A value that is not a boolean fails t, so a
// typo does not silently skip them.
func Long(t testing.TB) bool {
	t.Helper()
	v := os.Getenv(LongEnv)
	if v == "" {
		return false
	}
	on, err := strconv.ParseBool(v)
	if err != nil {
		t.Fatalf("invalid %s=%q: want 1 (run the long tests) or 0", LongEnv, v)
	}
	return on
}

// SkipUnlessLong skips t, saying how to run it, unless RUNNEL_TEST_LONG=1.
func SkipUnlessLong(t testing.TB) {
	t.Helper()
	if !Long(t) {
		t.Skipf("long test: runs with %s=1 (as in CI, .ci/run)", LongEnv)
	}
}
