package sqlite

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/runnel-dev/runnel/internal/store"
	"github.com/runnel-dev/runnel/internal/store/sqlite/internal/dbsqlc"
)

// Times are stored as Unix microseconds, the zero time as 0.

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

// String lists and maps are stored as JSON text. Empty ones read back as nil.

func encodeList(l []string) string {
	if len(l) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(l) // cannot fail for []string
	return string(b)
}

func decodeList(s string) ([]string, error) {
	var l []string
	if err := json.Unmarshal([]byte(s), &l); err != nil {
		return nil, fmt.Errorf("decode JSON list %q: %w", s, err)
	}
	if len(l) == 0 {
		return nil, nil
	}
	return l, nil
}

func encodeMap(m map[string]string) string {
	if len(m) == 0 {
		return "{}"
	}
	b, _ := json.Marshal(m) // cannot fail for map[string]string; keys sorted
	return string(b)
}

func decodeMap(s string) (map[string]string, error) {
	var m map[string]string
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return nil, fmt.Errorf("decode JSON object %q: %w", s, err)
	}
	if len(m) == 0 {
		return nil, nil
	}
	return m, nil
}

// notNull keeps a nil slice out of a NOT NULL BLOB column (the driver binds
// nil as NULL).
func notNull(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func tenantFromRow(r dbsqlc.Tenant) store.Tenant {
	return store.Tenant{ID: r.ID, Name: r.Name, CreatedAt: fromMicros(r.CreatedAt)}
}

func tokenFromRow(r dbsqlc.Token) store.Token {
	return store.Token{
		ID:        r.ID,
		TenantID:  r.TenantID,
		Hash:      r.Hash,
		Kind:      r.Kind,
		Name:      r.Name,
		RunID:     r.RunID,
		MetaKey:   r.MetaKey,
		MetaValue: r.MetaValue,
		Stream:    r.Stream,
		ExpiresAt: fromMicros(r.ExpiresAt),
		CreatedAt: fromMicros(r.CreatedAt),
		RevokedAt: fromMicros(r.RevokedAt),
		CreatedBy: r.CreatedBy,
	}
}

func workflowFromRow(r dbsqlc.Workflow) (store.Workflow, error) {
	onEvents, err := decodeList(r.OnEvents)
	if err != nil {
		return store.Workflow{}, fmt.Errorf("workflow %s on_events: %w", r.Name, err)
	}
	return store.Workflow{
		TenantID:   r.TenantID,
		Name:       r.Name,
		Definition: r.Definition,
		OnEvents:   onEvents,
		UpdatedAt:  fromMicros(r.UpdatedAt),
	}, nil
}

func runFromRow(r dbsqlc.Run) (store.Run, error) {
	md, err := decodeMap(r.Metadata)
	if err != nil {
		return store.Run{}, fmt.Errorf("run %s metadata: %w", r.ID, err)
	}
	return store.Run{
		ID:              r.ID,
		TenantID:        r.TenantID,
		Workflow:        r.Workflow,
		Status:          store.RunStatus(r.Status),
		Input:           r.Input,
		Output:          r.Output,
		Error:           r.Error,
		Metadata:        md,
		ParentRunID:     r.ParentRunID,
		ParentStepRunID: r.ParentStepRunID,
		SpawnKey:        r.SpawnKey,
		CreatedAt:       fromMicros(r.CreatedAt),
		StartedAt:       fromMicros(r.StartedAt),
		FinishedAt:      fromMicros(r.FinishedAt),
	}, nil
}

func stepRunFromRow(r dbsqlc.StepRun) (store.StepRun, error) {
	parents, err := decodeList(r.Parents)
	if err != nil {
		return store.StepRun{}, fmt.Errorf("step run %s parents: %w", r.ID, err)
	}
	return store.StepRun{
		ID:          r.ID,
		RunID:       r.RunID,
		TenantID:    r.TenantID,
		Workflow:    r.Workflow,
		Step:        r.Step,
		Parents:     parents,
		Status:      store.StepStatus(r.Status),
		Attempt:     int(r.Attempt),
		Failures:    int(r.Failures),
		Retries:     int(r.Retries),
		BackoffMs:   r.BackoffMs,
		TimeoutMs:   r.TimeoutMs,
		WorkerID:    r.WorkerID,
		StreamSeq:   r.StreamSeq,
		AvailableAt: fromMicros(r.AvailableAt),
		TimeoutAt:   fromMicros(r.TimeoutAt),
		Output:      r.Output,
		Error:       r.Error,
		CreatedAt:   fromMicros(r.CreatedAt),
		StartedAt:   fromMicros(r.StartedAt),
		FinishedAt:  fromMicros(r.FinishedAt),
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

func stepAttemptFromRow(r dbsqlc.StepAttempt) store.StepAttempt {
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

func workerFromRow(r dbsqlc.Worker) (store.Worker, error) {
	wfs, err := decodeList(r.Workflows)
	if err != nil {
		return store.Worker{}, fmt.Errorf("worker %s workflows: %w", r.ID, err)
	}
	return store.Worker{
		ID:          r.ID,
		PreviousID:  r.PreviousID,
		TenantID:    r.TenantID,
		Name:        r.Name,
		NodeID:      r.NodeID,
		Workflows:   wfs,
		Slots:       int(r.Slots),
		Alive:       r.Alive != 0,
		HeartbeatAt: fromMicros(r.HeartbeatAt),
		CreatedAt:   fromMicros(r.CreatedAt),
	}, nil
}

func eventFromRow(r dbsqlc.ReadEventsRow) store.Event {
	return store.Event{
		Position:  r.Position,
		TenantID:  r.TenantID,
		RunID:     r.RunID,
		Workflow:  r.Workflow,
		Type:      r.Type,
		StepRunID: r.StepRunID,
		Step:      r.Step,
		Attempt:   int(r.Attempt),
		Stream:    r.Stream,
		Payload:   r.Payload,
		Data:      r.Data,
		CreatedAt: fromMicros(r.CreatedAt),
	}
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
