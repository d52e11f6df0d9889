package runnel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"time"

	"connectrpc.com/connect"

	runnelv1 "github.com/runnel-dev/runnel/internal/gen/runnel/v1"
	"github.com/runnel-dev/runnel/internal/kinds"
)

// Admin triggers, inspects and cancels runs. Get one from [Client.Admin].
//
// Errors returned by its methods wrap the engine's [connect.Error], so
// [connect.CodeOf] tells, for example, connect.CodeNotFound (no such run or
// workflow), connect.CodeInvalidArgument, connect.CodeUnauthenticated
// (missing or bad token) or connect.CodePermissionDenied apart.
type Admin struct {
	c *Client
}

// RunStatus is the state of a run.
type RunStatus string

// Run states, spelled "queued", "running", "completed", "failed",
// "cancelled" and "timed_out" on the wire. Completed, failed, cancelled and
// timed out are terminal.
const (
	RunQueued    RunStatus = RunStatus(kinds.RunQueued)
	RunRunning   RunStatus = RunStatus(kinds.RunRunning)
	RunCompleted RunStatus = RunStatus(kinds.RunCompleted)
	RunFailed    RunStatus = RunStatus(kinds.RunFailed)
	RunCancelled RunStatus = RunStatus(kinds.RunCancelled)
	RunTimedOut  RunStatus = RunStatus(kinds.RunTimedOut)
)

// Terminal reports whether the run has finished: no further change can
// happen to it.
func (s RunStatus) Terminal() bool { return kinds.RunStatus(s).Terminal() }

// StepStatus is the state of a step run (of its current attempt).
type StepStatus string

// Step run states, spelled "pending", "queued", "running", "completed",
// "failed", "cancelled" and "timed_out" on the wire. Completed, failed,
// cancelled and timed out are terminal.
const (
	// StepPending: waiting for its parent steps to complete.
	StepPending   StepStatus = StepStatus(kinds.StepPending)
	StepQueued    StepStatus = StepStatus(kinds.StepQueued)
	StepRunning   StepStatus = StepStatus(kinds.StepRunning)
	StepCompleted StepStatus = StepStatus(kinds.StepCompleted)
	StepFailed    StepStatus = StepStatus(kinds.StepFailed)
	StepCancelled StepStatus = StepStatus(kinds.StepCancelled)
	StepTimedOut  StepStatus = StepStatus(kinds.StepTimedOut)
)

// Terminal reports whether the step run will not run again.
func (s StepStatus) Terminal() bool { return kinds.StepStatus(s).Terminal() }

// Run is one execution of a workflow, as returned by [Admin.GetRun] and
// [Admin.ListRuns].
type Run struct {
	// ID is the run id that [Admin.RunWorkflow] returned.
	ID string `json:"id"`
	// Workflow is the name of the run's workflow.
	Workflow string `json:"workflow"`
	// Status is the run's state; see [RunStatus.Terminal].
	Status RunStatus `json:"status"`
	// Input is the run's JSON input.
	Input json.RawMessage `json:"input"`
	// Output is the run's JSON output (the outputs of its steps) once it
	// completed; nil before.
	Output json.RawMessage `json:"output,omitempty"`
	// Error says why the run failed, timed out or was cancelled.
	Error string `json:"error,omitempty"`
	// AdditionalMetadata is the run's metadata (see
	// [WithAdditionalMetadata]); empty, not nil, if it has none.
	AdditionalMetadata map[string]string `json:"additionalMetadata"`
	// ParentRunID is set for a child run.
	ParentRunID string `json:"parentRunId,omitempty"`
	// ParentStepRunID is the step run that spawned a child run.
	ParentStepRunID string `json:"parentStepRunId,omitempty"`
	// CreatedAt is when the run was triggered.
	CreatedAt time.Time `json:"createdAt"`
	// StartedAt is zero until the first step started.
	StartedAt time.Time `json:"startedAt"`
	// FinishedAt is zero until the run is terminal.
	FinishedAt time.Time `json:"finishedAt"`
	// Steps are the run's step runs; [Admin.ListRuns] may leave them out.
	Steps []StepRun `json:"steps,omitempty"`
}

