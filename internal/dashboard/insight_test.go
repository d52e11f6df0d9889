package dashboard_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/runnel-dev/runnel/internal/browsertest"
	"github.com/runnel-dev/runnel/internal/demo"
	"github.com/runnel-dev/runnel/internal/testengine"
)

// stores are the dialects the pages that read stored runs are checked on.
var stores = []string{"sqlite", "postgres"}

// signIn opens the dashboard with the engine's token at the given page.
func signIn(t *testing.T, tab *browsertest.Tab, e *testengine.Engine, page string) {
	t.Helper()
	run(t, tab.Ctx, chromedp.Navigate(e.URL+"/#token="+e.Token+"&next="+page))
}

// clickJS clicks the element a JavaScript expression yields, in one step:
// the runs list re-renders its rows every 1.5 s, and a mouse click could
// land between the rows it found and the rows that replaced them.
func clickJS(expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Evaluate[chromedp.Void](expr + `.click()`)
}

// The timeline of a demo-flaky run that fails twice shows its three
// attempts (failed, failed, completed) with the backoff between them; a
// click on one marks its output. The timeline of a demo-parent run shows
// its children as bars nested under the spawn step, each a link to the
// child's page.
func TestDashboardTimeline(t *testing.T) {
	t.Parallel()
	for _, kind := range stores {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			e := testengine.StartOnWithDemoWorker(t, kind, 8)
			ctx := context.Background()
			flaky, err := e.Client.Admin().RunWorkflow(ctx, demo.Flaky, map[string]int{"failAttempts": 2})
			if err != nil {
				t.Fatal(err)
			}
			tab := newTab(t)
			signIn(t, tab, e, "/runs/"+flaky)
			attempts := `[...document.querySelectorAll('#timeline .tl-attempt')].map(a => a.dataset.attempt + ':' + a.dataset.status).join(' ')`
			run(t, tab.Ctx,
				waitJS(attempts+` === '1:failed 2:failed 3:completed'`),
				waitJS(`document.querySelector('h1 .badge').textContent === 'completed'`),
				waitJS(`document.getElementById('stream-state').textContent === 'ended'`),
			)
			if n := eval[int](t, tab.Ctx, `document.querySelectorAll('#timeline .tl-wait.s-retry').length`); n != 2 {
				t.Errorf("%d retry backoffs drawn between the three attempts, want 2", n)
			}
			// A click on the second attempt marks its line of output.
			run(t, tab.Ctx,
				chromedp.Click(`#timeline .tl-attempt[data-attempt="2"]`),
				waitJS(`document.querySelector('.step[data-step="flaky"]').classList.contains('hl')`),
			)
			if got := eval[string](t, tab.Ctx, `[...document.querySelectorAll('#output .chunk.hl')].map(c => c.textContent).join('|')`); got != "attempt 2" {
				t.Errorf("clicking attempt 2 marks %q, want its output %q", got, "attempt 2")
			}
			if kind == "sqlite" {
				screenshot(t, tab.Ctx, "timeline-flaky.png")
			}

			parent, err := e.Client.Admin().RunWorkflow(ctx, demo.Parent, map[string]int{"n": 3})
			if err != nil {
				t.Fatal(err)
			}
			children := `[...document.querySelectorAll('#timeline .tl-row[data-kind="run"]')]`
			run(t, tab.Ctx,
				chromedp.Navigate(e.URL+"/#/runs/"+parent),
				waitJS(`document.querySelector('h1 .badge') && document.querySelector('h1 .badge').textContent === 'completed'`),
				waitJS(children+`.length === 3 && `+children+`.every(r => r.querySelector('.tl-attempt.s-completed'))`),
			)
			// Nested: each child's row (its one step's attempt on it) comes
			// after the spawn step's, one level deeper.
			layout := eval[string](t, tab.Ctx, `[...document.querySelectorAll('#timeline .tl-row[data-kind]')].map(r => r.dataset.kind + r.dataset.depth).join(' ')`)
			if layout != "step0 run1 run1 run1" {
				t.Errorf("timeline rows %q, want the spawn step then each child nested under it", layout)
			}
			if kind == "sqlite" {
				screenshot(t, tab.Ctx, "timeline.png")
			}
			childID := eval[string](t, tab.Ctx, children+`[1].dataset.run`)
			run(t, tab.Ctx,
				chromedp.Click(`#timeline .tl-row[data-run="`+childID+`"][data-kind="run"] a`),
				waitJS(`location.hash === '#/runs/`+childID+`'`),
				waitJS(`document.querySelectorAll('#output .chunk').length === 5`),
			)
			tab.CheckNoProblems(t)
		})
	}
}

