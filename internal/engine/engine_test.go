package engine

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/apierr"
	"github.com/runnel-dev/runnel/internal/clock/clocktest"
	"github.com/runnel-dev/runnel/internal/eventlog"
	"github.com/runnel-dev/runnel/internal/store"
	"github.com/runnel-dev/runnel/internal/store/postgres"
	"github.com/runnel-dev/runnel/internal/store/sqlite"
	"github.com/runnel-dev/runnel/internal/testdb"
)

// The state machine's unit tests: an engine over a real database (a SQLite
// file, or a PostgreSQL schema of its own) on a fake clock. Its loops are
// not started; a test drives what they would do, in order — e.dispatch for
// the dispatcher, e.maintain for a maintenance tick — so each transition
// happens at a time the test chose. TestLoopsRunOnClock checks the loops
// themselves wait on the clock.

var (
	stores = []string{"sqlite", "postgres"}
	t0     = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
)

// waitFor bounds every wait on a signal, so a broken test fails instead of
// hanging; nothing waits this long when the test passes.
const waitFor = 10 * time.Second

type testBundle struct {
	ctx    context.Context
	e      *Engine
	clock  *clocktest.Fake
	hub    *eventlog.Hub
	tenant string
}

// setup returns an engine over a fresh store of the kind, on a fake clock
// at t0, with a tenant; its loops are not running.
func setup(t *testing.T, kind string, configure ...func(*Config)) *testBundle {
	t.Helper()
	ctx := context.Background()
	hub := eventlog.NewHub()
	opts := store.Options{CommitHook: hub.CommitHook}
	var st store.Store
	switch kind {
	case "sqlite":
		s, err := sqlite.Open(ctx, testdb.SQLitePath(t), opts)
		require.NoError(t, err)
		st = s
	case "postgres":
		s, err := postgres.Open(ctx, testdb.PostgresURL(t), opts)
		require.NoError(t, err)
		st = s
	}
	t.Cleanup(func() { require.NoError(t, st.Close()) })
	clk := clocktest.NewFake(t0)
	cfg := Config{
		Clock: clk, Logger: slog.New(slog.DiscardHandler),
		HeartbeatInterval: time.Second, HeartbeatTimeout: 5 * time.Second, MaxBackoff: 3 * time.Second,
	}
	for _, c := range configure {
		c(&cfg)
	}
	e, err := New(ctx, st, hub, cfg)
	require.NoError(t, err)
	t.Cleanup(e.Stop)
	e.startedAt = e.now() // as Start does
	secret, err := e.Bootstrap(ctx)
	require.NoError(t, err)
	p, err := e.Authenticate(ctx, secret)
	require.NoError(t, err)
	return &testBundle{ctx: ctx, e: e, clock: clk, hub: hub, tenant: p.TenantID}
}

// testWorker is a registered worker with a Listen session on the engine.
type testWorker struct {
	id   string
	msgs chan Message
	stop context.CancelFunc
	done chan error // Listen's result
}

// connect registers a worker with one workflow and opens its session.
func (b *testBundle) connect(t *testing.T, slots int, defs ...WorkflowDef) *testWorker {
	t.Helper()
	reg, err := b.e.RegisterWorker(b.ctx, RegisterWorkerParams{TenantID: b.tenant, Name: "w", Slots: slots, Workflows: defs})
	require.NoError(t, err)
	return b.listen(t, reg.WorkerID)
}

// listen opens a session for a registered worker and returns once the
// engine holds it (Listen wakes the dispatcher then; nothing else runs that
// would).
func (b *testBundle) listen(t *testing.T, workerID string) *testWorker {
	t.Helper()
	select {
	case <-b.e.kick:
	default:
	}
	ctx, cancel := context.WithCancel(b.ctx)
	w := &testWorker{id: workerID, msgs: make(chan Message, 100), stop: cancel, done: make(chan error, 1)}
	go func() {
		w.done <- b.e.Listen(ctx, b.tenant, workerID, func(m Message) error { w.msgs <- m; return nil })
	}()
	t.Cleanup(cancel)
	select {
	case <-b.e.kick:
	case err := <-w.done:
		t.Fatalf("listen: %v", err)
	case <-time.After(waitFor):
		t.Fatal("session never opened")
	}
	return w
}

