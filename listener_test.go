package runnel

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	runnelv1 "github.com/runnel-dev/runnel/internal/gen/runnel/v1"
	"github.com/runnel-dev/runnel/internal/gen/runnel/v1/runnelv1connect"
)

// fakeRuns is a RunService whose Subscribe runs a script per call.
type fakeRuns struct {
	runnelv1connect.UnimplementedRunServiceHandler

	mu        sync.Mutex
	subs      []*runnelv1.SubscribeRequest
	subscribe func(n int, ctx context.Context, req *runnelv1.SubscribeRequest, send func(...*runnelv1.Event) error) error

	trigger func(*runnelv1.TriggerRunRequest) (*runnelv1.TriggerRunResponse, error)
	getRun  func(*runnelv1.GetRunRequest) (*runnelv1.GetRunResponse, error)
}

func (f *fakeRuns) Subscribe(ctx context.Context, req *connect.Request[runnelv1.SubscribeRequest], stream *connect.ServerStream[runnelv1.SubscribeResponse]) error {
	f.mu.Lock()
	n := len(f.subs)
	f.subs = append(f.subs, req.Msg)
	f.mu.Unlock()
	return f.subscribe(n, ctx, req.Msg, func(evs ...*runnelv1.Event) error {
		return stream.Send(&runnelv1.SubscribeResponse{Events: evs})
	})
}

func (f *fakeRuns) requests() []*runnelv1.SubscribeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.subs)
}

func (f *fakeRuns) TriggerRun(_ context.Context, req *connect.Request[runnelv1.TriggerRunRequest]) (*connect.Response[runnelv1.TriggerRunResponse], error) {
	resp, err := f.trigger(req.Msg)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(resp), nil
}

func (f *fakeRuns) GetRun(_ context.Context, req *connect.Request[runnelv1.GetRunRequest]) (*connect.Response[runnelv1.GetRunResponse], error) {
	resp, err := f.getRun(req.Msg)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(resp), nil
}

// ev makes a test event at position p.
func ev(p int, typ EventType, payload string) *runnelv1.Event {
	return &runnelv1.Event{
		Position:  fmt.Sprint(p),
		RunId:     "r1",
		Workflow:  "wf",
		Type:      string(typ),
		StepRunId: "sr1",
		Step:      "a",
		Attempt:   1,
		Payload:   []byte(payload),
		TimeUs:    1_700_000_000_000_000 + int64(p),
	}
}

func collect(t *testing.T, seq func(func(Event, error) bool)) ([]Event, []error) {
	t.Helper()
	var evs []Event
	var errs []error
	for e, err := range seq {
		if err != nil {
			errs = append(errs, err)
			continue
		}
		evs = append(evs, e)
	}
	return evs, errs
}

func positions(evs []Event) string {
	var ps []string
	for _, e := range evs {
		ps = append(ps, string(e.Position))
	}
	return strings.Join(ps, ",")
}

func TestListenerResumesAfterDrop(t *testing.T) {
	fr := &fakeRuns{subscribe: func(n int, ctx context.Context, req *runnelv1.SubscribeRequest, send func(...*runnelv1.Event) error) error {
		switch n {
		case 0:
			if err := send(ev(1, EventRunStarted, ""), ev(2, EventStepStarted, "")); err != nil {
				return err
			}
			return connect.NewError(connect.CodeUnavailable, errors.New("engine shutting down"))
		case 1:
			// A clean end before the terminal event is a drop too.
			return send(ev(3, EventStepStream, "hello"))
		default:
			return send(ev(4, EventStepCompleted, ""), ev(5, EventRunCompleted, ""), ev(6, EventStepStream, "after the end"))
		}
	}}
	c := newFakeServer(t, nil, fr).client(t)
	evs, errs := collect(t, c.Listener().Stream(context.Background(), "r1"))
	if len(errs) != 0 {
		t.Fatalf("errors: %v", errs)
	}
	if got := positions(evs); got != "1,2,3,4,5" {
		t.Errorf("positions %s, want 1,2,3,4,5", got)
	}
	var froms []string
	for _, r := range fr.requests() {
		froms = append(froms, r.GetFrom())
	}
	if strings.Join(froms, ",") != ",2,3" {
		t.Errorf("subscribed from %q, want start, 2, 3", froms)
	}
	e := evs[2]
	if e.Type != EventStepStream || string(e.Payload) != "hello" || e.Step != "a" || e.StepRunID != "sr1" || e.Attempt != 1 ||
		e.RunID != "r1" || e.Workflow != "wf" || e.Time.UnixMicro() != 1_700_000_000_000_003 {
		t.Errorf("event = %+v", e)
	}
	if !evs[4].Terminal() || evs[3].Terminal() {
		t.Error("Terminal() is wrong")
	}
}

