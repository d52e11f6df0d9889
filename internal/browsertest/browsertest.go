// Package browsertest runs browser tests in a real headless Chromium through
// chromedp: one browser per test binary, started by the first test that
// asks for a tab, and a fresh tab per test that records what the page
// reports as errors.
//
// Tests skip when no Chromium is installed (Debian: apt-get install
// chromium), unless RUNNEL_TEST_REQUIRE_BROWSER=1, as in CI, makes that a
// failure. A package using it stops the browser from TestMain:
//
//	func TestMain(m *testing.M) { browsertest.Main(m) }
package browsertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// EnvRequire names the environment variable that, set to 1, makes a missing
// browser fail the tests instead of skipping them.
const EnvRequire = "RUNNEL_TEST_REQUIRE_BROWSER"

// browser is the one browser of the test binary.
var browser struct {
	once    sync.Once
	ctx     context.Context // a chromedp browser context; tabs derive from it
	stop    func()
	err     error
	missing string // why there is no browser to run, if none was found
}

// Main runs the tests and then stops the browser, if a test started one,
// and exits.
func Main(m *testing.M) {
	code := m.Run()
	if browser.stop != nil {
		browser.stop()
	}
	os.Exit(code)
}

// findChromium returns Debian's chromium, else one on PATH.
func findChromium() (string, bool) {
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium", true
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if path, err := exec.LookPath(name); err == nil {
			return path, true
		}
	}
	return "", false
}

func start() {
	path, ok := findChromium()
	if !ok {
		browser.missing = "no Chromium found (/usr/bin/chromium or chromium on PATH); install Debian's chromium package"
		return
	}
	// A fresh profile per test binary. Not t.TempDir(): the browser
	// outlives the test that starts it.
	dir, err := os.MkdirTemp("", "runnel-chromium-")
	if err != nil {
		browser.err = err
		return
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.UserDataDir(dir),
		chromedp.NoSandbox, // tests run as root, where the sandbox refuses to start
		chromedp.DisableGPU,
		// The machine has no network: anything Chromium would fetch for
		// itself (component updates, sync, QUIC probes) stalls instead.
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelBrowser := chromedp.NewContext(allocCtx)
	browser.stop = func() {
		cancelBrowser()
		cancelAlloc()
		_ = os.RemoveAll(dir)
	}
	// Start it now, within a bound, so that a browser that cannot start
	// fails the first test clearly instead of hanging it. The browser lives
	// as long as the context of its first run, so that context has no
	// timeout: the bound is kept by hand.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }()
	select {
	case err := <-started:
		if err != nil {
			browser.err = fmt.Errorf("start %s: %w", path, err)
			return
		}
	case <-time.After(time.Minute):
		browser.stop()
		browser.stop = nil
		browser.err = fmt.Errorf("start %s: no answer within a minute", path)
		return
	}
	browser.ctx = ctx
}

// Tab is a new browser tab for one test.
type Tab struct {
	// Ctx runs chromedp actions in the tab; it ends with the test or its
	// timeout.
	Ctx context.Context

	mu       sync.Mutex
	problems []Problem
}

// Problem is something the page reported as going wrong.
type Problem struct {
	// Kind is "console.error", "console.assert", "exception", or "log:"
	// and the log entry's source ("log:network", "log:security", …).
	Kind string
	Text string
}

func (p Problem) String() string { return p.Kind + ": " + p.Text }

// NewTab opens a tab in the test binary's browser, starting it if needed;
// it skips the test if there is no browser (see [EnvRequire]). The tab
// closes when the test ends; its actions fail after timeout.
func NewTab(t *testing.T, timeout time.Duration) *Tab {
	t.Helper()
	browser.once.Do(start)
	if browser.missing != "" {
		if os.Getenv(EnvRequire) == "1" {
			t.Fatalf("browser test: %s", browser.missing)
		}
		t.Skipf("browser test skipped: %s (set %s=1 to make this a failure)", browser.missing, EnvRequire)
	}
	if browser.err != nil {
		t.Fatalf("browser test: %v", browser.err)
	}
	tctx, cancelTimeout := context.WithTimeout(browser.ctx, timeout)
	ctx, cancelTab := chromedp.NewContext(tctx)
	t.Cleanup(func() {
		cancelTab() // closes the tab
		cancelTimeout()
	})
	tab := &Tab{Ctx: ctx}
	if err := chromedp.Listen(ctx, tab.listen); err != nil { // opens the tab
		t.Fatalf("open tab: %v", err)
	}
	return tab
}

// listen records console errors, uncaught exceptions and error log entries
// (failed requests, blocked content).
func (tab *Tab) listen(ev any) {
	var p Problem
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if ev.Type != runtime.ConsoleAPICalledTypeError && ev.Type != runtime.ConsoleAPICalledTypeAssert {
			return
		}
		var args []string
		for _, a := range ev.Args {
			switch {
			case a.Description != "":
				args = append(args, a.Description)
			case len(a.Value) > 0:
				args = append(args, string(a.Value))
			default:
				args = append(args, string(a.Type))
			}
		}
		p = Problem{Kind: "console." + string(ev.Type), Text: strings.Join(args, " ")}
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		text := d.Text
		if d.Exception != nil && d.Exception.Description != "" {
			text += " " + d.Exception.Description
		}
		p = Problem{Kind: "exception", Text: fmt.Sprintf("%s (%s:%d)", text, d.URL, d.LineNumber+1)}
	case *cdplog.EventEntryAdded:
		if ev.Entry.Level != cdplog.EntryLevelError {
			return
		}
		p = Problem{Kind: "log:" + string(ev.Entry.Source), Text: ev.Entry.Text + " " + ev.Entry.URL}
	default:
		return
	}
	tab.mu.Lock()
	tab.problems = append(tab.problems, p)
	tab.mu.Unlock()
}

// Problems returns what the page reported so far.
func (tab *Tab) Problems() []Problem {
	tab.mu.Lock()
	defer tab.mu.Unlock()
	return append([]Problem(nil), tab.problems...)
}

// CheckNoProblems fails the test for each problem the page reported, except
// those of the kinds in allowed (e.g. "log:network" while a test cuts the
// connection on purpose).
func (tab *Tab) CheckNoProblems(t *testing.T, allowed ...string) {
	t.Helper()
	for _, p := range tab.Problems() {
		ok := false
		for _, kind := range allowed {
			ok = ok || p.Kind == kind
		}
		if !ok {
			t.Errorf("page reported %s", p)
		}
	}
}
