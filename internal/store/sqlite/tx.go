package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"maps"
	"slices"
	"time"

	"github.com/runnel-dev/runnel/internal/store"
	"github.com/runnel-dev/runnel/internal/store/sqlite/internal/dbsqlc"
)

// tx implements store.Tx on one IMMEDIATE transaction of the writer. SQLite
// has no row locks, and none are needed: the transaction holds the
// database's write lock from BEGIN to COMMIT, so the ...ForUpdate reads are
// plain reads and nothing is ever "locked by others" to skip.
type tx struct {
	q *dbsqlc.Queries
	// events appended in this transaction, for the commit hook.
	events []store.Event
}

var _ store.Tx = (*tx)(nil)

// newTx runs the statements prepared on the writer (Store.prepared) inside
// sqlTx: database/sql reuses a statement already prepared on the
// transaction's connection, so no query is compiled twice.
func newTx(prepared *dbsqlc.Queries, sqlTx *sql.Tx) *tx {
	return &tx{q: prepared.WithTx(sqlTx)}
}

// ctx is the context for a statement of the transaction: the caller's
// values without its cancellation, since an interrupted statement rolls the
// whole transaction back, other writes of its batch included (write.go).
func (t *tx) ctx(ctx context.Context) context.Context { return context.WithoutCancel(ctx) }

func (t *tx) CreateTenant(ctx context.Context, tn store.Tenant) error {
	err := t.q.CreateTenant(t.ctx(ctx), dbsqlc.CreateTenantParams{ID: tn.ID, Name: tn.Name, CreatedAt: toMicros(tn.CreatedAt)})
	return mapErr(err, "create tenant %s", tn.Name)
}

func (t *tx) GetTenantByName(ctx context.Context, name string) (store.Tenant, error) {
	r, err := t.q.GetTenantByName(t.ctx(ctx), name)
	if err != nil {
		return store.Tenant{}, mapErr(err, "get tenant by name %s", name)
	}
	return tenantFromRow(r), nil
}