// next returns the worker's next message, which the engine has sent or is
// sending.
func (w *testWorker) next(t *testing.T) Message {
	t.Helper()
	select {
	case m := <-w.msgs:
		return m
	case <-time.After(waitFor):
		t.Fatal("no message for the worker")
		return Message{}
	}
}

// assigned runs the dispatcher once and returns the assignment it sent.
func (b *testBundle) assigned(t *testing.T, w *testWorker) *Assignment {
	t.Helper()
	b.e.dispatch(b.ctx)
	m := w.next(t)
	require.NotNil(t, m.Assignment, "want an assignment, got %+v", m)
	return m.Assignment
}

// noneAssigned runs the dispatcher once and checks it claimed nothing for
// the worker: dispatch returns only after recording what it claimed in the
// session (and queueing it to be sent).
func (b *testBundle) noneAssigned(t *testing.T, w *testWorker) {
	t.Helper()
	running := func() int {
		b.e.mu.Lock()
		defer b.e.mu.Unlock()
		require.Contains(t, b.e.sessions, w.id)
		return len(b.e.sessions[w.id].running)
	}
	before := running()
	b.e.dispatch(b.ctx)
	require.Equal(t, before, running(), "nothing claimed")
	select {
	case m := <-w.msgs:
		t.Fatalf("unexpected message %+v", m)
	default:
	}
}

func (b *testBundle) trigger(t *testing.T, workflow string) string {
	t.Helper()
	id, err := b.e.TriggerRun(b.ctx, TriggerParams{TenantID: b.tenant, Workflow: workflow})
	require.NoError(t, err)
	return id
}

func (b *testBundle) run(t *testing.T, runID string) RunView {
	t.Helper()
	v, err := b.e.GetRun(b.ctx, b.tenant, runID)
	require.NoError(t, err)
	return v
}

// eventTypes lists the run's event types, in log order.
func (b *testBundle) eventTypes(t *testing.T, runID string) []string {
	t.Helper()
	evs, err := b.e.store.ReadEvents(b.ctx, store.ReadEventsParams{TenantID: b.tenant, RunID: runID, Limit: 1000})
	require.NoError(t, err)
	var out []string
	for _, ev := range evs {
		out = append(out, ev.Type)
	}
	return out
}

func oneStep(name string, s StepDef) WorkflowDef {
	s.Name = "s"
	return WorkflowDef{Name: name, Steps: []StepDef{s}}
}

func forEachStore(t *testing.T, test func(t *testing.T, kind string)) {
	for _, kind := range stores {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			test(t, kind)
		})
	}
}

// A running attempt past its timeout is ended by the next maintenance tick
// (not one earlier), the worker told to stop it, and the step retried;
// with no retry left the run times out.
func TestStepTimeout(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, kind string) {
		b := setup(t, kind)
		w := b.connect(t, 1, oneStep("slow", StepDef{TimeoutMs: 1000, Retries: 1}))
		runID := b.trigger(t, "slow")
		a := b.assigned(t, w)
		require.Equal(t, 1, a.Attempt)

		b.clock.Advance(999 * time.Millisecond)
		b.e.maintain(b.ctx, 1)
		require.Equal(t, store.StepRunning, b.run(t, runID).Steps[0].Status)

		b.clock.Advance(time.Millisecond)
		b.e.maintain(b.ctx, 2)
		m := w.next(t)
		require.NotNil(t, m.Cancellation)
		require.Equal(t, AttemptRef{a.StepRunID, 1}, AttemptRef{m.Cancellation.StepRunID, m.Cancellation.Attempt})
		require.Contains(t, m.Cancellation.Reason, "timed out after 1s")
		step := b.run(t, runID).Steps[0]
		require.Equal(t, store.StepQueued, step.Status)
		require.Equal(t, 1, step.Failures)
		require.Equal(t, b.clock.Now(), step.AvailableAt, "no backoff configured")
		// The late report of the timed-out attempt is refused.
		err := b.e.CompleteStep(b.ctx, b.tenant, a.StepRunID, 1, nil)
		require.Equal(t, apierr.FailedPrecondition, apierr.CodeOf(err))

		a = b.assigned(t, w) // its slot was freed
		require.Equal(t, 2, a.Attempt)
		b.clock.Advance(time.Second)
		b.e.maintain(b.ctx, 3)
		require.NotNil(t, w.next(t).Cancellation)
		v := b.run(t, runID)
		require.Equal(t, store.RunTimedOut, v.Run.Status)
		require.Equal(t, store.StepTimedOut, v.Steps[0].Status)
		require.Equal(t, b.clock.Now(), v.Run.FinishedAt)
		require.Equal(t, []string{
			store.EventRunStarted, store.EventStepStarted, store.EventStepTimedOut,
			store.EventStepStarted, store.EventStepTimedOut, store.EventRunTimedOut,
		}, b.eventTypes(t, runID))
	})
}

