package cli

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/testengine"
)

// requireLines matches each line against a pattern, in order.
func requireLines(t *testing.T, text string, patterns ...string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	require.Len(t, lines, len(patterns), "lines:\n%s", text)
	for i, p := range patterns {
		require.Regexp(t, regexp.MustCompile(`^`+p+`$`), lines[i], "line %d of:\n%s", i+1, text)
	}
}

// Off a terminal, `run --wait` prints the output alone on stdout and a
// plain line per change of state on stderr, retries included.
func TestRunWaitPlainProgress(t *testing.T) {
	t.Parallel()
	e := testengine.StartWithDemoWorker(t)
	code, out, errOut := runCLI(t, "run", "demo-flaky", "--input", `{"failAttempts": 1}`, "--wait", "--host", e.URL, "--token", e.Token)
	require.Equal(t, 0, code, errOut)
	require.JSONEq(t, `{"flaky": {"attempts": 2}}`, out)
	requireLines(t, errOut,
		`run (\S+)`,
		`step flaky: running \(attempt 1\)`,
		`step flaky: attempt 1 failed, retrying: attempt 1 failed on purpose.*`,
		`step flaky: running \(attempt 2\)`,
		`step flaky: completed \(attempt 2, \S+, 1 chunk, 9 B\)`,
		`run \S+: completed in \S+`,
	)
	require.NotContains(t, errOut, "\x1b[", "no ANSI escapes off a terminal")
}

// A run that fails: its step's failure on stderr, then the error, exit 1.
func TestRunWaitPlainProgressFailure(t *testing.T) {
	t.Parallel()
	e := testengine.StartWithDemoWorker(t)
	code, out, errOut := runCLI(t, "run", "demo-file", "--input", `{"bytes": 5242880}`, "--wait", "--host", e.URL, "--token", e.Token)
	require.Equal(t, 1, code)
	require.Empty(t, out)
	requireLines(t, errOut,
		`run (\S+)`,
		`step file: running \(attempt 1\)`,
		`step file: failed \(attempt 1\): .*4 MiB.*`,
		`run \S+: failed in \S+: .*`,
		`runnel: run \S+ failed: .*`,
	)
}

// Off a terminal, `run --stream` prints the events on stdout as before;
// stderr has only the run id, since the events already show each step.
func TestRunStreamPlain(t *testing.T) {
	t.Parallel()
	e := testengine.StartWithDemoWorker(t)
	code, out, errOut := runCLI(t, "run", "demo-text", "--input", `{"chunks": 2, "intervalMs": 0}`, "--stream", "--json", "--host", e.URL, "--token", e.Token)
	require.Equal(t, 0, code, errOut)
	requireLines(t, errOut, `run \S+`)
	var types []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var ev struct {
			Type string `json:"type"`
		}
		require.NoError(t, json.Unmarshal([]byte(l), &ev), l)
		types = append(types, ev.Type)
	}
	require.Equal(t, []string{"run.started", "step.started", "step.stream", "step.stream", "step.completed", "run.completed"}, types)
}

func step(typ runnel.EventType, attempt int, data string, payload string) runnel.Event {
	ev := runnel.Event{Type: typ, Step: "s", Attempt: attempt, Payload: []byte(payload), Time: time.Unix(100, 0)}
	if data != "" {
		ev.Data = json.RawMessage(data)
	}
	return ev
}

