package runnel

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"connectrpc.com/connect"

	runnelv1 "github.com/runnel-dev/runnel/internal/gen/runnel/v1"
)

// fakeMetaRuns is a RunService whose SubscribeMetadata runs a script per
// call.
type fakeMetaRuns struct {
	fakeRuns

	metaMu    sync.Mutex
	metaSubs  []*runnelv1.SubscribeMetadataRequest
	subscribe func(n int, ctx context.Context, send func(...*runnelv1.Event) error) error
}

func (f *fakeMetaRuns) SubscribeMetadata(ctx context.Context, req *connect.Request[runnelv1.SubscribeMetadataRequest], stream *connect.ServerStream[runnelv1.SubscribeResponse]) error {
	f.metaMu.Lock()
	n := len(f.metaSubs)
	f.metaSubs = append(f.metaSubs, req.Msg)
	f.metaMu.Unlock()
	return f.subscribe(n, ctx, func(evs ...*runnelv1.Event) error {
		return stream.Send(&runnelv1.SubscribeResponse{Events: evs})
	})
}

// The metadata iterator resumes after the last event it got, whatever
// ended the call (an error, a clean end), does not stop at a run's
// terminal event (other runs follow), and ends only when the loop breaks.
func TestStreamByAdditionalMetadataResumesAndNeverEndsByItself(t *testing.T) {
	fr := &fakeMetaRuns{subscribe: func(n int, ctx context.Context, send func(...*runnelv1.Event) error) error {
		switch n {
		case 0:
			if err := send(ev(1, EventRunStarted, ""), ev(2, EventRunCompleted, "")); err != nil {
				return err
			}
			return connect.NewError(connect.CodeUnavailable, errors.New("engine shutting down"))
		case 1:
			// A clean end is a drop too: a metadata subscription never ends.
			return send(ev(5, EventRunStarted, ""))
		default:
			if err := send(ev(7, EventStepStream, "x"), ev(9, EventRunCompleted, "")); err != nil {
				return err
			}
			<-ctx.Done() // open until the client closes it
			return ctx.Err()
		}
	}}
	c := newFakeServer(t, nil, fr).client(t)
	var got []Event
	for e, err := range c.Listener().StreamByAdditionalMetadata(context.Background(), "session", "s1") {
		if err != nil {
			t.Fatalf("error: %v", err)
		}
		got = append(got, e)
		if len(got) == 5 {
			break // closes the subscription
		}
	}
	if p := positions(got); p != "1,2,5,7,9" {
		t.Errorf("positions %s, want 1,2,5,7,9", p)
	}
	fr.metaMu.Lock()
	defer fr.metaMu.Unlock()
	var froms []string
	for _, r := range fr.metaSubs {
		if r.GetKey() != "session" || r.GetValue() != "s1" {
			t.Errorf("subscribed to %s=%s", r.GetKey(), r.GetValue())
		}
		froms = append(froms, r.GetFrom())
	}
	if strings.Join(froms, ",") != ",2,5" {
		t.Errorf("subscribed from %q, want start, 2, 5", froms)
	}
}

// A permanent error (a bad key) is yielded once and ends the iteration.
func TestStreamByAdditionalMetadataPermanentError(t *testing.T) {
	fr := &fakeMetaRuns{subscribe: func(int, context.Context, func(...*runnelv1.Event) error) error {
		return connect.NewError(connect.CodeInvalidArgument, errors.New("a metadata subscription needs a key"))
	}}
	c := newFakeServer(t, nil, fr).client(t)
	evs, errs := collect(t, c.Listener().StreamByAdditionalMetadata(context.Background(), "", "v"))
	if len(evs) != 0 || len(errs) != 1 || connect.CodeOf(errs[0]) != connect.CodeInvalidArgument {
		t.Fatalf("events %v, errors %v", evs, errs)
	}
	if !strings.Contains(errs[0].Error(), "runs with metadata =v") {
		t.Errorf("error does not name the subscription: %v", errs[0])
	}
}
