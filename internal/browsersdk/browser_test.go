package browsersdk_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/browsertest"
	"github.com/runnel-dev/runnel/internal/demo"
	"github.com/runnel-dev/runnel/internal/testengine"
)

// The browser tests load plain pages (testdata/*.html) from a server on
// another origin than the engine's, as a user's site would be: the pages
// import /sdk/runnel.js from the engine, which lets their origin call its
// API (--cors-origin). They skip without Chromium unless
// RUNNEL_TEST_REQUIRE_BROWSER=1.

const browserTimeout = 2 * time.Minute

// site is the pages' server. Its pages name the engine's URL, known only
// once the engine started, which needs the site's origin first.
type site struct {
	*httptest.Server
	mux       *http.ServeMux // the pages at /; tests add endpoints
	engineURL atomic.Value   // string
}

func startSite(t *testing.T) *site {
	t.Helper()
	s := &site{mux: http.NewServeMux()}
	s.Server = httptest.NewServer(s.mux)
	s.mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := os.ReadFile(filepath.Join("testdata", filepath.Base(r.URL.Path)))
		if err != nil || !strings.HasSuffix(r.URL.Path, ".html") {
			http.NotFound(w, r)
			return
		}
		engine, _ := s.engineURL.Load().(string)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(bytes.ReplaceAll(b, []byte("ENGINE_URL"), []byte(engine)))
	}))
	t.Cleanup(s.Close)
	return s
}

// startEngine starts an engine with the demo worker that lets the site's
// pages call it.
func startEngine(t *testing.T, s *site) *testengine.Engine {
	t.Helper()
	e := testengine.StartWithDemoWorker(t, testengine.WithCORSOrigins(s.URL))
	s.engineURL.Store(e.URL)
	return e
}

// browserToken mints a read-only token for one run, as a backend would for
// its page.
func browserToken(t *testing.T, e *testengine.Engine, runID string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"runId": runID, "ttl": "10m"})
	req, _ := http.NewRequest("POST", e.URL+"/api/v1/tokens", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+e.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ Token string }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusCreated || out.Token == "" {
		t.Fatalf("mint a browser token: %s, %v", resp.Status, err)
	}
	return out.Token
}

func startRun(t *testing.T, e *testengine.Engine, workflow string, input any) string {
	t.Helper()
	id, err := e.Client.Admin().RunWorkflow(context.Background(), workflow, input)
	if err != nil {
		t.Fatalf("start %s: %v", workflow, err)
	}
	return id
}

// stepOutput returns the output of a finished run's only step.
func stepOutput(t *testing.T, e *testengine.Engine, runID string, v any) {
	t.Helper()
	run, err := e.Client.Admin().GetRun(context.Background(), runID)
	if err != nil {
		t.Fatal(err)
	}
	if run.Status != runnel.RunCompleted || len(run.Steps) != 1 {
		t.Fatalf("run %s: status %s, %d steps; want completed, 1 step", runID, run.Status, len(run.Steps))
	}
	if err := json.Unmarshal(run.Steps[0].Output, v); err != nil {
		t.Fatalf("run %s output %s: %v", runID, run.Steps[0].Output, err)
	}
}

func pageURL(s *site, page, runID, token string, extra ...string) string {
	q := url.Values{"run": {runID}, "token": {token}}
	for i := 0; i+1 < len(extra); i += 2 {
		q.Set(extra[i], extra[i+1])
	}
	return s.URL + "/" + page + "?" + q.Encode()
}

// waitStatus waits until the page's status line reads want, or shows an
// error, which fails the test at once.
func waitStatus(t *testing.T, tab *browsertest.Tab, want string) {
	t.Helper()
	js := fmt.Sprintf(`(s => s === %q || s.startsWith("error") || s.startsWith("page error"))(document.getElementById("status").textContent)`, want)
	_, err := chromedp.Run(tab.Ctx, chromedp.Poll[bool](js, chromedp.WithPollingInterval(20*time.Millisecond)))
	for tries := 0; err != nil && strings.Contains(err.Error(), "Cannot find context with specified id") && tries < 3; tries++ {
		// The poll started in the page that the navigation was replacing
		// (its JavaScript context went away with it): poll the new page.
		_, err = chromedp.Run(tab.Ctx, chromedp.Poll[bool](js, chromedp.WithPollingInterval(20*time.Millisecond)))
	}
	got, _ := chromedp.Run(tab.Ctx, chromedp.TextContent("#status"))
	if err != nil || got != want {
		t.Fatalf("page status %q, want %q (%v); page problems: %v", got, want, err, tab.Problems())
	}
}

