package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/runnel-dev/runnel/internal/store"
)

const maintenanceBatch = 100

// maintenanceLoop times out step attempts past their deadline and declares
// silent workers dead. Each transition is a conditional update of a locked
// row, so with several nodes running this loop each one still happens once.
func (e *Engine) maintenanceLoop(ctx context.Context) {
	tick := e.cfg.Clock.NewTicker(e.cfg.MaintenanceInterval)
	defer tick.Stop()
	ticks := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.sweepKick:
			if err := e.sweepOrphans(ctx); err != nil && ctx.Err() == nil {
				e.log.Error("cancel children of ended runs", "err", err)
			}
			continue
		case <-tick.C():
		}
		ticks++
		e.maintain(ctx, ticks)
	}
}

// maintain is one tick of the maintenance loop, the ticks-th.
func (e *Engine) maintain(ctx context.Context, ticks int) {
	if err := e.expireTimeouts(ctx); err != nil && ctx.Err() == nil {
		e.log.Error("expire step timeouts", "err", err)
	}
	if err := e.expireWorkers(ctx); err != nil && ctx.Err() == nil {
		e.log.Error("expire dead workers", "err", err)
	}
	e.retainIfDue(ctx)
	if err := e.reconcileSessions(ctx); err != nil && ctx.Err() == nil {
		e.log.Error("reconcile worker sessions", "err", err)
	}
	if ticks%orphanSweepTicks == 0 {
		if err := e.sweepOrphans(ctx); err != nil && ctx.Err() == nil {
			e.log.Error("cancel children of ended runs", "err", err)
		}
	}
}

func (e *Engine) expireTimeouts(ctx context.Context) error {
	var due []store.StepRun
	err := e.store.Write(ctx, func(tx store.Tx) error {
		var err error
		due, err = tx.ListTimedOutStepRuns(ctx, e.now(), maintenanceBatch)
		return err
	})
	if err != nil {
		return err
	}
	for _, sr := range due {
		var rs *runState
		err := e.store.Write(ctx, func(tx store.Tx) error {
			var err error
			if rs, err = lockRun(ctx, tx, sr.TenantID, sr.RunID, e.now()); err != nil {
				return err
			}
			i := rs.stepIndex(sr.ID)
			s := rs.steps[max(i, 0)]
			if i < 0 || s.Status != store.StepRunning || s.Attempt != sr.Attempt || s.TimeoutAt.IsZero() || s.TimeoutAt.After(rs.now) {
				rs = nil
				return nil // ended or moved on meanwhile
			}
			why := failReason{
				status:  store.StepTimedOut,
				message: fmt.Sprintf("attempt timed out after %s", time.Duration(s.TimeoutMs)*time.Millisecond),
				notify:  true,
			}
			if err := rs.failAttempt(ctx, tx, i, why, e.cfg.MaxBackoff); err != nil {
				return err
			}
			return rs.save(ctx, tx)
		})
		if err != nil {
			return fmt.Errorf("time out step run %s: %w", sr.ID, err)
		}
		e.afterCommit(rs)
	}
	return nil
}

// expireWorkers declares workers silent for the heartbeat timeout dead and
// re-queues their attempts. Not during this node's first heartbeat timeout:
// a worker cannot heartbeat to a node that is down, so after a restart of
// the only node (or of every node) each worker gets one full timeout to
// come back and resume its attempts, however long the engine was down.
func (e *Engine) expireWorkers(ctx context.Context) error {
	if e.now().Sub(e.startedAt) < e.cfg.HeartbeatTimeout {
		return nil
	}
	var dead []store.Worker
	err := e.store.Write(ctx, func(tx store.Tx) error {
		var err error
		dead, err = tx.ListDeadWorkers(ctx, e.now().Add(-e.cfg.HeartbeatTimeout), maintenanceBatch)
		return err
	})
	if err != nil {
		return err
	}
	for _, w := range dead {
		if err := e.workerLost(ctx, w.TenantID, w.ID, "no heartbeat for "+e.cfg.HeartbeatTimeout.String()); err != nil {
			return err
		}
	}
	return nil
}
