package runnel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	runnelv1 "github.com/runnel-dev/runnel/internal/gen/runnel/v1"
)

// startWorker runs a worker with fast retries against c until the test
// ends; stop stops it and returns Run's result.
func startWorker(t *testing.T, c *Client, slots int, wfs ...*Workflow) (stop func() error) {
	t.Helper()
	w, err := c.NewWorker("test-worker", WithSlots(slots))
	if err != nil {
		t.Fatal(err)
	}
	w.tun.reconnectBase, w.tun.reconnectMax = time.Millisecond, 10*time.Millisecond
	w.tun.reportBase, w.tun.reportMax = time.Millisecond, 10*time.Millisecond
	w.tun.stream.retryBase, w.tun.stream.retryMax = time.Millisecond, 10*time.Millisecond
	if err := w.Register(wfs...); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			runErr = recv(t, done, "Worker.Run to return")
		})
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func assignment(stepRunID, workflow, step string, attempt int32) *runnelv1.StepAssignment {
	return &runnelv1.StepAssignment{
		RunId:     "run-" + stepRunID,
		StepRunId: stepRunID,
		Workflow:  workflow,
		Step:      step,
		Attempt:   attempt,
		Input:     []byte(`{}`),
	}
}

func TestWorkerRunsStepAndStreams(t *testing.T) {
	fw := newFakeWorkers()
	fs := newFakeServer(t, fw, nil)
	c := fs.client(t)

	wf := NewWorkflow("wf").
		Step("a", func(ctx Context) (any, error) {
			for i := range 3 {
				if err := ctx.PutStream(fmt.Appendf(nil, "chunk %d", i)); err != nil {
					return nil, err
				}
			}
			return map[string]any{"ok": true}, nil
		}, Retries(2), Backoff(1500*time.Millisecond), Timeout(time.Minute)).
		OnEvents("user:create")
	stop := startWorker(t, c, 3, wf)

	reg := recv(t, fw.registrations, "registration")
	if reg.GetName() != "test-worker" || reg.GetSlots() != 3 || reg.GetPreviousWorkerId() != "" {
		t.Errorf("registration = %v", reg)
	}
	if len(reg.GetWorkflows()) != 1 {
		t.Fatalf("registered %d workflows, want 1", len(reg.GetWorkflows()))
	}
	def := reg.GetWorkflows()[0]
	if def.GetName() != "wf" || len(def.GetSteps()) != 1 || def.GetOnEvents()[0] != "user:create" {
		t.Errorf("definition = %v", def)
	}
	if s := def.GetSteps()[0]; s.GetName() != "a" || s.GetRetries() != 2 || s.GetBackoffMs() != 1500 || s.GetTimeoutMs() != 60_000 {
		t.Errorf("step definition = %v", s)
	}

	sess := recv(t, fw.sessions, "Listen")
	if sess.workerID != "w1" {
		t.Errorf("Listen worker id = %q, want w1", sess.workerID)
	}
	sess.assign(t, assignment("sr1", "wf", "a", 1))
	done := recv(t, fw.completes, "CompleteStep")
	if done.GetStepRunId() != "sr1" || done.GetAttempt() != 1 || string(done.GetOutput()) != `{"ok":true}` {
		t.Errorf("CompleteStep = %v", done)
	}
	// The stream was flushed before the step was reported.
	got := fw.storedPayloads("sr1", 1)
	if len(got) != 3 || string(got[0]) != "chunk 0" || string(got[2]) != "chunk 2" {
		t.Errorf("stored stream = %q", got)
	}
	if err := stop(); err != nil {
		t.Errorf("Run returned %v, want nil", err)
	}

	// Every call, unary and streaming, was authenticated and spoke HTTP/2.
	seen := fs.seen()
	paths := map[string]bool{}
	for _, r := range seen {
		paths[r.path] = true
		if r.auth != "Bearer "+testToken {
			t.Errorf("%s: Authorization = %q", r.path, r.auth)
		}
		if r.protoMajor != 2 {
			t.Errorf("%s: HTTP/%d, want HTTP/2", r.path, r.protoMajor)
		}
	}
	for _, p := range []string{"/runnel.v1.WorkerService/RegisterWorker", "/runnel.v1.WorkerService/Listen", "/runnel.v1.WorkerService/PutStream", "/runnel.v1.WorkerService/CompleteStep"} {
		if !paths[p] {
			t.Errorf("no call to %s", p)
		}
	}
}