// StepRun is one step of a run.
type StepRun struct {
	// ID is the step run's id (an event's StepRunID).
	ID string `json:"id"`
	// Step is the step's name in its workflow.
	Step string `json:"step"`
	// Parents are the steps it waits for.
	Parents []string `json:"parents,omitempty"`
	// Status is the state of its current attempt.
	Status StepStatus `json:"status"`
	// Attempt is the current attempt (1, 2, …); 0 while it never ran.
	Attempt int `json:"attempt"`
	// Output is the step's JSON output once it completed.
	Output json.RawMessage `json:"output,omitempty"`
	// Error is the error of the latest failed attempt.
	Error string `json:"error,omitempty"`
	// StartedAt is the start of the current attempt; zero if none.
	StartedAt time.Time `json:"startedAt"`
	// FinishedAt is zero until the step run is terminal.
	FinishedAt time.Time `json:"finishedAt"`
	// Attempts is the history of every attempt, oldest first.
	Attempts []StepAttempt `json:"attempts,omitempty"`
}

// StepAttempt is the record of one attempt of a step run.
type StepAttempt struct {
	// Attempt is the attempt's number, from 1.
	Attempt int `json:"attempt"`
	// Status is how the attempt ended, or running.
	Status StepStatus `json:"status"`
	// WorkerID is the engine's id of the worker session that ran it.
	WorkerID string `json:"workerId"`
	// Error says why the attempt failed, timed out or was cancelled.
	Error string `json:"error,omitempty"`
	// StartedAt is when the attempt was assigned to its worker.
	StartedAt time.Time `json:"startedAt"`
	// FinishedAt is zero while the attempt runs.
	FinishedAt time.Time `json:"finishedAt"`
}

// WorkflowInfo describes a registered workflow, as returned by
// [Admin.ListWorkflows].
type WorkflowInfo struct {
	// Name is the workflow's name.
	Name string
	// Steps are its steps, as registered.
	Steps []StepInfo
	// OnEvents are the event keys that trigger it (see [Workflow.OnEvents]).
	OnEvents []string
}

// StepInfo describes a step of a registered workflow.
type StepInfo struct {
	// Name is the step's name.
	Name string
	// Parents are the steps it waits for (see [Parents]).
	Parents []string
	// Retries is how often a failed attempt is retried (see [Retries]).
	Retries int
	// Backoff is the base of the delay before a retry (see [Backoff]).
	Backoff time.Duration
	// Timeout limits each attempt; 0 is none (see [Timeout]).
	Timeout time.Duration
}

// RunOption configures [Admin.RunWorkflow].
type RunOption interface {
	applyToRun(*runConfig)
}

type runConfig struct {
	metadata map[string]string
}

type runOptionFunc func(*runConfig)

func (f runOptionFunc) applyToRun(c *runConfig) { f(c) }

// WithAdditionalMetadata attaches string key/value metadata to the run.
// Child runs inherit it, and a metadata subscription follows every run that
// carries a given key and value. Repeated options are merged, later keys
// winning.
func WithAdditionalMetadata(meta map[string]string) RunOption {
	meta = maps.Clone(meta)
	return runOptionFunc(func(c *runConfig) {
		if c.metadata == nil {
			c.metadata = make(map[string]string, len(meta))
		}
		maps.Copy(c.metadata, meta)
	})
}

