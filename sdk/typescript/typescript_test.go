// Package typescript_test runs the TypeScript SDK's own test suite (npm
// test in sdk/typescript) from go test ./..., against an engine binary built
// from this checkout.
//
// It needs Node and the workspace's node_modules (npm ci in sdk/typescript).
// Without them it skips, saying so; with RUNNEL_TEST_REQUIRE_NODE=1 (set by
// .ci/run after npm ci) it fails instead.
package typescript_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/browsertest"
)

func TestMain(m *testing.M) { browsertest.Main(m) }

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

// TestTypeScript runs the SDK's suite (real engine processes, Node
// listeners and workers, the Node examples: see packages/sdk/test), then
// the browser example in Chromium with what the suite built. The two share
// build outputs, so they run one after the other.
func TestTypeScript(t *testing.T) {
	t.Parallel()
	npm := requireNode(t)
	bin := buildEngine(t)
	run(t, bin, filepath.Join("packages", "sdk"), npm, "test")
	t.Run("Examples", func(t *testing.T) { examples(t, bin) })
}

// TestBrowserModuleUpToDate: the engine's /sdk/runnel.js
// (internal/browsersdk/runnel.js) is the SDK's browser build as the
// committed sources produce it.
func TestBrowserModuleUpToDate(t *testing.T) {
	t.Parallel()
	npm := requireNode(t)
	out := filepath.Join(t.TempDir(), "runnel.js")
	cmd := exec.Command(npm, "run", "build:module")
	cmd.Dir = filepath.Join("packages", "sdk")
	cmd.Env = append(os.Environ(), "RUNNEL_MODULE_OUT="+out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm run build:module: %v\n%s", err, b)
	}
	want, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join("..", "..", "internal", "browsersdk", "runnel.js"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("internal/browsersdk/runnel.js is stale: run `go generate ./internal/browsersdk` (or `npm run build:module` in sdk/typescript/packages/sdk) and commit it")
	}
}

// process is a started program whose output lines can be waited for.
type process struct {
	cmd   *exec.Cmd
	lines chan string
	all   *strings.Builder
}

func startProcess(t *testing.T, env []string, name string, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(name, args...), lines: make(chan string, 1024), all: new(strings.Builder)}
	p.cmd.Env = append(os.Environ(), env...)
	r, w := io.Pipe()
	p.cmd.Stdout, p.cmd.Stderr = w, w
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			select {
			case p.lines <- sc.Text():
			default: // nobody waits: drop
			}
		}
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
		_ = w.Close()
	})
	return p
}