func TestWorkerStepContext(t *testing.T) {
	fw := newFakeWorkers()
	c := newFakeServer(t, fw, nil).client(t)
	type result struct {
		Input    map[string]int
		Parent   string
		Meta     map[string]string
		Retry    int
		Attempt  int
		IDs      string
		NotParen string
	}
	wf := NewWorkflow("wf").
		Step("p", func(ctx Context) (any, error) { return nil, nil }).
		Step("c", func(ctx Context) (any, error) {
			var r result
			if err := ctx.WorkflowInput(&r.Input); err != nil {
				return nil, err
			}
			if err := ctx.StepOutput("p", &r.Parent); err != nil {
				return nil, err
			}
			var x any
			if err := ctx.StepOutput("c", &x); err != nil {
				r.NotParen = err.Error()
			}
			r.Meta = ctx.AdditionalMetadata()
			r.Retry, r.Attempt = ctx.RetryCount(), ctx.Attempt()
			r.IDs = strings.Join([]string{ctx.RunID(), ctx.StepRunID(), ctx.StepName(), ctx.WorkflowName()}, ",")
			return r, nil
		}, Parents("p"))
	startWorker(t, c, 1, wf)
	sess := recv(t, fw.sessions, "Listen")
	a := assignment("sr2", "wf", "c", 3)
	a.Input = []byte(`{"n":7}`)
	a.AdditionalMetadata = map[string]string{"streamKey": "sk-1"}
	a.ParentOutputs = map[string][]byte{"p": []byte(`"from p"`)}
	sess.assign(t, a)
	done := recv(t, fw.completes, "CompleteStep")
	var r result
	if err := json.Unmarshal(done.GetOutput(), &r); err != nil {
		t.Fatal(err)
	}
	if r.Input["n"] != 7 || r.Parent != "from p" || r.Meta["streamKey"] != "sk-1" || r.Retry != 2 || r.Attempt != 3 ||
		r.IDs != "run-sr2,sr2,c,wf" {
		t.Errorf("step saw %+v", r)
	}
	if !strings.Contains(r.NotParen, `"c" is not a parent of step "c"`) {
		t.Errorf("StepOutput of a non-parent: %q", r.NotParen)
	}
}

func TestWorkerReportsFailures(t *testing.T) {
	fw := newFakeWorkers()
	c := newFakeServer(t, fw, nil).client(t)
	wf := NewWorkflow("wf").
		Step("fails", func(ctx Context) (any, error) { return nil, errors.New("boom") }).
		Step("fatal", func(ctx Context) (any, error) { return nil, NonRetryable(errors.New("bad input")) }).
		Step("panics", func(ctx Context) (any, error) { panic("kaboom") }).
		Step("unmarshalable", func(ctx Context) (any, error) { return func() {}, nil })
	startWorker(t, c, 1, wf)
	sess := recv(t, fw.sessions, "Listen")

	cases := []struct {
		step    string
		want    string
		noRetry bool
	}{
		{"fails", "boom", false},
		{"fatal", "bad input", true},
		{"panics", "step panicked: kaboom", false},
		{"unmarshalable", "marshal step output", true},
		{"missing", `has no step "missing"`, false},
	}
	for i, tc := range cases {
		sess.assign(t, assignment(fmt.Sprint("sr", i), "wf", tc.step, 1))
		f := recv(t, fw.fails, "FailStep of "+tc.step)
		if f.GetStepRunId() != fmt.Sprint("sr", i) || !strings.Contains(f.GetError(), tc.want) || f.GetNoRetry() != tc.noRetry {
			t.Errorf("%s: FailStep = %v, want error containing %q, no_retry %v", tc.step, f, tc.want, tc.noRetry)
		}
		if tc.step == "panics" && !strings.Contains(f.GetError(), "TestWorkerReportsFailures") {
			t.Errorf("panic report has no stack of the step: %q", f.GetError())
		}
	}
}

// blockingStep returns a step that reports its start, then waits for its
// context and reports the cancellation cause.
func blockingStep(started chan<- string, causes chan<- error) StepFunc {
	return func(ctx Context) (any, error) {
		started <- ctx.StepRunID()
		<-ctx.Done()
		causes <- context.Cause(ctx)
		return nil, ctx.Err()
	}
}

