package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/browsertest"
	"github.com/runnel-dev/runnel/internal/demo"
	"github.com/runnel-dev/runnel/internal/testengine"
)

// TestMain stops the browser the browser tests share.
func TestMain(m *testing.M) { browsertest.Main(m) }

// backend is the example running on a loopback port, as `main` runs it.
type backend struct {
	t    *testing.T
	c    *runnel.Client
	h    http.Handler
	addr string

	mu   sync.Mutex
	stop func() // stops the running server; nil when stopped
}

// startBackend serves the example's handler on a free loopback port; wrap,
// if set, wraps the handler (to watch requests).
func startBackend(t *testing.T, c *runnel.Client, wrap func(http.Handler) http.Handler) *backend {
	t.Helper()
	h := newHandler(c, slog.New(slog.DiscardHandler))
	if wrap != nil {
		h = wrap(h)
	}
	b := &backend{t: t, c: c, h: h, addr: "127.0.0.1:0"}
	b.start()
	t.Cleanup(b.shutdown)
	return b
}

func (b *backend) URL() string { return "http://" + b.addr }

// start serves on b.addr: a free port the first time, the same one after a
// shutdown, as a restarted backend would.
func (b *backend) start() {
	b.t.Helper()
	ln, err := net.Listen("tcp", b.addr)
	if err != nil {
		b.t.Fatalf("listen on %s: %v", b.addr, err)
	}
	b.addr = ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, ln, b.h) }()
	b.mu.Lock()
	b.stop = func() {
		cancel()
		if err := <-done; err != nil {
			b.t.Errorf("serve: %v", err)
		}
	}
	b.mu.Unlock()
}

// shutdown stops the server: its listener closes and its open streams end.
func (b *backend) shutdown() {
	b.mu.Lock()
	stop := b.stop
	b.stop = nil
	b.mu.Unlock()
	if stop != nil {
		stop()
	}
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func do(t *testing.T, method, url, body string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(testContext(t), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, raw
}

func startMessageOK(t *testing.T, b *backend, body string) string {
	t.Helper()
	resp, raw := do(t, http.MethodPost, b.URL()+"/message", body)
	var out struct{ MessageID string }
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(raw, &out) != nil || out.MessageID == "" {
		t.Fatalf("POST /message: %d %s", resp.StatusCode, raw)
	}
	return out.MessageID
}

// TestMessageStream is the seed's flow over plain HTTP: POST /message, then
// GET /message/{id} streams the text, the run's end and `end`.
func TestMessageStream(t *testing.T) {
	t.Parallel()
	e := testengine.StartWithDemoWorker(t)
	b := startBackend(t, e.Client, nil)
	const chunks = 7
	id := startMessageOK(t, b, `{"chunks": 7, "intervalMs": 5}`)

	resp, raw := do(t, http.MethodGet, b.URL()+"/message/"+id, "")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET /message/%s: %d %s %s", id, resp.StatusCode, resp.Header.Get("Content-Type"), raw)
	}
	var text strings.Builder
	var events []string
	sc := bufio.NewScanner(strings.NewReader(string(raw)))
	event := ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
			events = append(events, event)
		case strings.HasPrefix(line, "data: "):
			var d struct {
				Payload   string `json:"payload"`
				MessageID string `json:"messageId"`
			}
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &d); err != nil {
				t.Fatal(err)
			}
			if event == "step.stream" {
				if d.MessageID != id {
					t.Fatalf("messageId %q, want %q", d.MessageID, id)
				}
				text.WriteString(d.Payload)
			}
		}
	}
	if text.String() != demo.TextOutput(chunks) {
		t.Fatalf("text %q, want %q", text.String(), demo.TextOutput(chunks))
	}
	if n := len(events); n != chunks+2 || events[n-2] != "run.completed" || events[n-1] != "end" {
		t.Fatalf("events %v: want %d step.stream, run.completed, end", events, chunks)
	}
	if !strings.HasPrefix(string(raw), "retry: 1000\n\n") {
		t.Fatalf("stream does not start with the retry field: %q", raw[:min(len(raw), 40)])
	}
}

