package runnel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"

	runnelv1 "github.com/runnel-dev/runnel/internal/gen/runnel/v1"
	"github.com/runnel-dev/runnel/internal/kinds"
)

// Position is the place of an event in the engine's event log. It is
// opaque: keep it and pass it to [After] to resume a subscription after
// that event.
type Position string

// EventType is the kind of a run event.
type EventType string

// Event types, spelled "run.started", "run.completed", "run.failed",
// "run.cancelled", "run.timed_out", "step.started", "step.completed",
// "step.failed", "step.cancelled", "step.timed_out" and "step.stream" on
// the wire. A run's stream ends with exactly one terminal run event
// (completed, failed, cancelled or timed out).
const (
	EventRunStarted   EventType = EventType(kinds.EventRunStarted)
	EventRunCompleted EventType = EventType(kinds.EventRunCompleted)
	EventRunFailed    EventType = EventType(kinds.EventRunFailed)
	EventRunCancelled EventType = EventType(kinds.EventRunCancelled)
	EventRunTimedOut  EventType = EventType(kinds.EventRunTimedOut)

	EventStepStarted   EventType = EventType(kinds.EventStepStarted)
	EventStepCompleted EventType = EventType(kinds.EventStepCompleted)
	EventStepFailed    EventType = EventType(kinds.EventStepFailed)
	EventStepCancelled EventType = EventType(kinds.EventStepCancelled)
	EventStepTimedOut  EventType = EventType(kinds.EventStepTimedOut)
	// EventStepStream carries data a step put with [Context.PutStream].
	EventStepStream EventType = EventType(kinds.EventStepStream)
	// EventStepStreamClosed: the step declared a stream finished
	// ([Context.CloseStream]); Event.Stream names it.
	EventStepStreamClosed EventType = EventType(kinds.EventStepStreamClosed)
)

// terminalTypes are the event types that end a run.
var terminalTypes = func() []EventType {
	var out []EventType
	for _, t := range kinds.TerminalEventTypes() {
		out = append(out, EventType(t))
	}
	return out
}()

// Terminal reports whether events of this type end their run.
func (t EventType) Terminal() bool { return kinds.EventType(t).Terminal() }

// Event is one entry of a run's event stream.
type Event struct {
	// Position is where the event is in the log; resume after it with
	// [After].
	Position Position
	// Type is the kind of event: a run's or a step's status change, or
	// step.stream.
	Type EventType
	// RunID is the run the event belongs to (which matters when a
	// metadata subscription follows several runs).
	RunID string
	// Workflow is the name of the run's workflow.
	Workflow string
	// Step is the step's name; set for step events only, as are StepRunID
	// and Attempt.
	Step string
	// StepRunID is the id of the step run, the same for all its attempts.
	StepRunID string
	// Attempt is the number of the step's attempt, from 1: a retried
	// step's events of each attempt stay in the log, told apart by it.
	Attempt int
	// Stream names the stream of a step.stream or step.stream_closed event;
	// "" for the run's default stream.
	Stream string
	// Payload is the data of a step.stream event.
	Payload []byte
	// Data is a JSON object with the event's details: the output of
	// step.completed and run.completed, the error of failures (and whether
	// the step will be retried). Nil if none.
	Data json.RawMessage
	// Time is when the engine recorded the event.
	Time time.Time
}

// Terminal reports whether the event ends its run.
func (e Event) Terminal() bool { return e.Type.Terminal() }

// StreamEvent is data a step put on the stream with [Context.PutStream], as
// delivered by [Subscriber.Stream].
type StreamEvent struct {
	// RunID is the run whose step put the data.
	RunID string
	// Step is the name of the step that put the data.
	Step string
	// StepRunID is the id of the step run, the same for all its attempts.
	StepRunID string
	// Attempt tells a failed attempt's stream from its retry's.
	Attempt int
	// Stream names the stream the step put the data on ([ToStream]); "" for
	// the default stream.
	Stream string
	// Message is the data, as the step passed it to PutStream.
	Message []byte
	// Position is where the event is in the log; resume after it with
	// [After].
	Position Position
	// Time is when the engine recorded the event.
	Time time.Time
}

