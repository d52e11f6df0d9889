package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/runnel-dev/runnel/internal/store"
	"github.com/runnel-dev/runnel/internal/store/postgres/internal/dbsqlc"
)

// Reads outside Write run on the pool, each in its own implicit
// transaction.

func (s *Store) LogID(ctx context.Context) (string, error) {
	id, err := s.q.GetLogID(ctx)
	if err != nil {
		return "", fmt.Errorf("get log id: %w", dbErr(err))
	}
	return id, nil
}

func (s *Store) GetRun(ctx context.Context, tenantID, runID string) (store.Run, error) {
	r, err := s.q.GetRun(ctx, tenantID, runID)
	if err != nil {
		return store.Run{}, fmt.Errorf("get run %s: %w", runID, dbErr(err))
	}
	return fromRun(r)
}

// runColumns lists the runs columns in the order of dbsqlc.Run's fields, so
// rows scan with pgx.RowToStructByPos.
const runColumns = `r.id, r.tenant_id, r.workflow, r.status, r.input, r.output, r.error,
r.metadata, r.parent_run_id, r.parent_step_run_id, r.created_at, r.started_at, r.finished_at, r.spawn_key`

// ListRuns is the one query written in Go rather than sqlc: its filters are
// optional, and leaving absent ones out of the SQL (rather than one static
// query testing each parameter for emptiness) lets the planner pick the
// index that fits the filters given.
func (s *Store) ListRuns(ctx context.Context, p store.ListRunsParams) ([]store.Run, error) {
	limit := p.PageLimit()

	var sql strings.Builder
	args := []any{p.TenantID}
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	sql.WriteString("SELECT " + runColumns + " FROM runs r WHERE r.tenant_id = $1")
	if p.Workflow != "" {
		sql.WriteString(" AND r.workflow = " + arg(p.Workflow))
	}
	if p.Status != "" {
		sql.WriteString(" AND r.status = " + arg(string(p.Status)))
	}
	if p.Before != "" {
		sql.WriteString(" AND r.id < " + arg(p.Before))
	}
	if p.MetaKey != "" {
		sql.WriteString(" AND EXISTS (SELECT 1 FROM run_metadata m WHERE m.tenant_id = $1 AND m.key = " +
			arg(p.MetaKey) + " AND m.value = " + arg(p.MetaValue) + " AND m.run_id = r.id)")
	}
	sql.WriteString(" ORDER BY r.id DESC LIMIT " + arg(limit))

	rows, err := s.pool.Query(ctx, sql.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", dbErr(err))
	}
	dbRuns, err := pgx.CollectRows(rows, pgx.RowToStructByPos[dbsqlc.Run])
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", dbErr(err))
	}
	out := make([]store.Run, 0, len(dbRuns))
	for _, r := range dbRuns {
		run, err := fromRun(r)
		if err != nil {
			return nil, err
		}
		out = append(out, run)
	}
	return out, nil
}

func (s *Store) ListStepRuns(ctx context.Context, runID string) ([]store.StepRun, error) {
	rows, err := s.q.ListStepRuns(ctx, runID)
	if err != nil {
		return nil, fmt.Errorf("list step runs of run %s: %w", runID, dbErr(err))
	}
	return fromStepRuns(rows)
}

func (s *Store) GetStepRun(ctx context.Context, stepRunID string) (store.StepRun, error) {
	r, err := s.q.GetStepRun(ctx, stepRunID)
	if err != nil {
		return store.StepRun{}, fmt.Errorf("get step run %s: %w", stepRunID, dbErr(err))
	}
	return fromStepRun(r)
}

func (s *Store) ListStepAttempts(ctx context.Context, runID string) ([]store.StepAttempt, error) {
	rows, err := s.q.ListStepAttempts(ctx, runID)
	if err != nil {
		return nil, fmt.Errorf("list step attempts of run %s: %w", runID, dbErr(err))
	}
	out := make([]store.StepAttempt, 0, len(rows))
	for _, a := range rows {
		out = append(out, store.StepAttempt{
			StepRunID:  a.StepRunID,
			Attempt:    int(a.Attempt),
			Status:     store.StepStatus(a.Status),
			WorkerID:   a.WorkerID,
			Error:      a.Error,
			StartedAt:  fromMicros(a.StartedAt),
			FinishedAt: fromMicros(a.FinishedAt),
		})
	}
	return out, nil
}