func TestWorkerCancellationAndTimeout(t *testing.T) {
	fw := newFakeWorkers()
	c := newFakeServer(t, fw, nil).client(t)
	started, causes := make(chan string, 10), make(chan error, 10)
	wf := NewWorkflow("wf").
		Step("block", blockingStep(started, causes)).
		Step("quick", func(ctx Context) (any, error) { return "ok", nil })
	// One slot: "quick" runs only once the blocked step's goroutine is done,
	// so its report proves the blocked step was not reported.
	startWorker(t, c, 1, wf)
	sess := recv(t, fw.sessions, "Listen")

	sess.assign(t, assignment("sr1", "wf", "block", 1))
	recv(t, started, "step start")
	sess.cancel(t, "sr1", 2) // another attempt: ignored
	sess.cancel(t, "sr1", 1)
	if cause := recv(t, causes, "cancellation"); !errors.Is(cause, ErrStepCancelled) || !strings.Contains(cause.Error(), "run cancelled") {
		t.Errorf("cause = %v, want ErrStepCancelled with the reason", cause)
	}

	timed := assignment("sr2", "wf", "block", 1)
	timed.TimeoutMs = 20
	sess.assign(t, timed)
	recv(t, started, "step start")
	if cause := recv(t, causes, "timeout"); !errors.Is(cause, ErrStepTimedOut) {
		t.Errorf("cause = %v, want ErrStepTimedOut", cause)
	}

	sess.assign(t, assignment("sr3", "wf", "quick", 1))
	if got := recv(t, fw.completes, "CompleteStep"); got.GetStepRunId() != "sr3" {
		t.Errorf("completed %s, want sr3", got.GetStepRunId())
	}
	if len(fw.fails) != 0 || len(fw.completes) != 0 {
		t.Errorf("cancelled or timed-out steps were reported")
	}
}

func TestWorkerReconnectsAfterListenBreaks(t *testing.T) {
	fw := newFakeWorkers()
	c := newFakeServer(t, fw, nil).client(t)
	started, causes := make(chan string, 10), make(chan error, 10)
	wf := NewWorkflow("wf").
		Step("block", blockingStep(started, causes)).
		Step("quick", func(ctx Context) (any, error) { return "ok", nil })
	startWorker(t, c, 1, wf)

	sess := recv(t, fw.sessions, "Listen")
	sess.assign(t, assignment("sr1", "wf", "block", 1))
	recv(t, started, "step start")
	sess.end <- connect.NewError(connect.CodeUnavailable, errors.New("engine going away"))
	if cause := recv(t, causes, "session loss"); !errors.Is(cause, ErrSessionLost) {
		t.Errorf("cause = %v, want ErrSessionLost", cause)
	}

	recv(t, fw.registrations, "first registration")
	reg := recv(t, fw.registrations, "second registration")
	if reg.GetPreviousWorkerId() != "w1" {
		t.Errorf("previous_worker_id = %q, want w1", reg.GetPreviousWorkerId())
	}
	sess2 := recv(t, fw.sessions, "second Listen")
	if sess2.workerID != "w2" {
		t.Errorf("second session worker id = %q", sess2.workerID)
	}
	// A clean end of the stream is a lost session too.
	sess2.assign(t, assignment("sr2", "wf", "quick", 1))
	recv(t, fw.completes, "CompleteStep")
	sess2.end <- nil
	sess3 := recv(t, fw.sessions, "third Listen")
	sess3.assign(t, assignment("sr3", "wf", "quick", 1))
	if got := recv(t, fw.completes, "CompleteStep"); got.GetStepRunId() != "sr3" {
		t.Errorf("completed %s, want sr3", got.GetStepRunId())
	}
	if len(fw.fails) != 0 {
		t.Errorf("the step of the lost session was reported")
	}
}