// demo-parent with grandchildren: the runs list's tree view folds the
// children and grandchildren under the parent, and unfolds level by level;
// the parent's page follows the whole tree's output in one view, every run
// marked, each run's lines in its order.
func TestDashboardTree(t *testing.T) {
	t.Parallel()
	for _, kind := range stores {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			// A waiting parent or child holds its slot: 1 + 2 + 4 runs at once.
			e := testengine.StartOnWithDemoWorker(t, kind, 8)
			ctx := context.Background()
			parent, err := e.Client.Admin().RunWorkflow(ctx, demo.Parent, map[string]int{"n": 2, "spawn": 2, "intervalMs": 150},
				withMeta("family", "tree-test"))
			if err != nil {
				t.Fatal(err)
			}
			tab := newTab(t)
			signIn(t, tab, e, "/runs?view=tree")
			row := func(depth int) string {
				return fmt.Sprintf(`[...document.querySelectorAll('tr.run-row[data-depth="%d"]')]`, depth)
			}
			run(t, tab.Ctx,
				waitJS(`document.querySelector('tr.run-row[data-run="`+parent+`"] button.twisty') !== null`),
			)
			// Folded: only the parent is listed.
			if n := eval[int](t, tab.Ctx, `document.querySelectorAll('tr.run-row').length`); n != 1 {
				t.Errorf("the folded tree lists %d runs, want the parent only", n)
			}
			run(t, tab.Ctx,
				clickJS(`document.querySelector('tr.run-row[data-run="`+parent+`"] button.twisty')`),
				waitJS(row(1)+`.length === 2 && `+row(1)+`.every(r => r.querySelector('button.twisty'))`),
				clickJS(row(1)+`[0].querySelector('button.twisty')`),
				clickJS(row(1)+`[1].querySelector('button.twisty')`),
				waitJS(row(2)+`.length === 4`),
			)
			// Depth first: each child directly followed by its two children.
			if got := eval[string](t, tab.Ctx, `[...document.querySelectorAll('tr.run-row')].map(r => r.dataset.depth).join('')`); got != "0122122" {
				t.Errorf("tree rows by depth %s, want 0122122", got)
			}
			if kind == "sqlite" {
				screenshot(t, tab.Ctx, "tree.png")
			}

			// The parent's page: the whole tree's output, shown by itself.
			run(t, tab.Ctx,
				clickJS(`document.querySelector('tr.run-row[data-run="`+parent+`"] a')`),
				waitJS(`document.getElementById('tab-tree').getAttribute('aria-selected') === 'true'`),
				waitJS(`document.getElementById('tree-output').dataset.state === 'ended'`),
			)
			// The timeline nests the grandchildren under their parents too.
			if got := eval[string](t, tab.Ctx, `[...document.querySelectorAll('#timeline .tl-row[data-kind]')].map(r => r.dataset.kind + r.dataset.depth).join(' ')`); got != "step0 run1 run2 run2 run1 run2 run2" {
				t.Errorf("timeline rows %q, want each child followed by its two children, one level deeper", got)
			}
			lines := eval[[]string](t, tab.Ctx, `[...document.querySelectorAll('#tree-output .tree-line')].filter(l => l.querySelector('.chunk')).map(l => l.dataset.path + '|' + l.querySelector('.chunk').textContent)`)
			byRun := map[string][]string{}
			for _, l := range lines {
				path, chunk, _ := strings.Cut(l, "|")
				byRun[path] = append(byRun[path], chunk)
			}
			for _, path := range []string{"0", "1", "0.0", "0.1", "1.0", "1.1"} {
				index := int(path[len(path)-1] - '0')
				var want []string
				for k := range demo.ChildChunks {
					want = append(want, demo.ChildChunk(index, k))
				}
				if !slices.Equal(byRun[path], want) {
					t.Errorf("run %s shows %q in the tree output, want %q", path, byRun[path], want)
				}
			}
			if len(byRun) != 6 {
				t.Errorf("the tree output has lines of runs %v, want the 2 children and 4 grandchildren", keys(byRun))
			}
			// In order: lines sorted by the time they were put, and the
			// parent's end after every child's.
			if !eval[bool](t, tab.Ctx, `(() => { const k = [...document.querySelectorAll('#tree-output .tree-line')].map(l => l.dataset.key); return k.every((x, i) => i === 0 || k[i-1] <= x); })()`) {
				t.Error("the tree output is not in time order")
			}
			ends := eval[string](t, tab.Ctx, `[...document.querySelectorAll('#tree-output .tree-end')].map(l => l.dataset.path || 'parent').join(' ')`)
			if !strings.HasSuffix(ends, "parent") || strings.Count(ends, " ") != 6 {
				t.Errorf("run ends in the tree output: %q, want the six descendants' then the parent's", ends)
			}
			if kind == "sqlite" {
				screenshot(t, tab.Ctx, "tree-output.png")
			}

			// Phone width: the new pages do not scroll sideways.
			for _, page := range []string{"/#/runs/" + parent, "/#/runs?view=tree", "/#/workers", "/#/metrics"} {
				run(t, tab.Ctx,
					chromedp.EmulateViewport(390, 844),
					chromedp.Navigate(e.URL+page),
					chromedp.WaitVisible(`main h1`),
				)
				if page == "/#/runs/"+parent {
					run(t, tab.Ctx, waitJS(`document.querySelectorAll('#timeline .tl-row[data-kind]').length === 7`))
					if kind == "sqlite" {
						screenshot(t, tab.Ctx, "phone-run.png")
					}
				}
				if !eval[bool](t, tab.Ctx, `document.documentElement.scrollWidth <= window.innerWidth`) {
					t.Errorf("page %s scrolls sideways at phone width", page)
				}
			}
			tab.CheckNoProblems(t)
		})
	}
}

