package postgres

import (
	"context"

	"github.com/runnel-dev/runnel/internal/store"
	"github.com/runnel-dev/runnel/internal/store/postgres/internal/dbsqlc"
)

// Child runs: the queries of queries/children.sql.

func runsFromRows(rows []dbsqlc.Run) ([]store.Run, error) {
	out := make([]store.Run, 0, len(rows))
	for _, r := range rows {
		run, err := runFromRow(r)
		if err != nil {
			return nil, err
		}
		out = append(out, run)
	}
	return out, nil
}

func (t *tx) GetChildRunBySpawnKey(ctx context.Context, parentStepRunID, key string) (store.Run, error) {
	r, err := t.q.GetChildRunBySpawnKey(ctx, parentStepRunID, key)
	if err != nil {
		return store.Run{}, mapErr(err, "get child run of step run %s by spawn key %q", parentStepRunID, key)
	}
	return runFromRow(r)
}

func (t *tx) ListActiveChildRuns(ctx context.Context, parentRunID string) ([]store.Run, error) {
	rows, err := t.q.ListActiveChildRuns(ctx, parentRunID)
	if err != nil {
		return nil, mapErr(err, "list active child runs of run %s", parentRunID)
	}
	return runsFromRows(rows)
}

func (t *tx) ListOrphanedChildRuns(ctx context.Context, limit int) ([]store.Run, error) {
	rows, err := t.q.ListOrphanedChildRuns(ctx, int32(min(limit, 1<<31-1)))
	if err != nil {
		return nil, mapErr(err, "list orphaned child runs")
	}
	return runsFromRows(rows)
}

func (s *Store) ListChildRuns(ctx context.Context, tenantID, parentRunID string) ([]store.Run, error) {
	rows, err := s.q.ListChildRuns(ctx, tenantID, parentRunID)
	if err != nil {
		return nil, mapErr(err, "list child runs of run %s", parentRunID)
	}
	return runsFromRows(rows)
}
