package runnel

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"connectrpc.com/connect"

	runnelv1 "github.com/runnel-dev/runnel/internal/gen/runnel/v1"
)

// ChildRun is a run started by a step with [Context.SpawnWorkflow].
type ChildRun struct {
	c        *Client
	runID    string
	workflow string
}

// RunID returns the child run's id, to follow it with [Listener.Stream] or
// inspect it with [Admin.GetRun].
func (r *ChildRun) RunID() string { return r.runID }

// Workflow returns the name of the child run's workflow.
func (r *ChildRun) Workflow() string { return r.workflow }

// Result waits until the child run ends and, if it completed, unmarshals
// its output into v (unless v is nil): like [Run.Output], a JSON object of
// its steps' outputs by step name. Call it with the step's [Context] as
// ctx, so that waiting stops when the step is cancelled.
//
// Errors: a [*ChildRunError] if the child failed, was cancelled or timed
// out; ctx's error when ctx ends first; an error unmarshalling the output.
func (r *ChildRun) Result(ctx context.Context, v any) error {
	// Only the terminal run event is of interest; the subscription
	// reconnects by itself and ends after it.
	for _, err := range r.c.Listener().Stream(ctx, r.runID, WithTypes(terminalTypes...)) {
		if err != nil {
			return fmt.Errorf("wait for child run %s of %q: %w", r.runID, r.workflow, err)
		}
	}
	run, err := r.c.Admin().GetRun(ctx, r.runID)
	if err != nil {
		return fmt.Errorf("wait for child run %s of %q: %w", r.runID, r.workflow, err)
	}
	if run.Status != RunCompleted {
		return &ChildRunError{RunID: r.runID, Workflow: r.workflow, Status: run.Status, Message: run.Error}
	}
	if v == nil {
		return nil
	}
	if err := json.Unmarshal(run.Output, v); err != nil {
		return fmt.Errorf("output of child run %s of %q: %w", r.runID, r.workflow, err)
	}
	return nil
}

// ChildRunError says that a child run ended without completing.
type ChildRunError struct {
	// RunID is the child run's id.
	RunID string
	// Workflow is the child run's workflow.
	Workflow string
	// Status is failed, cancelled or timed_out.
	Status RunStatus
	// Message is the run's error.
	Message string
}

// Error says which child run ended how, and why.
func (e *ChildRunError) Error() string {
	msg := fmt.Sprintf("child run %s of %q %s", e.RunID, e.Workflow, e.Status)
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return msg
}

// SpawnWorkflow implements [Context.SpawnWorkflow].
func (c *stepContext) SpawnWorkflow(workflow string, input any, opts ...RunOption) (*ChildRun, error) {
	var cfg runConfig
	for _, opt := range opts {
		opt.applyToRun(&cfg)
	}
	data, err := marshalInput(input)
	if err != nil {
		return nil, fmt.Errorf("spawn workflow %q: %w", workflow, err)
	}
	// The spawn's number within this attempt is its key: the engine keeps
	// one child per (step run, attempt, key), so the request below may be
	// sent again safely.
	key := strconv.FormatInt(c.spawns.Add(1)-1, 10)
	req := &runnelv1.SpawnRunRequest{
		ParentStepRunId:    c.a.GetStepRunId(),
		ParentAttempt:      c.a.GetAttempt(),
		Workflow:           workflow,
		Input:              data,
		AdditionalMetadata: cfg.metadata,
		Key:                key,
	}
	tun := c.w.tun
	bo := newBackoff(tun.reportBase, tun.reportMax)
	for {
		cctx, cancel := context.WithTimeout(c, tun.callTimeout)
		resp, err := c.w.c.worker.SpawnRun(cctx, connect.NewRequest(req))
		cancel()
		switch {
		case err == nil:
			return &ChildRun{c: c.w.c, runID: resp.Msg.GetRunId(), workflow: workflow}, nil
		case c.Err() != nil:
			return nil, fmt.Errorf("spawn workflow %q: %w", workflow, context.Cause(c))
		case !isTransient(err):
			return nil, fmt.Errorf("spawn workflow %q: %w", workflow, err)
		}
		if !sleep(c, bo.next()) {
			return nil, fmt.Errorf("spawn workflow %q: %w", workflow, context.Cause(c))
		}
	}
}