// textPage is what text.html keeps in sessionStorage across reloads.
type textPage struct {
	Text     string   `json:"text"`
	Chunks   int      `json:"chunks"`
	Loads    int      `json:"loads"`
	Statuses []string `json:"statuses"`
}

func readTextPage(t *testing.T, tab *browsertest.Tab, runID string) textPage {
	t.Helper()
	raw, err := chromedp.Run(tab.Ctx, chromedp.Evaluate[string](fmt.Sprintf(`sessionStorage.getItem(%q) || "{}"`, "page:"+runID)))
	if err != nil {
		t.Fatal(err)
	}
	var p textPage
	if err := json.Unmarshal([]byte(raw), &p); err != nil {
		t.Fatalf("page state %s: %v", raw, err)
	}
	return p
}

// TestReloadMidRun is the proof: a plain page follows a demo-text
// run through runnel.js with remember on, is reloaded mid-run, and ends
// with the run's output exactly: no chunk lost, none repeated.
func TestReloadMidRun(t *testing.T) {
	t.Parallel()
	tab := browsertest.NewTab(t, browserTimeout)
	s := startSite(t)
	e := startEngine(t, s)

	const chunks, intervalMs = 40, 60
	runID := startRun(t, e, demo.Text, map[string]int{"chunks": chunks, "intervalMs": intervalMs})
	token := browserToken(t, e, runID)

	// Wait for some chunks (not a fixed time), then reload.
	const before = 8
	if err := chromedp.Do(tab.Ctx, chromedp.Navigate(pageURL(s, "text.html", runID, token))); err != nil {
		t.Fatal(err)
	}
	_, err := chromedp.Run(tab.Ctx,
		chromedp.Poll[bool](fmt.Sprintf(`JSON.parse(sessionStorage.getItem(%q) || "{}").chunks >= %d`, "page:"+runID, before),
			chromedp.WithPollingInterval(10*time.Millisecond)),
	)
	if err != nil {
		t.Fatalf("no chunks on the page: %v", err)
	}
	if err := chromedp.Do(tab.Ctx, chromedp.Reload()); err != nil {
		t.Fatalf("reload: %v", err)
	}
	// The state the page saved last before the reload: the reload cut in
	// there, and the page wrote nothing between (one thread).
	atReload := readTextPage(t, tab, runID)
	full := demo.TextOutput(chunks)
	if atReload.Loads != 1 && atReload.Loads != 2 || len(atReload.Text) >= len(full) || !strings.HasPrefix(full, atReload.Text) {
		t.Fatalf("at the reload the page held %d chunks %q: want a proper prefix of the output (slow the run down)", atReload.Chunks, atReload.Text)
	}

	waitStatus(t, tab, "ended")
	got := readTextPage(t, tab, runID)
	var out struct{ Text string }
	stepOutput(t, e, runID, &out)
	if got.Text != out.Text || out.Text != full || got.Chunks != chunks {
		t.Errorf("page collected %d chunks\n%q\nthe run's output is\n%q\nwant every one of its %d chunks exactly once", got.Chunks, got.Text, out.Text, chunks)
	}
	if got.Loads != 2 {
		t.Errorf("page loaded %d times, want 2", got.Loads)
	}
	// Each load reports connecting, then live; the second ends.
	want := []string{"connecting", "live", "connecting", "live", "ended"}
	if strings.Join(got.Statuses, ",") != strings.Join(want, ",") {
		t.Errorf("statuses %v, want %v", got.Statuses, want)
	}
	tab.CheckNoProblems(t)
}

// TestFileImage: a demo-file run's binary payload reaches the page as a
// Uint8Array whose SHA-256 is the run's, and a PNG streamed by demo-file
// shows as an image.
func TestFileImage(t *testing.T) {
	t.Parallel()
	tab := browsertest.NewTab(t, browserTimeout)
	s := startSite(t)
	e := startEngine(t, s)

	for _, tc := range []struct {
		name  string
		input map[string]any
		image bool
	}{
		{"random bytes", map[string]any{"bytes": 300_000}, false},
		{"png", map[string]any{"format": demo.FormatPNG}, true},
	} {
		runID := startRun(t, e, demo.File, tc.input)
		token := browserToken(t, e, runID)
		extra := []string{}
		if tc.image {
			extra = append(extra, "image", "1")
		}
		if err := chromedp.Do(tab.Ctx, chromedp.Navigate(pageURL(s, "file.html", runID, token, extra...))); err != nil {
			t.Fatal(err)
		}
		waitStatus(t, tab, "ended")
		var out demo.FileOutput
		stepOutput(t, e, runID, &out)
		sum, err := chromedp.Run(tab.Ctx, chromedp.TextContent("#sha256"))
		if err != nil {
			t.Fatal(err)
		}
		n, err := chromedp.Run(tab.Ctx, chromedp.TextContent("#bytes"))
		if err != nil {
			t.Fatal(err)
		}
		if sum != out.SHA256 || n != fmt.Sprint(out.Bytes) {
			t.Errorf("%s: page got %s bytes with SHA-256 %s; the run streamed %d bytes with %s", tc.name, n, sum, out.Bytes, out.SHA256)
		}
		if tc.image {
			width, err := chromedp.Run(tab.Ctx, chromedp.Evaluate[int](`document.querySelector("#picture img").naturalWidth`))
			if err != nil {
				t.Fatalf("%s: no image on the page: %v", tc.name, err)
			}
			if width != demo.ImageWidth {
				t.Errorf("%s: image is %d pixels wide, want %d", tc.name, width, demo.ImageWidth)
			}
		}
	}
	tab.CheckNoProblems(t)
}

