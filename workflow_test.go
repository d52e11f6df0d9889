package runnel

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func noop(Context) (any, error) { return nil, nil }

func manySteps(n int) *Workflow {
	wf := NewWorkflow("wf")
	for i := range n {
		wf.Step(fmt.Sprint("s", i), noop)
	}
	return wf
}

func TestWorkflowValidation(t *testing.T) {
	cases := []struct {
		name string
		wf   *Workflow
		want string // substring of the error
	}{
		{"empty workflow name", NewWorkflow("").Step("a", noop), "empty workflow name"},
		{"invalid workflow name", NewWorkflow("has space").Step("a", noop), `invalid workflow name "has space"`},
		{"workflow name with slash", NewWorkflow("a/b").Step("a", noop), `invalid workflow name "a/b"`},
		{"long workflow name", NewWorkflow(strings.Repeat("x", 129)).Step("a", noop), "longer than 128"},
		{"no steps", NewWorkflow("wf"), `workflow "wf": no steps`},
		{"empty step name", NewWorkflow("wf").Step("", noop), "empty step name"},
		{"invalid step name", NewWorkflow("wf").Step("-a", noop), `invalid step name "-a"`},
		{"duplicate step", NewWorkflow("wf").Step("a", noop).Step("a", noop), `duplicate step "a"`},
		{"nil function", NewWorkflow("wf").Step("a", nil), `step "a" has a nil function`},
		{"unknown parent", NewWorkflow("wf").Step("a", noop, Parents("nope")), `step "a": unknown parent step "nope"`},
		{"parent twice", NewWorkflow("wf").Step("a", noop).Step("b", noop, Parents("a", "a")), `parent "a" listed twice`},
		{"self parent", NewWorkflow("wf").Step("a", noop, Parents("a")), `step "a" depends on itself`},
		{"cycle", NewWorkflow("wf").
			Step("start", noop).
			Step("a", noop, Parents("start", "c")).
			Step("b", noop, Parents("a")).
			Step("c", noop, Parents("b")),
			"cycle (each waits for the next): a -> c -> b -> a"},
		{"negative retries", NewWorkflow("wf").Step("a", noop, Retries(-1)), `step "a": negative retries -1`},
		{"negative backoff", NewWorkflow("wf").Step("a", noop, Backoff(-time.Second)), `step "a": negative backoff`},
		{"negative timeout", NewWorkflow("wf").Step("a", noop, Timeout(-time.Second)), `step "a": negative timeout`},
		{"sub-millisecond timeout", NewWorkflow("wf").Step("a", noop, Timeout(time.Microsecond)), "below the 1ms precision"},
		{"too many retries", NewWorkflow("wf").Step("a", noop, Retries(101)), `step "a": retries 101 over the limit of 100`},
		{"long backoff", NewWorkflow("wf").Step("a", noop, Backoff(2*time.Hour)), `step "a": backoff 2h0m0s over the limit`},
		{"long timeout", NewWorkflow("wf").Step("a", noop, Timeout(8*24*time.Hour)), `step "a": timeout 192h0m0s over the limit`},
		{"too many steps", manySteps(257), "257 steps, more than the limit of 256"},
		{"empty event key", NewWorkflow("wf").Step("a", noop).OnEvents(""), `empty event key name`},
		{"event key with space", NewWorkflow("wf").Step("a", noop).OnEvents("user create"), `invalid event key name "user create"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.wf.compile()
			if err == nil {
				t.Fatalf("no error, want one containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestWorkflowDiamond(t *testing.T) {
	wf := NewWorkflow("diamond").
		Step("a", noop).
		Step("b", noop, Parents("a"), Retries(3), Backoff(250*time.Millisecond)).
		Step("c", noop, Parents("a"), Timeout(2*time.Second)).
		Step("d", noop, Parents("b", "c")).
		OnEvents("user:create", "user:update")
	cw, err := wf.compile()
	if err != nil {
		t.Fatal(err)
	}
	def := cw.def
	if def.GetName() != "diamond" || len(def.GetSteps()) != 4 || len(def.GetOnEvents()) != 2 {
		t.Fatalf("definition = %v", def)
	}
	b, c, d := def.GetSteps()[1], def.GetSteps()[2], def.GetSteps()[3]
	if b.GetRetries() != 3 || b.GetBackoffMs() != 250 || b.GetParents()[0] != "a" {
		t.Errorf("b = %v", b)
	}
	if c.GetTimeoutMs() != 2000 {
		t.Errorf("c = %v", c)
	}
	if strings.Join(d.GetParents(), ",") != "b,c" {
		t.Errorf("d = %v", d)
	}

	// The compiled workflow is a snapshot.
	wf.Step("e", noop)
	if len(cw.steps) != 4 || len(cw.def.GetSteps()) != 4 {
		t.Error("adding a step changed the compiled workflow")
	}
}

func TestRegisterValidates(t *testing.T) {
	c, err := NewClient(WithLogger(testLogger()))
	if err != nil {
		t.Fatal(err)
	}
	w, err := c.NewWorker("w")
	if err != nil {
		t.Fatal(err)
	}
	good := NewWorkflow("good").Step("a", noop)
	bad := NewWorkflow("bad").Step("a", noop, Parents("zzz"))
	if err := w.Register(good, bad); err == nil || !strings.Contains(err.Error(), `workflow "bad": step "a": unknown parent step "zzz"`) {
		t.Errorf("Register(good, bad) = %v", err)
	}
	if err := w.Register(good); err != nil {
		t.Errorf("Register(good) after a failed Register: %v (nothing of the failed call may stay registered)", err)
	}
	if err := w.Register(good); err == nil || !strings.Contains(err.Error(), `workflow "good" is already registered`) {
		t.Errorf("second Register(good) = %v", err)
	}
	other := NewWorkflow("other").Step("a", noop)
	if err := w.Register(other, other); err == nil || !strings.Contains(err.Error(), "given twice") {
		t.Errorf("Register(other, other) = %v", err)
	}
	if err := w.Register(nil); err == nil {
		t.Error("Register(nil): no error")
	}
}

func TestNonRetryable(t *testing.T) {
	if NonRetryable(nil) != nil {
		t.Error("NonRetryable(nil) != nil")
	}
	base := errors.New("bad input")
	err := NonRetryable(base)
	if !IsNonRetryable(err) || err.Error() != "bad input" || !errors.Is(err, base) {
		t.Errorf("NonRetryable: %v", err)
	}
	if IsNonRetryable(base) {
		t.Error("a plain error is non-retryable")
	}
	if !IsNonRetryable(fmt.Errorf("step: %w", err)) {
		t.Error("a wrapped non-retryable error is not")
	}
}
