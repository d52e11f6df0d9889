package runnel

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync/atomic"

	runnelv1 "github.com/runnel-dev/runnel/internal/gen/runnel/v1"
)

// Context is what a [StepFunc] gets: a context.Context that is cancelled
// when the step is cancelled, times out, or its worker stops, or when the
// engine re-queued the attempt while the worker was away (see
// [ErrSessionLost]; a connection drop alone does not cancel it), plus the
// step's inputs and its output stream.
type Context interface {
	context.Context

	// PutStream puts data on the run's event stream as a step.stream event
	// of this attempt, on the run's default stream or, with [ToStream], on a
	// named one. Events are stored in the order they are put, across
	// streams.
	//
	// PutStream copies data and returns at once; the worker sends queued
	// events in batches. It blocks only while the attempt's send queue is
	// full, until there is room or the context is done. Use [Context.Flush]
	// to wait until events are stored.
	//
	// Errors: a payload over [MaxPayloadSize] is refused with an error
	// wrapping [ErrPayloadTooLarge] (nothing is sent; the step may go on).
	// Once a send failed for good (the attempt is stale, or the engine
	// refused the data), that error is returned by every later PutStream
	// and Flush. PutStream also fails after the context is done or after
	// the step returned, and for a stream this step closed or a stream name
	// that is not valid (see [ToStream]).
	PutStream(data []byte, opts ...PutOption) error

	// CloseStream declares a stream finished before the step ends: after
	// everything put on it so far, a step.stream_closed event is stored
	// (subscribers see it; the Durable Streams view of the stream ends), and
	// later puts to it fail. It waits until the engine stored it. name is a
	// stream name as in [ToStream]; "" or [DefaultStream] closes the default
	// stream.
	CloseStream(name string) error

	// WorkflowInput unmarshals the run's JSON input into v.
	WorkflowInput(v any) error

	// StepOutput unmarshals the output of parent step into v. It returns an
	// error naming the step if it is not a parent of this step.
	StepOutput(step string, v any) error

	// AdditionalMetadata returns a copy of the run's additional metadata.
	AdditionalMetadata() map[string]string

	// RetryCount is the number of earlier attempts: Attempt() - 1.
	RetryCount() int

	// Attempt is this attempt's number, starting at 1.
	Attempt() int

	// RunID is the id of the run.
	RunID() string

	// StepRunID is the id of this step run (the same for all its attempts).
	StepRunID() string

	// StepName is the name of the step.
	StepName() string

	// WorkflowName is the name of the run's workflow.
	WorkflowName() string

	// Flush waits until every event put so far is durably stored by the
	// engine, and returns the stream's error if a send failed for good.
	// A step need not call it: the worker flushes the stream before it
	// reports the step's result.
	Flush() error

	// SpawnWorkflow starts a child run of the named workflow and returns a
	// handle to await it. The child records this run and step as its
	// parent and inherits this run's additional metadata, with the
	// metadata of a [WithAdditionalMetadata] option merged on top. The
	// input is marshalled as for [Admin.RunWorkflow].
	//
	// Spawns are numbered per attempt, which makes them idempotent: a call
	// retried after a lost reply yields one child, while a retried step (a
	// new attempt) starts fresh children. Cancelling, failing or timing out
	// this run cancels its unfinished children. A step that waits for its
	// children holds its worker slot meanwhile, so the workers running the
	// children need free slots of their own.
	//
	// Errors: connect.CodeNotFound for an unknown workflow,
	// connect.CodeFailedPrecondition once this attempt is no longer running
	// (cancelled, timed out), connect.CodeInvalidArgument for bad input or
	// metadata, or the context's cause when it is done.
	SpawnWorkflow(workflow string, input any, opts ...RunOption) (*ChildRun, error)
}

// stepContext implements Context for one step attempt.
type stepContext struct {
	context.Context
	a       *runnelv1.StepAssignment
	parents []string
	stream  *stepStream
	w       *Worker      // for SpawnWorkflow
	spawns  atomic.Int64 // spawns so far, numbering the next (children.go)
}

func (c *stepContext) PutStream(data []byte, opts ...PutOption) error {
	var cfg putConfig
	for _, o := range opts {
		o(&cfg)
	}
	stream, err := checkStreamName(cfg.stream)
	if err != nil {
		return fmt.Errorf("put stream: %w", err)
	}
	return c.stream.Put(c, data, stream)
}

func (c *stepContext) CloseStream(name string) error {
	stream, err := checkStreamName(name)
	if err != nil {
		return fmt.Errorf("close stream: %w", err)
	}
	return c.stream.Close(c, stream)
}

// DefaultStream names a run's unnamed stream where a stream name is asked
// for ([ToStream], [Streams], [Context.CloseStream]).
const DefaultStream = "default"

// PutOption changes one [Context.PutStream] call.
type PutOption func(*putConfig)

type putConfig struct{ stream string }

// ToStream puts the data on the named stream of the run instead of its
// default one. A name has 1-64 characters from A-Z a-z 0-9 . _ -;
// [DefaultStream] is the default stream. Subscribers choose streams with
// [Streams].
func ToStream(name string) PutOption { return func(c *putConfig) { c.stream = name } }

func (c *stepContext) Flush() error { return c.stream.Flush(c) }

func (c *stepContext) WorkflowInput(v any) error {
	in := c.a.GetInput()
	if len(in) == 0 {
		in = []byte("null")
	}
	if err := json.Unmarshal(in, v); err != nil {
		return fmt.Errorf("workflow input: %w", err)
	}
	return nil
}

func (c *stepContext) StepOutput(step string, v any) error {
	if !slices.Contains(c.parents, step) {
		return fmt.Errorf("step output: %q is not a parent of step %q", step, c.a.GetStep())
	}
	out, ok := c.a.GetParentOutputs()[step]
	if !ok {
		return fmt.Errorf("step output: the engine sent no output of parent step %q", step)
	}
	if len(out) == 0 {
		out = []byte("null")
	}
	if err := json.Unmarshal(out, v); err != nil {
		return fmt.Errorf("step output of %q: %w", step, err)
	}
	return nil
}

func (c *stepContext) AdditionalMetadata() map[string]string {
	m := maps.Clone(c.a.GetAdditionalMetadata())
	if m == nil {
		m = map[string]string{}
	}
	return m
}

func (c *stepContext) RetryCount() int      { return max(int(c.a.GetAttempt())-1, 0) }
func (c *stepContext) Attempt() int         { return int(c.a.GetAttempt()) }
func (c *stepContext) RunID() string        { return c.a.GetRunId() }
func (c *stepContext) StepRunID() string    { return c.a.GetStepRunId() }
func (c *stepContext) StepName() string     { return c.a.GetStep() }
func (c *stepContext) WorkflowName() string { return c.a.GetWorkflow() }
