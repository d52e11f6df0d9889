package postgres

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/runnel-dev/runnel/internal/store"
	"github.com/runnel-dev/runnel/internal/store/postgres/internal/dbsqlc"
)

// Reads outside Write run on the pool, each in its own implicit
// transaction.

func (s *Store) GetRun(ctx context.Context, tenantID, runID string) (store.Run, error) {
	r, err := s.q.GetRun(ctx, tenantID, runID)
	if err != nil {
		return store.Run{}, mapErr(err, "get run %s", runID)
	}
	return runFromRow(r)
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
		return nil, mapErr(err, "list runs")
	}
	dbRuns, err := pgx.CollectRows(rows, pgx.RowToStructByPos[dbsqlc.Run])
	if err != nil {
		return nil, mapErr(err, "list runs")
	}
	out := make([]store.Run, 0, len(dbRuns))
	for _, r := range dbRuns {
		run, err := runFromRow(r)
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
		return nil, mapErr(err, "list step runs of run %s", runID)
	}
	return stepRunsFromRows(rows)
}

func (s *Store) GetStepRun(ctx context.Context, stepRunID string) (store.StepRun, error) {
	r, err := s.q.GetStepRun(ctx, stepRunID)
	if err != nil {
		return store.StepRun{}, mapErr(err, "get step run %s", stepRunID)
	}
	return stepRunFromRow(r)
}

func (s *Store) ListStepAttempts(ctx context.Context, runID string) ([]store.StepAttempt, error) {
	rows, err := s.q.ListStepAttempts(ctx, runID)
	if err != nil {
		return nil, mapErr(err, "list step attempts of run %s", runID)
	}
	out := make([]store.StepAttempt, 0, len(rows))
	for _, a := range rows {
		out = append(out, stepAttemptFromRow(a))
	}
	return out, nil
}

func (s *Store) ListWorkflows(ctx context.Context, tenantID string) ([]store.Workflow, error) {
	rows, err := s.q.ListWorkflows(ctx, tenantID)
	if err != nil {
		return nil, mapErr(err, "list workflows")
	}
	out := make([]store.Workflow, 0, len(rows))
	for _, r := range rows {
		w, err := workflowFromRow(r)
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
		return store.Workflow{}, mapErr(err, "get workflow %s", name)
	}
	return workflowFromRow(r)
}

func (s *Store) GetTenant(ctx context.Context, id string) (store.Tenant, error) {
	r, err := s.q.GetTenant(ctx, id)
	if err != nil {
		return store.Tenant{}, mapErr(err, "get tenant %s", id)
	}
	return tenantFromRow(r), nil
}

func (s *Store) CountTenants(ctx context.Context) (int, error) {
	n, err := s.q.CountTenants(ctx)
	if err != nil {
		return 0, mapErr(err, "count tenants")
	}
	return int(n), nil
}

// CountActiveRuns counts the queued and running runs of every tenant.
func (s *Store) CountActiveRuns(ctx context.Context) (map[store.RunStatus]int, error) {
	rows, err := s.q.CountActiveRuns(ctx)
	if err != nil {
		return nil, mapErr(err, "count active runs")
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
		return store.Token{}, mapErr(err, "look up token")
	}
	return tokenFromRow(r), nil
}

func (s *Store) ListTokens(ctx context.Context) ([]store.ListedToken, error) {
	rows, err := s.q.ListTokens(ctx)
	if err != nil {
		return nil, mapErr(err, "list tokens")
	}
	out := make([]store.ListedToken, len(rows))
	for i, r := range rows {
		out[i] = store.ListedToken{TenantName: r.TenantName, Token: tokenFromRow(dbsqlc.Token{
			ID: r.ID, TenantID: r.TenantID, Hash: r.Hash, Kind: r.Kind, Name: r.Name, RunID: r.RunID,
			MetaKey: r.MetaKey, MetaValue: r.MetaValue, Stream: r.Stream, ExpiresAt: r.ExpiresAt, CreatedAt: r.CreatedAt,
			RevokedAt: r.RevokedAt, CreatedBy: r.CreatedBy,
		})}
	}
	return out, nil
}

func (s *Store) TouchWorker(ctx context.Context, tenantID, workerID string, now time.Time) error {
	n, err := s.q.TouchWorker(ctx, dbsqlc.TouchWorkerParams{ID: workerID, TenantID: tenantID, HeartbeatAt: toMicros(now)})
	return notFoundIfNone(n, err, "touch worker %s (unknown, of another tenant, or dead)", workerID)
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
		return nil, mapErr(err, "read events of run %s after %d", p.RunID, p.After)
	}
	out := make([]store.Event, len(rows))
	for i, e := range rows {
		out[i] = eventFromRow(e)
	}
	return out, nil
}

func (s *Store) LastRunPosition(ctx context.Context, tenantID, runID string) (int64, error) {
	pos, err := s.q.LastRunPosition(ctx, tenantID, runID)
	if err != nil {
		return 0, mapErr(err, "last position of run %s", runID)
	}
	return pos, nil
}

func (s *Store) LastStreamPosition(ctx context.Context, tenantID, runID string, streams []string) (int64, error) {
	pos, err := s.q.LastStreamPosition(ctx, dbsqlc.LastStreamPositionParams{
		TenantID: tenantID, RunID: runID, AnyStream: streams == nil, Streams: streams,
	})
	if err != nil {
		return 0, mapErr(err, "last stream position of run %s", runID)
	}
	return pos, nil
}