// RunWorkflow triggers a run of the named workflow and returns its run id.
//
// The input is marshalled to JSON; nil becomes {}. A [json.RawMessage] or
// []byte is sent as is and must be valid JSON. The run is queued when
// RunWorkflow returns; follow it with [Listener.Stream] or [Admin.GetRun].
//
// Errors: the input cannot be marshalled or is not valid JSON, or the engine
// refused the call (connect.CodeNotFound for an unknown workflow).
func (a *Admin) RunWorkflow(ctx context.Context, workflow string, input any, opts ...RunOption) (string, error) {
	var cfg runConfig
	for _, opt := range opts {
		opt.applyToRun(&cfg)
	}
	data, err := marshalInput(input)
	if err != nil {
		return "", fmt.Errorf("run workflow %q: %w", workflow, err)
	}
	resp, err := a.c.run.TriggerRun(ctx, connect.NewRequest(&runnelv1.TriggerRunRequest{
		Workflow:           workflow,
		Input:              data,
		AdditionalMetadata: cfg.metadata,
	}))
	if err != nil {
		return "", fmt.Errorf("run workflow %q: %w", workflow, err)
	}
	return resp.Msg.GetRunId(), nil
}

// marshalInput turns a run input into JSON.
func marshalInput(input any) ([]byte, error) {
	var raw []byte
	switch v := input.(type) {
	case nil:
		return []byte("{}"), nil
	case json.RawMessage:
		raw = v
	case []byte:
		raw = v
	default:
		data, err := json.Marshal(input)
		if err != nil {
			return nil, fmt.Errorf("marshal input: %w", err)
		}
		return data, nil
	}
	if len(raw) == 0 {
		return []byte("{}"), nil
	}
	if !json.Valid(raw) {
		return nil, errors.New("input is not valid JSON")
	}
	return raw, nil
}

// GetRun returns a run with its steps and their attempts.
//
// Errors: connect.CodeNotFound if no run with that id is visible to the
// token's tenant.
func (a *Admin) GetRun(ctx context.Context, runID string) (*Run, error) {
	resp, err := a.c.run.GetRun(ctx, connect.NewRequest(&runnelv1.GetRunRequest{RunId: runID}))
	if err != nil {
		return nil, fmt.Errorf("get run %s: %w", runID, err)
	}
	if resp.Msg.GetRun() == nil {
		return nil, fmt.Errorf("get run %s: engine returned no run", runID)
	}
	return runFromProto(resp.Msg.GetRun()), nil
}

// ListRunsOptions filters [Admin.ListRuns]. Zero fields do not filter.
type ListRunsOptions struct {
	// Workflow selects runs of this workflow.
	Workflow string
	// Status selects runs in this state.
	Status RunStatus
	// MetaKey and MetaValue select runs whose additional metadata has this
	// key with this value.
	MetaKey string
	// MetaValue is the value MetaKey must have.
	MetaValue string
	// Limit caps the number of runs returned; 0 lets the engine choose.
	Limit int
	// Before pages backwards: only runs created before the run with this id.
	// Pass the ID of the last run of the previous page.
	Before string
}

// ListRuns returns runs, newest first.
//
// Errors: connect.CodeInvalidArgument for a bad filter, or a transport error.
func (a *Admin) ListRuns(ctx context.Context, opts ListRunsOptions) ([]*Run, error) {
	if opts.Limit < 0 {
		return nil, fmt.Errorf("list runs: negative limit %d", opts.Limit)
	}
	resp, err := a.c.run.ListRuns(ctx, connect.NewRequest(&runnelv1.ListRunsRequest{
		Workflow:  opts.Workflow,
		Status:    string(opts.Status),
		MetaKey:   opts.MetaKey,
		MetaValue: opts.MetaValue,
		Limit:     int32(min(opts.Limit, 1<<31-1)),
		Before:    opts.Before,
	}))
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	runs := make([]*Run, 0, len(resp.Msg.GetRuns()))
	for _, r := range resp.Msg.GetRuns() {
		runs = append(runs, runFromProto(r))
	}
	return runs, nil
}

// CancelRun cancels a run: its running steps' contexts are cancelled and no
// further steps start. Cancelling a finished run is not an error.
//
// Errors: connect.CodeNotFound if there is no such run.
func (a *Admin) CancelRun(ctx context.Context, runID string) error {
	if _, err := a.c.run.CancelRun(ctx, connect.NewRequest(&runnelv1.CancelRunRequest{RunId: runID})); err != nil {
		return fmt.Errorf("cancel run %s: %w", runID, err)
	}
	return nil
}

