package dashboard_test

import (
	"context"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/aichunk"
	"github.com/runnel-dev/runnel/internal/testengine"
)

// A run whose stream holds AI SDK UI message chunks (written by a Go step
// with aichunk) shows the message they assemble: text and tool calls, not
// the raw chunks.
func TestDashboardAIMessage(t *testing.T) {
	t.Parallel()
	e := testengine.Start(t)
	w, err := e.Client.NewWorker("ai")
	if err != nil {
		t.Fatal(err)
	}
	words := strings.Fields("It is 3 degrees with light snow in Oslo: wear a warm coat.")
	wf := runnel.NewWorkflow("ai-answer").Step("answer", func(ctx runnel.Context) (any, error) {
		m := aichunk.NewWriter(ctx)
		m.Start()
		intro := m.TextStart()
		m.TextDelta(intro, "Let me check. ")
		m.TextEnd(intro)
		m.ToolCall("call-1", "weather", map[string]string{"city": "Oslo"}, map[string]int{"celsius": 3})
		id := m.TextStart()
		for _, w := range words {
			m.TextDelta(id, w+" ")
		}
		m.TextEnd(id)
		return nil, m.Finish("stop")
	})
	if err := w.Register(wf); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	<-w.Ready()
	runID, err := e.Client.Admin().RunWorkflow(context.Background(), "ai-answer", nil)
	if err != nil {
		t.Fatal(err)
	}

	tab := newTab(t)
	run(t, tab.Ctx,
		chromedp.Navigate(e.URL+"/#token="+e.Token),
		chromedp.WaitVisible(`a.button.primary`),
		chromedp.Navigate(e.URL+"/#/runs/"+runID),
		chromedp.WaitVisible(`#output`),
		waitJS(`document.getElementById('stream-state').textContent === 'ended'`),
	)
	got := eval[string](t, tab.Ctx, `[...document.querySelectorAll('#output .ai-message .ai-body')].map(e => e.textContent).join('|')`)
	want := `Let me check. 🔧 weather({"city":"Oslo"}) → {"celsius":3}` + strings.Join(words, " ") + " "
	if got != want {
		t.Fatalf("the run page shows %q, want the assembled message %q", got, want)
	}
	if raw := eval[int](t, tab.Ctx, `document.querySelectorAll('#output .chunk').length`); raw != 0 {
		t.Fatalf("%d raw chunks shown besides the message", raw)
	}
	screenshot(t, tab.Ctx, "ai-message.png")
	tab.CheckNoProblems(t)
}
