package dashboard_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/browsertest"
	"github.com/runnel-dev/runnel/internal/demo"
	"github.com/runnel-dev/runnel/internal/testengine"
)

// TestMain stops the browser the browser tests share.
func TestMain(m *testing.M) { browsertest.Main(m) }

// newTab opens a tab (skipping the test when there is no Chromium, unless
// RUNNEL_TEST_REQUIRE_BROWSER=1) at a desktop size, so screenshots look
// like a laptop's.
func newTab(t *testing.T) *browsertest.Tab {
	t.Helper()
	tab := browsertest.NewTab(t, 3*time.Minute)
	run(t, tab.Ctx, chromedp.EmulateViewport(1280, 900))
	return tab
}

// waitJS polls a JavaScript condition in the page until it is true.
func waitJS(cond string) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](cond, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(60*time.Second))
}

// screenshot saves a PNG into docs/screenshots when
// RUNNEL_UPDATE_SCREENSHOTS=1, else into the test's temporary directory.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	dir := t.TempDir()
	if os.Getenv("RUNNEL_UPDATE_SCREENSHOTS") == "1" {
		dir = filepath.Join("..", "..", "docs", "screenshots")
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

func run(t *testing.T, ctx context.Context, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatal(err)
	}
}

func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// Trigger demo-text from the form, watch every chunk appear in order on the
// run page, reload mid-run and end with each chunk exactly once; the runs
// list shows a run go from running to completed without reload; cancel
// demo-slow from its page. No console errors, and no horizontal scrolling
// on a phone-width screen.
func TestDashboard(t *testing.T) {
	t.Parallel()
	e := testengine.StartWithDemoWorker(t)
	tab := newTab(t)
	ctx := tab.Ctx
	const chunks = 40

	// Sign in through the link runnel dev prints, then trigger from the form.
	run(t, ctx,
		chromedp.Navigate(e.URL+"/#token="+e.Token),
		chromedp.WaitVisible(`a.button.primary`),
		chromedp.Click(`a.button.primary`),
		chromedp.WaitVisible(`#workflow`),
		chromedp.SetValue(`#workflow`, "demo-text"),
		chromedp.SetValue(`#input`, fmt.Sprintf(`{"chunks": %d, "intervalMs": 80}`, chunks)),
		chromedp.SetValue(`#meta`, "user=ada"),
		chromedp.Click(`#start`),
		chromedp.WaitVisible(`#output`),
		waitJS(`document.querySelectorAll('#output .chunk').length >= 12`),
	)
	screenshot(t, ctx, "run.png")

	// Reload mid-run: the page replays the log and follows on.
	run(t, ctx,
		chromedp.Reload(),
		chromedp.WaitVisible(`#output`),
		waitJS(`document.getElementById('stream-state').textContent === 'ended'`),
	)
	text := eval[string](t, ctx, `Array.from(document.querySelectorAll('#output .chunk')).map(c => c.textContent).join('')`)
	count := eval[int](t, ctx, `document.querySelectorAll('#output .chunk').length`)
	if count != chunks || text != demo.TextOutput(chunks) {
		t.Fatalf("after reload the page shows %d chunks %q, want each of %d exactly once: %q", count, text, chunks, demo.TextOutput(chunks))
	}

	// The runs list follows a run from running to completed by itself.
	runID, err := e.Client.Admin().RunWorkflow(context.Background(), "demo-text", map[string]int{"chunks": 30, "intervalMs": 60},
		withMeta("user", "grace"))
	if err != nil {
		t.Fatal(err)
	}
	row := fmt.Sprintf(`document.querySelector('tr[data-run="%s"] .badge')`, runID)
	run(t, ctx,
		chromedp.Navigate(e.URL+"/#/runs"),
		waitJS(row+` && `+row+`.textContent === 'running'`),
	)
	screenshot(t, ctx, "runs.png")
	run(t, ctx, waitJS(row+`.textContent === 'completed'`))

	// Cancel demo-slow from its page.
	slowID, err := e.Client.Admin().RunWorkflow(context.Background(), "demo-slow", map[string]int{"seconds": 30})
	if err != nil {
		t.Fatal(err)
	}
	run(t, ctx,
		chromedp.Navigate(e.URL+"/#/runs/"+slowID),
		waitJS(`document.querySelectorAll('#output .chunk').length >= 1`),
		chromedp.Click(`#cancel`),
		waitJS(`document.querySelector('h1 .badge').textContent === 'cancelled'`),
		waitJS(`document.getElementById('stream-state').textContent === 'ended'`),
	)
	got, err := e.Client.Admin().GetRun(context.Background(), slowID)
	if err != nil || got.Status != "cancelled" {
		t.Fatalf("run %s after cancel: %v %v", slowID, got, err)
	}

	// Phone width: nothing overflows sideways.
	for _, page := range []string{"/#/runs", "/#/runs/" + runID, "/#/trigger"} {
		run(t, ctx,
			chromedp.EmulateViewport(390, 844),
			chromedp.Navigate(e.URL+page),
			chromedp.WaitVisible(`main h1`),
		)
		if !eval[bool](t, ctx, `document.documentElement.scrollWidth <= window.innerWidth`) {
			t.Errorf("page %s scrolls sideways at phone width", page)
		}
	}
	tab.CheckNoProblems(t)
}

