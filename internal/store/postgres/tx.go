package postgres

import (
	"context"
	"errors"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/runnel-dev/runnel/internal/store"
	"github.com/runnel-dev/runnel/internal/store/postgres/internal/dbsqlc"
)

func (t *tx) CreateTenant(ctx context.Context, tn store.Tenant) error {
	n, err := t.q.CreateTenant(ctx, dbsqlc.CreateTenantParams{
		ID: tn.ID, Name: tn.Name, CreatedAt: toMicros(tn.CreatedAt),
	})
	if err != nil {
		return mapErr(err, "create tenant %s", tn.Name)
	}
	if n == 0 {
		return errConflict("create tenant %s (id %s)", tn.Name, tn.ID)
	}
	return nil
}

func (t *tx) GetTenantByName(ctx context.Context, name string) (store.Tenant, error) {
	r, err := t.q.GetTenantByName(ctx, name)
	if err != nil {
		return store.Tenant{}, mapErr(err, "get tenant by name %s", name)
	}
	return tenantFromRow(r), nil
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
		Stream:    tk.Stream,
		ExpiresAt: toMicros(tk.ExpiresAt),
		CreatedAt: toMicros(tk.CreatedAt),
		CreatedBy: tk.CreatedBy,
	})
	if err != nil {
		return mapErr(err, "create token %s", tk.ID)
	}
	if n == 0 {
		return errConflict("create token %s", tk.ID)
	}
	return nil
}

func (t *tx) GetTokenForUpdate(ctx context.Context, id string) (store.Token, error) {
	r, err := t.q.GetTokenByIDForUpdate(ctx, id)
	if err != nil {
		return store.Token{}, mapErr(err, "get token %s", id)
	}
	return tokenFromRow(r), nil
}

// RevokeToken also tells every engine node, through the notification
// channel at commit, to forget the token (see RevokedPayloadPrefix).
func (t *tx) RevokeToken(ctx context.Context, id string, now time.Time) ([]string, error) {
	if _, err := t.q.GetTokenByIDForUpdate(ctx, id); err != nil {
		return nil, mapErr(err, "revoke token %s", id)
	}
	ids, err := t.q.RevokeToken(ctx, toMicros(now), id)
	if err != nil {
		return nil, mapErr(err, "revoke token %s", id)
	}
	if len(ids) > 0 {
		if err := t.q.NotifyEvents(ctx, t.channel, RevokedPayloadPrefix+id); err != nil {
			return nil, mapErr(err, "revoke token %s: notify %s", id, t.channel)
		}
	}
	return ids, nil
}

func (t *tx) UpsertWorkflow(ctx context.Context, w store.Workflow) error {
	err := t.q.UpsertWorkflow(ctx, dbsqlc.UpsertWorkflowParams{
		TenantID:   w.TenantID,
		Name:       w.Name,
		Definition: notNull(w.Definition),
		OnEvents:   encodeList(w.OnEvents),
		UpdatedAt:  toMicros(w.UpdatedAt),
	})
	if err != nil {
		return mapErr(err, "upsert workflow %s", w.Name)
	}
	return nil
}

func (t *tx) GetWorkflow(ctx context.Context, tenantID, name string) (store.Workflow, error) {
	r, err := t.q.GetWorkflow(ctx, tenantID, name)
	if err != nil {
		return store.Workflow{}, mapErr(err, "get workflow %s", name)
	}
	return workflowFromRow(r)
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
		CreatedAt:       toMicros(r.CreatedAt),
		StartedAt:       toMicros(r.StartedAt),
		FinishedAt:      toMicros(r.FinishedAt),
	})
	if err != nil {
		return mapErr(err, "insert run %s", r.ID)
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
		return mapErr(err, "insert run %s metadata", r.ID)
	}
	return nil
}

func (t *tx) GetRunForUpdate(ctx context.Context, tenantID, runID string) (store.Run, error) {
	r, err := t.q.GetRunForUpdate(ctx, tenantID, runID)
	if err != nil {
		return store.Run{}, mapErr(err, "get run %s for update", runID)
	}
	return runFromRow(r)
}

func (t *tx) UpdateRun(ctx context.Context, r store.Run) error {
	n, err := t.q.UpdateRun(ctx, dbsqlc.UpdateRunParams{
		TenantID:   r.TenantID,
		ID:         r.ID,
		Status:     string(r.Status),
		Output:     r.Output,
		Error:      r.Error,
		StartedAt:  toMicros(r.StartedAt),
		FinishedAt: toMicros(r.FinishedAt),
	})
	return notFoundIfNone(n, err, "update run %s", r.ID)
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
			AvailableAt: toMicros(s.AvailableAt),
			TimeoutAt:   toMicros(s.TimeoutAt),
			Output:      s.Output,
			Error:       s.Error,
			CreatedAt:   toMicros(s.CreatedAt),
			StartedAt:   toMicros(s.StartedAt),
			FinishedAt:  toMicros(s.FinishedAt),
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
		firstErr = mapErr(err, "insert step run %s (%s)", s.ID, s.Step)
	})
	return firstErr
}

func (t *tx) GetStepRunForUpdate(ctx context.Context, stepRunID string) (store.StepRun, error) {
	r, err := t.q.GetStepRunForUpdate(ctx, stepRunID)
	if err != nil {
		return store.StepRun{}, mapErr(err, "get step run %s for update", stepRunID)
	}
	return stepRunFromRow(r)
}

