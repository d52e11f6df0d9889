package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/runnel-dev/runnel/internal/store"
)

// Retention deletes finished runs, with their events, step runs, attempts
// and metadata, once they have been finished for Config.Retention.

const (
	// DefaultRetention is how long finished runs are kept when
	// Config.Retention is zero.
	DefaultRetention = 7 * 24 * time.Hour
	// retentionEvery spaces the passes: deleting is not urgent, and each
	// pass scans for expired runs even when none are due.
	retentionEvery = time.Minute
	// retentionBatch bounds each delete transaction, so the locks it holds
	// (a batch of runs, then their step runs) and its undo stay small.
	retentionBatch = 500
	// retentionBudget bounds one pass: it runs on the maintenance loop,
	// whose timeouts and dead-worker checks wait meanwhile, so a large
	// backlog (retention just enabled or shortened) is worked off over
	// several passes instead of in one long stall.
	retentionBudget = 10 * time.Second
)

// retainIfDue runs a retention pass if none ran in the last retentionEvery
// (so on the loop's first tick after start, then once a minute). Several
// nodes may run passes at once: each transaction takes a batch of runs
// that no other holds (SKIP LOCKED), so a run is deleted once.
func (e *Engine) retainIfDue(ctx context.Context) {
	if e.cfg.Retention < 0 {
		return // kept forever
	}
	// Pacing compares the clock's own times, not e.now()'s: the real
	// clock's carry a monotonic reading, so a wall clock that jumps
	// neither stops retention nor repeats it.
	now := e.cfg.Clock.Now()
	if !e.retainedAt.IsZero() && now.Sub(e.retainedAt) < retentionEvery {
		return
	}
	// Set before the pass, so a failing database is retried a minute
	// later rather than on every tick.
	e.retainedAt = now
	n, err := e.deleteExpiredRuns(ctx)
	if n > 0 {
		e.log.Info("deleted finished runs past retention", "runs", n, "retention", e.cfg.Retention.String())
	}
	if err != nil && ctx.Err() == nil {
		e.log.Error("delete finished runs past retention", "err", err, "deleted", n)
	}
}

// deleteExpiredRuns deletes, a batch per transaction, runs finished before
// now minus the retention, until a batch comes back short or the pass's
// budget is spent. It returns how many runs it deleted.
func (e *Engine) deleteExpiredRuns(ctx context.Context) (int, error) {
	// The cutoff is on the engine's clock, the one finish times are written
	// with, and fixed for the pass so it ends even while runs keep expiring.
	cutoff := e.now().Add(-e.cfg.Retention)
	deadline := e.cfg.Clock.Now().Add(retentionBudget)
	total := 0
	for ctx.Err() == nil && e.cfg.Clock.Now().Before(deadline) {
		var n int
		err := e.store.Write(ctx, func(tx store.Tx) error {
			var err error
			n, err = tx.DeleteFinishedRuns(ctx, cutoff, retentionBatch)
			return err
		})
		if err != nil {
			return total, fmt.Errorf("delete runs finished before %s: %w", cutoff.Format(time.RFC3339), err)
		}
		total += n
		if n < retentionBatch {
			break
		}
	}
	return total, nil
}
