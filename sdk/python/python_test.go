// Package python_test runs the Python SDK's test suite (sdk/python/tests)
// against real engine processes, on SQLite and on PostgreSQL, and checks
// the package with mypy --strict.
//
// The suite needs Debian's /usr/bin/python3 with httpx, pytest,
// pytest-asyncio, fastapi and uvicorn (apt-get install python3-httpx
// python3-pytest python3-pytest-asyncio python3-fastapi python3-uvicorn
// python3-mypy). Without them the tests skip and say so, unless
// RUNNEL_TEST_REQUIRE_PYTHON=1, when they fail.
package python_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/runnel-dev/runnel/internal/testdb"
)

// python is the interpreter the suite runs with: Debian's, which has the
// packages (the python3 first on PATH may be another one).
const python = "/usr/bin/python3"

// pgSchemas is how many PostgreSQL schemas a pytest run gets: one per
// engine it starts (the shared one and each fault test's own).
const pgSchemas = 6

func requirePython(t *testing.T, modules ...string) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		if os.Getenv("RUNNEL_TEST_REQUIRE_PYTHON") == "1" {
			t.Fatalf(format, args...)
		}
		t.Skipf(format+" (skipping; RUNNEL_TEST_REQUIRE_PYTHON=1 makes this fail)", args...)
	}
	if _, err := os.Stat(python); err != nil {
		fail("%s not found: install Debian's python3 and python3-httpx python3-pytest python3-pytest-asyncio python3-fastapi python3-uvicorn python3-mypy", python)
	}
	check := "import " + strings.Join(modules, ", ")
	if out, err := exec.Command(python, "-c", check).CombinedOutput(); err != nil {
		fail("%s lacks Python packages (%s): %v\n%s\ninstall python3-httpx python3-pytest python3-pytest-asyncio python3-fastapi python3-uvicorn python3-mypy", python, strings.Join(modules, ", "), err, out)
	}
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	buildOut  []byte
)

// runnelBinary builds cmd/runnel once per test binary.
func runnelBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "runnel-python-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "runnel")
		cmd := exec.Command("go", "build", "-o", binPath, "github.com/runnel-dev/runnel/cmd/runnel")
		buildOut, buildErr = cmd.CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("build runnel: %v\n%s", buildErr, buildOut)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// TestPytest runs the suite once per store. Each run starts its own engines
// (the binary, real processes), Python workers and listeners; see
// sdk/python/tests/conftest.py.
func TestPytest(t *testing.T) {
	t.Parallel()
	requirePython(t, "httpx", "pytest", "pytest_asyncio", "fastapi", "uvicorn")
	bin := runnelBinary(t)
	for _, store := range []string{"sqlite", "postgres"} {
		t.Run(store, func(t *testing.T) {
			t.Parallel()
			env := []string{"RUNNEL_BIN=" + bin, "PYTHONDONTWRITEBYTECODE=1"}
			if store == "postgres" {
				var urls []string
				for range pgSchemas {
					urls = append(urls, testdb.PostgresURL(t))
				}
				env = append(env, "RUNNEL_TEST_DATABASE_URLS="+strings.Join(urls, " "))
			}
			runPytest(t, env)
		})
	}
}

func runPytest(t *testing.T, env []string, args ...string) {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Dir(file)
	readInputs(t, dir)
	argv := append([]string{"-m", "pytest", "-q", "-p", "no:cacheprovider", "-rf", "--durations=5",
		// A test still running after 100 s dumps every thread's stack.
		"-o", "faulthandler_timeout=100", "--basetemp", t.TempDir(), "tests"}, args...)
	cmd := exec.Command(python, argv...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		t.Fatalf("pytest failed: %v\n%s", err, out.String())
	}
	if testing.Verbose() {
		t.Logf("pytest:\n%s", out.String())
	}
}

// readInputs reads every file the Python suite depends on. go test caches a
// passing result keyed by the files the test binary opened; pytest reads
// them in another process, so without this a changed Python file would
// leave a stale cached PASS.
func readInputs(t *testing.T, dir string) {
	t.Helper()
	repo := filepath.Join(dir, "..", "..")
	roots := []string{dir, filepath.Join(repo, "examples", "python"), filepath.Join(repo, "docs", "python.md"), filepath.Join(repo, "proto")}
	for _, root := range roots {
		err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if d.Name() == "__pycache__" || d.Name() == "out" || strings.HasPrefix(d.Name(), ".") && path != root {
					return filepath.SkipDir
				}
				return nil
			}
			_, err = os.ReadFile(path)
			return err
		})
		if err != nil {
			t.Fatalf("read the Python suite's inputs: %v", err)
		}
	}
}

// TestMypyStrict type-checks the package as its users' mypy would.
func TestMypyStrict(t *testing.T) {
	t.Parallel()
	requirePython(t, "mypy", "httpx", "starlette")
	_, file, _, _ := runtime.Caller(0)
	cache := filepath.Join(os.TempDir(), "runnel-python-mypy-cache")
	readInputs(t, filepath.Dir(file))
	cmd := exec.Command(python, "-m", "mypy", "--strict", "--cache-dir", cache, "runnel")
	cmd.Dir = filepath.Dir(file)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mypy --strict runnel: %v\n%s", err, out)
	}
}