// waitFor waits for an output line containing s.
func (p *process) waitFor(t *testing.T, s string) {
	t.Helper()
	timeout := time.After(60 * time.Second)
	for {
		select {
		case line := <-p.lines:
			p.all.WriteString(line + "\n")
			if strings.Contains(line, s) {
				return
			}
		case <-timeout:
			t.Fatalf("%s: no line with %q:\n%s", p.cmd.Path, s, p.all.String())
		}
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// examples runs examples/typescript as its README says: the engine
// (allowing the page's origin), the example TypeScript worker, the example
// backend. A Go SDK listener and the SSE API read the TypeScript worker's
// run identically; then, in Chromium, the page starts a run, is reloaded
// mid-run, and ends showing the whole text once.
func examples(t *testing.T, bin string) {
	examples := filepath.Join("..", "..", "examples", "typescript")
	dataDir, engineAddr, siteAddr := t.TempDir(), freeAddr(t), freeAddr(t)
	engineArgs := []string{"server", "--addr", engineAddr, "--data-dir", dataDir, "--cors-origin", "http://" + siteAddr}
	engine := startProcess(t, nil, bin, engineArgs...)
	engine.waitFor(t, "engine listening")
	token, err := os.ReadFile(filepath.Join(dataDir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	env := []string{"RUNNEL_HOST=http://" + engineAddr, "RUNNEL_TOKEN=" + strings.TrimSpace(string(token))}
	worker := startProcess(t, env, "node", filepath.Join(examples, "dist", "worker.js"))
	worker.waitFor(t, "worker ready")
	_, port, _ := net.SplitHostPort(siteAddr)
	site := startProcess(t, append(env, "PORT="+port), "node", filepath.Join(examples, "dist", "browser", "server.js"))
	site.waitFor(t, "page at")
	want, err := exec.Command("node", "--input-type=module", "-e",
		fmt.Sprintf("import { TEXT } from %q; process.stdout.write(TEXT)", "./"+filepath.ToSlash(filepath.Join(examples, "dist", "text.js")))).Output()
	if err != nil {
		t.Fatalf("read the example's text: %v", err)
	}

	t.Run("GoListener", func(t *testing.T) {
		c, err := runnel.NewClient(runnel.WithHost("http://"+engineAddr), runnel.WithToken(strings.TrimSpace(string(token))))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		runID, err := c.Admin().RunWorkflow(ctx, "ts-stream-text", map[string]int{"delayMs": 5})
		if err != nil {
			t.Fatal(err)
		}
		collect := func() (keys []string, text string) {
			for ev, err := range c.Listener().Stream(ctx, runID) {
				if err != nil {
					t.Fatal(err)
				}
				keys = append(keys, fmt.Sprintf("%s %s %d %q", ev.Position, ev.Type, ev.Attempt, ev.Payload))
				if ev.Type == runnel.EventStepStream {
					text += string(ev.Payload)
				}
			}
			return keys, text
		}
		live, text := collect()
		stored, _ := collect()
		if text != string(want) || strings.Join(live, "\n") != strings.Join(stored, "\n") {
			t.Fatalf("Go listener: text %q (want %q); live and stored sequences equal: %v", text, want, strings.Join(live, "\n") == strings.Join(stored, "\n"))
		}
		// The SSE API: the same positions and types.
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+engineAddr+"/api/v1/runs/"+runID+"/stream", nil)
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var ids []string
		sc := bufio.NewScanner(resp.Body)
		var id string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "id: "):
				id = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "event: ") && line != "event: end":
				ids = append(ids, id+" "+strings.TrimPrefix(line, "event: "))
			}
		}
		if len(ids) != len(stored) {
			t.Fatalf("SSE delivered %d events, the Go listener %d", len(ids), len(stored))
		}
		for i, k := range stored {
			if !strings.HasPrefix(k, ids[i]+" ") {
				t.Fatalf("event %d: SSE %q, Go listener %q", i, ids[i], k)
			}
		}
	})

	tab := browsertest.NewTab(t, 2*time.Minute)
	if err := chromedp.Do(tab.Ctx, chromedp.Navigate("http://"+siteAddr+"/"), chromedp.Click("#start")); err != nil {
		t.Fatal(err)
	}
	// Reload once a few words are shown: the page resumes after the last
	// position it remembered, so nothing is lost or shown twice.
	if _, err := chromedp.Run(tab.Ctx, chromedp.Poll[bool](`document.getElementById("output").textContent.split(" ").length > 5`,
		chromedp.WithPollingInterval(10*time.Millisecond))); err != nil {
		t.Fatalf("no text: %v; problems: %v", err, tab.Problems())
	}
	if before, _ := chromedp.Run(tab.Ctx, chromedp.TextContent("#status")); before != "live" {
		t.Fatalf("page status %q before the reload, want live (the run should still stream)", before)
	}
	if err := chromedp.Do(tab.Ctx, chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	_, err = chromedp.Run(tab.Ctx,
		chromedp.Poll[bool](`(s => s === "ended" || s.startsWith("error"))(document.getElementById("status").textContent)`,
			chromedp.WithPollingInterval(20*time.Millisecond)))
	status, _ := chromedp.Run(tab.Ctx, chromedp.TextContent("#status"))
	output, _ := chromedp.Run(tab.Ctx, chromedp.TextContent("#output"))
	if err != nil || status != "ended" {
		t.Fatalf("page status %q (%v); problems: %v", status, err, tab.Problems())
	}
	if output != string(want) {
		t.Fatalf("page shows\n%q\nwant\n%q", output, want)
	}

	// The engine is SIGKILLed and restarted while the page follows a second
	// run: the page's listener resumes and ends showing exactly what the
	// engine stored (the step may have run again as a second attempt: the
	// page shows both attempts' streams, as the log holds them).
	if err := chromedp.Do(tab.Ctx, chromedp.Click("#start")); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(tab.Ctx, chromedp.Poll[bool](`document.getElementById("output").textContent.split(" ").length > 5`,
		chromedp.WithPollingInterval(10*time.Millisecond))); err != nil {
		t.Fatalf("no text: %v; problems: %v", err, tab.Problems())
	}
	if before, _ := chromedp.Run(tab.Ctx, chromedp.TextContent("#status")); before != "live" {
		t.Fatalf("page status %q before the engine was killed, want live", before)
	}
	_ = engine.cmd.Process.Kill()
	_ = engine.cmd.Wait()
	engine = startProcess(t, nil, bin, engineArgs...)
	engine.waitFor(t, "engine listening")
	_, err = chromedp.Run(tab.Ctx,
		chromedp.Poll[bool](`(s => s === "ended" || s.startsWith("error"))(document.getElementById("status").textContent)`,
			chromedp.WithPollingInterval(20*time.Millisecond)))
	status, _ = chromedp.Run(tab.Ctx, chromedp.TextContent("#status"))
	output, _ = chromedp.Run(tab.Ctx, chromedp.TextContent("#output"))
	runID, _ := chromedp.Run(tab.Ctx, chromedp.Evaluate[string](`JSON.parse(sessionStorage.getItem("run")).runId`))
	if err != nil || status != "ended" || runID == "" {
		t.Fatalf("after the engine restart: page status %q, run %q (%v)", status, runID, err)
	}
	c, err := runnel.NewClient(runnel.WithHost("http://"+engineAddr), runnel.WithToken(strings.TrimSpace(string(token))))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stored string
	for ev, err := range c.Listener().Stream(ctx, runID) {
		if err != nil {
			t.Fatal(err)
		}
		if ev.Type == runnel.EventStepStream {
			stored += string(ev.Payload)
		}
	}
	if output != stored {
		t.Fatalf("after the engine restart the page shows\n%q\nthe engine stored\n%q", output, stored)
	}
	// The refused reconnections while the engine was down are in the
	// network log, as they should be.
	tab.CheckNoProblems(t, "log:network")
}
