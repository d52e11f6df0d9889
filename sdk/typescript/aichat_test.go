package typescript_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/browsertest"
)

// assistantJS is the text the example page shows for its assistant
// messages, one string per message.
const assistantJS = `[...document.querySelectorAll('[data-role=assistant] .content')].map(e => e.textContent)`

// TestAIChat runs examples/ai-chat as its README says (the engine and the
// worker as separate processes, so a step outlives an engine restart; the
// backend) and drives its page in Chromium: useChat over Runnel, the AI
// SDK's mock model streaming a long answer with a tool call. The page is
// reloaded mid-answer; the engine is SIGKILLed and restarted mid-answer;
// a finished chat is opened in a new tab. Each time the page ends showing
// the model's whole answer exactly once.
//
// Not parallel: it builds the workspace's packages, which TestTypeScript
// builds too; it runs before the parallel tests start.
func TestAIChat(t *testing.T) {
	npm := requireNode(t)
	_ = npm
	bin := buildEngine(t)
	example := filepath.Join("..", "..", "examples", "ai-chat")
	run(t, bin, example, "node", "build.mjs")
	want, err := exec.Command("node", "--input-type=module", "-e",
		fmt.Sprintf("import { rendered } from %q; process.stdout.write(rendered())", "./"+filepath.ToSlash(filepath.Join(example, "dist", "model.js")))).Output()
	if err != nil {
		t.Fatalf("read the example's answer: %v", err)
	}

	parent := t
	t.Run("DocsSnippetsCompile", func(t *testing.T) { docsSnippets(t, example) })

	dataDir, engineAddr, siteAddr := t.TempDir(), freeAddr(t), freeAddr(t)
	hooks := hooksServer(t)
	engineArgs := []string{"server", "--addr", engineAddr, "--data-dir", dataDir, "--cors-origin", "http://" + siteAddr, "--cors-origin", hooks.URL,
		// A killed worker is declared gone quickly (WorkerKilledMidAnswer).
		"--heartbeat-interval", "250ms", "--heartbeat-timeout", "1500ms"}
	engine := startProcess(t, nil, bin, engineArgs...)
	engine.waitFor(t, "engine listening")
	token, err := os.ReadFile(filepath.Join(dataDir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	env := []string{"RUNNEL_HOST=http://" + engineAddr, "RUNNEL_TOKEN=" + strings.TrimSpace(string(token))}
	worker := startProcess(t, append(env, "MODEL_DELAY_MS=15"), "node", filepath.Join(example, "dist", "worker.js"))
	worker.waitFor(t, "worker ready")
	_, port, _ := splitPort(siteAddr)
	site := startProcess(t, append(env, "PORT="+port), "node", filepath.Join(example, "dist", "server.js"))
	site.waitFor(t, "chat at")

	t.Run("ReactHooksSSR", func(t *testing.T) {
		if out, err := exec.Command("node", filepath.Join("packages", "react", "test", "ssr.mjs")).CombinedOutput(); err != nil {
			t.Fatalf("server rendering: %v\n%s", err, out)
		}
	})
	t.Run("ReactHooks", func(t *testing.T) {
		reactHooks(t, hooks.URL, "http://"+engineAddr, strings.TrimSpace(string(token)))
	})

	tab := browsertest.NewTab(t, 2*time.Minute)
	page := "http://" + siteAddr + "/?chat="

	// send starts a turn and waits until part of the answer is shown.
	send := func(t *testing.T, chat string) {
		t.Helper()
		if err := chromedp.Do(tab.Ctx, chromedp.Navigate(page+chat), chromedp.WaitVisible("#send"), chromedp.Click("#send")); err != nil {
			t.Fatal(err)
		}
		midAnswer(t, tab, len([]rune(string(want))))
	}
	// final waits for the page to finish and checks it shows the whole
	// answer once (one user message, one assistant message).
	wantJS, _ := json.Marshal(string(want))
	final := func(t *testing.T, tab *browsertest.Tab, what string) {
		t.Helper()
		_, err := chromedp.Run(tab.Ctx, chromedp.Poll[bool](
			fmt.Sprintf(`document.getElementById("status")?.textContent === "ready" && (a => a.length > 1 || a.length === 1 && a[0].length >= %s.length)(%s)`, wantJS, assistantJS),
			chromedp.WithPollingInterval(20*time.Millisecond)))
		shown, _ := chromedp.Run(tab.Ctx, chromedp.Evaluate[[]string](assistantJS))
		users, _ := chromedp.Run(tab.Ctx, chromedp.Evaluate[int](`document.querySelectorAll('[data-role=user]').length`))
		status, _ := chromedp.Run(tab.Ctx, chromedp.TextContent("#status"))
		if err != nil || len(shown) != 1 || shown[0] != string(want) || users != 1 {
			for len(site.lines) > 0 {
				site.all.WriteString(<-site.lines + "\n")
			}
			t.Fatalf("%s: page status %q (%v), %d user messages, assistant messages:\n%q\nwant one:\n%q\nproblems: %v\nbackend: %s", what, status, err, users, shown, want, tab.Problems(), site.all.String())
		}
	}

	// attempts returns the attempts whose chunks the chat's run stored.
	attempts := func(t *testing.T, chat string) string {
		t.Helper()
		runID, err := chromedp.Run(tab.Ctx, chromedp.Evaluate[string](fmt.Sprintf(`JSON.parse(sessionStorage.getItem("runnel:chat:%s")).runId`, chat)))
		if err != nil {
			t.Fatal(err)
		}
		c, err := runnel.NewClient(runnel.WithHost("http://"+engineAddr), runnel.WithToken(strings.TrimSpace(string(token))))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		seen := map[int]bool{}
		var list []string
		for ev, err := range c.Listener().Stream(ctx, runID) {
			if err != nil {
				t.Fatal(err)
			}
			if ev.Type == runnel.EventStepStream && !seen[ev.Attempt] {
				seen[ev.Attempt] = true
				list = append(list, fmt.Sprint(ev.Attempt))
			}
		}
		return strings.Join(list, ",")
	}

	t.Run("ReloadMidAnswer", func(t *testing.T) {
		send(t, "reload")
		if err := chromedp.Do(tab.Ctx, chromedp.Reload()); err != nil {
			t.Fatal(err)
		}
		final(t, tab, "after a reload mid-answer")
	})

	t.Run("EngineKilledMidAnswer", func(t *testing.T) {
		send(t, "kill")
		_ = engine.cmd.Process.Kill()
		_ = engine.cmd.Wait()
		engine = startProcess(parent, nil, bin, engineArgs...) // outlives this subtest
		engine.waitFor(t, "engine listening")
		final(t, tab, "after the engine was SIGKILLed and restarted mid-answer")
		if a := attempts(t, "kill"); a != "1" {
			t.Errorf("the run's chunks are of attempts %s: the step should have survived the engine restart", a)
		}
	})

	// The worker itself dies mid-answer: the step runs again as attempt 2,
	// which streams the whole answer again; the transport drops attempt 1's
	// half (reset-step) and the page ends showing the answer once.
	t.Run("WorkerKilledMidAnswer", func(t *testing.T) {
		send(t, "crash")
		_ = worker.cmd.Process.Kill()
		_ = worker.cmd.Wait()
		worker = startProcess(parent, append(env, "MODEL_DELAY_MS=15"), "node", filepath.Join(example, "dist", "worker.js"))
		worker.waitFor(t, "worker ready")
		final(t, tab, "after the worker was SIGKILLed mid-answer")
		if a := attempts(t, "crash"); a != "1,2" {
			t.Errorf("the run's chunks are of attempts %s, want 1,2 (half an answer, then a whole one)", a)
		}
	})

	t.Run("FinishedChatInNewTab", func(t *testing.T) {
		fresh := browsertest.NewTab(t, time.Minute)
		if err := chromedp.Do(fresh.Ctx, chromedp.Navigate(page+"reload")); err != nil {
			t.Fatal(err)
		}
		final(t, fresh, "a finished chat opened in a new tab")
		for len(site.lines) > 0 {
			site.all.WriteString(<-site.lines + "\n")
		}
		if strings.Contains(site.all.String(), "Error") {
			t.Errorf("the backend logged errors:\n%s", site.all.String())
		}
		fresh.CheckNoProblems(t)
	})
}

// midAnswer waits until the page shows part of the answer, not all of it.
func midAnswer(t *testing.T, tab *browsertest.Tab, full int) {
	t.Helper()
	if _, err := chromedp.Run(tab.Ctx, chromedp.Poll[bool](fmt.Sprintf(`(a => a.length === 1 && a[0].length > 60)(%s)`, assistantJS),
		chromedp.WithPollingInterval(10*time.Millisecond))); err != nil {
		t.Fatalf("no answer: %v; problems: %v", err, tab.Problems())
	}
	shown, _ := chromedp.Run(tab.Ctx, chromedp.Evaluate[[]string](assistantJS))
	if len(shown) != 1 || len(shown[0]) >= full {
		t.Fatalf("the answer should still be streaming, the page shows %q", shown)
	}
}

func splitPort(addr string) (string, string, error) {
	i := strings.LastIndex(addr, ":")
	return addr[:i], addr[i+1:], nil
}

// docsSnippets compiles every ```ts and ```tsx block of docs/ai-chat.md
// with tsc --strict, as files of a user's project (the example's).
func docsSnippets(t *testing.T, example string) {
	guide, err := os.ReadFile(filepath.Join("..", "..", "docs", "ai-chat.md"))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(example, "dist", "docs-snippets")
	_ = os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?ms)^```(tsx?)\n(.*?)^```$").FindAllStringSubmatch(string(guide), -1)
	if len(blocks) < 4 {
		t.Fatalf("docs/ai-chat.md: %d TypeScript snippets", len(blocks))
	}
	for i, b := range blocks {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("snippet%d.%s", i, b[1])), []byte(b[2]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tsconfig := `{"compilerOptions": {"target": "ES2022", "module": "NodeNext", "moduleResolution": "NodeNext", "jsx": "react-jsx",
		"strict": true, "noEmit": true, "lib": ["ES2022", "DOM", "DOM.Iterable"], "types": ["node"], "skipLibCheck": true}, "include": ["*.ts", "*.tsx"]}`
	if err := os.WriteFile(filepath.Join(dir, "tsconfig.json"), []byte(tsconfig), 0o644); err != nil {
		t.Fatal(err)
	}
	tsc, _ := filepath.Abs(filepath.Join("node_modules", ".bin", "tsc"))
	if out, err := exec.Command(tsc, "-p", dir).CombinedOutput(); err != nil {
		t.Fatalf("docs/ai-chat.md snippets do not compile (snippetN is the N-th block from 0): %v\n%s", err, out)
	}
}

// hooksServer serves the hooks' browser tests (packages/react/test), bundled.
func hooksServer(t *testing.T) *httptest.Server {
	out := filepath.Join(t.TempDir(), "hooks.js")
	esbuild := filepath.Join("node_modules", ".bin", "esbuild")
	if b, err := exec.Command(esbuild, filepath.Join("packages", "react", "test", "hooks.browser.tsx"), "--bundle", "--format=esm",
		"--platform=browser", "--target=es2022", "--jsx=automatic", `--define:process.env.NODE_ENV="production"`, "--log-level=warning", "--outfile="+out).CombinedOutput(); err != nil {
		t.Fatalf("bundle the hooks' tests: %v\n%s", err, b)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprint(w, `<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><script type="module" src="/hooks.js"></script>`)
		case "/hooks.js":
			w.Header().Set("Content-Type", "text/javascript")
			http.ServeFile(w, r, out)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// reactHooks runs the hooks' tests in Chromium: strict mode opens one
// subscription, unmounting closes it, the token function is called again
// on each reconnection.
func reactHooks(t *testing.T, page, engine, token string) {
	c, err := runnel.NewClient(runnel.WithHost(engine), runnel.WithToken(token))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	input := map[string]any{"messages": []map[string]any{{"id": "u1", "role": "user", "parts": []map[string]string{{"type": "text", "text": "hi"}}}}}
	done, err := c.Admin().RunWorkflow(ctx, "ai-chat", input)
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range c.Listener().Stream(ctx, done) {
		if err != nil {
			t.Fatal(err)
		}
	}
	live, err := c.Admin().RunWorkflow(ctx, "ai-chat", input)
	if err != nil {
		t.Fatal(err)
	}
	q := url.Values{"host": {engine}, "done": {done}, "doneToken": {browserToken(t, engine, token, done)},
		"live": {live}, "liveToken": {browserToken(t, engine, token, live)}}
	tab := browsertest.NewTab(t, time.Minute)
	if err := chromedp.Do(tab.Ctx, chromedp.Navigate(page+"/#"+q.Encode())); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(tab.Ctx, chromedp.Poll[bool](`window.results?.done === "yes"`, chromedp.WithPollingInterval(20*time.Millisecond))); err != nil {
		t.Fatalf("hooks' tests did not finish: %v; problems: %v", err, tab.Problems())
	}
	results, err := chromedp.Run(tab.Ctx, chromedp.Evaluate[map[string]string](`window.results`))
	if err != nil {
		t.Fatal(err)
	}
	for name, r := range results {
		if r != "ok" && name != "done" {
			t.Errorf("%s: %s", name, r)
		}
	}
	if len(results) != 4 {
		t.Errorf("results: %v", results)
	}
}

// browserToken mints a browser token for a run over the HTTP API.
func browserToken(t *testing.T, engine, token, runID string) string {
	req, _ := http.NewRequest("POST", engine+"/api/v1/tokens", strings.NewReader(`{"runId":"`+runID+`","ttl":"600s"}`))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v struct{ Token string }
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || v.Token == "" {
		t.Fatalf("mint a browser token: %v (status %d)", err, resp.StatusCode)
	}
	return v.Token
}