// TestRefusedIsError: a stream the engine refuses for good (a bad token:
// 401; a token for another run: 404) ends in the "error" status with the
// API's code, after one try: no reconnect loop.
func TestRefusedIsError(t *testing.T) {
	t.Parallel()
	tab := browsertest.NewTab(t, browserTimeout)
	s := startSite(t)
	e := startEngine(t, s)

	runID := startRun(t, e, demo.Text, map[string]int{"chunks": 1})
	other := startRun(t, e, demo.Text, map[string]int{"chunks": 1})
	for _, tc := range []struct {
		token, want string
	}{
		{"rnl_not-a-token", "error 401 unauthenticated"},
		{browserToken(t, e, other), "error 404 not_found"},
	} {
		if err := chromedp.Do(tab.Ctx, chromedp.Navigate(pageURL(s, "text.html", runID, tc.token))); err != nil {
			t.Fatal(err)
		}
		waitStatus(t, tab, tc.want)
		got := readTextPage(t, tab, runID)
		if strings.Join(got.Statuses, ",") != "connecting,error" || got.Chunks != 0 {
			t.Errorf("token %s: statuses %v and %d chunks, want connecting,error and none", tc.token, got.Statuses, got.Chunks)
		}
		if _, err := chromedp.Run(tab.Ctx, chromedp.Evaluate[bool](`sessionStorage.clear(), true`)); err != nil {
			t.Fatal(err)
		}
	}

	// A remembered position the engine refuses (not one of its positions)
	// is an error, and is forgotten, so the next load starts afresh.
	remembered := fmt.Sprintf(`sessionStorage.getItem(%q)`, "runnel:run:"+runID)
	if _, err := chromedp.Run(tab.Ctx, chromedp.Evaluate[bool](fmt.Sprintf(`sessionStorage.setItem(%q, "not-a-position"), true`, "runnel:run:"+runID))); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(tab.Ctx, chromedp.Navigate(pageURL(s, "text.html", runID, browserToken(t, e, runID)))); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, tab, "error 400 invalid_argument")
	if left, err := chromedp.Run(tab.Ctx, chromedp.Evaluate[any](remembered)); err != nil || left != nil {
		t.Errorf("remembered position after the refusal: %v (%v), want none", left, err)
	}
	// The refused requests are in the browser's network log, as they
	// should be; nothing else may go wrong.
	tab.CheckNoProblems(t, "log:network")
}

// relay is an SSE endpoint on the site that passes a run's stream through
// from the engine, and misbehaves on cue: its first stream ends after
// cutAfter events, the next two requests get 503.
type relay struct {
	engineURL string
	runID     string
	cutAfter  int

	mu       sync.Mutex
	requests []relayRequest
}

// relayRequest is what a request to the relay asked for.
type relayRequest struct {
	lastEventID, after string
}

func (rl *relay) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rl.mu.Lock()
	rl.requests = append(rl.requests, relayRequest{r.Header.Get("Last-Event-ID"), r.URL.Query().Get("after")})
	n := len(rl.requests)
	rl.mu.Unlock()
	if n == 2 || n == 3 {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `{"error": {"code": "unavailable", "message": "relay down for a moment"}}`)
		return
	}
	req, _ := http.NewRequestWithContext(r.Context(), "GET", rl.engineURL+"/api/v1/runs/"+rl.runID+"/stream?"+r.URL.RawQuery, nil)
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		req.Header.Set("Last-Event-ID", id)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
	w.WriteHeader(resp.StatusCode)
	rc := http.NewResponseController(w)
	events := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 8<<20)
	for sc.Scan() {
		line := sc.Text()
		if _, err := io.WriteString(w, line+"\n"); err != nil {
			return
		}
		if strings.HasPrefix(line, "id: ") {
			events++
		}
		if line == "" {
			_ = rc.Flush()
			if n == 1 && events == rl.cutAfter {
				return // the first stream ends here, mid-run
			}
		}
	}
}

