package postgres

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/runnel-dev/runnel/internal/store"
	"github.com/runnel-dev/runnel/internal/store/postgres/internal/dbsqlc"
)

// errConflict reports a unique key taken. The inserts that can hit one use
// ON CONFLICT DO NOTHING and report zero rows instead of raising an error,
// because an error aborts the whole PostgreSQL transaction while the
// contract (and SQLite) lets the caller carry on after store.ErrConflict.
func errConflict(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), store.ErrConflict)
}

func errNotFound(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), store.ErrNotFound)
}

func (t *tx) CreateTenant(ctx context.Context, tn store.Tenant) error {
	n, err := t.q.CreateTenant(ctx, dbsqlc.CreateTenantParams{
		ID: tn.ID, Name: tn.Name, CreatedAt: micros(tn.CreatedAt),
	})
	if err != nil {
		return fmt.Errorf("create tenant %s: %w", tn.Name, dbErr(err))
	}
	if n == 0 {
		return errConflict("create tenant %s (id %s)", tn.Name, tn.ID)
	}
	return nil
}

func (t *tx) GetTenantByName(ctx context.Context, name string) (store.Tenant, error) {
	r, err := t.q.GetTenantByName(ctx, name)
	if err != nil {
		return store.Tenant{}, fmt.Errorf("get tenant by name %s: %w", name, dbErr(err))
	}
	return fromTenant(r), nil
}

func (t *tx) CreateToken(ctx context.Context, tk store.Token) error {
	n, err := t.q.CreateToken(ctx, dbsqlc.CreateTokenParams{
		ID:        tk.ID,
		TenantID:  tk.TenantID,
		Hash:      tk.Hash,
		Kind:      tk.Kind,
		Name:      tk.Name,
		RunID:     tk.RunID,
		MetaKey:   tk.MetaKey,
		MetaValue: tk.MetaValue,
		ExpiresAt: micros(tk.ExpiresAt),
		CreatedAt: micros(tk.CreatedAt),
	})
	if err != nil {
		return fmt.Errorf("create token %s: %w", tk.ID, dbErr(err))
	}
	if n == 0 {
		return errConflict("create token %s", tk.ID)
	}
	return nil
}

func (t *tx) UpsertWorkflow(ctx context.Context, w store.Workflow) error {
	err := t.q.UpsertWorkflow(ctx, dbsqlc.UpsertWorkflowParams{
		TenantID:   w.TenantID,
		Name:       w.Name,
		Definition: notNull(w.Definition),
		OnEvents:   encodeList(w.OnEvents),
		UpdatedAt:  micros(w.UpdatedAt),
	})
	if err != nil {
		return fmt.Errorf("upsert workflow %s: %w", w.Name, dbErr(err))
	}
	return nil
}

func (t *tx) GetWorkflow(ctx context.Context, tenantID, name string) (store.Workflow, error) {
	r, err := t.q.GetWorkflow(ctx, tenantID, name)
	if err != nil {
		return store.Workflow{}, fmt.Errorf("get workflow %s: %w", name, dbErr(err))
	}
	return fromWorkflow(r)
}

func (t *tx) InsertRun(ctx context.Context, r store.Run) error {
	n, err := t.q.InsertRun(ctx, dbsqlc.InsertRunParams{
		ID:              r.ID,
		TenantID:        r.TenantID,
		Workflow:        r.Workflow,
		Status:          string(r.Status),
		Input:           notNull(r.Input),
		Output:          r.Output,
		Error:           r.Error,
		Metadata:        encodeMap(r.Metadata),
		ParentRunID:     r.ParentRunID,
		ParentStepRunID: r.ParentStepRunID,
		SpawnKey:        r.SpawnKey,
		CreatedAt:       micros(r.CreatedAt),
		StartedAt:       micros(r.StartedAt),
		FinishedAt:      micros(r.FinishedAt),
	})
	if err != nil {
		return fmt.Errorf("insert run %s: %w", r.ID, dbErr(err))
	}
	if n == 0 {
		return errConflict("insert run %s", r.ID)
	}
	if len(r.Metadata) == 0 {
		return nil
	}
	// The pairs again, one row each, for the metadata filter's index.
	keys := slices.Sorted(maps.Keys(r.Metadata))
	vals := make([]string, len(keys))
	for i, k := range keys {
		vals[i] = r.Metadata[k]
	}
	err = t.q.InsertRunMetadata(ctx, dbsqlc.InsertRunMetadataParams{
		RunID: r.ID, TenantID: r.TenantID, Keys: keys, Vals: vals,
	})
	if err != nil {
		return fmt.Errorf("insert run %s metadata: %w", r.ID, dbErr(err))
	}
	return nil
}

func (t *tx) GetRunForUpdate(ctx context.Context, tenantID, runID string) (store.Run, error) {
	r, err := t.q.GetRunForUpdate(ctx, tenantID, runID)
	if err != nil {
		return store.Run{}, fmt.Errorf("get run %s for update: %w", runID, dbErr(err))
	}
	return fromRun(r)
}