// A failed attempt is retried after an exponential backoff, capped by
// MaxBackoff, and not a moment before; past its retries the run fails.
func TestRetryBackoff(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, kind string) {
		b := setup(t, kind) // MaxBackoff 3s
		w := b.connect(t, 1, oneStep("flaky", StepDef{Retries: 3, BackoffMs: 1000}))
		runID := b.trigger(t, "flaky")

		backoffs := []time.Duration{time.Second, 2 * time.Second, 3 * time.Second} // 4s capped
		for i, backoff := range backoffs {
			a := b.assigned(t, w)
			require.Equal(t, i+1, a.Attempt)
			require.NoError(t, b.e.FailStep(b.ctx, b.tenant, a.StepRunID, a.Attempt, "boom", false))
			step := b.run(t, runID).Steps[0]
			require.Equal(t, store.StepQueued, step.Status)
			require.Equal(t, b.clock.Now().Add(backoff), step.AvailableAt, "attempt %d", a.Attempt)

			b.clock.Advance(backoff - time.Millisecond)
			b.noneAssigned(t, w)
			b.clock.Advance(time.Millisecond)
		}
		a := b.assigned(t, w)
		require.Equal(t, 4, a.Attempt)
		require.NoError(t, b.e.FailStep(b.ctx, b.tenant, a.StepRunID, a.Attempt, "boom", false))
		v := b.run(t, runID)
		require.Equal(t, store.RunFailed, v.Run.Status)
		require.Equal(t, 4, v.Steps[0].Failures)
		require.Len(t, v.Steps[0].Attempts, 4)

		// noRetry fails at once, whatever the retries left.
		runID = b.trigger(t, "flaky")
		a = b.assigned(t, w)
		require.NoError(t, b.e.FailStep(b.ctx, b.tenant, a.StepRunID, a.Attempt, "fatal", true))
		require.Equal(t, store.RunFailed, b.run(t, runID).Run.Status)
	})
}

// A worker silent past the heartbeat timeout is declared dead at the next
// maintenance tick: its session ends, its attempt is re-queued as a new
// attempt that does not use up a retry, and it must register again. One
// that heartbeats in time keeps its attempt.
func TestHeartbeatLoss(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, kind string) {
		b := setup(t, kind) // heartbeat timeout 5s
		def := oneStep("job", StepDef{})
		w := b.connect(t, 1, def)
		runID := b.trigger(t, "job")
		a := b.assigned(t, w)

		// Heartbeats keep it: 4s, heartbeat, 4s (8s since it registered).
		b.clock.Advance(4 * time.Second)
		require.NoError(t, b.e.Heartbeat(b.ctx, b.tenant, w.id))
		b.clock.Advance(4 * time.Second)
		b.e.maintain(b.ctx, 1)
		require.Equal(t, store.StepRunning, b.run(t, runID).Steps[0].Status)

		// Silent for exactly the timeout: still alive; past it: dead.
		b.clock.Advance(time.Second)
		b.e.maintain(b.ctx, 2)
		require.Equal(t, store.StepRunning, b.run(t, runID).Steps[0].Status)
		b.clock.Advance(time.Millisecond)
		b.e.maintain(b.ctx, 3)

		select {
		case err := <-w.done:
			require.Equal(t, apierr.Unavailable, apierr.CodeOf(err), "session ends: %v", err)
		case <-time.After(waitFor):
			t.Fatal("session of the dead worker still open")
		}
		v := b.run(t, runID)
		require.Equal(t, store.StepQueued, v.Steps[0].Status)
		require.Equal(t, 0, v.Steps[0].Failures, "a lost attempt is not a failure")
		require.Equal(t, store.StepFailed, v.Steps[0].Attempts[0].Status)
		require.Contains(t, v.Steps[0].Attempts[0].Error, "worker lost: no heartbeat for 5s")
		err := b.e.Heartbeat(b.ctx, b.tenant, w.id)
		require.Equal(t, apierr.NotFound, apierr.CodeOf(err))
		err = b.e.CompleteStep(b.ctx, b.tenant, a.StepRunID, a.Attempt, nil)
		require.Equal(t, apierr.FailedPrecondition, apierr.CodeOf(err))

		// Another worker gets attempt 2.
		w2 := b.connect(t, 1, def)
		a2 := b.assigned(t, w2)
		require.Equal(t, AttemptRef{a.StepRunID, 2}, AttemptRef{a2.StepRunID, a2.Attempt})
	})
}