// SubscribeOption configures a subscription: where it starts and which
// event types it delivers.
type SubscribeOption interface {
	applyToSubscribe(*subscribeConfig)
}

type subscribeConfig struct {
	from         string
	types        []EventType
	streams      []string
	onSubscribed func(Position)
}

func subscribeConfigOf(opts []SubscribeOption) subscribeConfig {
	var cfg subscribeConfig
	for _, opt := range opts {
		opt.applyToSubscribe(&cfg)
	}
	return cfg
}

type subscribeOptionFunc func(*subscribeConfig)

func (f subscribeOptionFunc) applyToSubscribe(c *subscribeConfig) { f(c) }

// FromStart starts the subscription at the run's first event: the whole
// run is replayed, then followed live. This is the default.
func FromStart() SubscribeOption {
	return subscribeOptionFunc(func(c *subscribeConfig) { c.from = "" })
}

// FromNow starts the subscription with the events that happen after it
// started; on a run that has already ended it ends at once. The engine
// answers with the position "now" stands for, so a subscription that
// reconnects resumes exactly there.
func FromNow() SubscribeOption {
	return subscribeOptionFunc(func(c *subscribeConfig) { c.from = "now" })
}

// FromLatest starts a run subscription at the run's newest stream event
// (of the streams chosen with [Streams], if any), that event included, then
// follows live: a late viewer sees the latest state at once without the
// replay. With no stream event yet it starts at the run's start. Run
// subscriptions only.
func FromLatest() SubscribeOption {
	return subscribeOptionFunc(func(c *subscribeConfig) { c.from = "latest" })
}

// Streams delivers the stream events (step.stream, step.stream_closed) of
// these named streams only ([DefaultStream] is the unnamed one); every
// other event is still delivered, so the subscription still sees the run
// end. Run subscriptions only.
func Streams(names ...string) SubscribeOption {
	names = slices.Clone(names)
	return subscribeOptionFunc(func(c *subscribeConfig) { c.streams = names })
}

// After starts the subscription right after position p, a position from an
// earlier event of the same run: no event is delivered twice or skipped.
func After(p Position) SubscribeOption {
	return subscribeOptionFunc(func(c *subscribeConfig) { c.from = string(p) })
}

// WithTypes delivers only events of these types. The subscription still
// ends with the run, even if terminal run events are filtered out.
func WithTypes(types ...EventType) SubscribeOption {
	types = slices.Clone(types)
	return subscribeOptionFunc(func(c *subscribeConfig) { c.types = types })
}

// OnSubscribed calls fn each time the engine confirms the subscription
// (at the start, and again after every reconnection), with the position it
// starts after: "now" resolved to a real position. It runs before any
// event of that connection is delivered. A proxy can hold its own response
// back until then, so that a refused subscription (an unknown run, a
// position of another event log) is still answered with an error status.
func OnSubscribed(fn func(Position)) SubscribeOption {
	return subscribeOptionFunc(func(c *subscribeConfig) { c.onSubscribed = fn })
}

// Listener subscribes to runs' event streams. Get one from
// [Client.Listener].
type Listener struct {
	c *Client
}

// Reconnect backoff of subscriptions.
const (
	listenRetryBase = 50 * time.Millisecond
	listenRetryMax  = 2 * time.Second
)

// Stream returns an iterator over the events of a run, in order, from the
// start of the run unless an option says otherwise. It follows the run
// live and ends after the run's terminal event (at once, after replaying
// it, for a finished run).
//
// The iterator reconnects by itself when the connection drops or the
// engine restarts, resuming after the last event it received, so nothing
// is skipped or delivered twice. An error that retrying cannot cure (no
// such run: connect.CodeNotFound; a bad position: connect.CodeInvalidArgument;
// connect.CodeUnauthenticated, connect.CodePermissionDenied) is yielded once
// and ends the iteration, as does ctx's error when ctx ends. Breaking out
// of the loop closes the subscription.
//
//	for ev, err := range c.Listener().Stream(ctx, runID) {
//		if err != nil {
//			return err
//		}
//		fmt.Println(ev.Type, string(ev.Payload))
//	}
func (l *Listener) Stream(ctx context.Context, runID string, opts ...SubscribeOption) iter.Seq2[Event, error] {
	streams := subscribeConfigOf(opts).streams
	return l.iterate(ctx, subscription{
		what:        "run " + runID,
		endsWithRun: true,
		open: func(ctx context.Context, from string, types []string) (*connect.ServerStreamForClient[runnelv1.SubscribeResponse], error) {
			return l.c.run.Subscribe(ctx, connect.NewRequest(&runnelv1.SubscribeRequest{RunId: runID, From: from, Types: types, Streams: streams}))
		},
	}, opts)
}

