package postgres

import (
	"context"
	"time"
)

// Retention: the queries of queries/retention.sql.

// DeleteFinishedRuns locks a batch of expired runs (skipping rows other
// transactions hold, so nodes running retention at once take disjoint
// batches), deletes their events, which have no foreign key, then the runs,
// whose step runs, attempts and metadata follow by ON DELETE CASCADE. The
// runs are locked before the cascade reaches their step runs, the engine's
// lock order.
func (t *tx) DeleteFinishedRuns(ctx context.Context, finishedBefore time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, nil
	}
	ids, err := t.q.ListExpiredRuns(ctx, toMicros(finishedBefore), clampLimit(limit))
	if err != nil {
		return 0, mapErr(err, "list runs finished before %s", finishedBefore.Format(time.RFC3339))
	}
	if len(ids) == 0 {
		return 0, nil
	}
	if _, err := t.q.DeleteRunEvents(ctx, ids); err != nil {
		return 0, mapErr(err, "delete events of %d finished runs", len(ids))
	}
	n, err := t.q.DeleteRuns(ctx, ids)
	if err != nil {
		return 0, mapErr(err, "delete %d finished runs", len(ids))
	}
	return int(n), nil
}