func (s *Store) ListWorkflows(ctx context.Context, tenantID string) ([]store.Workflow, error) {
	rows, err := s.q.ListWorkflows(ctx, tenantID)
	if err != nil {
		return nil, fmt.Errorf("list workflows: %w", dbErr(err))
	}
	out := make([]store.Workflow, 0, len(rows))
	for _, r := range rows {
		w, err := fromWorkflow(r)
		if err != nil {
			return nil, err
		}
		out = append(out, w)
	}
	return out, nil
}

func (s *Store) GetWorkflowByName(ctx context.Context, tenantID, name string) (store.Workflow, error) {
	r, err := s.q.GetWorkflow(ctx, tenantID, name)
	if err != nil {
		return store.Workflow{}, fmt.Errorf("get workflow %s: %w", name, dbErr(err))
	}
	return fromWorkflow(r)
}

func (s *Store) GetTenant(ctx context.Context, id string) (store.Tenant, error) {
	r, err := s.q.GetTenant(ctx, id)
	if err != nil {
		return store.Tenant{}, fmt.Errorf("get tenant %s: %w", id, dbErr(err))
	}
	return fromTenant(r), nil
}

func (s *Store) CountTenants(ctx context.Context) (int, error) {
	n, err := s.q.CountTenants(ctx)
	if err != nil {
		return 0, fmt.Errorf("count tenants: %w", dbErr(err))
	}
	return int(n), nil
}

// CountActiveRuns counts the queued and running runs of every tenant.
func (s *Store) CountActiveRuns(ctx context.Context) (map[store.RunStatus]int, error) {
	rows, err := s.q.CountActiveRuns(ctx)
	if err != nil {
		return nil, fmt.Errorf("count active runs: %w", dbErr(err))
	}
	counts := map[store.RunStatus]int{store.RunQueued: 0, store.RunRunning: 0}
	for _, r := range rows {
		counts[store.RunStatus(r.Status)] = int(r.Runs)
	}
	return counts, nil
}

// LookupToken returns the token even if it has expired: the caller checks
// ExpiresAt.
func (s *Store) LookupToken(ctx context.Context, hash string) (store.Token, error) {
	r, err := s.q.LookupToken(ctx, hash)
	if err != nil {
		// Not the hash itself: it is as good as a secret for lookups.
		return store.Token{}, fmt.Errorf("look up token: %w", dbErr(err))
	}
	return fromToken(r), nil
}

func (s *Store) TouchWorker(ctx context.Context, workerID string, now time.Time) error {
	n, err := s.q.TouchWorker(ctx, workerID, micros(now))
	if err != nil {
		return fmt.Errorf("touch worker %s: %w", workerID, dbErr(err))
	}
	if n == 0 {
		return errNotFound("touch worker %s (unknown or dead)", workerID)
	}
	return nil
}

// ReadEvents reads a page of a run's events. The byte limit is applied by
// the query (see ReadEvents in queries/log.sql), so payloads past it are not
// sent at all.
func (s *Store) ReadEvents(ctx context.Context, p store.ReadEventsParams) ([]store.Event, error) {
	limit := p.PageLimit()
	rows, err := s.q.ReadEvents(ctx, dbsqlc.ReadEventsParams{
		TenantID:  p.TenantID,
		RunID:     p.RunID,
		After:     p.After,
		PageLimit: clampLimit(limit),
		MaxBytes:  int64(max(p.MaxBytes, 0)),
	})
	if err != nil {
		return nil, fmt.Errorf("read events of run %s after %d: %w", p.RunID, p.After, dbErr(err))
	}
	out := make([]store.Event, len(rows))
	for i, e := range rows {
		out[i] = fromEvent(e)
	}
	return out, nil
}

func (s *Store) LastRunPosition(ctx context.Context, tenantID, runID string) (int64, error) {
	pos, err := s.q.LastRunPosition(ctx, tenantID, runID)
	if err != nil {
		return 0, fmt.Errorf("last position of run %s: %w", runID, dbErr(err))
	}
	return pos, nil
}