// subscription is what a Listener iterator follows: one run, or every run
// carrying a metadata pair. Both speak the same messages and positions, so
// they share the reconnect and resume machinery.
type subscription struct {
	// what names the subscription in errors and logs.
	what string
	// endsWithRun: the stream is over after the run's terminal event. A
	// metadata subscription never ends by itself.
	endsWithRun bool
	// open makes one subscription call, starting at from.
	open func(ctx context.Context, from string, types []string) (*connect.ServerStreamForClient[runnelv1.SubscribeResponse], error)
}

// iterate returns the iterator of a subscription; see [Listener.Stream].
func (l *Listener) iterate(ctx context.Context, sub subscription, opts []SubscribeOption) iter.Seq2[Event, error] {
	cfg := subscribeConfigOf(opts)
	return func(yield func(Event, error) bool) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		l.stream(ctx, sub, cfg, yield)
	}
}

// stream runs one subscription, reconnecting as needed, until the run
// ends, yield returns false, or a permanent error.
func (l *Listener) stream(ctx context.Context, sub subscription, cfg subscribeConfig, yield func(Event, error) bool) {
	wanted := func(EventType) bool { return true }
	var types []string
	if len(cfg.types) > 0 {
		wanted = func(t EventType) bool { return slices.Contains(cfg.types, t) }
		asked := slices.Clone(cfg.types)
		if sub.endsWithRun {
			// Ask for the terminal run events too, so the subscription
			// knows the run ended and tells that from a dropped connection.
			asked = append(asked, terminalTypes...)
		}
		for _, t := range asked {
			if !slices.Contains(types, string(t)) {
				types = append(types, string(t))
			}
		}
	}
	bo := newBackoff(listenRetryBase, listenRetryMax)
	from := cfg.from
	emptyEnds := 0 // clean ends in a row that delivered no event
	for {
		before := from
		done, progressed, err := l.subscribeOnce(ctx, sub, &from, types, wanted, cfg.onSubscribed, yield)
		if done {
			return
		}
		if ctx.Err() != nil {
			yield(Event{}, fmt.Errorf("subscribe to %s: %w", sub.what, ctx.Err()))
			return
		}
		if errors.Is(err, errStreamEnded) {
			// The engine ends a run subscription cleanly after the run's
			// terminal event, or at once when it starts "from now" on a
			// run that has already ended: nothing comes after now.
			if from == "now" && sub.endsWithRun {
				return
			}
			if from != before {
				emptyEnds = 0
			} else if emptyEnds++; emptyEnds >= maxEmptyEnds {
				yield(Event{}, fmt.Errorf("subscribe to %s: %w %d times in a row", sub.what, err, emptyEnds))
				return
			}
		}
		if !retrySubscribe(err) && !(l.c.renews && tokenExpired(err)) {
			yield(Event{}, fmt.Errorf("subscribe to %s: %w", sub.what, err))
			return
		}
		if progressed {
			bo.reset()
		}
		d := bo.next()
		l.c.logger.Debug("subscription interrupted; resuming", "subscription", sub.what, "from", from, "error", err, "retry_in", d)
		if !sleep(ctx, d) {
			yield(Event{}, fmt.Errorf("subscribe to %s: %w", sub.what, ctx.Err()))
			return
		}
	}
}

// errStreamEnded: the engine closed a subscription before the run's
// terminal event (or a metadata subscription at all), as an engine shutting
// down may. The subscription resumes, unless that happens maxEmptyEnds
// times in a row without an event.
var errStreamEnded = errors.New("the engine ended the subscription early")

const maxEmptyEnds = 3