func (t *tx) ListStepRunsForUpdate(ctx context.Context, runID string) ([]store.StepRun, error) {
	rows, err := t.q.ListStepRunsForUpdate(ctx, runID)
	if err != nil {
		return nil, mapErr(err, "list step runs of run %s for update", runID)
	}
	return stepRunsFromRows(rows)
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
		AvailableAt: toMicros(s.AvailableAt),
		TimeoutAt:   toMicros(s.TimeoutAt),
		Output:      s.Output,
		Error:       s.Error,
		StartedAt:   toMicros(s.StartedAt),
		FinishedAt:  toMicros(s.FinishedAt),
	})
	return notFoundIfNone(n, err, "update step run %s", s.ID)
}

func (t *tx) ListClaimableStepRuns(ctx context.Context, p store.ClaimParams) ([]store.StepRun, error) {
	if p.Limit <= 0 || len(p.Workflows) == 0 {
		return nil, nil
	}
	rows, err := t.q.ListClaimableStepRuns(ctx, dbsqlc.ListClaimableStepRunsParams{
		TenantID:  p.TenantID,
		Workflows: p.Workflows,
		Now:       toMicros(p.Now),
		RowLimit:  clampLimit(p.Limit),
	})
	if err != nil {
		return nil, mapErr(err, "list claimable step runs")
	}
	return stepRunsFromRows(rows)
}

func (t *tx) ClaimStepRun(ctx context.Context, p store.ClaimStepRunParams) (store.StepRun, bool, error) {
	r, err := t.q.ClaimStepRun(ctx, dbsqlc.ClaimStepRunParams{
		WorkerID:  p.WorkerID,
		Now:       toMicros(p.Now),
		TimeoutAt: toMicros(p.TimeoutAt),
		ID:        p.StepRunID,
	})
	if err == nil {
		s, err := stepRunFromRow(r)
		return s, err == nil, err
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return store.StepRun{}, false, mapErr(err, "claim step run %s", p.StepRunID)
	}
	// Nothing updated: no longer queued (false, no error), or unknown.
	if _, err := t.q.GetStepRun(ctx, p.StepRunID); err != nil {
		return store.StepRun{}, false, mapErr(err, "claim step run %s", p.StepRunID)
	}
	return store.StepRun{}, false, nil
}

func (t *tx) ListTimedOutStepRuns(ctx context.Context, now time.Time, limit int) ([]store.StepRun, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := t.q.ListTimedOutStepRuns(ctx, toMicros(now), clampLimit(limit))
	if err != nil {
		return nil, mapErr(err, "list timed-out step runs")
	}
	return stepRunsFromRows(rows)
}

func (t *tx) ListStepRunsOfWorker(ctx context.Context, workerID string) ([]store.StepRun, error) {
	rows, err := t.q.ListStepRunsOfWorker(ctx, workerID)
	if err != nil {
		return nil, mapErr(err, "list step runs of worker %s", workerID)
	}
	return stepRunsFromRows(rows)
}

func (t *tx) UpsertStepAttempt(ctx context.Context, a store.StepAttempt) error {
	n, err := t.q.UpsertStepAttempt(ctx, dbsqlc.UpsertStepAttemptParams{
		StepRunID:  a.StepRunID,
		Attempt:    int64(a.Attempt),
		Status:     string(a.Status),
		WorkerID:   a.WorkerID,
		Error:      a.Error,
		StartedAt:  toMicros(a.StartedAt),
		FinishedAt: toMicros(a.FinishedAt),
	})
	return notFoundIfNone(n, err, "upsert attempt %d of step run %s", a.Attempt, a.StepRunID)
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
		HeartbeatAt: toMicros(w.HeartbeatAt),
		CreatedAt:   toMicros(w.CreatedAt),
		PreviousID:  w.PreviousID,
	})
	if err != nil {
		return mapErr(err, "insert worker %s", w.ID)
	}
	if n == 0 {
		return errConflict("insert worker %s", w.ID)
	}
	return nil
}

func (t *tx) GetWorkerForUpdate(ctx context.Context, workerID string) (store.Worker, error) {
	r, err := t.q.GetWorkerForUpdate(ctx, workerID)
	if err != nil {
		return store.Worker{}, mapErr(err, "get worker %s for update", workerID)
	}
	return workerFromRow(r)
}

func (t *tx) MarkWorkerDead(ctx context.Context, workerID string) (bool, error) {
	n, err := t.q.MarkWorkerDead(ctx, workerID)
	if err != nil {
		return false, mapErr(err, "mark worker %s dead", workerID)
	}
	if n > 0 {
		return true, nil
	}
	// Nothing updated: already dead (false, no error), or unknown.
	if _, err := t.q.GetWorkerForUpdate(ctx, workerID); err != nil {
		return false, mapErr(err, "mark worker %s dead", workerID)
	}
	return false, nil
}

func (t *tx) ListDeadWorkers(ctx context.Context, heartbeatBefore time.Time, limit int) ([]store.Worker, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := t.q.ListDeadWorkers(ctx, toMicros(heartbeatBefore), clampLimit(limit))
	if err != nil {
		return nil, mapErr(err, "list dead workers")
	}
	out := make([]store.Worker, 0, len(rows))
	for _, r := range rows {
		w, err := workerFromRow(r)
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
