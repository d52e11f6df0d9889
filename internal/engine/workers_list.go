package engine

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"time"

	"github.com/runnel-dev/runnel/internal/store"
)

// The workers connected to this node, for the dashboard's workers page
// (GET /api/v1/workers). Read from the node's sessions: no store query for
// the list itself, so a page polling it costs the store nothing but the
// lookups of the running steps.

type userAgentKey struct{}

// WithUserAgent records in ctx the User-Agent of the request that opens a
// worker session (Listen), so the workers page can say which SDK a worker
// uses. The engine is transport-agnostic: the API layer sets it.
func WithUserAgent(ctx context.Context, ua string) context.Context {
	return context.WithValue(ctx, userAgentKey{}, ua)
}

func userAgentOf(ctx context.Context) string {
	ua, _ := ctx.Value(userAgentKey{}).(string)
	if len(ua) > 256 {
		ua = ua[:256] // a header, not a place to store data
	}
	return ua
}

// ConnectedWorker is a worker session open on this node.
type ConnectedWorker struct {
	ID          string
	Name        string
	UserAgent   string
	Workflows   []string
	Slots       int
	ConnectedAt time.Time
	// HeartbeatAt is the last heartbeat this node saw (or, before the
	// first, the one of its registration).
	HeartbeatAt time.Time
	Running     []RunningStep
}

// RunningStep is a step attempt a connected worker runs. RunID, Workflow,
// Step and StartedAt are empty when the step run could not be read (it was
// deleted, or more steps run than maxRunningLookups).
type RunningStep struct {
	StepRunID string
	Attempt   int
	RunID     string
	Workflow  string
	Step      string
	StartedAt time.Time
}

// maxRunningLookups bounds the step runs one ConnectedWorkers call reads.
const maxRunningLookups = 200

// ConnectedWorkers lists the tenant's workers connected to this node, by
// name then connection time, with the step attempts each runs. Workers
// connected to other nodes sharing the database are not listed.
func (e *Engine) ConnectedWorkers(ctx context.Context, tenantID string) ([]ConnectedWorker, error) {
	e.mu.Lock()
	var out []ConnectedWorker
	for _, s := range e.sessions {
		if s.tenantID != tenantID || s.closed {
			continue
		}
		w := ConnectedWorker{
			ID: s.workerID, Name: s.name, UserAgent: s.userAgent, Workflows: slices.Clone(s.workflows),
			Slots: s.slots, ConnectedAt: s.connectedAt, HeartbeatAt: s.heartbeatAt,
		}
		for id, attempt := range s.running {
			w.Running = append(w.Running, RunningStep{StepRunID: id, Attempt: attempt})
		}
		out = append(out, w)
	}
	e.mu.Unlock()

	slices.SortFunc(out, func(a, b ConnectedWorker) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), a.ConnectedAt.Compare(b.ConnectedAt), cmp.Compare(a.ID, b.ID))
	})
	lookups := 0
	for i := range out {
		for j := range out[i].Running {
			r := &out[i].Running[j]
			if lookups == maxRunningLookups {
				break
			}
			lookups++
			sr, err := e.store.GetStepRun(ctx, r.StepRunID)
			if errors.Is(err, store.ErrNotFound) || (err == nil && sr.TenantID != tenantID) {
				continue
			}
			if err != nil {
				return nil, err
			}
			r.RunID, r.Workflow, r.Step, r.StartedAt = sr.RunID, sr.Workflow, sr.Step, sr.StartedAt
		}
		slices.SortFunc(out[i].Running, func(a, b RunningStep) int {
			return cmp.Or(a.StartedAt.Compare(b.StartedAt), cmp.Compare(a.StepRunID, b.StepRunID))
		})
	}
	return out, nil
}

// sawHeartbeat records a heartbeat on the worker's session, if it is
// connected to this node.
func (e *Engine) sawHeartbeat(workerID string, at time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if s, ok := e.sessions[workerID]; ok {
		s.heartbeatAt = at
	}
}
