package main

import (
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/runnel-dev/runnel/internal/browsertest"
	"github.com/runnel-dev/runnel/internal/demo"
	"github.com/runnel-dev/runnel/internal/testengine"
)

// The browser tests drive the example's page in headless Chromium: the
// page's own fetch and EventSource, nothing simulated. They skip without
// Chromium unless RUNNEL_TEST_REQUIRE_BROWSER=1.

const browserTimeout = 2 * time.Minute

// outputJS reads the page's output exactly (innerText would normalise
// whitespace; every chunk ends with a space).
const outputJS = `document.getElementById("output").textContent`

// startFromPage opens the page, asks for a message of n chunks every
// interval ms, and clicks start.
func startFromPage(t *testing.T, tab *browsertest.Tab, url string, n, intervalMs int) {
	t.Helper()
	err := chromedp.Do(tab.Ctx,
		chromedp.Navigate(url),
		chromedp.WaitVisible("#start"),
		chromedp.SetValue("#chunks", strconv.Itoa(n)),
		chromedp.SetValue("#interval", strconv.Itoa(intervalMs)),
		chromedp.Click("#start"),
	)
	if err != nil {
		t.Fatalf("start a message from the page: %v", err)
	}
}

// waitEnded waits until the page shows that the run ended and returns its
// output and status.
func waitEnded(t *testing.T, tab *browsertest.Tab) (output, status string) {
	t.Helper()
	if err := chromedp.Do(tab.Ctx, chromedp.WaitVisible("#done")); err != nil {
		st, _ := chromedp.Run(tab.Ctx, chromedp.TextContent("#status"))
		t.Fatalf("page did not show the run's end: %v (status %q)", err, st)
	}
	output, err := chromedp.Run(tab.Ctx, chromedp.Evaluate[string](outputJS))
	if err != nil {
		t.Fatal(err)
	}
	status, err = chromedp.Run(tab.Ctx, chromedp.TextContent("#status"))
	if err != nil {
		t.Fatal(err)
	}
	return output, status
}

// TestBrowserShowsStream: the page starts a message and shows all of its
// chunks live, then that the run completed.
func TestBrowserShowsStream(t *testing.T) {
	t.Parallel()
	tab := browsertest.NewTab(t, browserTimeout)
	e := testengine.StartWithDemoWorker(t)
	b := startBackend(t, e.Client, nil)

	const chunks = 15
	startFromPage(t, tab, b.URL()+"/", chunks, 20)
	output, status := waitEnded(t, tab)
	if output != demo.TextOutput(chunks) {
		t.Errorf("page shows %q, want %q", output, demo.TextOutput(chunks))
	}
	if status != "completed" {
		t.Errorf("status %q, want completed", status)
	}
	tab.CheckNoProblems(t)
}

// TestBrowserResumesAfterCut is the proof of resume in a real browser:
// mid-stream the backend stops (listener and connections closed) and a new
// one starts on the same address; the page's EventSource reconnects by
// itself with Last-Event-ID, and the page ends with every chunk exactly
// once, in order.
func TestBrowserResumesAfterCut(t *testing.T) {
	t.Parallel()
	tab := browsertest.NewTab(t, browserTimeout)
	e := testengine.StartWithDemoWorker(t)
	// Count the stream requests that resume, to show the reconnect came
	// from EventSource with Last-Event-ID.
	var resumed atomic.Int32
	b := startBackend(t, e.Client, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.Path, "/message/") && r.Header.Get("Last-Event-ID") != "" {
				resumed.Add(1)
			}
			h.ServeHTTP(w, r)
		})
	})

	const chunks, intervalMs = 60, 30
	startFromPage(t, tab, b.URL()+"/", chunks, intervalMs)
	// Wait until some chunks are on the page (not a fixed time).
	const before = 8
	_, err := chromedp.Run(tab.Ctx, chromedp.Poll[bool](
		outputJS+`.split(" ").length > `+strconv.Itoa(before),
		chromedp.WithPollingInterval(10*time.Millisecond)))
	if err != nil {
		t.Fatalf("no chunks on the page: %v", err)
	}

	b.shutdown() // closes the listener and ends every open stream
	cut, err := chromedp.Run(tab.Ctx, chromedp.Evaluate[string](outputJS))
	if err != nil {
		t.Fatal(err)
	}
	full := demo.TextOutput(chunks)
	if len(cut) >= len(full) || !strings.HasPrefix(full, cut) {
		t.Fatalf("at the cut the page showed %q: want a proper prefix of the output (slow the run down)", cut)
	}
	b.start() // the same address

	output, status := waitEnded(t, tab)
	if output != full {
		t.Errorf("page shows\n%q\nwant every chunk once, in order:\n%q", output, full)
	}
	if status != "completed" {
		t.Errorf("status %q, want completed", status)
	}
	if n := resumed.Load(); n < 1 {
		t.Errorf("%d stream requests carried Last-Event-ID: EventSource did not resume", n)
	}
	conns, err := chromedp.Run(tab.Ctx, chromedp.TextContent("#connections"))
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := strconv.Atoi(conns); n < 2 {
		t.Errorf("page counted %s connections, want at least 2", conns)
	}
	// A refused connection while the backend is down is the browser's
	// network log, expected here; nothing else may go wrong.
	tab.CheckNoProblems(t, "log:network")
}