// Issue 16: a worker whose session breaks keeps running its step; the put
// made while it is away waits and is sent again, the worker registers
// again naming the attempt, the engine resumes it, and the step's result
// is reported as if nothing happened.
func TestWorkerKeepsStepsAcrossSessions(t *testing.T) {
	fw := newFakeWorkers()
	fw.resume = func(req *runnelv1.RegisterWorkerRequest) []*runnelv1.RunningAttempt { return req.GetRunning() }
	c := newFakeServer(t, fw, nil).client(t)
	release := make(chan struct{})
	calls, flushed := make(chan struct{}, 10), make(chan struct{}, 1)
	wf := NewWorkflow("wf").Step("s", func(ctx Context) (any, error) {
		calls <- struct{}{}
		if err := ctx.PutStream([]byte("before")); err != nil {
			return nil, err
		}
		if err := ctx.Flush(); err != nil {
			return nil, err
		}
		flushed <- struct{}{}
		select {
		case <-release:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
		if err := ctx.PutStream([]byte("after")); err != nil {
			return nil, err
		}
		return "done", nil
	})
	startWorker(t, c, 1, wf)
	recv(t, fw.registrations, "first registration")
	sess := recv(t, fw.sessions, "Listen")
	sess.assign(t, assignment("sr1", "wf", "s", 1))
	recv(t, calls, "step start")
	recv(t, flushed, "first put stored")

	// The engine goes away; the put made meanwhile fails twice and is
	// sent again.
	fw.mu.Lock()
	fw.putErr = []error{
		connect.NewError(connect.CodeUnavailable, errors.New("engine restarting")),
		connect.NewError(connect.CodeUnavailable, errors.New("engine restarting")),
	}
	fw.mu.Unlock()
	sess.end <- connect.NewError(connect.CodeUnavailable, errors.New("engine going away"))
	reg := recv(t, fw.registrations, "second registration")
	if reg.GetPreviousWorkerId() != "w1" || len(reg.GetRunning()) != 1 ||
		reg.GetRunning()[0].GetStepRunId() != "sr1" || reg.GetRunning()[0].GetAttempt() != 1 {
		t.Fatalf("re-registration = %v, want previous w1 running sr1/1", reg)
	}
	recv(t, fw.sessions, "second Listen")
	close(release)

	done := recv(t, fw.completes, "CompleteStep")
	if done.GetStepRunId() != "sr1" || done.GetAttempt() != 1 || string(done.GetOutput()) != `"done"` {
		t.Errorf("reported %v, want sr1 attempt 1 done", done)
	}
	if got := fw.storedPayloads("sr1", 1); len(got) != 2 || string(got[0]) != "before" || string(got[1]) != "after" {
		t.Errorf("stored %q, want before, after", got)
	}
	if len(calls) != 0 {
		t.Errorf("the step ran again")
	}
}

func TestWorkerReregistersWhenDeclaredDead(t *testing.T) {
	fw := newFakeWorkers()
	fw.heartbeatMs = 5
	fw.heartbeat = func(id string) error {
		if id == "w1" {
			return connect.NewError(connect.CodeNotFound, errors.New("unknown worker"))
		}
		return nil
	}
	c := newFakeServer(t, fw, nil).client(t)
	startWorker(t, c, 1, NewWorkflow("wf").Step("a", func(ctx Context) (any, error) { return nil, nil }))
	recv(t, fw.sessions, "first Listen")
	sess := recv(t, fw.sessions, "second Listen")
	if sess.workerID != "w2" {
		t.Errorf("second session = %q, want w2", sess.workerID)
	}
	recv(t, fw.registrations, "first registration")
	if reg := recv(t, fw.registrations, "second registration"); reg.GetPreviousWorkerId() != "w1" {
		t.Errorf("previous_worker_id = %q", reg.GetPreviousWorkerId())
	}
}

func TestWorkerRetriesReports(t *testing.T) {
	fw := newFakeWorkers()
	fw.completeErr = []error{
		connect.NewError(connect.CodeUnavailable, errors.New("try again")),
		nil,
		connect.NewError(connect.CodeFailedPrecondition, errors.New("attempt is stale")),
	}
	fw.putErr = []error{connect.NewError(connect.CodeUnavailable, errors.New("try again"))}
	c := newFakeServer(t, fw, nil).client(t)
	wf := NewWorkflow("wf").Step("a", func(ctx Context) (any, error) {
		if err := ctx.PutStream([]byte("x")); err != nil {
			return nil, err
		}
		return ctx.StepRunID(), nil
	})
	startWorker(t, c, 1, wf)
	sess := recv(t, fw.sessions, "Listen")

	sess.assign(t, assignment("sr1", "wf", "a", 1))
	first := recv(t, fw.completes, "CompleteStep")
	second := recv(t, fw.completes, "CompleteStep retried")
	if first.GetStepRunId() != "sr1" || second.GetStepRunId() != "sr1" {
		t.Errorf("reports: %v, %v", first, second)
	}
	if got := fw.storedPayloads("sr1", 1); len(got) != 1 {
		t.Errorf("stored %d payloads after a retried put, want 1", len(got))
	}

	// A stale attempt's report is dropped, not retried.
	sess.assign(t, assignment("sr2", "wf", "a", 1))
	recv(t, fw.completes, "CompleteStep of a stale attempt")
	sess.assign(t, assignment("sr3", "wf", "a", 1))
	if got := recv(t, fw.completes, "CompleteStep"); got.GetStepRunId() != "sr3" {
		t.Errorf("got a report of %s, want sr3 (the stale report was retried)", got.GetStepRunId())
	}
}

func TestWorkerBoundsConcurrency(t *testing.T) {
	fw := newFakeWorkers()
	c := newFakeServer(t, fw, nil).client(t)
	var running, peak atomic.Int32
	started := make(chan string, 10)
	release := make(chan struct{})
	wf := NewWorkflow("wf").Step("a", func(ctx Context) (any, error) {
		n := running.Add(1)
		defer running.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		started <- ctx.StepRunID()
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil, nil
	})
	startWorker(t, c, 2, wf)
	sess := recv(t, fw.sessions, "Listen")
	for i := range 5 {
		sess.assign(t, assignment(fmt.Sprint("sr", i), "wf", "a", 1))
	}
	recv(t, started, "first step")
	recv(t, started, "second step")
	close(release)
	for range 3 {
		recv(t, started, "a waiting step")
	}
	for range 5 {
		recv(t, fw.completes, "CompleteStep")
	}
	if p := peak.Load(); p != 2 {
		t.Errorf("peak concurrency %d, want 2", p)
	}
}

func TestWorkerStreamsInOrderUnderLoad(t *testing.T) {
	fw := newFakeWorkers()
	c := newFakeServer(t, fw, nil).client(t)
	const n = 20_000
	wf := NewWorkflow("wf").Step("a", func(ctx Context) (any, error) {
		for i := range n {
			if err := ctx.PutStream(fmt.Appendf(nil, "%d", i)); err != nil {
				return nil, err
			}
		}
		return nil, nil
	})
	startWorker(t, c, 1, wf)
	sess := recv(t, fw.sessions, "Listen")
	sess.assign(t, assignment("sr1", "wf", "a", 1))
	recv(t, fw.completes, "CompleteStep")
	got := fw.storedPayloads("sr1", 1)
	if len(got) != n {
		t.Fatalf("stored %d payloads, want %d", len(got), n)
	}
	for i, p := range got {
		if string(p) != fmt.Sprint(i) {
			t.Fatalf("payload %d = %q", i, p)
		}
	}
	fw.mu.Lock()
	defer fw.mu.Unlock()
	next := int64(1)
	for _, req := range fw.puts {
		if req.GetFirstSeq() != next || len(req.GetPayloads()) > 512 {
			t.Fatalf("put first_seq %d with %d payloads, want first_seq %d and at most 512", req.GetFirstSeq(), len(req.GetPayloads()), next)
		}
		next += int64(len(req.GetPayloads()))
	}
}

func TestWorkerRunErrors(t *testing.T) {
	c, err := NewClient(WithHost("http://127.0.0.1:1"), WithLogger(testLogger()))
	if err != nil {
		t.Fatal(err)
	}
	w, err := c.NewWorker("w")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "no workflows") {
		t.Errorf("Run without workflows: %v", err)
	}
	if _, err := c.NewWorker("w", WithSlots(0)); err == nil {
		t.Error("NewWorker with 0 slots: no error")
	}
	if _, err := c.NewWorker(""); err == nil {
		t.Error("NewWorker without a name: no error")
	}

	// An unreachable engine is retried until ctx ends; then Run returns nil.
	if err := w.Register(NewWorkflow("wf").Step("a", func(Context) (any, error) { return nil, nil })); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := w.Run(ctx); err != nil {
		t.Errorf("Run against an unreachable engine returned %v after ctx ended, want nil", err)
	}

	// An engine that refuses the token ends Run with that error.
	fw := newFakeWorkers()
	fw.registerErr = []error{connect.NewError(connect.CodeUnauthenticated, errors.New("bad token"))}
	c2 := newFakeServer(t, fw, nil).client(t)
	w2, err := c2.NewWorker("w")
	if err != nil {
		t.Fatal(err)
	}
	if err := w2.Register(NewWorkflow("wf").Step("a", func(Context) (any, error) { return nil, nil })); err != nil {
		t.Fatal(err)
	}
	if err := w2.Run(context.Background()); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Errorf("Run with a refused token: %v, want Unauthenticated", err)
	}
}

func TestWorkerRegisterWhileRunning(t *testing.T) {
	fw := newFakeWorkers()
	c := newFakeServer(t, fw, nil).client(t)
	w, err := c.NewWorker("w")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Register(NewWorkflow("wf").Step("a", func(Context) (any, error) { return nil, nil })); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	select {
	case <-w.Ready():
		t.Fatal("Ready before Run")
	default:
	}
	go func() { done <- w.Run(ctx) }()
	recv(t, w.Ready(), "Ready")
	recv(t, fw.sessions, "Listen")
	if err := w.Register(NewWorkflow("other").Step("a", func(Context) (any, error) { return nil, nil })); err == nil {
		t.Error("Register while running: no error")
	}
	if err := w.Run(ctx); err == nil {
		t.Error("second concurrent Run: no error")
	}
	cancel()
	if err := recv(t, done, "Run to return"); err != nil {
		t.Errorf("Run = %v", err)
	}
}