func TestListenerPermanentError(t *testing.T) {
	fr := &fakeRuns{subscribe: func(int, context.Context, *runnelv1.SubscribeRequest, func(...*runnelv1.Event) error) error {
		return connect.NewError(connect.CodeNotFound, errors.New("no such run"))
	}}
	c := newFakeServer(t, nil, fr).client(t)
	evs, errs := collect(t, c.Listener().Stream(context.Background(), "r1"))
	if len(evs) != 0 || len(errs) != 1 || connect.CodeOf(errs[0]) != connect.CodeNotFound {
		t.Fatalf("events %v, errors %v; want one NotFound error", evs, errs)
	}
	if !strings.Contains(errs[0].Error(), "subscribe to run r1") {
		t.Errorf("error %q lacks context", errs[0])
	}
	if n := len(fr.requests()); n != 1 {
		t.Errorf("%d calls for a permanent error, want 1", n)
	}
}

func TestListenerBreakCancelsRPC(t *testing.T) {
	serverDone := make(chan error, 1)
	fr := &fakeRuns{subscribe: func(_ int, ctx context.Context, _ *runnelv1.SubscribeRequest, send func(...*runnelv1.Event) error) error {
		if err := send(ev(1, EventRunStarted, "")); err != nil {
			return err
		}
		<-ctx.Done()
		serverDone <- ctx.Err()
		return ctx.Err()
	}}
	c := newFakeServer(t, nil, fr).client(t)
	for e, err := range c.Listener().Stream(context.Background(), "r1") {
		if err != nil {
			t.Fatal(err)
		}
		if e.Position == "1" {
			break
		}
	}
	recv(t, serverDone, "the subscription to be cancelled on the server")
}

