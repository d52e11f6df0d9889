package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/runnel-dev/runnel/internal/apierr"
	"github.com/runnel-dev/runnel/internal/eventlog"
	"github.com/runnel-dev/runnel/internal/metrics"
	"github.com/runnel-dev/runnel/internal/store"
)

// Input limits.
const (
	MaxInputSize     = 4 << 20
	maxMetadataPairs = 64
	maxMetaKeyLen    = 128
	maxMetaValueLen  = 1024
)

// TriggerParams starts a run.
type TriggerParams struct {
	TenantID string
	Workflow string
	Input    []byte // JSON; empty means {}
	Metadata map[string]string
}

// TriggerRun stores a new run of a registered workflow and queues its root
// steps. Errors: NotFound for an unknown workflow (naming the registered
// ones), InvalidArgument for input that is not JSON or bad metadata.
func (e *Engine) TriggerRun(ctx context.Context, p TriggerParams) (string, error) {
	if err := CheckText("workflow name", p.Workflow); err != nil {
		return "", err
	}
	input, err := normalizeInput(p.Input)
	if err != nil {
		return "", err
	}
	if err := validateMetadata(p.Metadata); err != nil {
		return "", err
	}
	def, err := e.loadWorkflowDef(ctx, p.TenantID, p.Workflow)
	if err != nil {
		return "", err
	}
	run, steps := newRunRows(runSpec{TenantID: p.TenantID, Input: input, Metadata: p.Metadata}, def, e.now())
	err = e.groups.write(ctx, e.store, run.ID, func(tx store.Tx) error { return insertRunRows(ctx, tx, run, steps) })
	if err != nil {
		return "", err
	}
	e.metrics.RunTriggered(run.Workflow)
	e.log.Debug("run triggered", "run_id", run.ID, "workflow", run.Workflow)
	e.wakeDispatcher()
	return run.ID, nil
}

// loadWorkflowDef reads a registered workflow's definition. Errors: NotFound
// naming the registered workflows.
func (e *Engine) loadWorkflowDef(ctx context.Context, tenantID, name string) (WorkflowDef, error) {
	wf, err := e.store.GetWorkflowByName(ctx, tenantID, name)
	if errors.Is(err, store.ErrNotFound) {
		return WorkflowDef{}, e.unknownWorkflow(ctx, tenantID, name)
	}
	if err != nil {
		return WorkflowDef{}, fmt.Errorf("load workflow %q: %w", name, err)
	}
	return decodeWorkflowDef(wf.Definition)
}

// runSpec is what a new run is made of besides its workflow's definition.
// Input and Metadata are validated by the caller.
type runSpec struct {
	TenantID string
	Input    []byte
	Metadata map[string]string
	// Child runs only.
	ParentRunID, ParentStepRunID, SpawnKey string
}

// newRunRows builds a queued run of def and its step runs: roots queued,
// the others pending until their parents complete. Every way of starting a
// run (trigger, spawn, event) goes through here and insertRunRows.
func newRunRows(spec runSpec, def WorkflowDef, now time.Time) (store.Run, []store.StepRun) {
	run := store.Run{
		ID: newID(), TenantID: spec.TenantID, Workflow: def.Name, Status: store.RunQueued,
		Input: spec.Input, Metadata: spec.Metadata, ParentRunID: spec.ParentRunID,
		ParentStepRunID: spec.ParentStepRunID, SpawnKey: spec.SpawnKey, CreatedAt: now,
	}
	if run.Metadata == nil {
		run.Metadata = map[string]string{}
	}
	steps := make([]store.StepRun, 0, len(def.Steps))
	for _, sd := range def.Steps {
		status := store.StepQueued
		if len(sd.Parents) > 0 {
			status = store.StepPending
		}
		steps = append(steps, store.StepRun{
			ID: newID(), RunID: run.ID, TenantID: run.TenantID, Workflow: def.Name, Step: sd.Name,
			Parents: sd.Parents, Status: status, Retries: sd.Retries, BackoffMs: sd.BackoffMs,
			TimeoutMs: sd.TimeoutMs, AvailableAt: now, CreatedAt: now,
		})
	}
	return run, steps
}

// insertRunRows stores a run built by newRunRows and its step runs.
func insertRunRows(ctx context.Context, tx store.Tx, run store.Run, steps []store.StepRun) error {
	if err := tx.InsertRun(ctx, run); err != nil {
		return fmt.Errorf("insert run of %q: %w", run.Workflow, err)
	}
	if err := tx.InsertStepRuns(ctx, steps); err != nil {
		return fmt.Errorf("insert step runs of run %s: %w", run.ID, err)
	}
	return nil
}