func (t *tx) CreateToken(ctx context.Context, tk store.Token) error {
	err := t.q.CreateToken(t.ctx(ctx), dbsqlc.CreateTokenParams{
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
	return mapErr(err, "create token %s", tk.ID)
}

func (t *tx) GetTokenForUpdate(ctx context.Context, id string) (store.Token, error) {
	r, err := t.q.GetTokenByID(t.ctx(ctx), id)
	if err != nil {
		return store.Token{}, mapErr(err, "get token %s", id)
	}
	return tokenFromRow(r), nil
}

func (t *tx) RevokeToken(ctx context.Context, id string, now time.Time) ([]string, error) {
	if _, err := t.q.GetTokenByID(t.ctx(ctx), id); err != nil {
		return nil, mapErr(err, "revoke token %s", id)
	}
	ids, err := t.q.RevokeToken(t.ctx(ctx), dbsqlc.RevokeTokenParams{Now: toMicros(now), ID: id})
	if err != nil {
		return nil, mapErr(err, "revoke token %s", id)
	}
	return ids, nil
}

func (t *tx) UpsertWorkflow(ctx context.Context, w store.Workflow) error {
	err := t.q.UpsertWorkflow(t.ctx(ctx), dbsqlc.UpsertWorkflowParams{
		TenantID:   w.TenantID,
		Name:       w.Name,
		Definition: notNull(w.Definition),
		OnEvents:   encodeList(w.OnEvents),
		UpdatedAt:  toMicros(w.UpdatedAt),
	})
	return mapErr(err, "upsert workflow %s", w.Name)
}

func (t *tx) GetWorkflow(ctx context.Context, tenantID, name string) (store.Workflow, error) {
	r, err := t.q.GetWorkflow(t.ctx(ctx), dbsqlc.GetWorkflowParams{TenantID: tenantID, Name: name})
	if err != nil {
		return store.Workflow{}, mapErr(err, "get workflow %s", name)
	}
	return workflowFromRow(r)
}

func (t *tx) InsertRun(ctx context.Context, r store.Run) error {
	err := t.q.InsertRun(t.ctx(ctx), dbsqlc.InsertRunParams{
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
	// One row per pair, in key order, for the metadata filter and index.
	for _, k := range slices.Sorted(maps.Keys(r.Metadata)) {
		err := t.q.InsertRunMetadata(t.ctx(ctx), dbsqlc.InsertRunMetadataParams{RunID: r.ID, TenantID: r.TenantID, Key: k, Value: r.Metadata[k]})
		if err != nil {
			return mapErr(err, "insert run %s metadata %s", r.ID, k)
		}
	}
	return nil
}

func (t *tx) GetRunForUpdate(ctx context.Context, tenantID, runID string) (store.Run, error) {
	r, err := t.q.GetRunForUpdate(t.ctx(ctx), dbsqlc.GetRunForUpdateParams{TenantID: tenantID, ID: runID})
	if err != nil {
		return store.Run{}, mapErr(err, "get run %s", runID)
	}
	return runFromRow(r)
}

func (t *tx) UpdateRun(ctx context.Context, r store.Run) error {
	n, err := t.q.UpdateRun(t.ctx(ctx), dbsqlc.UpdateRunParams{
		Status:     string(r.Status),
		Output:     r.Output,
		Error:      r.Error,
		StartedAt:  toMicros(r.StartedAt),
		FinishedAt: toMicros(r.FinishedAt),
		TenantID:   r.TenantID,
		ID:         r.ID,
	})
	return notFoundIfNone(n, err, "update run %s", r.ID)
}

func (t *tx) InsertStepRuns(ctx context.Context, steps []store.StepRun) error {
	for _, s := range steps {
		err := t.q.InsertStepRun(t.ctx(ctx), dbsqlc.InsertStepRunParams{
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
		})
		if err != nil {
			return mapErr(err, "insert step run %s (%s)", s.ID, s.Step)
		}
	}
	return nil
}

func (t *tx) GetStepRunForUpdate(ctx context.Context, stepRunID string) (store.StepRun, error) {
	r, err := t.q.GetStepRunForUpdate(t.ctx(ctx), stepRunID)
	if err != nil {
		return store.StepRun{}, mapErr(err, "get step run %s", stepRunID)
	}
	return stepRunFromRow(r)
}

func (t *tx) ListStepRunsForUpdate(ctx context.Context, runID string) ([]store.StepRun, error) {
	rows, err := t.q.ListStepRunsForUpdate(t.ctx(ctx), runID)
	if err != nil {
		return nil, mapErr(err, "list step runs of run %s", runID)
	}
	return stepRunsFromRows(rows)
}

func (t *tx) UpdateStepRun(ctx context.Context, s store.StepRun) error {
	n, err := t.q.UpdateStepRun(t.ctx(ctx), dbsqlc.UpdateStepRunParams{
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
		ID:          s.ID,
	})
	return notFoundIfNone(n, err, "update step run %s", s.ID)
}

func (t *tx) ListClaimableStepRuns(ctx context.Context, p store.ClaimParams) ([]store.StepRun, error) {
	if p.Limit <= 0 || len(p.Workflows) == 0 {
		return nil, nil
	}
	rows, err := t.q.ListClaimableStepRuns(t.ctx(ctx), dbsqlc.ListClaimableStepRunsParams{
		TenantID:  p.TenantID,
		Workflows: encodeList(p.Workflows),
		Now:       toMicros(p.Now),
		RowLimit:  int64(p.Limit),
	})
	if err != nil {
		return nil, mapErr(err, "list claimable step runs")
	}
	return stepRunsFromRows(rows)
}

func (t *tx) ClaimStepRun(ctx context.Context, p store.ClaimStepRunParams) (store.StepRun, bool, error) {
	r, err := t.q.ClaimStepRun(t.ctx(ctx), dbsqlc.ClaimStepRunParams{
		WorkerID:  p.WorkerID,
		Now:       toMicros(p.Now),
		TimeoutAt: toMicros(p.TimeoutAt),
		ID:        p.StepRunID,
	})
	switch {
	case err == nil:
		s, err := stepRunFromRow(r)
		return s, err == nil, err
	case !errors.Is(err, sql.ErrNoRows):
		return store.StepRun{}, false, mapErr(err, "claim step run %s", p.StepRunID)
	}
	// No row: either it is no longer queued (false, no error) or unknown.
	if _, err := t.q.GetStepRun(t.ctx(ctx), p.StepRunID); err != nil {
		return store.StepRun{}, false, mapErr(err, "claim step run %s", p.StepRunID)
	}
	return store.StepRun{}, false, nil
}

func (t *tx) ListTimedOutStepRuns(ctx context.Context, now time.Time, limit int) ([]store.StepRun, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := t.q.ListTimedOutStepRuns(t.ctx(ctx), dbsqlc.ListTimedOutStepRunsParams{Now: toMicros(now), RowLimit: int64(limit)})
	if err != nil {
		return nil, mapErr(err, "list timed-out step runs")
	}
	return stepRunsFromRows(rows)
}

func (t *tx) ListStepRunsOfWorker(ctx context.Context, workerID string) ([]store.StepRun, error) {
	rows, err := t.q.ListStepRunsOfWorker(t.ctx(ctx), workerID)
	if err != nil {
		return nil, mapErr(err, "list step runs of worker %s", workerID)
	}
	return stepRunsFromRows(rows)
}

func (t *tx) UpsertStepAttempt(ctx context.Context, a store.StepAttempt) error {
	n, err := t.q.UpsertStepAttempt(t.ctx(ctx), dbsqlc.UpsertStepAttemptParams{
		Attempt:    int64(a.Attempt),
		Status:     string(a.Status),
		WorkerID:   a.WorkerID,
		Error:      a.Error,
		StartedAt:  toMicros(a.StartedAt),
		FinishedAt: toMicros(a.FinishedAt),
		StepRunID:  a.StepRunID,
	})
	return notFoundIfNone(n, err, "upsert attempt %d of step run %s", a.Attempt, a.StepRunID)
}

func (t *tx) InsertWorker(ctx context.Context, w store.Worker) error {
	err := t.q.InsertWorker(t.ctx(ctx), dbsqlc.InsertWorkerParams{
		ID:          w.ID,
		TenantID:    w.TenantID,
		Name:        w.Name,
		NodeID:      w.NodeID,
		Workflows:   encodeList(w.Workflows),
		Slots:       int64(w.Slots),
		Alive:       boolInt(w.Alive),
		HeartbeatAt: toMicros(w.HeartbeatAt),
		CreatedAt:   toMicros(w.CreatedAt),
		PreviousID:  w.PreviousID,
	})
	return mapErr(err, "insert worker %s", w.ID)
}

func (t *tx) GetWorkerForUpdate(ctx context.Context, workerID string) (store.Worker, error) {
	r, err := t.q.GetWorkerForUpdate(t.ctx(ctx), workerID)
	if err != nil {
		return store.Worker{}, mapErr(err, "get worker %s", workerID)
	}
	return workerFromRow(r)
}

func (t *tx) MarkWorkerDead(ctx context.Context, workerID string) (bool, error) {
	n, err := t.q.MarkWorkerDead(t.ctx(ctx), workerID)
	if err != nil {
		return false, mapErr(err, "mark worker %s dead", workerID)
	}
	if n == 1 {
		return true, nil
	}
	// Already dead, or unknown.
	if _, err := t.q.GetWorkerForUpdate(t.ctx(ctx), workerID); err != nil {
		return false, mapErr(err, "mark worker %s dead", workerID)
	}
	return false, nil
}

func (t *tx) ListDeadWorkers(ctx context.Context, heartbeatBefore time.Time, limit int) ([]store.Worker, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := t.q.ListDeadWorkers(t.ctx(ctx), dbsqlc.ListDeadWorkersParams{HeartbeatBefore: toMicros(heartbeatBefore), RowLimit: int64(limit)})
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

// AppendEvents reserves len(events) positions with one UPDATE of log_head,
// then inserts the rows one by one through one prepared statement (in SQLite,
// in-process and inside one transaction, that is as fast as a multi-row
// INSERT without its parameter limit).
func (t *tx) AppendEvents(ctx context.Context, events []store.Event) error {
	if len(events) == 0 {
		return nil
	}
	last, err := t.q.BumpLogHead(t.ctx(ctx), int64(len(events)))
	if err != nil {
		return mapErr(err, "append %d events: reserve positions", len(events))
	}
	first := last - int64(len(events)) + 1
	stamp := now()
	for i := range events {
		e := &events[i]
		e.Position = first + int64(i)
		if e.CreatedAt.IsZero() {
			e.CreatedAt = stamp
		}
		err := t.q.AppendEvent(t.ctx(ctx), dbsqlc.AppendEventParams{
			Position:    e.Position,
			TenantID:    e.TenantID,
			RunID:       e.RunID,
			Workflow:    e.Workflow,
			Type:        e.Type,
			StepRunID:   e.StepRunID,
			Step:        e.Step,
			Attempt:     int64(e.Attempt),
			Payload:     e.Payload,
			Data:        e.Data,
			CreatedAt:   toMicros(e.CreatedAt),
			PayloadSize: int64(len(e.Payload)),
			Stream:      e.Stream,
		})
		if err != nil {
			return mapErr(err, "append event %d (%s) of run %s", e.Position, e.Type, e.RunID)
		}
	}
	t.events = append(t.events, events...)
	return nil
}

func (t *tx) StreamClosed(ctx context.Context, stepRunID string, attempt int, stream string) (bool, error) {
	closed, err := t.q.StreamClosed(t.ctx(ctx), dbsqlc.StreamClosedParams{StepRunID: stepRunID, Attempt: int64(attempt), Stream: stream})
	if err != nil {
		return false, mapErr(err, "is stream %q of step run %s attempt %d closed", stream, stepRunID, attempt)
	}
	return closed, nil
}
