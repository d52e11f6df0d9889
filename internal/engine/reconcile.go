package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/runnel-dev/runnel/internal/store"
)

// reconcileSessions compares the attempts this node's workers are running
// with the store, and tells a worker to stop an attempt that ended
// elsewhere: cancelled, timed out or re-queued by another engine node
// sharing the database, which cannot reach a worker connected here. The
// slot is freed at once. Transitions made on this node already did both
// (afterCommit); this catches the rest within one maintenance tick.
func (e *Engine) reconcileSessions(ctx context.Context) error {
	type attempt struct {
		workerID  string
		stepRunID string
		attempt   int
	}
	e.mu.Lock()
	// Resumed attempts of a worker that never started its Listen here
	// (it moved on to another node): nothing to hand over any more.
	for id, r := range e.resumed {
		if e.now().Sub(r.at) > e.cfg.HeartbeatTimeout {
			delete(e.resumed, id)
		}
	}
	var running []attempt
	for _, s := range e.sessions {
		for id, a := range s.running {
			running = append(running, attempt{s.workerID, id, a})
		}
	}
	e.mu.Unlock()

	ended := &runState{}
	for _, r := range running {
		sr, err := e.store.GetStepRun(ctx, r.stepRunID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			sr.Status = store.StepCancelled // gone (retention): stop it
		case err != nil:
			return fmt.Errorf("read step run %s: %w", r.stepRunID, err)
		}
		if sr.Status == store.StepRunning && sr.Attempt == r.attempt && sr.WorkerID == r.workerID {
			continue
		}
		ended.stopped = append(ended.stopped, stoppedStep{
			workerID: r.workerID, stepRunID: r.stepRunID, attempt: r.attempt, notify: true,
			reason: fmt.Sprintf("attempt ended elsewhere (step run now attempt %d, %s)", sr.Attempt, sr.Status),
		})
	}
	if len(ended.stopped) > 0 {
		e.afterCommit(ended)
	}
	return nil
}