func (e *Engine) unknownWorkflow(ctx context.Context, tenantID, name string) error {
	wfs, err := e.store.ListWorkflows(ctx, tenantID)
	if err != nil {
		return fmt.Errorf("list workflows: %w", err)
	}
	names := make([]string, 0, len(wfs))
	for _, w := range wfs {
		names = append(names, w.Name)
	}
	if len(names) == 0 {
		return apierr.New(apierr.NotFound, "unknown workflow %q: no workflows are registered yet (start a worker that registers it)", name)
	}
	slices.Sort(names)
	return apierr.New(apierr.NotFound, "unknown workflow %q (registered: %s)", name, strings.Join(names, ", "))
}

func normalizeInput(in []byte) ([]byte, error) {
	if len(strings.TrimSpace(string(in))) == 0 {
		return []byte("{}"), nil
	}
	if len(in) > MaxInputSize {
		return nil, apierr.New(apierr.InvalidArgument, "input of %d bytes exceeds the %d MiB limit", len(in), MaxInputSize>>20)
	}
	if !json.Valid(in) {
		return nil, apierr.New(apierr.InvalidArgument, "input is not valid JSON")
	}
	if err := CheckJSONText("input", in); err != nil {
		return nil, err
	}
	return in, nil
}

func validateMetadata(m map[string]string) error {
	if len(m) > maxMetadataPairs {
		return apierr.New(apierr.InvalidArgument, "additional metadata has %d pairs, more than the limit of %d", len(m), maxMetadataPairs)
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if err := CheckText("additional metadata key "+strconv.Quote(truncateText(k)), k); err != nil {
			return err
		}
		if err := CheckText("additional metadata value of "+strconv.Quote(truncateText(k)), m[k]); err != nil {
			return err
		}
		if k == "" || len(k) > maxMetaKeyLen {
			return apierr.New(apierr.InvalidArgument, "additional metadata key %q: want 1-%d bytes", k, maxMetaKeyLen)
		}
		if len(m[k]) > maxMetaValueLen {
			return apierr.New(apierr.InvalidArgument, "additional metadata value of %q: %d bytes, more than the limit of %d", k, len(m[k]), maxMetaValueLen)
		}
	}
	return nil
}

// CancelRun cancels a run that has not finished: steps that never started
// are cancelled, running ones are cancelled and their workers told to stop.
// Errors: NotFound, FailedPrecondition when the run already finished.
func (e *Engine) CancelRun(ctx context.Context, tenantID, runID string) (store.RunStatus, error) {
	if err := CheckText("run id", runID); err != nil {
		return "", err
	}
	var rs *runState
	err := e.store.Write(ctx, func(tx store.Tx) error {
		var err error
		if rs, err = lockRun(ctx, tx, tenantID, runID, e.now()); err != nil {
			return err
		}
		if rs.run.Status.Terminal() {
			return apierr.New(apierr.FailedPrecondition, "run %s already finished (%s)", runID, rs.run.Status)
		}
		rs.finishRun(store.RunCancelled, nil, "cancelled")
		return rs.save(ctx, tx)
	})
	if err != nil {
		return "", err
	}
	e.afterCommit(rs)
	// The run is cancelled whatever happens next; children the cascade
	// misses (the caller hung up, the database hiccupped) are left to the
	// maintenance sweep.
	if err := e.cancelDescendants(context.WithoutCancel(ctx), runID); err != nil {
		e.log.Warn("cancel children of cancelled run", "run_id", runID, "err", err)
	}
	return rs.run.Status, nil
}

// RunView is a run with its steps and their attempts.
type RunView struct {
	store.Run
	Steps []StepView
}

// StepView is a step run with its attempt history.
type StepView struct {
	store.StepRun
	Attempts []store.StepAttempt
}

// ReadRun returns a run the principal may read. Runs of other tenants and
// runs outside a browser token's scope look unknown (NotFound), so ids do
// not leak. Every edge reads runs through here.
func (e *Engine) ReadRun(ctx context.Context, p Principal, runID string) (RunView, error) {
	view, err := e.GetRun(ctx, p.TenantID, runID)
	if err != nil {
		return view, err
	}
	if !p.CanReadRun(view.Run) {
		return RunView{}, apierr.New(apierr.NotFound, "unknown run %s", runID)
	}
	return view, nil
}