// The Cancel button stays the same element while a run goes from queued to
// running, so a click aimed at it while the page refreshes is never lost.
func TestDashboardCancelButtonOutlivesStart(t *testing.T) {
	t.Parallel()
	e := testengine.StartOnWithDemoWorker(t, "sqlite", 1)
	tab := newTab(t)
	ctx := context.Background()
	// Null-safe: the heading is empty until the run's first read is drawn.
	status := `document.querySelector('h1 .badge')?.textContent`

	// The one slot is taken, so the second run waits in the queue.
	first, err := e.Client.Admin().RunWorkflow(ctx, demo.Slow, map[string]int{"seconds": 60})
	if err != nil {
		t.Fatal(err)
	}
	signIn(t, tab, e, "/runs/"+first)
	run(t, tab.Ctx, waitJS(status+` === 'running'`))
	second, err := e.Client.Admin().RunWorkflow(ctx, demo.Slow, map[string]int{"seconds": 60})
	if err != nil {
		t.Fatal(err)
	}
	run(t, tab.Ctx,
		chromedp.Navigate(e.URL+"/#/runs/"+second),
		waitJS(status+` === 'queued' && document.getElementById('cancel') !== null`),
		chromedp.Evaluate[chromedp.Void](`window.cancelWhileQueued = document.getElementById('cancel')`),
	)
	if err := e.Client.Admin().CancelRun(ctx, first); err != nil {
		t.Fatal(err)
	}
	run(t, tab.Ctx, waitJS(status+` === 'running'`))
	if !eval[bool](t, tab.Ctx, `document.getElementById('cancel') === window.cancelWhileQueued`) {
		t.Fatal("the Cancel button was replaced when the run started")
	}
	run(t, tab.Ctx,
		chromedp.Click(`#cancel`),
		waitJS(status+` === 'cancelled' && document.getElementById('cancel') === null`),
	)
	tab.CheckNoProblems(t)
}