// After the engine starts, a worker gets one full heartbeat timeout to
// come back, however old its last heartbeat: it could not heartbeat to an
// engine that was down.
func TestHeartbeatGraceAfterStart(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, kind string) {
		b := setup(t, kind)
		w := b.connect(t, 1, oneStep("job", StepDef{}))
		runID := b.trigger(t, "job")
		b.assigned(t, w)

		// The engine "restarts" an hour later.
		b.clock.Advance(time.Hour)
		b.e.startedAt = b.e.now()
		b.clock.Advance(5*time.Second - time.Millisecond)
		b.e.maintain(b.ctx, 1)
		require.Equal(t, store.StepRunning, b.run(t, runID).Steps[0].Status)
		b.clock.Advance(time.Millisecond)
		b.e.maintain(b.ctx, 2)
		require.Equal(t, store.StepQueued, b.run(t, runID).Steps[0].Status)
	})
}

// A worker whose session broke and that registers again within the
// heartbeat timeout, naming the attempt it still runs, keeps it (issue 16):
// the previous id's silence past the timeout loses nothing, and the
// attempt completes under the new id.
func TestReconnectWithinTimeoutResumes(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, kind string) {
		b := setup(t, kind)
		def := oneStep("job", StepDef{Retries: 0})
		w := b.connect(t, 1, def)
		runID := b.trigger(t, "job")
		a := b.assigned(t, w)

		w.stop() // the stream breaks; the worker lives on
		require.NoError(t, <-w.done)
		b.clock.Advance(3 * time.Second)
		reg, err := b.e.RegisterWorker(b.ctx, RegisterWorkerParams{
			TenantID: b.tenant, Name: "w", Slots: 1, Workflows: []WorkflowDef{def},
			PreviousWorkerID: w.id, Running: []AttemptRef{{a.StepRunID, a.Attempt}},
		})
		require.NoError(t, err)
		require.Equal(t, []AttemptRef{{a.StepRunID, a.Attempt}}, reg.Resumed)
		w2 := b.listen(t, reg.WorkerID)
		b.noneAssigned(t, w2) // its one slot holds the resumed attempt

		// Well past the old id's timeout, the new one heartbeating.
		for range 4 {
			b.clock.Advance(2 * time.Second)
			require.NoError(t, b.e.Heartbeat(b.ctx, b.tenant, w2.id))
			b.e.maintain(b.ctx, 1)
		}
		step := b.run(t, runID).Steps[0]
		require.Equal(t, store.StepRunning, step.Status)
		require.Equal(t, w2.id, step.WorkerID)
		require.Equal(t, 1, step.Attempt)
		require.NoError(t, b.e.CompleteStep(b.ctx, b.tenant, a.StepRunID, a.Attempt, []byte(`{"ok":true}`)))
		require.Equal(t, store.RunCompleted, b.run(t, runID).Run.Status)
	})
}