// GetRun returns a run with its steps and attempts. Errors: NotFound.
func (e *Engine) GetRun(ctx context.Context, tenantID, runID string) (RunView, error) {
	if err := CheckText("run id", runID); err != nil {
		return RunView{}, err
	}
	run, err := e.store.GetRun(ctx, tenantID, runID)
	if err != nil {
		return RunView{}, notFound(err, "unknown run %s", runID)
	}
	steps, err := e.store.ListStepRuns(ctx, runID)
	if err != nil {
		return RunView{}, fmt.Errorf("list step runs of %s: %w", runID, err)
	}
	attempts, err := e.store.ListStepAttempts(ctx, runID)
	if err != nil {
		return RunView{}, fmt.Errorf("list attempts of %s: %w", runID, err)
	}
	view := RunView{Run: run, Steps: make([]StepView, len(steps))}
	for i, s := range steps {
		view.Steps[i].StepRun = s
		for _, a := range attempts {
			if a.StepRunID == s.ID {
				view.Steps[i].Attempts = append(view.Steps[i].Attempts, a)
			}
		}
		slices.SortFunc(view.Steps[i].Attempts, func(a, b store.StepAttempt) int { return a.Attempt - b.Attempt })
	}
	return view, nil
}

// ListRuns lists runs newest first. Errors: InvalidArgument for bad filters.
func (e *Engine) ListRuns(ctx context.Context, p store.ListRunsParams) ([]store.Run, error) {
	if err := checkTexts("workflow filter", p.Workflow, "status filter", string(p.Status),
		"metadata filter key", p.MetaKey, "metadata filter value", p.MetaValue, "before", p.Before); err != nil {
		return nil, err
	}
	if p.Status != "" && !p.Status.Valid() {
		return nil, apierr.New(apierr.InvalidArgument, "unknown run status %q (want queued, running, completed, failed, cancelled or timed_out)", p.Status)
	}
	if (p.MetaKey == "") != (p.MetaValue == "") && p.MetaKey == "" {
		return nil, apierr.New(apierr.InvalidArgument, "a metadata filter needs a key")
	}
	if p.Before != "" && !isRunID(p.Before) {
		return nil, apierr.New(apierr.InvalidArgument, "invalid before %q: want a run id (the nextBefore of the previous page)", truncateText(p.Before))
	}
	if p.Limit < 0 || p.Limit > store.MaxRunsLimit {
		return nil, apierr.New(apierr.InvalidArgument, "limit %d out of range 1..%d", p.Limit, store.MaxRunsLimit)
	}
	if p.Limit == 0 {
		p.Limit = store.DefaultRunsLimit
	}
	return e.store.ListRuns(ctx, p)
}

// isRunID reports whether s has the form of a run id (a UUID in its
// canonical 36-character form).
func isRunID(s string) bool {
	if len(s) != 36 {
		return false
	}
	_, err := uuid.Parse(s)
	return err == nil
}

// ListWorkflows returns the tenant's registered workflows, by name; each
// Definition is the JSON form of a WorkflowDef.
func (e *Engine) ListWorkflows(ctx context.Context, tenantID string) ([]store.Workflow, error) {
	return e.store.ListWorkflows(ctx, tenantID)
}

// EventTypes lists every event type of the run event log.
var EventTypes = []string{
	store.EventRunStarted, store.EventRunCompleted, store.EventRunFailed, store.EventRunCancelled,
	store.EventRunTimedOut, store.EventStepStarted, store.EventStepCompleted, store.EventStepFailed,
	store.EventStepCancelled, store.EventStepTimedOut, store.EventStepStream, store.EventStepStreamClosed,
}

// SubscribeParams opens a run subscription.
type SubscribeParams struct {
	TenantID string
	RunID    string
	// From is "" or "start" (the beginning of the run), "now" (only new
	// events), "latest" (the newest stream event of the chosen streams and
	// everything after it; the start when there is none), or a client
	// position to resume after.
	From  string
	Types []string
	// Streams keeps only the stream events of these streams ("default" or
	// "" is the unnamed one; nil: all).
	Streams []string
	// Principal is who subscribes, counted against the subscriber limits.
	Principal Principal
}

