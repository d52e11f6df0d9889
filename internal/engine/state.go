package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/runnel-dev/runnel/internal/store"
)

// runState is a run and its step runs, locked in one transaction, with the
// transitions applied to them and the events those transitions append. It is
// rebuilt on every attempt of a transaction, so a retried transaction starts
// from what is stored.
type runState struct {
	now    time.Time
	run    store.Run
	steps  []store.StepRun
	events []store.Event

	runDirty   bool
	stepsDirty map[int]bool
	// stopped lists step runs that left the running state: their worker's
	// slot is freed after commit, and if notify is set the worker is told to
	// stop the step (it did not end it itself).
	stopped []stoppedStep
	// queued is set when a step run became claimable.
	queued bool
}

type stoppedStep struct {
	workerID  string
	stepRunID string
	attempt   int
	notify    bool
	reason    string
}

// lockRun reads and locks a run, then its step runs (the lock order).
func lockRun(ctx context.Context, tx store.Tx, tenantID, runID string, now time.Time) (*runState, error) {
	run, err := tx.GetRunForUpdate(ctx, tenantID, runID)
	if err != nil {
		return nil, notFound(err, "unknown run %s", runID)
	}
	steps, err := tx.ListStepRunsForUpdate(ctx, runID)
	if err != nil {
		return nil, fmt.Errorf("lock step runs of run %s: %w", runID, err)
	}
	return &runState{now: now, run: run, steps: steps, stepsDirty: map[int]bool{}}, nil
}

func (rs *runState) stepIndex(stepRunID string) int {
	return slices.IndexFunc(rs.steps, func(s store.StepRun) bool { return s.ID == stepRunID })
}

// save writes what changed, events last (they take the log's counter lock).
func (rs *runState) save(ctx context.Context, tx store.Tx) error {
	if rs.runDirty {
		if err := tx.UpdateRun(ctx, rs.run); err != nil {
			return fmt.Errorf("update run %s: %w", rs.run.ID, err)
		}
	}
	for i := range rs.steps {
		if rs.stepsDirty[i] {
			if err := tx.UpdateStepRun(ctx, rs.steps[i]); err != nil {
				return fmt.Errorf("update step run %s: %w", rs.steps[i].ID, err)
			}
		}
	}
	if len(rs.events) == 0 {
		return nil
	}
	if err := tx.AppendEvents(ctx, rs.events); err != nil {
		return fmt.Errorf("append events of run %s: %w", rs.run.ID, err)
	}
	return nil
}

// runEvent appends a run event with the given details.
func (rs *runState) runEvent(typ string, data any) {
	rs.events = append(rs.events, store.Event{
		TenantID: rs.run.TenantID, RunID: rs.run.ID, Workflow: rs.run.Workflow,
		Type: typ, Data: mustJSON(data), CreatedAt: rs.now,
	})
}

// stepEvent appends a step event of the step run's current attempt.
func (rs *runState) stepEvent(i int, typ string, data any) {
	s := rs.steps[i]
	rs.events = append(rs.events, store.Event{
		TenantID: rs.run.TenantID, RunID: rs.run.ID, Workflow: rs.run.Workflow,
		Type: typ, StepRunID: s.ID, Step: s.Step, Attempt: s.Attempt,
		Data: mustJSON(data), CreatedAt: rs.now,
	})
}

// endAttempt records the end of the current attempt in its history.
func endAttempt(ctx context.Context, tx store.Tx, s store.StepRun, status store.StepStatus, errMsg string, now time.Time) error {
	err := tx.UpsertStepAttempt(ctx, store.StepAttempt{
		StepRunID: s.ID, Attempt: s.Attempt, Status: status, WorkerID: s.WorkerID,
		Error: errMsg, StartedAt: s.StartedAt, FinishedAt: now,
	})
	if err != nil {
		return fmt.Errorf("record attempt %d of step run %s: %w", s.Attempt, s.ID, err)
	}
	return nil
}

// completeStep applies a step's output, queues the steps it unblocks, and
// completes the run when every step has completed.
func (rs *runState) completeStep(ctx context.Context, tx store.Tx, i int, output []byte) error {
	s := &rs.steps[i]
	if err := endAttempt(ctx, tx, *s, store.StepCompleted, "", rs.now); err != nil {
		return err
	}
	rs.stopped = append(rs.stopped, stoppedStep{workerID: s.WorkerID, stepRunID: s.ID, attempt: s.Attempt})
	s.Status, s.Output, s.Error, s.FinishedAt, s.TimeoutAt = store.StepCompleted, output, "", rs.now, time.Time{}
	rs.stepsDirty[i] = true
	rs.stepEvent(i, store.EventStepCompleted, map[string]any{"output": json.RawMessage(output)})
	rs.advance()
	return nil
}

// advance queues pending steps whose parents have all completed, and
// completes the run when all steps have.
func (rs *runState) advance() {
	done := make(map[string]bool, len(rs.steps))
	for _, s := range rs.steps {
		if s.Status == store.StepCompleted {
			done[s.Step] = true
		}
	}
	if len(done) == len(rs.steps) {
		outputs := make(map[string]json.RawMessage, len(rs.steps))
		for _, s := range rs.steps {
			outputs[s.Step] = s.Output
		}
		out := mustJSON(outputs)
		rs.finishRun(store.RunCompleted, out, "")
		return
	}
	for i := range rs.steps {
		s := &rs.steps[i]
		if s.Status != store.StepPending {
			continue
		}
		ready := true
		for _, p := range s.Parents {
			if !done[p] {
				ready = false
				break
			}
		}
		if ready {
			s.Status, s.AvailableAt = store.StepQueued, rs.now
			rs.stepsDirty[i] = true
			rs.queued = true
		}
	}
}