func TestMessageErrors(t *testing.T) {
	t.Parallel()
	e := testengine.StartWithDemoWorker(t)
	b := startBackend(t, e.Client, nil)
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
	}{
		{"not JSON", "POST", "/message", `{chunks`, 400},
		{"unknown field", "POST", "/message", `{"chunk": 3}`, 400},
		{"no chunks", "POST", "/message", `{"chunks": 0}`, 400},
		{"too many chunks", "POST", "/message", `{"chunks": 1001}`, 400},
		{"negative interval", "POST", "/message", `{"intervalMs": -1}`, 400},
		{"body too large", "POST", "/message", `{"chunks": 1` + strings.Repeat(" ", 5000) + `}`, 413},
		{"unknown message", "GET", "/message/6f1c2a52-0000-4000-8000-000000000000", "", 404},
		{"bad Last-Event-ID", "GET", "/message/x?after=a%20b", "", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, raw := do(t, tc.method, b.URL()+tc.path, tc.body)
			var out struct {
				Error struct{ Code, Message string }
			}
			if resp.StatusCode != tc.status || json.Unmarshal(raw, &out) != nil || out.Error.Message == "" {
				t.Fatalf("%s %s: %d %s, want %d and a JSON error", tc.method, tc.path, resp.StatusCode, raw, tc.status)
			}
		})
	}
	// No body at all: the defaults.
	if id := startMessageOK(t, b, ""); id == "" {
		t.Fatal("no message id")
	}
}

// TestPageIsSelfContained: the page is served with a policy that allows
// only this origin, and it names no other.
func TestPageIsSelfContained(t *testing.T) {
	t.Parallel()
	b := startBackend(t, nil, nil)
	resp, raw := do(t, http.MethodGet, b.URL()+"/", "")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'self'") {
		t.Fatalf("GET /: %d %v", resp.StatusCode, resp.Header)
	}
	if !strings.Contains(string(raw), `<pre id="output">`) {
		t.Fatalf("page has no output element")
	}
	if resp, _ := do(t, http.MethodGet, b.URL()+"/app.js", ""); resp.StatusCode != 200 {
		t.Fatalf("GET /app.js: %d", resp.StatusCode)
	}
	outside := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]`)
	err := fs.WalkDir(static, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := static.ReadFile(path)
		if m := outside.Find(b); m != nil {
			t.Errorf("%s refers to another origin: %s", path, m)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestServeEndsOpenStreams: stopping the server ends the open streams
// instead of waiting for their runs, so a restart is quick and browsers
// reconnect to the new server.
func TestServeEndsOpenStreams(t *testing.T) {
	t.Parallel()
	e := testengine.StartWithDemoWorker(t)
	b := startBackend(t, e.Client, nil)
	id := startMessageOK(t, b, `{"chunks": 1000, "intervalMs": 1000}`)
	t.Cleanup(func() { _ = e.Client.Admin().CancelRun(context.Background(), id) })
	req, err := http.NewRequestWithContext(testContext(t), http.MethodGet, b.URL()+"/message/"+id, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	for { // until the first chunk
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == "event: step.stream\n" {
			break
		}
	}
	start := time.Now()
	b.shutdown()
	if d := time.Since(start); d > 4*time.Second {
		t.Fatalf("shutdown took %v: it waited for the stream", d)
	}
	if _, err := io.ReadAll(r); err != nil {
		t.Fatalf("stream did not end cleanly: %v", err)
	}
}

// exportsSubscribe matches the module's export of subscribe (the module is
// the SDK's esbuild bundle: one export list at the end).
var exportsSubscribe = regexp.MustCompile(`export\s*\{[^}]*\bsubscribe\b`)

// TestModuleFromEngine: GET /runnel.js re-serves the engine's browser
// client with its cache validator, and says so when the engine is down.
func TestModuleFromEngine(t *testing.T) {
	t.Parallel()
	e := testengine.Start(t)
	b := startBackend(t, e.Client, nil)
	resp, raw := do(t, http.MethodGet, b.URL()+"/runnel.js", "")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/javascript") ||
		!exportsSubscribe.Match(raw) || resp.Header.Get("ETag") == "" {
		t.Fatalf("GET /runnel.js: %d %v, %d bytes", resp.StatusCode, resp.Header, len(raw))
	}
	req, _ := http.NewRequestWithContext(testContext(t), http.MethodGet, b.URL()+"/runnel.js", nil)
	req.Header.Set("If-None-Match", resp.Header.Get("ETag"))
	again, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	again.Body.Close()
	if again.StatusCode != http.StatusNotModified {
		t.Errorf("revalidation: %d, want 304", again.StatusCode)
	}

	down, err := runnel.NewClient(runnel.WithHost("http://127.0.0.1:1"))
	if err != nil {
		t.Fatal(err)
	}
	b = startBackend(t, down, nil)
	if resp, raw := do(t, http.MethodGet, b.URL()+"/runnel.js", ""); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("engine down: %d %s, want 503", resp.StatusCode, raw)
	}
}