// The progress model: a new attempt counts its stream afresh, a failure
// with a retry is not the end, and the run as fetched at the end settles
// the steps that never ran.
func TestRunProgressApply(t *testing.T) {
	t.Parallel()
	now := time.Unix(200, 0)
	p := newRunProgress("r1", "wf", now)
	p.seed(&runnel.Run{Status: runnel.RunQueued, Steps: []runnel.StepRun{
		{Step: "s", Status: runnel.StepQueued}, {Step: "later", Parents: []string{"s"}, Status: runnel.StepPending},
	}})
	require.Equal(t, "", p.apply(runnel.Event{Type: runnel.EventRunStarted}, now))
	require.Equal(t, runnel.RunRunning, p.status)
	require.Equal(t, "step s: running (attempt 1)", p.apply(step(runnel.EventStepStarted, 1, "", ""), now))
	require.Equal(t, "", p.apply(step(runnel.EventStepStream, 1, "", "abc"), now))
	require.Equal(t, "step s: attempt 1 failed, retrying: boom",
		p.apply(step(runnel.EventStepFailed, 1, `{"error": "boom", "retrying": true}`, ""), now))
	require.True(t, p.steps[0].retrying)
	require.Equal(t, "step s: running (attempt 2)", p.apply(step(runnel.EventStepStarted, 2, "", ""), now))
	require.Equal(t, 0, p.steps[0].chunks, "a new attempt counts its stream afresh")
	p.apply(step(runnel.EventStepStream, 2, "", "hello"), now)
	require.Equal(t, "step s: timed out (attempt 2): too slow",
		p.apply(step(runnel.EventStepTimedOut, 2, `{"error": "too slow", "retrying": false}`, ""), now))
	require.Equal(t, runnel.StepTimedOut, p.steps[0].status)
	require.Equal(t, "run r1: timed out in 1.5s: step \"s\": too slow",
		p.apply(runnel.Event{Type: runnel.EventRunTimedOut, Data: json.RawMessage(`{"error": "step \"s\": too slow"}`)}, now.Add(1500*time.Millisecond)))

	p.seed(&runnel.Run{Status: runnel.RunTimedOut, Error: "x", Steps: []runnel.StepRun{
		{Step: "s", Status: runnel.StepTimedOut, Attempt: 2, Error: "too slow"},
		{Step: "later", Status: runnel.StepCancelled},
	}})
	require.Equal(t, runnel.StepCancelled, p.steps[1].status)
	require.Equal(t, 1, p.steps[0].chunks, "the events' count stands")
	require.Equal(t, "step \"s\": too slow", p.err, "the event's error stands")

	block := p.block(now.Add(2*time.Second), 0)
	require.Equal(t, []string{
		"run r1  wf  timed out  1.5s  step \"s\": too slow",
		"  ✗ s      timed out  attempt 2  0s  1 chunk, 5 B  too slow",
		"  - later  cancelled",
	}, block)
}

// The run as fetched before following it only names the steps: when the
// fetch comes late (a loaded machine), the first attempt's failure, already
// over by then, is still told by its replayed events.
func TestRunProgressLateFetchTellsEveryAttempt(t *testing.T) {
	t.Parallel()
	now := time.Unix(200, 0)
	p := newRunProgress("r1", "", now)
	p.listSteps(&runnel.Run{Workflow: "wf", Status: runnel.RunRunning, Steps: []runnel.StepRun{
		{Step: "s", Status: runnel.StepRunning, Attempt: 2},
	}})
	require.Equal(t, "wf", p.workflow)
	require.Equal(t, runnel.RunQueued, p.status, "the events say when it started")
	require.Equal(t, "step s: running (attempt 1)", p.apply(step(runnel.EventStepStarted, 1, "", ""), now))
	require.Equal(t, "step s: attempt 1 failed, retrying: boom",
		p.apply(step(runnel.EventStepFailed, 1, `{"error": "boom", "retrying": true}`, ""), now))
	require.Equal(t, "step s: running (attempt 2)", p.apply(step(runnel.EventStepStarted, 2, "", ""), now))
}

// On a terminal the block is redrawn in place: each redraw moves the
// cursor up over the previous one and clears it, and no line is wider
// than the terminal.
func TestTerminalViewRedraws(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	p := newRunProgress("r1", "wf", time.Now())
	p.seed(&runnel.Run{Status: runnel.RunQueued, Steps: []runnel.StepRun{{Step: "s", Status: runnel.StepQueued}}})
	v := newTerminalView(p, &buf, 40, true) // every write, the test's too, is under the view's lock
	var data []string
	emit := func(ev runnel.Event) {
		line := string(ev.Type)
		require.NoError(t, v.event(ev, func() error {
			data = append(data, line)
			buf.WriteString(line + "\n") // stdout, on the same terminal
			return nil
		}))
	}
	emit(step(runnel.EventStepStarted, 1, "", ""))
	emit(step(runnel.EventStepFailed, 1, `{"error": "`+strings.Repeat("x", 100)+`", "retrying": false}`, ""))
	v.finish(&runnel.Run{Status: runnel.RunFailed, Steps: []runnel.StepRun{{Step: "s", Status: runnel.StepFailed, Attempt: 1}}})

	out := buf.String()
	// Every data line comes right after the block was erased.
	for _, d := range data {
		require.Contains(t, out, "\r\x1b[2A\x1b[J"+d+"\n")
	}
	// What stays on screen: the data lines, then the final block.
	final := out[strings.LastIndex(out, "\x1b[J")+len("\x1b[J"):]
	lines := strings.Split(strings.TrimSuffix(final, "\n"), "\n")
	require.Len(t, lines, 2)
	require.Regexp(t, `^run r1  wf  failed  `, lines[0])
	require.Regexp(t, `^  ✗ s  failed     attempt 1  0s  x+…$`, lines[1])
	for _, l := range strings.Split(out, "\n") {
		if i := strings.LastIndex(l, "\x1b[J"); i >= 0 {
			l = l[i+len("\x1b[J"):]
		}
		require.Less(t, len([]rune(l)), 40, "%q", l)
	}
}