// A worker that comes back only after the timeout has lost its attempt:
// the dead-worker sweep re-queued it, and resuming it gives nothing back.
func TestReconnectAfterTimeoutLoses(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, kind string) {
		b := setup(t, kind)
		def := oneStep("job", StepDef{})
		w := b.connect(t, 1, def)
		runID := b.trigger(t, "job")
		a := b.assigned(t, w)
		w.stop()
		require.NoError(t, <-w.done)

		b.clock.Advance(5*time.Second + time.Millisecond)
		b.e.maintain(b.ctx, 1)
		require.Equal(t, store.StepQueued, b.run(t, runID).Steps[0].Status)

		reg, err := b.e.RegisterWorker(b.ctx, RegisterWorkerParams{
			TenantID: b.tenant, Name: "w", Slots: 1, Workflows: []WorkflowDef{def},
			PreviousWorkerID: w.id, Running: []AttemptRef{{a.StepRunID, a.Attempt}},
		})
		require.NoError(t, err)
		require.Empty(t, reg.Resumed)
		a2 := b.assigned(t, b.listen(t, reg.WorkerID))
		require.Equal(t, 2, a2.Attempt)
	})
}

// Finished runs are deleted once finished for the retention, by the first
// maintenance pass after that (passes are a minute apart); running ones
// are kept.
func TestRetention(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, kind string) {
		b := setup(t, kind, func(c *Config) { c.Retention = time.Hour })
		w := b.connect(t, 1, oneStep("job", StepDef{}))
		done := b.trigger(t, "job")
		a := b.assigned(t, w)
		require.NoError(t, b.e.CompleteStep(b.ctx, b.tenant, a.StepRunID, a.Attempt, nil))
		finished := b.clock.Now()
		running := b.trigger(t, "job")
		b.assigned(t, w)

		b.e.maintain(b.ctx, 1) // a pass now: nothing is due
		b.clock.Set(finished.Add(time.Hour - time.Second))
		b.e.maintain(b.ctx, 2)
		b.run(t, done)

		// Due now, but the last pass was less than a minute ago.
		b.clock.Set(finished.Add(time.Hour))
		b.e.maintain(b.ctx, 3)
		b.run(t, done)
		b.clock.Advance(retentionEvery - time.Second)
		b.e.maintain(b.ctx, 4)
		_, err := b.e.GetRun(b.ctx, b.tenant, done)
		require.Equal(t, apierr.NotFound, apierr.CodeOf(err))
		require.Empty(t, b.eventTypes(t, done))
		require.Equal(t, store.RunRunning, b.run(t, running).Run.Status)
	})
}

// The dispatcher and the maintenance loop tick on the engine's clock: a
// step's timeout passes when the fake clock is advanced, with no waiting.
func TestLoopsRunOnClock(t *testing.T) {
	t.Parallel()
	b := setup(t, "sqlite", func(c *Config) { c.MaintenanceInterval = 500 * time.Millisecond })
	require.NoError(t, b.e.Start(b.ctx))
	reg, err := b.e.RegisterWorker(b.ctx, RegisterWorkerParams{
		TenantID: b.tenant, Name: "w", Slots: 1, Workflows: []WorkflowDef{oneStep("slow", StepDef{TimeoutMs: 1000})},
	})
	require.NoError(t, err)
	w := &testWorker{id: reg.WorkerID, msgs: make(chan Message, 100)}
	go func() {
		_ = b.e.Listen(b.ctx, b.tenant, w.id, func(m Message) error { w.msgs <- m; return nil })
	}()
	// The new session and the new run each wake the dispatcher: no tick
	// needed, whichever comes first.
	runID := b.trigger(t, "slow")
	require.NotNil(t, w.next(t).Assignment)

	ctx, cancel := context.WithTimeout(b.ctx, waitFor)
	defer cancel()
	require.NoError(t, b.clock.WaitTimers(ctx, 2), "dispatch and maintenance tickers")
	changed := b.hub.Wait(runID)
	b.clock.Advance(time.Second)
	select {
	case <-changed:
	case <-ctx.Done():
		t.Fatal("the maintenance loop did not time the step out")
	}
	require.NotNil(t, w.next(t).Cancellation)
	require.Equal(t, store.RunTimedOut, b.run(t, runID).Run.Status)
}
