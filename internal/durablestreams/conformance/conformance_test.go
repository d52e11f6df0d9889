// Package conformance runs the Durable Streams server conformance suite
// (@durable-streams/server-conformance-tests, pinned in package.json) against
// a real `runnel server` process, on SQLite and on PostgreSQL.
//
// The suite sends no credentials, so a small reverse proxy in front of the
// engine adds an API token to every request; the engine itself has no
// unauthenticated mode. It needs Node and `npm ci` in this directory:
// without them the test skips, and with RUNNEL_TEST_REQUIRE_NODE=1 it fails.
package conformance_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runnel-dev/runnel/internal/testdb"
)

func requireSuite(t *testing.T) string {
	t.Helper()
	fail := func(msg string) {
		msg += ": the conformance suite needs Node 20+ and `npm ci` in internal/durablestreams/conformance"
		if os.Getenv("RUNNEL_TEST_REQUIRE_NODE") == "1" {
			t.Fatal(msg + " (RUNNEL_TEST_REQUIRE_NODE=1)")
		}
		t.Skip(msg)
	}
	if _, err := exec.LookPath("node"); err != nil {
		fail("node is not installed")
	}
	cli := filepath.Join("node_modules", ".bin", "vitest")
	if _, err := os.Stat(cli); err != nil {
		fail("node_modules is missing")
	}
	return cli
}

// startEngine runs `runnel server` on db until the test ends and returns
// its URL and admin token, once it logs that it listens.
func startEngine(t *testing.T, db string) (string, string) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "runnel")
	build := []string{"build", "-o", bin}
	if os.Getenv("RUNNEL_CONFORMANCE_RACE") == "1" {
		build = append(build, "-race") // the engine under the race detector
	}
	if out, err := exec.Command("go", append(build, "../../../cmd/runnel")...).CombinedOutput(); err != nil {
		t.Fatalf("build runnel: %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dataDir := t.TempDir()
	args := []string{"server", "--addr", addr, "--data-dir", dataDir, "--log-level", "info", "--cors-origin", "https://example.com"}
	if db != "" {
		args = append(args, "--db", db)
	}
	cmd := exec.Command(bin, args...)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The scanner ends when the process exits and closes the pipe.
	go func() { _ = cmd.Wait(); pw.Close() }()
	ready, exited := make(chan struct{}), make(chan struct{})
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	go func() {
		defer close(exited)
		sc := bufio.NewScanner(pr)
		once := false
		for sc.Scan() {
			line := sc.Text()
			if !once && strings.Contains(line, "engine listening") {
				once = true
				close(ready)
			}
			if !once || strings.Contains(line, "level=ERROR") || strings.Contains(line, "DATA RACE") {
				t.Log("engine: " + line)
			}
		}
	}()
	select {
	case <-ready:
	case <-exited:
		t.Fatal("the engine exited before listening")
	case <-time.After(60 * time.Second):
		t.Fatal("the engine did not report listening within 60s")
	}
	tok, err := os.ReadFile(filepath.Join(dataDir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	return "http://" + addr, strings.TrimSpace(string(tok))
}

// tokenProxy forwards to the engine, adding the token.
func tokenProxy(t *testing.T, engineURL, token string) string {
	t.Helper()
	u, err := url.Parse(engineURL)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.FlushInterval = -1 // SSE: pass every write on at once
	base := rp.Director
	rp.Director = func(r *http.Request) {
		base(r)
		r.Header.Set("Authorization", "Bearer "+token)
	}
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	return srv.URL
}

func runSuite(t *testing.T, db string) {
	cli := requireSuite(t)
	engineURL, token := startEngine(t, db)
	proxy := tokenProxy(t, engineURL, token)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, cli, "run", "--reporter=verbose")
	bin, err := filepath.Abs(filepath.Join("node_modules", ".bin"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Env = append(os.Environ(), "NO_COLOR=1", "CI=1", "RUNNEL_CONFORMANCE_URL="+proxy, "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	summary := out
	if i := strings.LastIndex(string(out), "Test Files"); i >= 0 {
		summary = out[i:]
	}
	if err != nil {
		if os.Getenv("RUNNEL_TEST_CONFORMANCE_VERBOSE") == "1" {
			t.Logf("%s", out)
		}
		t.Fatalf("conformance suite failed: %v\n%s", err, failures(string(out)))
	}
	t.Logf("conformance suite passed:\n%s", summary)
}

// failures keeps the failing tests' lines and the summary of the output.
func failures(out string) string {
	var b strings.Builder
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "×") || strings.Contains(line, "FAIL") || strings.Contains(line, "Tests ") || strings.Contains(line, "Test Files") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

func TestConformanceSQLite(t *testing.T) { runSuite(t, "") }

func TestConformancePostgres(t *testing.T) { runSuite(t, testdb.PostgresURL(t)) }