// MaxLostAttempts is how many attempts of a step run may end with their
// worker lost (disconnected, silent past the heartbeat timeout, or
// re-registered) before the step run fails instead of being re-queued.
const MaxLostAttempts = 10

// failReason says why an attempt ended without output.
type failReason struct {
	status  store.StepStatus // StepFailed or StepTimedOut
	message string
	// noRetry: the step asked not to be retried.
	noRetry bool
	// notCounted: the attempt was lost (worker gone), not failed; it is
	// retried without using up the step's retries.
	notCounted bool
	// notify: the worker still runs the attempt and must be told to stop.
	notify bool
}

// failAttempt ends the current attempt of a running step run. The step is
// queued again if its retries allow, with exponential backoff; otherwise it
// fails (or times out) and so does the run.
func (rs *runState) failAttempt(ctx context.Context, tx store.Tx, i int, why failReason, maxBackoff time.Duration) error {
	s := &rs.steps[i]
	if err := endAttempt(ctx, tx, *s, why.status, why.message, rs.now); err != nil {
		return err
	}
	rs.stopped = append(rs.stopped, stoppedStep{
		workerID: s.WorkerID, stepRunID: s.ID, attempt: s.Attempt, notify: why.notify, reason: why.message,
	})
	if !why.notCounted {
		s.Failures++
	}
	retry := !why.noRetry && (why.notCounted || s.Failures <= s.Retries)
	// Every attempt ends completed (once), as a counted failure, or lost:
	// the attempts so far minus the counted failures were lost, this one
	// included. A step that takes its worker down with it every time would
	// otherwise be re-queued forever.
	if lost := s.Attempt - s.Failures; why.notCounted && lost >= MaxLostAttempts {
		retry = false
		why.message = fmt.Sprintf("%s; giving up: %d attempts of this step lost their worker (a step that crashes or stalls its worker fails after %d)",
			why.message, lost, MaxLostAttempts)
	}
	evType := store.EventStepFailed
	if why.status == store.StepTimedOut {
		evType = store.EventStepTimedOut
	}
	data := map[string]any{"error": why.message, "retrying": retry}
	if !retry {
		s.Status, s.Error, s.FinishedAt, s.TimeoutAt = why.status, why.message, rs.now, time.Time{}
		rs.stepsDirty[i] = true
		rs.stepEvent(i, evType, data)
		status := store.RunFailed
		if why.status == store.StepTimedOut {
			status = store.RunTimedOut
		}
		rs.finishRun(status, nil, fmt.Sprintf("step %q: %s", s.Step, why.message))
		return nil
	}
	delay := time.Duration(0)
	if !why.notCounted && s.BackoffMs > 0 {
		delay = time.Duration(s.BackoffMs) * time.Millisecond << min(s.Failures-1, 30)
		if delay > maxBackoff || delay <= 0 {
			delay = maxBackoff
		}
	}
	data["nextAttempt"] = s.Attempt + 1
	data["retryAt"] = rs.now.Add(delay).Format(time.RFC3339Nano)
	rs.stepEvent(i, evType, data)
	s.Status, s.Error, s.WorkerID, s.TimeoutAt = store.StepQueued, why.message, "", time.Time{}
	s.AvailableAt = rs.now.Add(delay)
	rs.stepsDirty[i] = true
	rs.queued = true
	return nil
}

// finishRun ends the run with a terminal status. Running steps are
// cancelled (their workers told to stop); steps that never started are
// cancelled without events.
func (rs *runState) finishRun(status store.RunStatus, output []byte, errMsg string) {
	for i := range rs.steps {
		s := &rs.steps[i]
		switch {
		case s.Status == store.StepRunning:
			rs.stopped = append(rs.stopped, stoppedStep{
				workerID: s.WorkerID, stepRunID: s.ID, attempt: s.Attempt, notify: true, reason: "run " + string(status),
			})
			rs.stepEvent(i, store.EventStepCancelled, map[string]any{"reason": "run " + string(status)})
			fallthrough
		case !s.Status.Terminal():
			s.Status, s.FinishedAt, s.TimeoutAt = store.StepCancelled, rs.now, time.Time{}
			rs.stepsDirty[i] = true
		}
	}
	rs.run.Status, rs.run.Output, rs.run.Error, rs.run.FinishedAt = status, output, errMsg, rs.now
	rs.runDirty = true
	var data any
	switch status {
	case store.RunCompleted:
		data = map[string]any{"output": json.RawMessage(output)}
	case store.RunCancelled:
		data = nil
	default:
		data = map[string]any{"error": errMsg}
	}
	rs.runEvent(runEventType(status), data)
}

func runEventType(s store.RunStatus) string {
	switch s {
	case store.RunCompleted:
		return store.EventRunCompleted
	case store.RunFailed:
		return store.EventRunFailed
	case store.RunCancelled:
		return store.EventRunCancelled
	case store.RunTimedOut:
		return store.EventRunTimedOut
	}
	panic("not a terminal run status: " + string(s))
}

// mustJSON encodes event details; nil stays nil. The values are maps of
// strings, numbers and raw JSON already validated, so encoding cannot fail.
func mustJSON(v any) []byte {
	if v == nil {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("encode event data: %v", err))
	}
	return b
}