// ListWorkflows returns the workflows registered in the token's tenant.
func (a *Admin) ListWorkflows(ctx context.Context) ([]WorkflowInfo, error) {
	resp, err := a.c.run.ListWorkflows(ctx, connect.NewRequest(&runnelv1.ListWorkflowsRequest{}))
	if err != nil {
		return nil, fmt.Errorf("list workflows: %w", err)
	}
	infos := make([]WorkflowInfo, 0, len(resp.Msg.GetWorkflows()))
	for _, wf := range resp.Msg.GetWorkflows() {
		info := WorkflowInfo{Name: wf.GetName(), OnEvents: wf.GetOnEvents()}
		for _, s := range wf.GetSteps() {
			info.Steps = append(info.Steps, StepInfo{
				Name:    s.GetName(),
				Parents: s.GetParents(),
				Retries: int(s.GetRetries()),
				Backoff: time.Duration(s.GetBackoffMs()) * time.Millisecond,
				Timeout: time.Duration(s.GetTimeoutMs()) * time.Millisecond,
			})
		}
		infos = append(infos, info)
	}
	return infos, nil
}

// CreateToken mints an API token for a tenant (created if it does not
// exist) that never expires, and returns its secret; name labels it. Only
// admin tokens may do this; see MintToken for expiring and admin tokens.
//
// Errors: connect.CodePermissionDenied for a non-admin token.
func (a *Admin) CreateToken(ctx context.Context, tenant, name string) (string, error) {
	tok, err := a.MintToken(ctx, TokenOptions{Tenant: tenant, Name: name})
	if err != nil {
		return "", err
	}
	return tok.Secret, nil
}

// TokenOptions describe a token to mint with MintToken.
type TokenOptions struct {
	Tenant string // created if new; "" is the default tenant
	Name   string // a label, shown by ListTokens
	// ExpiresIn is the token's lifetime; 0: it never expires.
	ExpiresIn time.Duration
	// Admin mints an admin token, which may also mint, list and revoke
	// tokens.
	Admin bool
}

// MintedToken is a new token: its secret, shown only this once, and its id
// (for RevokeToken).
type MintedToken struct {
	Secret    string    // the token itself (rnl_...), sent as the bearer
	ID        string    // identifies it for ListTokens and RevokeToken
	TenantID  string    // the tenant it belongs to
	ExpiresAt time.Time // zero: never
}

// MintToken mints an API or admin token. Only admin tokens may do this.
//
// Errors: connect.CodePermissionDenied for a non-admin token,
// connect.CodeInvalidArgument for a bad tenant, name or lifetime.
func (a *Admin) MintToken(ctx context.Context, o TokenOptions) (MintedToken, error) {
	resp, err := a.c.run.CreateToken(ctx, connect.NewRequest(&runnelv1.CreateTokenRequest{
		Tenant: o.Tenant, Name: o.Name, Admin: o.Admin, ExpiresInMs: o.ExpiresIn.Milliseconds(),
	}))
	if err != nil {
		return MintedToken{}, fmt.Errorf("create token for tenant %q: %w", o.Tenant, err)
	}
	return MintedToken{
		Secret: resp.Msg.GetToken(), ID: resp.Msg.GetTokenId(), TenantID: resp.Msg.GetTenantId(),
		ExpiresAt: fromMicros(resp.Msg.GetExpiresAtUs()),
	}, nil
}

// TokenInfo describes an API or admin token (never its secret).
type TokenInfo struct {
	ID        string    `json:"id"`                 // for RevokeToken
	Tenant    string    `json:"tenant"`             // the tenant's name
	Kind      string    `json:"kind"`               // "admin" or "api"
	Name      string    `json:"name"`               // the label given when it was minted
	CreatedAt time.Time `json:"createdAt"`          // when it was minted
	ExpiresAt time.Time `json:"expiresAt,omitzero"` // zero: never
	RevokedAt time.Time `json:"revokedAt,omitzero"` // zero: not revoked
}