func keys(m map[string][]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// buildRunnel builds the runnel command into the test's directory (the
// build cache makes a second build quick).
func buildRunnel(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "runnel")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/runnel-dev/runnel/cmd/runnel").CombinedOutput()
	if err != nil {
		t.Fatalf("build runnel: %v\n%s", err, out)
	}
	return bin
}

// The workers page shows a second worker, a `runnel worker` process, within
// a second of its start, with its SDK and slots, and drops it when the
// process stops.
func TestDashboardWorkers(t *testing.T) {
	t.Parallel()
	bin := buildRunnel(t)
	e := testengine.StartOnWithDemoWorker(t, "sqlite", 4)
	tab := newTab(t)
	signIn(t, tab, e, "/workers")
	run(t, tab.Ctx, waitJS(`document.querySelectorAll('tr.worker-row').length === 1`))

	cmd := exec.Command(bin, "worker", "--name", "second-worker", "--slots", "3")
	cmd.Env = append(os.Environ(), "RUNNEL_HOST="+e.URL, "RUNNEL_TOKEN="+e.Token)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{}) // closed once the process is reaped
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	second := `document.querySelector('tr.worker-row[data-worker="second-worker"]')`
	run(t, tab.Ctx, waitJS(second+` !== null && `+second+`.textContent.includes('0/3')`))
	if got := eval[string](t, tab.Ctx, second+`.children[1].textContent`); !strings.HasPrefix(got, "Go go1.") {
		t.Errorf("the SDK cell reads %q, want Go and its version", got)
	}
	// A step running on a worker is listed on its row.
	slow, err := e.Client.Admin().RunWorkflow(context.Background(), demo.Slow, map[string]int{"seconds": 30})
	if err != nil {
		t.Fatal(err)
	}
	run(t, tab.Ctx, waitJS(`[...document.querySelectorAll('tr.worker-row a')].some(a => a.getAttribute('href') === '#/runs/`+slow+`')`))
	screenshot(t, tab.Ctx, "workers.png")
	if err := e.Client.Admin().CancelRun(context.Background(), slow); err != nil {
		t.Fatal(err)
	}

	// Stopped (as Ctrl-C stops it): it leaves the list.
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	run(t, tab.Ctx, waitJS(second+` === null && document.querySelectorAll('tr.worker-row').length === 1`))
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Error("runnel worker did not exit after an interrupt")
	}
	tab.CheckNoProblems(t)
}