func TestListenerContextEnds(t *testing.T) {
	fr := &fakeRuns{subscribe: func(_ int, ctx context.Context, _ *runnelv1.SubscribeRequest, send func(...*runnelv1.Event) error) error {
		if err := send(ev(1, EventRunStarted, "")); err != nil {
			return err
		}
		<-ctx.Done()
		return ctx.Err()
	}}
	c := newFakeServer(t, nil, fr).client(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var errs []error
	for e, err := range c.Listener().Stream(ctx, "r1") {
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if e.Position == "1" {
			cancel()
		}
	}
	if len(errs) != 1 || !errors.Is(errs[0], context.Canceled) {
		t.Errorf("errors %v, want one context.Canceled", errs)
	}
}

func TestListenerOptions(t *testing.T) {
	fr := &fakeRuns{subscribe: func(_ int, _ context.Context, req *runnelv1.SubscribeRequest, send func(...*runnelv1.Event) error) error {
		return send(ev(7, EventRunFailed, ""))
	}}
	c := newFakeServer(t, nil, fr).client(t)
	ctx := context.Background()
	l := c.Listener()
	collect(t, l.Stream(ctx, "r1", FromNow()))
	collect(t, l.Stream(ctx, "r1", After("42")))
	evs, _ := collect(t, l.Stream(ctx, "r1", FromNow(), FromStart(), WithTypes(EventStepStream, EventStepStarted)))
	reqs := fr.requests()
	if reqs[0].GetFrom() != "now" || reqs[1].GetFrom() != "42" || reqs[2].GetFrom() != "" {
		t.Errorf("from = %q, %q, %q", reqs[0].GetFrom(), reqs[1].GetFrom(), reqs[2].GetFrom())
	}
	if len(reqs[0].GetTypes()) != 0 {
		t.Errorf("types without WithTypes: %v", reqs[0].GetTypes())
	}
	// Terminal types are asked for as well, so the end of the run is seen,
	// but not delivered.
	want := []string{"step.stream", "step.started", "run.completed", "run.failed", "run.cancelled", "run.timed_out"}
	if !slices.Equal(reqs[2].GetTypes(), want) {
		t.Errorf("types %v, want %v", reqs[2].GetTypes(), want)
	}
	if len(evs) != 0 {
		t.Errorf("delivered %v, which WithTypes filtered out", evs)
	}
}

func TestSubscriberStream(t *testing.T) {
	fr := &fakeRuns{subscribe: func(n int, _ context.Context, req *runnelv1.SubscribeRequest, send func(...*runnelv1.Event) error) error {
		if n == 0 {
			if err := send(ev(1, EventRunStarted, ""), ev(2, EventStepStream, "one")); err != nil {
				return err
			}
			return connect.NewError(connect.CodeUnavailable, errors.New("drop"))
		}
		return send(ev(3, EventStepStream, "two"), ev(4, EventStepCompleted, ""), ev(5, EventRunCompleted, ""))
	}}
	c := newFakeServer(t, nil, fr).client(t)
	var got []string
	err := c.Subscribe().Stream(context.Background(), "r1", func(e StreamEvent) error {
		got = append(got, fmt.Sprintf("%s:%s@%d", e.Position, e.Message, e.Attempt))
		return nil
	}, WithTypes(EventRunStarted))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, " ") != "2:one@1 3:two@1" {
		t.Errorf("got %v", got)
	}
	if types := fr.requests()[0].GetTypes(); types[0] != "step.stream" || slices.Contains(types, "run.started") {
		t.Errorf("requested types %v", types)
	}

	stop := errors.New("enough")
	err = c.Subscribe().Stream(context.Background(), "r1", func(StreamEvent) error { return stop })
	if err != stop {
		t.Errorf("Stream returned %v, want fn's error", err)
	}
}

func TestSubscriberContextCancelled(t *testing.T) {
	fr := &fakeRuns{subscribe: func(_ int, ctx context.Context, _ *runnelv1.SubscribeRequest, send func(...*runnelv1.Event) error) error {
		if err := send(ev(1, EventStepStream, "x")); err != nil {
			return err
		}
		<-ctx.Done()
		return ctx.Err()
	}}
	c := newFakeServer(t, nil, fr).client(t)
	ctx, cancel := context.WithCancel(context.Background())
	err := c.Subscribe().Stream(ctx, "r1", func(StreamEvent) error { cancel(); return nil })
	if err != context.Canceled {
		t.Errorf("Stream = %v, want context.Canceled", err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := c.Subscribe().Stream(ctx, "r1", func(StreamEvent) error { return nil }); err != context.DeadlineExceeded {
		t.Errorf("Stream = %v, want context.DeadlineExceeded", err)
	}
}

func TestListenerCleanEnds(t *testing.T) {
	// "From now" on a finished run: the engine ends the call at once.
	fr := &fakeRuns{subscribe: func(int, context.Context, *runnelv1.SubscribeRequest, func(...*runnelv1.Event) error) error {
		return nil
	}}
	c := newFakeServer(t, nil, fr).client(t)
	evs, errs := collect(t, c.Listener().Stream(context.Background(), "r1", FromNow()))
	if len(evs) != 0 || len(errs) != 0 || len(fr.requests()) != 1 {
		t.Errorf("FromNow on a finished run: %v, %v, %d calls", evs, errs, len(fr.requests()))
	}

	// Otherwise a clean end without the terminal event is resumed, but not
	// forever when nothing comes.
	evs, errs = collect(t, c.Listener().Stream(context.Background(), "r1"))
	if len(evs) != 0 || len(errs) != 1 || !errors.Is(errs[0], errStreamEnded) {
		t.Errorf("empty clean ends: %v, %v", evs, errs)
	}
	if n := len(fr.requests()); n != 1+maxEmptyEnds {
		t.Errorf("%d calls, want %d", n, 1+maxEmptyEnds)
	}
}
