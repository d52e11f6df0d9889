package sqlite

import (
	"context"
	"time"

	"github.com/runnel-dev/runnel/internal/store/sqlite/internal/dbsqlc"
)

// Retention: the queries of queries/retention.sql.

// DeleteFinishedRuns reads a batch of expired runs, deletes their events,
// which have no foreign key, then the runs, whose step runs, attempts and
// metadata follow by ON DELETE CASCADE. The transaction holds the write lock
// throughout, so the batch cannot change between the read and the deletes.
func (t *tx) DeleteFinishedRuns(ctx context.Context, finishedBefore time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, nil
	}
	ids, err := t.q.ListExpiredRuns(t.ctx(ctx), dbsqlc.ListExpiredRunsParams{
		FinishedBefore: toMicros(finishedBefore),
		RowLimit:       int64(limit),
	})
	if err != nil {
		return 0, mapErr(err, "list runs finished before %s", finishedBefore.Format(time.RFC3339))
	}
	if len(ids) == 0 {
		return 0, nil
	}
	list := encodeList(ids)
	if _, err := t.q.DeleteRunEvents(t.ctx(ctx), list); err != nil {
		return 0, mapErr(err, "delete events of %d finished runs", len(ids))
	}
	n, err := t.q.DeleteRuns(t.ctx(ctx), list)
	if err != nil {
		return 0, mapErr(err, "delete %d finished runs", len(ids))
	}
	return int(n), nil
}