// While demo-text streams to a subscriber, the metrics page shows events
// appended per second, a run started, the subscriber, and the put→delivery
// latency, all above zero.
func TestDashboardMetrics(t *testing.T) {
	t.Parallel()
	e := testengine.StartOnWithDemoWorker(t, "sqlite", 4)
	tab := newTab(t)
	signIn(t, tab, e, "/metrics")
	// Two samples make the first point.
	run(t, tab.Ctx, waitJS(`document.querySelector('#chart-events .chart-val').dataset.value !== ''`))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runID, err := e.Client.Admin().RunWorkflow(ctx, demo.Text, map[string]int{"chunks": 400, "intervalMs": 20})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		for _, err := range e.Client.Listener().Stream(ctx, runID) {
			if err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	val := func(chart, series, attr string) string {
		return fmt.Sprintf(`Number(document.querySelector('#%s .chart-val[data-series="%s"]').dataset.%s)`, chart, series, attr)
	}
	run(t, tab.Ctx,
		waitJS(val("chart-events", "events", "value")+` > 10`),
		waitJS(val("chart-runs", "started", "max")+` > 0`),
		waitJS(val("chart-subscribers", "subscribers", "value")+` >= 1`),
		waitJS(val("chart-latency", "lagMean", "max")+` > 0`),
		// Enough points for a picture: the run streams for eight seconds.
		waitJS(`Number(document.querySelector('.charts').dataset.points) >= 8`),
	)
	screenshot(t, tab.Ctx, "metrics.png")
	cancel()
	if err := <-done; err != nil && ctx.Err() == nil {
		t.Fatal(err)
	}
	tab.CheckNoProblems(t)
}

// Keyboard: g w opens the workers page, g r the runs; j selects the first
// run and Enter opens it; ? shows the shortcuts.
func TestDashboardKeyboard(t *testing.T) {
	t.Parallel()
	e := testengine.StartOnWithDemoWorker(t, "sqlite", 4)
	runID, err := e.Client.Admin().RunWorkflow(context.Background(), demo.Text, map[string]int{"chunks": 3, "intervalMs": 1})
	if err != nil {
		t.Fatal(err)
	}
	tab := newTab(t)
	signIn(t, tab, e, "/runs")
	run(t, tab.Ctx,
		waitJS(`document.querySelector('tr.run-row[data-run="`+runID+`"]') !== null`),
		chromedp.KeyEvent("g"), chromedp.KeyEvent("w"),
		waitJS(`location.hash === '#/workers' && document.querySelectorAll('tr.worker-row').length === 1`),
		chromedp.KeyEvent("g"), chromedp.KeyEvent("r"),
		waitJS(`document.querySelector('tr.run-row[data-run="`+runID+`"]') !== null`),
		chromedp.KeyEvent("j"),
		waitJS(`document.querySelector('tr.run-row.kb-sel') !== null`),
		chromedp.KeyEvent("\r"),
		waitJS(`location.hash === '#/runs/`+runID+`'`),
		chromedp.KeyEvent("?"),
		waitJS(`document.getElementById('help').open`),
	)
	tab.CheckNoProblems(t)
}
