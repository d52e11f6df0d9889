package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/runnel-dev/runnel/internal/store"
	"github.com/runnel-dev/runnel/internal/store/sqlite/internal/dbsqlc"
)

// The Store read methods run on the query_only pool; each statement sees the
// last committed state.

func (s *Store) GetRun(ctx context.Context, tenantID, runID string) (store.Run, error) {
	r, err := s.read.GetRun(ctx, dbsqlc.GetRunParams{TenantID: tenantID, ID: runID})
	if err != nil {
		return store.Run{}, mapErr(err, "get run %s", runID)
	}
	return runFromRow(r)
}

// runColumns is the column list of runs in the order dbsqlc.Run has them.
const runColumns = `r.id, r.tenant_id, r.workflow, r.status, r.input, r.output, r.error, r.metadata,
	r.parent_run_id, r.parent_step_run_id, r.created_at, r.started_at, r.finished_at, r.spawn_key`

// ListRuns is written by hand: each optional filter adds a condition only
// when set, so that SQLite can use runs_tenant_newest for the id range of
// Before and run_metadata_pair for the metadata pair (one static query with
// "(param is empty OR condition)" terms would defeat both).
func (s *Store) ListRuns(ctx context.Context, p store.ListRunsParams) ([]store.Run, error) {
	limit := p.PageLimit()

	var q strings.Builder
	q.WriteString("SELECT " + runColumns + " FROM runs r WHERE r.tenant_id = ?")
	args := []any{p.TenantID}
	if p.Workflow != "" {
		q.WriteString(" AND r.workflow = ?")
		args = append(args, p.Workflow)
	}
	if p.Status != "" {
		q.WriteString(" AND r.status = ?")
		args = append(args, string(p.Status))
	}
	if p.Before != "" {
		q.WriteString(" AND r.id < ?")
		args = append(args, p.Before)
	}
	if p.MetaKey != "" {
		q.WriteString(" AND r.id IN (SELECT m.run_id FROM run_metadata m WHERE m.tenant_id = ? AND m.key = ? AND m.value = ?)")
		args = append(args, p.TenantID, p.MetaKey, p.MetaValue)
	}
	q.WriteString(" ORDER BY r.id DESC LIMIT ?")
	args = append(args, limit)

	rows, err := s.reader.QueryContext(ctx, q.String(), args...)
	if err != nil {
		return nil, mapErr(err, "list runs")
	}
	defer rows.Close()
	var out []store.Run
	for rows.Next() {
		var r dbsqlc.Run
		if err := rows.Scan(&r.ID, &r.TenantID, &r.Workflow, &r.Status, &r.Input, &r.Output, &r.Error, &r.Metadata,
			&r.ParentRunID, &r.ParentStepRunID, &r.CreatedAt, &r.StartedAt, &r.FinishedAt, &r.SpawnKey); err != nil {
			return nil, mapErr(err, "list runs: scan")
		}
		run, err := runFromRow(r)
		if err != nil {
			return nil, err
		}
		out = append(out, run)
	}
	if err := rows.Err(); err != nil {
		return nil, mapErr(err, "list runs")
	}
	return out, nil
}

func (s *Store) ListStepRuns(ctx context.Context, runID string) ([]store.StepRun, error) {
	rows, err := s.read.ListStepRuns(ctx, runID)
	if err != nil {
		return nil, mapErr(err, "list step runs of run %s", runID)
	}
	return stepRunsFromRows(rows)
}

func (s *Store) GetStepRun(ctx context.Context, stepRunID string) (store.StepRun, error) {
	r, err := s.read.GetStepRun(ctx, stepRunID)
	if err != nil {
		return store.StepRun{}, mapErr(err, "get step run %s", stepRunID)
	}
	return stepRunFromRow(r)
}

func (s *Store) ListStepAttempts(ctx context.Context, runID string) ([]store.StepAttempt, error) {
	rows, err := s.read.ListStepAttempts(ctx, runID)
	if err != nil {
		return nil, mapErr(err, "list step attempts of run %s", runID)
	}
	out := make([]store.StepAttempt, 0, len(rows))
	for _, r := range rows {
		out = append(out, stepAttemptFromRow(r))
	}
	return out, nil
}

func (s *Store) ListWorkflows(ctx context.Context, tenantID string) ([]store.Workflow, error) {
	rows, err := s.read.ListWorkflows(ctx, tenantID)
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
	r, err := s.read.GetWorkflow(ctx, dbsqlc.GetWorkflowParams{TenantID: tenantID, Name: name})
	if err != nil {
		return store.Workflow{}, mapErr(err, "get workflow %s", name)
	}
	return workflowFromRow(r)
}

func (s *Store) GetTenant(ctx context.Context, id string) (store.Tenant, error) {
	r, err := s.read.GetTenant(ctx, id)
	if err != nil {
		return store.Tenant{}, mapErr(err, "get tenant %s", id)
	}
	return tenantFromRow(r), nil
}