// TestRecreatesAfterRefusal: when a stream drops, EventSource resumes by
// itself (Last-Event-ID); when the server then refuses with a 503, the
// client retries in a new EventSource that resumes with ?after= the last
// delivered position. The page ends with every chunk once. The stream comes
// from a {url} target, as a backend's would.
func TestRecreatesAfterRefusal(t *testing.T) {
	t.Parallel()
	tab := browsertest.NewTab(t, browserTimeout)
	s := startSite(t)
	e := startEngine(t, s)

	const chunks = 20
	runID := startRun(t, e, demo.Text, map[string]int{"chunks": chunks, "intervalMs": 20})
	token := browserToken(t, e, runID)
	rl := &relay{engineURL: e.URL, runID: runID, cutAfter: 5}
	s.mux.Handle("/relay", rl)

	if err := chromedp.Do(tab.Ctx, chromedp.Navigate(pageURL(s, "text.html", runID, token, "url", "/relay"))); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, tab, "ended")
	got := readTextPage(t, tab, runID)
	if got.Text != demo.TextOutput(chunks) || got.Chunks != chunks {
		t.Errorf("page collected %d chunks %q, want each of %d once: %q", got.Chunks, got.Text, chunks, demo.TextOutput(chunks))
	}
	if !slices.Contains(got.Statuses, "reconnecting") || got.Statuses[len(got.Statuses)-1] != "ended" {
		t.Errorf("statuses %v: want reconnecting on the way and ended at the end", got.Statuses)
	}
	rl.mu.Lock()
	reqs := slices.Clone(rl.requests)
	rl.mu.Unlock()
	// 1 streams and is cut; 2 is EventSource's own retry (Last-Event-ID),
	// refused; 3 is the client's probe of the status; 4 the new
	// EventSource, resuming with ?after=.
	if len(reqs) != 4 {
		t.Fatalf("relay requests %+v, want 4", reqs)
	}
	if reqs[0].lastEventID != "" || reqs[0].after != "" {
		t.Errorf("first request %+v: want a start from the beginning", reqs[0])
	}
	if cut := reqs[1].lastEventID; cut == "" || reqs[2].after != cut || reqs[3].after != cut || reqs[3].lastEventID != "" {
		t.Errorf("requests %+v: want the retry with Last-Event-ID, then the probe and the new stream with ?after= the same position", reqs)
	}
	// The refusals are in the browser's network log, as they should be.
	tab.CheckNoProblems(t, "log:network")
}

// TestExpiredTokenIsReplaced: the engine ends a stream when its browser
// token expires (issue 15 finding 6); runnel.js, given a function for its
// token, gets a fresh one from the page's backend and resumes after the
// last event: a run longer than several token lifetimes reaches the page
// whole, each chunk once. Before the fix the first token streamed on past
// its expiry (one mint).
func TestExpiredTokenIsReplaced(t *testing.T) {
	t.Parallel()
	tab := browsertest.NewTab(t, browserTimeout)
	s := startSite(t)
	e := startEngine(t, s)
	var mints atomic.Int32
	s.mux.HandleFunc("/mint", func(w http.ResponseWriter, r *http.Request) {
		body, _ := json.Marshal(map[string]string{"runId": r.URL.Query().Get("run"), "ttl": "2s"})
		req, _ := http.NewRequestWithContext(r.Context(), "POST", e.URL+"/api/v1/tokens", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+e.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		var out struct{ Token string }
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Token == "" {
			http.Error(w, "mint failed: "+resp.Status, http.StatusBadGateway)
			return
		}
		mints.Add(1)
		_, _ = io.WriteString(w, out.Token)
	})

	// About 6 s of chunks: three token lifetimes.
	const chunks, intervalMs = 60, 100
	runID := startRun(t, e, demo.Text, map[string]int{"chunks": chunks, "intervalMs": intervalMs})
	if err := chromedp.Do(tab.Ctx, chromedp.Navigate(pageURL(s, "expiry.html", runID, ""))); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, tab, "ended")
	got := readTextPage(t, tab, runID)
	if full := demo.TextOutput(chunks); got.Text != full || got.Chunks != chunks {
		t.Errorf("page collected %d chunks\n%q\nwant every one of the %d chunks exactly once:\n%q", got.Chunks, got.Text, chunks, full)
	}
	if n := mints.Load(); n < 2 {
		t.Errorf("%d tokens minted: the first one kept streaming past its expiry", n)
	}
	if !slices.Contains(got.Statuses, "reconnecting") {
		t.Errorf("statuses %v: want a reconnection at the token's expiry", got.Statuses)
	}
	tab.CheckNoProblems(t)
}
