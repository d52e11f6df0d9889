package engine

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/runnel-dev/runnel/internal/store"
)

// dispatchLoop assigns queued step runs to workers connected to this node,
// when woken (new work, a freed slot, a new worker) and on a short tick
// (retries whose backoff passed, work queued through another node).
func (e *Engine) dispatchLoop(ctx context.Context) {
	tick := e.cfg.Clock.NewTicker(e.cfg.DispatchInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.kick:
		case <-tick.C():
		}
		e.dispatch(ctx)
	}
}

// dispatch fills the free slots of every session, round robin, until no
// session gets more work.
func (e *Engine) dispatch(ctx context.Context) {
	for ctx.Err() == nil {
		progress := false
		for _, s := range e.sessionsWithFreeSlots() {
			n, err := e.assign(ctx, s)
			if err != nil {
				if ctx.Err() == nil {
					e.log.Error("assign step runs", "worker_id", s.workerID, "err", err)
				}
				return
			}
			progress = progress || n > 0
		}
		if !progress {
			return
		}
	}
}

type sessionSlots struct {
	*session
	free int
}

func (e *Engine) sessionsWithFreeSlots() []sessionSlots {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []sessionSlots
	for _, id := range e.order {
		s := e.sessions[id]
		if free := s.slots - len(s.running); free > 0 {
			out = append(out, sessionSlots{s, free})
		}
	}
	// Rotate so the first worker does not always get the work.
	if len(e.order) > 1 {
		e.order = append(e.order[1:], e.order[0])
	}
	return out
}

type claimed struct {
	run  store.Run
	step store.StepRun
}