// subscribeOnce runs one Subscribe call, advancing *from past every event
// it receives. done is true when the iteration is over (the run ended or
// yield returned false); otherwise err says why the call ended, and
// progressed whether any message arrived.
func (l *Listener) subscribeOnce(ctx context.Context, sub subscription, from *string, types []string,
	wanted func(EventType) bool, onSubscribed func(Position), yield func(Event, error) bool) (done, progressed bool, err error) {
	stream, err := sub.open(ctx, *from, types)
	if err != nil {
		return false, false, err
	}
	defer stream.Close()
	for stream.Receive() {
		msg := stream.Msg()
		if !progressed && onSubscribed != nil {
			// The engine's first message confirms the subscription and
			// carries its resolved start position.
			at := Position(msg.GetPosition())
			if at == "" {
				at = Position(*from)
			}
			onSubscribed(at)
		}
		progressed = true
		for _, pe := range msg.GetEvents() {
			ev := eventFromProto(pe)
			if ev.Position != "" {
				*from = string(ev.Position)
			}
			if wanted(ev.Type) && !yield(ev, nil) {
				return true, progressed, nil
			}
			if sub.endsWithRun && ev.Terminal() {
				return true, progressed, nil
			}
		}
		// The message's position covers events filtered out by type and,
		// in the first message, resolves "now" to a real position, so a
		// resume continues exactly here.
		if pos := msg.GetPosition(); pos != "" {
			*from = pos
		}
		if msg.GetRunEnded() {
			return true, progressed, nil
		}
	}
	if err := stream.Err(); err != nil {
		return false, progressed, err
	}
	return false, progressed, errStreamEnded
}

// retrySubscribe reports whether a subscription that failed with err should
// resume: the connection dropped or the engine restarted or shed a slow
// subscriber (ResourceExhausted, "resume from your last position").
func retrySubscribe(err error) bool {
	if errors.Is(err, errStreamEnded) || isTransient(err) {
		return true
	}
	switch connect.CodeOf(err) {
	case connect.CodeResourceExhausted:
		return connect.IsWireError(err) // the engine's verdict, not a local size limit
	case connect.CodeCanceled:
		return !connect.IsWireError(err) // a stream reset by the engine going away
	}
	return false
}

// tokenExpired reports whether the engine ended a subscription because its
// token expired; a client with a token function then resumes with a new
// token.
func tokenExpired(err error) bool {
	var ce *connect.Error
	return errors.As(err, &ce) && ce.Code() == connect.CodeUnauthenticated && connect.IsWireError(err) &&
		strings.Contains(ce.Message(), "token expired")
}

func eventFromProto(e *runnelv1.Event) Event {
	return Event{
		Position:  Position(e.GetPosition()),
		Type:      EventType(e.GetType()),
		RunID:     e.GetRunId(),
		Workflow:  e.GetWorkflow(),
		Step:      e.GetStep(),
		StepRunID: e.GetStepRunId(),
		Attempt:   int(e.GetAttempt()),
		Stream:    e.GetStream(),
		Payload:   e.GetPayload(),
		Data:      rawJSON(e.GetData()),
		Time:      fromMicros(e.GetTimeUs()),
	}
}

// Subscriber delivers only the data steps put on a run's stream. Get one
// from [Client.Subscribe].
type Subscriber struct {
	l *Listener
}

// Stream calls fn for each step.stream event of the run, in order, from the
// start of the run unless an option says otherwise (a [WithTypes] option
// is ignored). It reconnects like [Listener.Stream].
//
// It returns nil when the run has ended and every stream event was
// delivered, fn's error as is if fn returns one, ctx.Err() when ctx ends,
// or the subscription's permanent error (connect.CodeNotFound for an
// unknown run, for example).
func (s *Subscriber) Stream(ctx context.Context, runID string, fn func(StreamEvent) error, opts ...SubscribeOption) error {
	opts = append(slices.Clone(opts), WithTypes(EventStepStream))
	for ev, err := range s.l.Stream(ctx, runID, opts...) {
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		if ev.Type != EventStepStream {
			continue
		}
		if err := fn(StreamEvent{
			RunID:     ev.RunID,
			Step:      ev.Step,
			StepRunID: ev.StepRunID,
			Attempt:   ev.Attempt,
			Stream:    ev.Stream,
			Message:   ev.Payload,
			Position:  ev.Position,
			Time:      ev.Time,
		}); err != nil {
			return err
		}
	}
	return nil
}