func (s *Store) CountTenants(ctx context.Context) (int, error) {
	n, err := s.read.CountTenants(ctx)
	if err != nil {
		return 0, mapErr(err, "count tenants")
	}
	return int(n), nil
}

// CountActiveRuns counts the queued and running runs of every tenant.
func (s *Store) CountActiveRuns(ctx context.Context) (map[store.RunStatus]int, error) {
	rows, err := s.read.CountActiveRuns(ctx)
	if err != nil {
		return nil, mapErr(err, "count active runs")
	}
	counts := map[store.RunStatus]int{store.RunQueued: 0, store.RunRunning: 0}
	for _, r := range rows {
		counts[store.RunStatus(r.Status)] = int(r.Runs)
	}
	return counts, nil
}

// LookupToken returns the token even when it has expired; the caller checks
// ExpiresAt.
func (s *Store) LookupToken(ctx context.Context, hash string) (store.Token, error) {
	r, err := s.read.LookupToken(ctx, hash)
	if err != nil {
		// Not the hash itself in the message: it identifies a credential.
		return store.Token{}, mapErr(err, "lookup token")
	}
	return tokenFromRow(r), nil
}

func (s *Store) ListTokens(ctx context.Context) ([]store.ListedToken, error) {
	rows, err := s.read.ListTokens(ctx)
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

// TouchWorker is a write, so it runs through Write (the single writer and
// its retries).
func (s *Store) TouchWorker(ctx context.Context, tenantID, workerID string, now time.Time) error {
	return s.Write(ctx, func(stx store.Tx) error {
		n, err := stx.(*tx).q.TouchWorker(ctx, dbsqlc.TouchWorkerParams{HeartbeatAt: toMicros(now), ID: workerID, TenantID: tenantID})
		return notFoundIfNone(n, err, "touch worker %s", workerID)
	})
}

// ReadEvents reads one page in one query; see the ReadEvents query for how
// MaxBytes is applied without loading the payloads past it.
//
// The byte limit is applied while stepping through the rows: SQLite runs
// in this process, so a row not stepped to is never read, and stopping
// there costs less than having the statement find the page's end first
// (the ReadEvents query does that, for stores across a network; here it
// took half the time of a replay).
func (s *Store) ReadEvents(ctx context.Context, p store.ReadEventsParams) ([]store.Event, error) {
	limit := p.PageLimit()
	rows, err := s.readPage.QueryContext(ctx, p.TenantID, p.RunID, p.After, limit)
	if err != nil {
		return nil, mapErr(err, "read events of run %s after %d", p.RunID, p.After)
	}
	defer rows.Close()
	out := make([]store.Event, 0, min(limit, 256))
	bytes := 0
	for rows.Next() {
		if p.MaxBytes > 0 && len(out) > 0 && bytes >= p.MaxBytes {
			break
		}
		var r dbsqlc.ReadEventsRow
		if err := rows.Scan(&r.Position, &r.TenantID, &r.RunID, &r.Workflow, &r.Type, &r.StepRunID,
			&r.Step, &r.Attempt, &r.Payload, &r.Data, &r.CreatedAt, &r.Stream); err != nil {
			return nil, mapErr(err, "read events of run %s after %d", p.RunID, p.After)
		}
		bytes += len(r.Payload)
		out = append(out, eventFromRow(r))
	}
	if err := rows.Err(); err != nil {
		return nil, mapErr(err, "read events of run %s after %d", p.RunID, p.After)
	}
	return out, nil
}

// readPageQuery is ReadEvents' statement: the run's events after a
// position, off the events_run index, in order.
const readPageQuery = `SELECT e.position, e.tenant_id, e.run_id, e.workflow, e.type, e.step_run_id, e.step, e.attempt, e.payload, e.data, e.created_at, e.stream
FROM events e
WHERE e.tenant_id = ? AND e.run_id = ? AND e.position > ?
ORDER BY e.position
LIMIT ?`

func (s *Store) LastRunPosition(ctx context.Context, tenantID, runID string) (int64, error) {
	pos, err := s.read.LastRunPosition(ctx, dbsqlc.LastRunPositionParams{TenantID: tenantID, RunID: runID})
	if err != nil {
		return 0, mapErr(err, "last position of run %s", runID)
	}
	return pos, nil
}

func (s *Store) LastStreamPosition(ctx context.Context, tenantID, runID string, streams []string) (int64, error) {
	names, err := json.Marshal(streams)
	if err != nil {
		return 0, fmt.Errorf("encode stream names: %w", err)
	}
	pos, err := s.read.LastStreamPosition(ctx, dbsqlc.LastStreamPositionParams{
		TenantID: tenantID, RunID: runID, AnyStream: boolInt(streams == nil), Streams: string(names),
	})
	if err != nil {
		return 0, mapErr(err, "last stream position of run %s", runID)
	}
	return pos, nil
}
