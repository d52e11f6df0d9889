package postgres

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/runnel-dev/runnel/internal/store"
	"github.com/runnel-dev/runnel/internal/store/postgres/internal/dbsqlc"
)

// Times are stored as Unix microseconds, 0 meaning unset; these two helpers
// are the only place that converts.

func toMicros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromMicros(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}

// now is the time the store stamps on rows the caller left unset, at the
// precision it stores.
func now() time.Time {
	return time.Now().UTC().Truncate(time.Microsecond)
}

// Lists and maps are stored as JSON text. Empty ones read back as nil, so a
// value round-trips whether the caller wrote nil or empty.

func encodeList(v []string) string {
	if len(v) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(v) // a []string always marshals
	return string(b)
}

func decodeList(s, what string) ([]string, error) {
	if s == "" || s == "[]" {
		return nil, nil
	}
	var v []string
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return nil, fmt.Errorf("decode %s: %w", what, err)
	}
	return v, nil
}

func encodeMap(m map[string]string) string {
	if len(m) == 0 {
		return "{}"
	}
	b, _ := json.Marshal(m) // a map[string]string always marshals
	return string(b)
}

func decodeMap(s, what string) (map[string]string, error) {
	if s == "" || s == "{}" {
		return nil, nil
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return nil, fmt.Errorf("decode %s: %w", what, err)
	}
	return m, nil
}

// notNull gives a NOT NULL bytea column a value: pgx sends a nil slice as
// NULL.
func notNull(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// emptyToNil undoes notNull when reading.
func emptyToNil(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

func tenantFromRow(t dbsqlc.Tenant) store.Tenant {
	return store.Tenant{ID: t.ID, Name: t.Name, CreatedAt: fromMicros(t.CreatedAt)}
}

func tokenFromRow(t dbsqlc.Token) store.Token {
	return store.Token{
		ID:        t.ID,
		TenantID:  t.TenantID,
		Hash:      t.Hash,
		Kind:      t.Kind,
		Name:      t.Name,
		RunID:     t.RunID,
		MetaKey:   t.MetaKey,
		MetaValue: t.MetaValue,
		Stream:    t.Stream,
		ExpiresAt: fromMicros(t.ExpiresAt),
		CreatedAt: fromMicros(t.CreatedAt),
		RevokedAt: fromMicros(t.RevokedAt),
		CreatedBy: t.CreatedBy,
	}
}

func workflowFromRow(w dbsqlc.Workflow) (store.Workflow, error) {
	onEvents, err := decodeList(w.OnEvents, "workflow "+w.Name+" on_events")
	if err != nil {
		return store.Workflow{}, err
	}
	return store.Workflow{
		TenantID:   w.TenantID,
		Name:       w.Name,
		Definition: emptyToNil(w.Definition),
		OnEvents:   onEvents,
		UpdatedAt:  fromMicros(w.UpdatedAt),
	}, nil
}

func runFromRow(r dbsqlc.Run) (store.Run, error) {
	meta, err := decodeMap(r.Metadata, "run "+r.ID+" metadata")
	if err != nil {
		return store.Run{}, err
	}
	return store.Run{
		ID:              r.ID,
		TenantID:        r.TenantID,
		Workflow:        r.Workflow,
		Status:          store.RunStatus(r.Status),
		Input:           emptyToNil(r.Input),
		Output:          r.Output,
		Error:           r.Error,
		Metadata:        meta,
		ParentRunID:     r.ParentRunID,
		ParentStepRunID: r.ParentStepRunID,
		SpawnKey:        r.SpawnKey,
		CreatedAt:       fromMicros(r.CreatedAt),
		StartedAt:       fromMicros(r.StartedAt),
		FinishedAt:      fromMicros(r.FinishedAt),
	}, nil
}

func stepRunFromRow(s dbsqlc.StepRun) (store.StepRun, error) {
	parents, err := decodeList(s.Parents, "step run "+s.ID+" parents")
	if err != nil {
		return store.StepRun{}, err
	}
	return store.StepRun{
		ID:          s.ID,
		RunID:       s.RunID,
		TenantID:    s.TenantID,
		Workflow:    s.Workflow,
		Step:        s.Step,
		Parents:     parents,
		Status:      store.StepStatus(s.Status),
		Attempt:     int(s.Attempt),
		Failures:    int(s.Failures),
		Retries:     int(s.Retries),
		BackoffMs:   s.BackoffMs,
		TimeoutMs:   s.TimeoutMs,
		WorkerID:    s.WorkerID,
		StreamSeq:   s.StreamSeq,
		AvailableAt: fromMicros(s.AvailableAt),
		TimeoutAt:   fromMicros(s.TimeoutAt),
		Output:      s.Output,
		Error:       s.Error,
		CreatedAt:   fromMicros(s.CreatedAt),
		StartedAt:   fromMicros(s.StartedAt),
		FinishedAt:  fromMicros(s.FinishedAt),
	}, nil
}

func stepRunsFromRows(rows []dbsqlc.StepRun) ([]store.StepRun, error) {
	out := make([]store.StepRun, 0, len(rows))
	for _, r := range rows {
		s, err := stepRunFromRow(r)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func stepAttemptFromRow(r dbsqlc.ListStepAttemptsRow) store.StepAttempt {
	return store.StepAttempt{
		StepRunID:  r.StepRunID,
		Attempt:    int(r.Attempt),
		Status:     store.StepStatus(r.Status),
		WorkerID:   r.WorkerID,
		Error:      r.Error,
		StartedAt:  fromMicros(r.StartedAt),
		FinishedAt: fromMicros(r.FinishedAt),
	}
}

func workerFromRow(w dbsqlc.Worker) (store.Worker, error) {
	workflows, err := decodeList(w.Workflows, "worker "+w.ID+" workflows")
	if err != nil {
		return store.Worker{}, err
	}
	return store.Worker{
		ID:          w.ID,
		PreviousID:  w.PreviousID,
		TenantID:    w.TenantID,
		Name:        w.Name,
		NodeID:      w.NodeID,
		Workflows:   workflows,
		Slots:       int(w.Slots),
		Alive:       w.Alive,
		HeartbeatAt: fromMicros(w.HeartbeatAt),
		CreatedAt:   fromMicros(w.CreatedAt),
	}, nil
}

func eventFromRow(e dbsqlc.Event) store.Event {
	return store.Event{
		Position:  e.Position,
		TenantID:  e.TenantID,
		RunID:     e.RunID,
		Workflow:  e.Workflow,
		Type:      e.Type,
		StepRunID: e.StepRunID,
		Step:      e.Step,
		Attempt:   int(e.Attempt),
		Stream:    e.Stream,
		Payload:   e.Payload,
		Data:      e.Data,
		CreatedAt: fromMicros(e.CreatedAt),
	}
}