// The streams page lists the tenant's durable streams; a stream's page shows
// its messages and follows appends live until the stream is closed.
func TestDashboardStreams(t *testing.T) {
	t.Parallel()
	e := testengine.Start(t)
	ctx := context.Background()
	streams := e.Client.Streams()
	if err := streams.Create(ctx, "chat/1", runnel.WithContentType("application/json")); err != nil {
		t.Fatal(err)
	}
	if _, err := streams.Append(ctx, "chat/1", []byte(`{"role":"user","text":"hi"}`)); err != nil {
		t.Fatal(err)
	}
	tab := newTab(t)
	run(t, tab.Ctx,
		chromedp.Navigate(e.URL+"/#token="+e.Token+"&next=/streams"),
		waitJS(`document.querySelector('tr[data-stream="chat/1"] a') !== null`),
	)
	screenshot(t, tab.Ctx, "streams.png")
	// The list is read again every 2 s; an unchanged one is not redrawn,
	// so a click never lands on a row being replaced. Two more reads: the
	// second starts only after the first was drawn (or not).
	run(t, tab.Ctx, chromedp.Evaluate[chromedp.Void](`window.rowBefore = document.querySelector('tr[data-stream="chat/1"]')`))
	listReads := `performance.getEntriesByType('resource').filter(e => new URL(e.name).pathname === '/api/v1/streams').length`
	reads := eval[int](t, tab.Ctx, listReads)
	run(t, tab.Ctx, waitJS(fmt.Sprintf("%s >= %d", listReads, reads+2)))
	if !eval[bool](t, tab.Ctx, `document.querySelector('tr[data-stream="chat/1"]') === window.rowBefore`) {
		t.Fatal("the unchanged streams list was redrawn")
	}
	run(t, tab.Ctx,
		chromedp.Click(`tr[data-stream="chat/1"] a`),
		waitJS(`document.querySelectorAll('#stream-output .message').length === 1`),
	)
	// Appended while the page follows: it shows up without a reload.
	if _, err := streams.Append(ctx, "chat/1", []byte(`{"role":"assistant","text":"hello there"}`)); err != nil {
		t.Fatal(err)
	}
	run(t, tab.Ctx, waitJS(`document.querySelectorAll('#stream-output .message').length === 2`))
	if err := streams.Close(ctx, "chat/1"); err != nil {
		t.Fatal(err)
	}
	run(t, tab.Ctx, waitJS(`document.getElementById('stream-state').textContent.includes('closed')`))
	got := eval[string](t, tab.Ctx, `Array.from(document.querySelectorAll('#stream-output .message')).map(m => m.textContent).join('|')`)
	if want := `{"role":"user","text":"hi"}|{"role":"assistant","text":"hello there"}`; got != want {
		t.Fatalf("the page shows %s, want %s", got, want)
	}
	screenshot(t, tab.Ctx, "stream.png")
	tab.CheckNoProblems(t)
}

// A run that writes named streams: the output marks each line with its
// stream, and the stream picker narrows it to one.
func TestDashboardNamedStreams(t *testing.T) {
	t.Parallel()
	e := testengine.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := e.Client.NewWorker("named")
	if err != nil {
		t.Fatal(err)
	}
	wf := runnel.NewWorkflow("chat").Step("answer", func(ctx runnel.Context) (any, error) {
		for _, p := range []struct{ stream, data string }{{"status", "thinking"}, {"tokens", "Hel"}, {"tokens", "lo"}, {"status", "done"}} {
			if err := ctx.PutStream([]byte(p.data), runnel.ToStream(p.stream)); err != nil {
				return nil, err
			}
		}
		return nil, nil
	})
	if err := w.Register(wf); err != nil {
		t.Fatal(err)
	}
	go func() { _ = w.Run(ctx) }()
	<-w.Ready()
	runID, err := e.Client.Admin().RunWorkflow(ctx, "chat", nil)
	if err != nil {
		t.Fatal(err)
	}
	tab := newTab(t)
	visible := `Array.from(document.querySelectorAll('#output .chunk')).filter(c => !c.hidden).map(c => c.textContent).join('|')`
	run(t, tab.Ctx,
		chromedp.Navigate(e.URL+"/#token="+e.Token+"&next=/runs/"+runID),
		waitJS(`document.querySelectorAll('#output .chunk').length === 4`),
		waitJS(`!document.getElementById('stream-picker').hidden`),
	)
	if got := eval[string](t, tab.Ctx, visible); got != "status ›thinking|tokens ›Hel|tokens ›lo|status ›done" {
		t.Fatalf("all streams: %s", got)
	}
	run(t, tab.Ctx, chromedp.SetValue(`#stream-picker`, "tokens"),
		chromedp.Evaluate[chromedp.Void](`document.getElementById('stream-picker').dispatchEvent(new Event('change'))`))
	if got := eval[string](t, tab.Ctx, visible); got != "tokens ›Hel|tokens ›lo" {
		t.Fatalf("the tokens stream: %s", got)
	}
	tab.CheckNoProblems(t)
}
