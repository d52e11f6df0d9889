// Package typescript_test runs the TypeScript SDK's own test suite (npm
// test in sdk/typescript) from go test ./..., against an engine binary built
// from this checkout.
//
// It needs Node and the workspace's node_modules (npm ci in sdk/typescript).
// Without them it skips, saying so; with RUNNEL_TEST_REQUIRE_NODE=1 (set by
// .ci/run after npm ci) it fails instead.
package typescript_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// requireNode returns the npm binary, or skips (fails under
// RUNNEL_TEST_REQUIRE_NODE=1) when Node or node_modules are missing.
func requireNode(t *testing.T) string {
	t.Helper()
	missing := func(what string) string {
		msg := what + ": the TypeScript SDK tests need Node 20+ and `npm ci` in sdk/typescript"
		if os.Getenv("RUNNEL_TEST_REQUIRE_NODE") == "1" {
			t.Fatal(msg + " (RUNNEL_TEST_REQUIRE_NODE=1)")
		}
		t.Skip(msg)
		return ""
	}
	if _, err := exec.LookPath("node"); err != nil {
		return missing("node is not installed")
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return missing("npm is not installed")
	}
	if _, err := os.Stat(filepath.Join("node_modules", ".bin", "tsc")); err != nil {
		return missing("sdk/typescript/node_modules is missing")
	}
	return npm
}

// buildEngine builds the runnel binary of this checkout once per test.
func buildEngine(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "runnel")
	out, err := exec.Command("go", "build", "-o", bin, "../../cmd/runnel").CombinedOutput()
	if err != nil {
		t.Fatalf("build runnel: %v\n%s", err, out)
	}
	return bin
}

// run runs a command in dir with the engine binary in RUNNEL_BIN and
// reports its output if it fails.
func run(t *testing.T, bin, dir string, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "RUNNEL_BIN="+bin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %v in %s: %v\n%s", name, args, dir, err, out.String())
	}
	if testing.Verbose() {
		t.Logf("%s %v:\n%s", name, args, out.String())
	}
}

// TestNPMTest runs the SDK's suite: real engine processes, Node listeners
// and workers (see packages/sdk/test).
func TestNPMTest(t *testing.T) {
	t.Parallel()
	npm := requireNode(t)
	bin := buildEngine(t)
	run(t, bin, filepath.Join("packages", "sdk"), npm, "test")
}