// assign claims up to the session's free slots and sends the assignments.
func (e *Engine) assign(ctx context.Context, s sessionSlots) (int, error) {
	var got []claimed
	dead := false
	err := e.store.Write(ctx, func(tx store.Tx) error {
		got, dead = got[:0], false
		now := e.now()
		cands, err := tx.ListClaimableStepRuns(ctx, store.ClaimParams{
			TenantID: s.tenantID, WorkerID: s.workerID, Workflows: s.workflows, Now: now, Limit: s.free,
		})
		if err != nil || len(cands) == 0 {
			return err
		}
		// Never to a dead worker: its session here may be a stale one
		// (the worker registered again elsewhere, which marked this id
		// dead). The row lock orders this claim against workerLost.
		w, err := tx.GetWorkerForUpdate(ctx, s.workerID)
		if err != nil {
			return fmt.Errorf("lock worker %s: %w", s.workerID, err)
		}
		if !w.Alive {
			dead = true
			return nil
		}
		// Lock runs before step runs (the engine's lock order), in id order.
		byRun := map[string][]store.StepRun{}
		var runIDs []string
		for _, c := range cands {
			if _, ok := byRun[c.RunID]; !ok {
				runIDs = append(runIDs, c.RunID)
			}
			byRun[c.RunID] = append(byRun[c.RunID], c)
		}
		slices.Sort(runIDs)
		var events []store.Event
		for _, runID := range runIDs {
			run, err := tx.GetRunForUpdate(ctx, s.tenantID, runID)
			if err != nil {
				return fmt.Errorf("lock run %s: %w", runID, err)
			}
			if run.Status.Terminal() {
				continue
			}
			rs := &runState{now: now, run: run, stepsDirty: map[int]bool{}}
			for _, c := range byRun[runID] {
				var timeoutAt time.Time
				if c.TimeoutMs > 0 {
					timeoutAt = now.Add(time.Duration(c.TimeoutMs) * time.Millisecond)
				}
				step, ok, err := tx.ClaimStepRun(ctx, store.ClaimStepRunParams{
					StepRunID: c.ID, WorkerID: s.workerID, Now: now, TimeoutAt: timeoutAt,
				})
				if err != nil {
					return fmt.Errorf("claim step run %s: %w", c.ID, err)
				}
				if !ok {
					continue // taken meanwhile
				}
				err = tx.UpsertStepAttempt(ctx, store.StepAttempt{
					StepRunID: step.ID, Attempt: step.Attempt, Status: store.StepRunning,
					WorkerID: s.workerID, StartedAt: now,
				})
				if err != nil {
					return fmt.Errorf("record attempt of step run %s: %w", step.ID, err)
				}
				if rs.run.Status == store.RunQueued {
					rs.run.Status, rs.run.StartedAt, rs.runDirty = store.RunRunning, now, true
					rs.runEvent(store.EventRunStarted, nil)
				}
				rs.steps = append(rs.steps, step)
				rs.stepEvent(len(rs.steps)-1, store.EventStepStarted, map[string]any{"workerId": s.workerID})
				got = append(got, claimed{run: rs.run, step: step})
			}
			if rs.runDirty {
				if err := tx.UpdateRun(ctx, rs.run); err != nil {
					return fmt.Errorf("start run %s: %w", runID, err)
				}
			}
			events = append(events, rs.events...)
		}
		if len(events) == 0 {
			return nil
		}
		return tx.AppendEvents(ctx, events)
	})
	if dead {
		e.mu.Lock()
		e.closeSessionLocked(s.session)
		e.mu.Unlock()
		return 0, nil
	}
	if err != nil || len(got) == 0 {
		return 0, err
	}
	for _, c := range got {
		e.log.Debug("step attempt assigned", "run_id", c.run.ID, "workflow", c.run.Workflow,
			"step_run_id", c.step.ID, "step", c.step.Step, "attempt", c.step.Attempt, "worker_id", s.workerID)
	}

	msgs := make([]Message, 0, len(got))
	for _, c := range got {
		a, err := e.assignment(ctx, c)
		if err != nil {
			return 0, err
		}
		msgs = append(msgs, Message{Assignment: a})
	}
	e.mu.Lock()
	lost := s.closed
	if !lost {
		for i, c := range got {
			s.running[c.step.ID] = c.step.Attempt
			select {
			case s.out <- msgs[i]:
			default:
				// Cannot happen while running <= slots (out holds slots+1024);
				// treat it as a broken session rather than block.
				lost = true
			}
		}
		if lost {
			e.closeSessionLocked(s.session)
		}
	}
	e.mu.Unlock()
	if lost {
		// The session ended while we claimed: the worker never got these
		// assignments, so give them back now. Only these: the attempts it
		// already runs stay its own, for it to resume when it registers
		// again (or for the dead-worker sweep, if it does not).
		steps := make([]store.StepRun, len(got))
		for i, c := range got {
			steps[i] = c.step
		}
		if err := e.requeue(context.WithoutCancel(ctx), s.workerID, steps, "worker disconnected during assignment"); err != nil {
			return 0, err
		}
	}
	return len(got), nil
}

// assignment builds the message for a claimed step run. Parents' outputs are
// read after the claim committed: they completed before the step was queued
// and never change.
func (e *Engine) assignment(ctx context.Context, c claimed) (*Assignment, error) {
	a := &Assignment{
		RunID: c.run.ID, StepRunID: c.step.ID, Workflow: c.run.Workflow, Step: c.step.Step,
		Attempt: c.step.Attempt, Input: c.run.Input, Metadata: c.run.Metadata, TimeoutMs: c.step.TimeoutMs,
	}
	if len(c.step.Parents) == 0 {
		return a, nil
	}
	steps, err := e.store.ListStepRuns(ctx, c.run.ID)
	if err != nil {
		return nil, fmt.Errorf("read parent outputs of step run %s: %w", c.step.ID, err)
	}
	a.ParentOutputs = make(map[string][]byte, len(c.step.Parents))
	for _, s := range steps {
		if slices.Contains(c.step.Parents, s.Step) {
			a.ParentOutputs[s.Step] = s.Output
		}
	}
	return a, nil
}
