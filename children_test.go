package runnel

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"connectrpc.com/connect"

	runnelv1 "github.com/runnel-dev/runnel/internal/gen/runnel/v1"
	"github.com/runnel-dev/runnel/internal/gen/runnel/v1/runnelv1connect"
)

// spawnWorkers adds a scriptable SpawnRun to the fake worker service.
type spawnWorkers struct {
	*fakeWorkers

	mu     sync.Mutex
	spawns []*runnelv1.SpawnRunRequest
	errs   []error // returned by the next SpawnRun calls
}

func (s *spawnWorkers) SpawnRun(_ context.Context, req *connect.Request[runnelv1.SpawnRunRequest]) (*connect.Response[runnelv1.SpawnRunResponse], error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.spawns = append(s.spawns, req.Msg)
	if err := popErr(&s.errs); err != nil {
		return nil, err
	}
	id := fmt.Sprintf("child-%s-%d-%s", req.Msg.GetParentStepRunId(), req.Msg.GetParentAttempt(), req.Msg.GetKey())
	return connect.NewResponse(&runnelv1.SpawnRunResponse{RunId: id}), nil
}

// Spawns are numbered per attempt, a transient failure is retried with the
// same key, and a permanent one is returned.
func TestSpawnWorkflowKeysAndRetries(t *testing.T) {
	sw := &spawnWorkers{fakeWorkers: newFakeWorkers()}
	sw.errs = []error{
		nil,
		connect.NewError(connect.CodeUnavailable, errors.New("try again")),
		nil,
		connect.NewError(connect.CodeFailedPrecondition, errors.New("attempt is stale")),
	}
	c := newFakeServer(t, sw, nil).client(t)
	wf := NewWorkflow("wf").Step("a", func(ctx Context) (any, error) {
		var ids []string
		for i := range 3 {
			child, err := ctx.SpawnWorkflow("child", map[string]int{"i": i},
				WithAdditionalMetadata(map[string]string{"i": fmt.Sprint(i)}))
			if err != nil {
				ids = append(ids, "error: "+err.Error())
				continue
			}
			ids = append(ids, child.RunID())
		}
		return ids, nil
	})
	startWorker(t, c, 1, wf)
	sess := recv(t, sw.sessions, "Listen")
	sess.assign(t, assignment("sr1", "wf", "a", 2))
	done := recv(t, sw.completes, "CompleteStep")

	want := `["child-sr1-2-0","child-sr1-2-1","error: spawn workflow \"child\": failed_precondition: attempt is stale"]`
	if got := string(done.GetOutput()); got != want {
		t.Errorf("step output %s, want %s", got, want)
	}
	sw.mu.Lock()
	defer sw.mu.Unlock()
	var keys []string
	for _, r := range sw.spawns {
		if r.GetParentStepRunId() != "sr1" || r.GetParentAttempt() != 2 || r.GetWorkflow() != "child" {
			t.Errorf("spawn request %v: want step run sr1, attempt 2, workflow child", r)
		}
		if r.GetAdditionalMetadata()["i"] != r.GetKey() {
			t.Errorf("spawn %s sent metadata %v", r.GetKey(), r.GetAdditionalMetadata())
		}
		keys = append(keys, r.GetKey())
	}
	if want := []string{"0", "1", "1", "2"}; !slices.Equal(keys, want) {
		t.Errorf("spawn keys %v, want %v (the retry keeps its key)", keys, want)
	}
}

// pushRuns is a RunService that only takes pushed events.
type pushRuns struct {
	runnelv1connect.UnimplementedRunServiceHandler
	got chan *runnelv1.PushEventRequest
}

func (p *pushRuns) PushEvent(_ context.Context, req *connect.Request[runnelv1.PushEventRequest]) (*connect.Response[runnelv1.PushEventResponse], error) {
	p.got <- req.Msg
	if req.Msg.GetKey() == "nobody" {
		return connect.NewResponse(&runnelv1.PushEventResponse{}), nil
	}
	return connect.NewResponse(&runnelv1.PushEventResponse{RunIds: []string{"r1", "r2"}}), nil
}

func TestEventPush(t *testing.T) {
	pr := &pushRuns{got: make(chan *runnelv1.PushEventRequest, 4)}
	c := newFakeServer(t, nil, pr).client(t)
	ctx := context.Background()

	ids, err := c.Event().Push(ctx, "user:create", map[string]string{"user": "u1"},
		WithAdditionalMetadata(map[string]string{"source": "test"}))
	if err != nil || !slices.Equal(ids, []string{"r1", "r2"}) {
		t.Fatalf("Push = %v, %v", ids, err)
	}
	req := recv(t, pr.got, "PushEvent")
	if req.GetKey() != "user:create" || string(req.GetPayload()) != `{"user":"u1"}` || req.GetAdditionalMetadata()["source"] != "test" {
		t.Errorf("request %v", req)
	}

	ids, err = c.Event().Push(ctx, "nobody", nil)
	if err != nil || ids == nil || len(ids) != 0 {
		t.Fatalf("Push to a key nobody listens to = %#v, %v; want an empty list", ids, err)
	}
	if req := recv(t, pr.got, "PushEvent"); string(req.GetPayload()) != "{}" {
		t.Errorf("nil payload sent as %q, want {}", req.GetPayload())
	}

	// Invalid JSON is refused before it is sent.
	if _, err := c.Event().Push(ctx, "k", []byte("{nope")); err == nil {
		t.Error("Push with invalid JSON: no error")
	}
}