func (t *tx) UpdateRun(ctx context.Context, r store.Run) error {
	n, err := t.q.UpdateRun(ctx, dbsqlc.UpdateRunParams{
		TenantID:   r.TenantID,
		ID:         r.ID,
		Status:     string(r.Status),
		Output:     r.Output,
		Error:      r.Error,
		StartedAt:  micros(r.StartedAt),
		FinishedAt: micros(r.FinishedAt),
	})
	if err != nil {
		return fmt.Errorf("update run %s: %w", r.ID, dbErr(err))
	}
	if n == 0 {
		return errNotFound("update run %s", r.ID)
	}
	return nil
}

// InsertStepRuns sends one INSERT per step, pipelined in one batch (one
// round trip for the whole run).
func (t *tx) InsertStepRuns(ctx context.Context, steps []store.StepRun) error {
	if len(steps) == 0 {
		return nil
	}
	params := make([]dbsqlc.InsertStepRunParams, len(steps))
	for i, s := range steps {
		params[i] = dbsqlc.InsertStepRunParams{
			ID:          s.ID,
			RunID:       s.RunID,
			TenantID:    s.TenantID,
			Workflow:    s.Workflow,
			Step:        s.Step,
			Parents:     encodeList(s.Parents),
			Status:      string(s.Status),
			Attempt:     int64(s.Attempt),
			Failures:    int64(s.Failures),
			Retries:     int64(s.Retries),
			BackoffMs:   s.BackoffMs,
			TimeoutMs:   s.TimeoutMs,
			WorkerID:    s.WorkerID,
			StreamSeq:   s.StreamSeq,
			AvailableAt: micros(s.AvailableAt),
			TimeoutAt:   micros(s.TimeoutAt),
			Output:      s.Output,
			Error:       s.Error,
			CreatedAt:   micros(s.CreatedAt),
			StartedAt:   micros(s.StartedAt),
			FinishedAt:  micros(s.FinishedAt),
		}
	}
	var firstErr error
	t.q.InsertStepRun(ctx, params).QueryRow(func(i int, _ string, err error) {
		if err == nil || firstErr != nil {
			return
		}
		s := steps[i]
		if errors.Is(err, pgx.ErrNoRows) {
			// ON CONFLICT DO NOTHING skipped it.
			firstErr = errConflict("insert step run %s (%s)", s.ID, s.Step)
			return
		}
		firstErr = fmt.Errorf("insert step run %s (%s): %w", s.ID, s.Step, dbErr(err))
	})
	return firstErr
}

func (t *tx) GetStepRunForUpdate(ctx context.Context, stepRunID string) (store.StepRun, error) {
	r, err := t.q.GetStepRunForUpdate(ctx, stepRunID)
	if err != nil {
		return store.StepRun{}, fmt.Errorf("get step run %s for update: %w", stepRunID, dbErr(err))
	}
	return fromStepRun(r)
}

func (t *tx) ListStepRunsForUpdate(ctx context.Context, runID string) ([]store.StepRun, error) {
	rows, err := t.q.ListStepRunsForUpdate(ctx, runID)
	if err != nil {
		return nil, fmt.Errorf("list step runs of run %s for update: %w", runID, dbErr(err))
	}
	return fromStepRuns(rows)
}

func (t *tx) UpdateStepRun(ctx context.Context, s store.StepRun) error {
	n, err := t.q.UpdateStepRun(ctx, dbsqlc.UpdateStepRunParams{
		ID:          s.ID,
		Status:      string(s.Status),
		Attempt:     int64(s.Attempt),
		Failures:    int64(s.Failures),
		Retries:     int64(s.Retries),
		BackoffMs:   s.BackoffMs,
		TimeoutMs:   s.TimeoutMs,
		WorkerID:    s.WorkerID,
		StreamSeq:   s.StreamSeq,
		AvailableAt: micros(s.AvailableAt),
		TimeoutAt:   micros(s.TimeoutAt),
		Output:      s.Output,
		Error:       s.Error,
		StartedAt:   micros(s.StartedAt),
		FinishedAt:  micros(s.FinishedAt),
	})
	if err != nil {
		return fmt.Errorf("update step run %s: %w", s.ID, dbErr(err))
	}
	if n == 0 {
		return errNotFound("update step run %s", s.ID)
	}
	return nil
}

func (t *tx) ListClaimableStepRuns(ctx context.Context, p store.ClaimParams) ([]store.StepRun, error) {
	if p.Limit <= 0 || len(p.Workflows) == 0 {
		return nil, nil
	}
	rows, err := t.q.ListClaimableStepRuns(ctx, dbsqlc.ListClaimableStepRunsParams{
		TenantID:  p.TenantID,
		Workflows: p.Workflows,
		Now:       micros(p.Now),
		RowLimit:  clampLimit(p.Limit),
	})
	if err != nil {
		return nil, fmt.Errorf("list claimable step runs: %w", dbErr(err))
	}
	return fromStepRuns(rows)
}

