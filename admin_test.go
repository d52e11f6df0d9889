package runnel

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"connectrpc.com/connect"

	runnelv1 "github.com/runnel-dev/runnel/internal/gen/runnel/v1"
)

func TestMarshalInput(t *testing.T) {
	cases := []struct {
		in   any
		want string
		err  bool
	}{
		{nil, `{}`, false},
		{map[string]int{"n": 3}, `{"n":3}`, false},
		{json.RawMessage(`{"a":1}`), `{"a":1}`, false},
		{[]byte(`[1,2]`), `[1,2]`, false},
		{[]byte(``), `{}`, false},
		{[]byte(`{nope`), ``, true},
		{json.RawMessage(`{`), ``, true},
		{func() {}, ``, true},
	}
	for _, tc := range cases {
		got, err := marshalInput(tc.in)
		if (err != nil) != tc.err || string(got) != tc.want {
			t.Errorf("marshalInput(%T %v) = %s, %v", tc.in, tc.in, got, err)
		}
	}
}

func TestAdminRunWorkflow(t *testing.T) {
	var got *runnelv1.TriggerRunRequest
	fr := &fakeRuns{trigger: func(req *runnelv1.TriggerRunRequest) (*runnelv1.TriggerRunResponse, error) {
		if req.GetWorkflow() == "missing" {
			return nil, connect.NewError(connect.CodeNotFound, errors.New("no such workflow"))
		}
		got = req
		return &runnelv1.TriggerRunResponse{RunId: "run-1"}, nil
	}}
	c := newFakeServer(t, nil, fr).client(t)
	ctx := context.Background()
	id, err := c.Admin().RunWorkflow(ctx, "wf", map[string]int{"n": 2},
		WithAdditionalMetadata(map[string]string{"a": "1", "b": "1"}),
		WithAdditionalMetadata(map[string]string{"b": "2"}))
	if err != nil || id != "run-1" {
		t.Fatalf("RunWorkflow = %q, %v", id, err)
	}
	if string(got.GetInput()) != `{"n":2}` || got.GetAdditionalMetadata()["a"] != "1" || got.GetAdditionalMetadata()["b"] != "2" {
		t.Errorf("request = %v", got)
	}
	_, err = c.Admin().RunWorkflow(ctx, "missing", nil)
	if connect.CodeOf(err) != connect.CodeNotFound || !strings.HasPrefix(err.Error(), `run workflow "missing": `) {
		t.Errorf("RunWorkflow(missing) = %v", err)
	}
	if _, err := c.Admin().RunWorkflow(ctx, "wf", []byte("{")); err == nil || !strings.Contains(err.Error(), "not valid JSON") {
		t.Errorf("RunWorkflow with invalid JSON = %v", err)
	}
}

func TestAdminGetRun(t *testing.T) {
	const us = 1_700_000_000_000_000
	fr := &fakeRuns{getRun: func(req *runnelv1.GetRunRequest) (*runnelv1.GetRunResponse, error) {
		return &runnelv1.GetRunResponse{Run: &runnelv1.Run{
			Id: req.GetRunId(), Workflow: "wf", Status: "completed",
			Input: []byte(`{}`), Output: []byte(`{"a":1}`),
			AdditionalMetadata: map[string]string{"k": "v"},
			CreatedAtUs:        us, StartedAtUs: us + 1, FinishedAtUs: us + 2,
			Steps: []*runnelv1.StepRun{{
				Id: "sr1", Step: "a", Status: "completed", Attempt: 2, Output: []byte(`1`), StartedAtUs: us + 1,
				Attempts: []*runnelv1.StepAttempt{
					{Attempt: 1, Status: "failed", WorkerId: "w1", Error: "boom", StartedAtUs: us, FinishedAtUs: us + 1},
					{Attempt: 2, Status: "completed", WorkerId: "w2", StartedAtUs: us + 1},
				},
			}},
		}}, nil
	}}
	c := newFakeServer(t, nil, fr).client(t)
	run, err := c.Admin().GetRun(context.Background(), "r1")
	if err != nil {
		t.Fatal(err)
	}
	if run.ID != "r1" || run.Status != RunCompleted || !run.Status.Terminal() || string(run.Output) != `{"a":1}` ||
		run.AdditionalMetadata["k"] != "v" || run.CreatedAt.UnixMicro() != us || run.FinishedAt.UnixMicro() != us+2 {
		t.Errorf("run = %+v", run)
	}
	if len(run.Steps) != 1 {
		t.Fatalf("steps = %v", run.Steps)
	}
	s := run.Steps[0]
	if s.Attempt != 2 || s.Status != StepCompleted || !s.FinishedAt.IsZero() || len(s.Attempts) != 2 ||
		s.Attempts[0].Error != "boom" || s.Attempts[1].WorkerID != "w2" || !s.Attempts[1].FinishedAt.IsZero() {
		t.Errorf("step = %+v", s)
	}
	if RunQueued.Terminal() || RunRunning.Terminal() || !RunTimedOut.Terminal() {
		t.Error("RunStatus.Terminal is wrong")
	}
	if got := fromMicros(0); !got.IsZero() {
		t.Errorf("fromMicros(0) = %v", got)
	}
}