// ListTokens lists the API and admin tokens of every tenant, revoked and
// expired ones included, oldest first (browser tokens are not listed: they
// live 24 hours at most). Only admin tokens may do this.
func (a *Admin) ListTokens(ctx context.Context) ([]TokenInfo, error) {
	resp, err := a.c.run.ListTokens(ctx, connect.NewRequest(&runnelv1.ListTokensRequest{}))
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	out := make([]TokenInfo, 0, len(resp.Msg.GetTokens()))
	for _, t := range resp.Msg.GetTokens() {
		out = append(out, TokenInfo{
			ID: t.GetId(), Tenant: t.GetTenant(), Kind: t.GetKind(), Name: t.GetName(),
			CreatedAt: fromMicros(t.GetCreatedAtUs()), ExpiresAt: fromMicros(t.GetExpiresAtUs()),
			RevokedAt: fromMicros(t.GetRevokedAtUs()),
		})
	}
	return out, nil
}

// RevokeToken revokes a token by id, and the browser tokens it minted: the
// engine refuses them from then on, on every node, and ends their live
// subscriptions. It returns the ids revoked now (none if the token was
// already revoked). Only admin tokens may do this, and not on themselves.
//
// Errors: connect.CodeNotFound for an unknown id,
// connect.CodeFailedPrecondition for the calling token itself.
func (a *Admin) RevokeToken(ctx context.Context, id string) ([]string, error) {
	resp, err := a.c.run.RevokeToken(ctx, connect.NewRequest(&runnelv1.RevokeTokenRequest{TokenId: id}))
	if err != nil {
		return nil, fmt.Errorf("revoke token %s: %w", id, err)
	}
	return resp.Msg.GetRevokedIds(), nil
}

// fromMicros converts the protocol's microsecond timestamps; 0 means unset.
func fromMicros(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us)
}

func rawJSON(b []byte) json.RawMessage {
	if len(b) == 0 {
		return nil
	}
	return json.RawMessage(b)
}

func runFromProto(r *runnelv1.Run) *Run {
	run := &Run{
		ID:                 r.GetId(),
		Workflow:           r.GetWorkflow(),
		Status:             RunStatus(r.GetStatus()),
		Input:              rawJSON(r.GetInput()),
		Output:             rawJSON(r.GetOutput()),
		Error:              r.GetError(),
		AdditionalMetadata: r.GetAdditionalMetadata(),
		ParentRunID:        r.GetParentRunId(),
		ParentStepRunID:    r.GetParentStepRunId(),
		CreatedAt:          fromMicros(r.GetCreatedAtUs()),
		StartedAt:          fromMicros(r.GetStartedAtUs()),
		FinishedAt:         fromMicros(r.GetFinishedAtUs()),
	}
	if run.AdditionalMetadata == nil {
		run.AdditionalMetadata = map[string]string{}
	}
	for _, s := range r.GetSteps() {
		sr := StepRun{
			ID:         s.GetId(),
			Step:       s.GetStep(),
			Parents:    s.GetParents(),
			Status:     StepStatus(s.GetStatus()),
			Attempt:    int(s.GetAttempt()),
			Output:     rawJSON(s.GetOutput()),
			Error:      s.GetError(),
			StartedAt:  fromMicros(s.GetStartedAtUs()),
			FinishedAt: fromMicros(s.GetFinishedAtUs()),
		}
		for _, a := range s.GetAttempts() {
			sr.Attempts = append(sr.Attempts, StepAttempt{
				Attempt:    int(a.GetAttempt()),
				Status:     StepStatus(a.GetStatus()),
				WorkerID:   a.GetWorkerId(),
				Error:      a.GetError(),
				StartedAt:  fromMicros(a.GetStartedAtUs()),
				FinishedAt: fromMicros(a.GetFinishedAtUs()),
			})
		}
		run.Steps = append(run.Steps, sr)
	}
	return run
}