func (t *tx) ClaimStepRun(ctx context.Context, p store.ClaimStepRunParams) (store.StepRun, bool, error) {
	r, err := t.q.ClaimStepRun(ctx, dbsqlc.ClaimStepRunParams{
		WorkerID:  p.WorkerID,
		Now:       micros(p.Now),
		TimeoutAt: micros(p.TimeoutAt),
		ID:        p.StepRunID,
	})
	if err == nil {
		s, err := fromStepRun(r)
		return s, err == nil, err
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return store.StepRun{}, false, fmt.Errorf("claim step run %s: %w", p.StepRunID, dbErr(err))
	}
	// Nothing updated: no longer queued (false, no error), or unknown.
	if _, err := t.q.GetStepRun(ctx, p.StepRunID); err != nil {
		return store.StepRun{}, false, fmt.Errorf("claim step run %s: %w", p.StepRunID, dbErr(err))
	}
	return store.StepRun{}, false, nil
}

func (t *tx) ListTimedOutStepRuns(ctx context.Context, now time.Time, limit int) ([]store.StepRun, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := t.q.ListTimedOutStepRuns(ctx, micros(now), clampLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("list timed-out step runs: %w", dbErr(err))
	}
	return fromStepRuns(rows)
}

func (t *tx) ListStepRunsOfWorker(ctx context.Context, workerID string) ([]store.StepRun, error) {
	rows, err := t.q.ListStepRunsOfWorker(ctx, workerID)
	if err != nil {
		return nil, fmt.Errorf("list step runs of worker %s: %w", workerID, dbErr(err))
	}
	return fromStepRuns(rows)
}

func (t *tx) UpsertStepAttempt(ctx context.Context, a store.StepAttempt) error {
	n, err := t.q.UpsertStepAttempt(ctx, dbsqlc.UpsertStepAttemptParams{
		StepRunID:  a.StepRunID,
		Attempt:    int64(a.Attempt),
		Status:     string(a.Status),
		WorkerID:   a.WorkerID,
		Error:      a.Error,
		StartedAt:  micros(a.StartedAt),
		FinishedAt: micros(a.FinishedAt),
	})
	if err != nil {
		return fmt.Errorf("upsert attempt %d of step run %s: %w", a.Attempt, a.StepRunID, dbErr(err))
	}
	if n == 0 {
		return errNotFound("upsert attempt %d of step run %s", a.Attempt, a.StepRunID)
	}
	return nil
}

func (t *tx) InsertWorker(ctx context.Context, w store.Worker) error {
	n, err := t.q.InsertWorker(ctx, dbsqlc.InsertWorkerParams{
		ID:          w.ID,
		TenantID:    w.TenantID,
		Name:        w.Name,
		NodeID:      w.NodeID,
		Workflows:   encodeList(w.Workflows),
		Slots:       int64(w.Slots),
		Alive:       w.Alive,
		HeartbeatAt: micros(w.HeartbeatAt),
		CreatedAt:   micros(w.CreatedAt),
	})
	if err != nil {
		return fmt.Errorf("insert worker %s: %w", w.ID, dbErr(err))
	}
	if n == 0 {
		return errConflict("insert worker %s", w.ID)
	}
	return nil
}

func (t *tx) GetWorkerForUpdate(ctx context.Context, workerID string) (store.Worker, error) {
	r, err := t.q.GetWorkerForUpdate(ctx, workerID)
	if err != nil {
		return store.Worker{}, fmt.Errorf("get worker %s for update: %w", workerID, dbErr(err))
	}
	return fromWorker(r)
}

func (t *tx) MarkWorkerDead(ctx context.Context, workerID string) (bool, error) {
	n, err := t.q.MarkWorkerDead(ctx, workerID)
	if err != nil {
		return false, fmt.Errorf("mark worker %s dead: %w", workerID, dbErr(err))
	}
	if n > 0 {
		return true, nil
	}
	// Nothing updated: already dead (false, no error), or unknown.
	if _, err := t.q.GetWorkerForUpdate(ctx, workerID); err != nil {
		return false, fmt.Errorf("mark worker %s dead: %w", workerID, dbErr(err))
	}
	return false, nil
}

func (t *tx) ListDeadWorkers(ctx context.Context, heartbeatBefore time.Time, limit int) ([]store.Worker, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := t.q.ListDeadWorkers(ctx, micros(heartbeatBefore), clampLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("list dead workers: %w", dbErr(err))
	}
	out := make([]store.Worker, 0, len(rows))
	for _, r := range rows {
		w, err := fromWorker(r)
		if err != nil {
			return nil, err
		}
		out = append(out, w)
	}
	return out, nil
}

// clampLimit converts a positive row limit for a LIMIT parameter (int4).
func clampLimit(n int) int32 {
	return int32(min(n, 1<<31-1))
}
