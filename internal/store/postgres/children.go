package postgres

import (
	"context"
	"fmt"

	"github.com/runnel-dev/runnel/internal/store"
	"github.com/runnel-dev/runnel/internal/store/postgres/internal/dbsqlc"
)

// Child runs: the queries of queries/children.sql.

func fromRuns(rows []dbsqlc.Run) ([]store.Run, error) {
	out := make([]store.Run, 0, len(rows))
	for _, r := range rows {
		run, err := fromRun(r)
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
		return store.Run{}, fmt.Errorf("get child run of step run %s by spawn key %q: %w", parentStepRunID, key, dbErr(err))
	}
	return fromRun(r)
}

func (t *tx) ListActiveChildRuns(ctx context.Context, parentRunID string) ([]store.Run, error) {
	rows, err := t.q.ListActiveChildRuns(ctx, parentRunID)
	if err != nil {
		return nil, fmt.Errorf("list active child runs of run %s: %w", parentRunID, dbErr(err))
	}
	return fromRuns(rows)
}

func (t *tx) ListOrphanedChildRuns(ctx context.Context, limit int) ([]store.Run, error) {
	rows, err := t.q.ListOrphanedChildRuns(ctx, int32(min(limit, 1<<31-1)))
	if err != nil {
		return nil, fmt.Errorf("list orphaned child runs: %w", dbErr(err))
	}
	return fromRuns(rows)
}

func (s *Store) ListChildRuns(ctx context.Context, tenantID, parentRunID string) ([]store.Run, error) {
	rows, err := s.q.ListChildRuns(ctx, tenantID, parentRunID)
	if err != nil {
		return nil, fmt.Errorf("list child runs of run %s: %w", parentRunID, dbErr(err))
	}
	return fromRuns(rows)
}