// Subscribe delivers a run's events from the start point until the run's
// terminal event (then returns nil); see eventlog.Reader.Follow. Errors:
// NotFound for an unknown run or one outside the principal's scope, InvalidArgument for a bad start point or type,
// ResourceExhausted over the subscriber limits, Unavailable when the node
// is shutting down (before or during the subscription).
func (e *Engine) Subscribe(ctx context.Context, p SubscribeParams, deliver eventlog.Deliver) error {
	if err := CheckText("run id", p.RunID); err != nil {
		return err
	}
	// Every edge (RPC, SSE, the dashboard, the SDK proxies) subscribes
	// through here, so the principal's scope is checked once, here: a run
	// outside it looks unknown, so a token cannot probe for other runs.
	run, err := e.store.GetRun(ctx, p.TenantID, p.RunID)
	if err != nil || !p.Principal.CanReadRun(run) {
		return notFound(orNotFound(err), "unknown run %s", p.RunID)
	}
	streams, err := parseStreams(p.Streams)
	if err != nil {
		return err
	}
	from := p.From
	if from == FromLatest {
		from = ""
	}
	start, err := e.parseSubscription(ctx, from, p.Types)
	if err != nil {
		return err
	}
	if p.From == FromLatest {
		var names []string // nil: any stream
		for name := range streams {
			names = append(names, name)
		}
		last, err := e.store.LastStreamPosition(ctx, p.TenantID, p.RunID, names)
		if err != nil {
			return fmt.Errorf("find the newest stream event of run %s: %w", p.RunID, err)
		}
		if last > 0 {
			// Positions are unique integers: resuming after last-1 starts
			// with the event at last.
			start.after = last - 1
		}
	}
	ctx, finish, err := e.subscription(ctx, p.Principal)
	if err != nil {
		return err
	}
	fp := eventlog.FollowParams{
		TenantID: p.TenantID, RunID: p.RunID, After: start.after, FromNow: start.fromNow, Types: start.types, Streams: streams,
	}
	sub := e.metrics.Subscribed(ctx, metrics.SourceRun)
	defer sub.Done()
	err = finish(e.reader.Follow(ctx, fp, sub.Deliver(deliver)))
	return notFound(err, "unknown run %s", p.RunID)
}

// FromLatest starts a run subscription at its newest stream event.
const FromLatest = "latest"

// parseStreams checks the stream names a subscriber chose; nil: all.
func parseStreams(names []string) (map[string]bool, error) {
	if len(names) == 0 {
		return nil, nil
	}
	if len(names) > maxSubscribedStreams {
		return nil, apierr.New(apierr.InvalidArgument, "%d streams chosen; at most %d", len(names), maxSubscribedStreams)
	}
	out := make(map[string]bool, len(names))
	for _, n := range names {
		stored, err := eventlog.StreamName(n)
		if err != nil {
			return nil, err
		}
		out[stored] = true
	}
	return out, nil
}

// maxSubscribedStreams bounds the streams one subscription names.
const maxSubscribedStreams = 64

// subscriptionStart is where a subscription starts and what it keeps.
type subscriptionStart struct {
	after   int64
	fromNow bool
	types   map[string]bool // nil: every type
}

// parseSubscription reads a subscription's start point ("" or "start",
// "now", or a client position) and event types, shared by run and metadata
// subscriptions. Errors: InvalidArgument, also for a position beyond the
// log's newest one, which no event ever had: resuming after it would skip,
// silently, every event until the log got there.
func (e *Engine) parseSubscription(ctx context.Context, from string, types []string) (subscriptionStart, error) {
	var s subscriptionStart
	switch from {
	case "", "start":
	case "now":
		s.fromNow = true
	case FromLatest:
		return s, apierr.New(apierr.InvalidArgument, "from=latest is for run subscriptions (the newest event of a run's streams)")
	default:
		pos, err := e.codec.Decode(from)
		if err != nil {
			return s, err
		}
		head, err := e.store.LastPosition(ctx)
		if err != nil {
			return s, fmt.Errorf("read the log's newest position: %w", err)
		}
		if pos > head {
			return s, apierr.New(apierr.InvalidArgument, "position %q is beyond the newest event of the log (%s): it was not handed out by this engine's database", truncateText(from), e.codec.Encode(head))
		}
		s.after = pos
	}
	if len(types) > 0 {
		s.types = make(map[string]bool, len(types))
		for _, t := range types {
			if !slices.Contains(EventTypes, t) {
				return s, apierr.New(apierr.InvalidArgument, "unknown event type %q (want one of %s)", t, strings.Join(EventTypes, ", "))
			}
			s.types[t] = true
		}
	}
	return s, nil
}
