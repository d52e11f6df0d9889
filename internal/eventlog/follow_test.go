package eventlog_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/clock/clocktest"
	"github.com/runnel-dev/runnel/internal/eventlog"
	"github.com/runnel-dev/runnel/internal/store"
)

// hookStore runs a function once, right after the first LastRunPosition.
type hookStore struct {
	store.Store
	once  sync.Once
	after func()
}

func (s *hookStore) LastRunPosition(ctx context.Context, tenantID, runID string) (int64, error) {
	pos, err := s.Store.LastRunPosition(ctx, tenantID, runID)
	s.once.Do(s.after)
	return pos, err
}

// A run that ends while its feed starts: the feed must not start out
// marked terminal after a position below the terminal event, or a
// subscriber there would be told the run ended without its last event.
func TestFollowRunEndingWhileFeedStarts(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			hub := eventlog.NewHub()
			st := openStore(t, kind, hub.CommitHook)
			log := newMetaLog(t, st)
			run := log.run(map[string]string{})
			started := log.emit(2, run)
			end := func() {
				ev := []store.Event{{TenantID: run.TenantID, RunID: run.ID, Workflow: run.Workflow, Type: store.EventRunCompleted}}
				require.NoError(t, st.Write(ctx, func(tx store.Tx) error {
					r := run
					r.Status, r.FinishedAt = store.RunCompleted, time.Now()
					if err := tx.UpdateRun(ctx, r); err != nil {
						return err
					}
					return tx.AppendEvents(ctx, ev)
				}))
			}
			r := eventlog.NewReader(&hookStore{Store: st, after: end}, hub)
			var got []store.Event
			fctx, cancel := context.WithTimeout(ctx, waitTimeout)
			defer cancel()
			err := r.Follow(fctx, eventlog.FollowParams{TenantID: run.TenantID, RunID: run.ID, After: started[1].Position},
				func(events []store.Event, _ int64) error {
					got = append(got, events...)
					return nil
				})
			require.NoError(t, err)
			require.Len(t, got, 1)
			require.Equal(t, store.EventRunCompleted, got[0].Type)
		})
	}
}

// gateStore holds LastRunPosition of one run until released, counting the
// calls.
type gateStore struct {
	store.Store
	runID   string
	entered chan struct{} // closed at the first call for runID
	release chan struct{}
	calls   atomic.Int32
}

func (s *gateStore) LastRunPosition(ctx context.Context, tenantID, runID string) (int64, error) {
	if runID == s.runID {
		if s.calls.Add(1) == 1 {
			close(s.entered)
		}
		<-s.release
	}
	return s.Store.LastRunPosition(ctx, tenantID, runID)
}

// runFollower follows a run in the background, recording its events.
type runFollower struct {
	done   chan error
	events chan store.Event
}

func followRun(ctx context.Context, r *eventlog.Reader, run store.Run) *runFollower {
	f := &runFollower{done: make(chan error, 1), events: make(chan store.Event, 100)}
	go func() {
		f.done <- r.Follow(ctx, eventlog.FollowParams{TenantID: run.TenantID, RunID: run.ID}, func(events []store.Event, _ int64) error {
			for _, ev := range events {
				f.events <- ev
			}
			return nil
		})
	}()
	return f
}

func (f *runFollower) next(t *testing.T) store.Event {
	t.Helper()
	select {
	case ev := <-f.events:
		return ev
	case err := <-f.done:
		t.Fatalf("follow ended: %v", err)
	case <-time.After(waitTimeout):
		t.Fatal("no event")
	}
	return store.Event{}
}

// A feed reads the store to start outside the lock every subscription on
// the node takes: while one run's feed waits on the store, other runs'
// subscribers come and go, and a second subscriber of that run waits for
// the same feed rather than starting another.
func TestFeedStartsOutsideReaderLock(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	hub := eventlog.NewHub()
	st := openStore(t, "sqlite", hub.CommitHook)
	log := newMetaLog(t, st)
	slow, other := log.run(nil), log.run(nil)
	gate := &gateStore{Store: st, runID: slow.ID, entered: make(chan struct{}), release: make(chan struct{})}
	r := eventlog.NewReader(gate, hub)

	first := followRun(ctx, r, slow)
	<-gate.entered // its feed is starting, held in the store
	second := followRun(ctx, r, slow)

	o := followRun(ctx, r, other)
	want := log.emit(1, other)
	require.Equal(t, want[0].Position, o.next(t).Position)
	require.Equal(t, 1, r.Stats().RunFeeds, "the starting feed is not counted yet")

	close(gate.release)
	ev := log.emit(1, slow)
	require.Equal(t, ev[0].Position, first.next(t).Position)
	require.Equal(t, ev[0].Position, second.next(t).Position)
	require.EqualValues(t, 1, gate.calls.Load(), "one feed for the run")
	require.Equal(t, 2, r.Stats().RunFeeds)
}

// An idle subscription gets an empty delivery each Heartbeat, on the
// reader's clock.
func TestFollowHeartbeatOnClock(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	hub := eventlog.NewHub()
	st := openStore(t, "sqlite", hub.CommitHook)
	log := newMetaLog(t, st)
	run := log.run(nil)
	clk := clocktest.NewFake(time.Now())
	r := eventlog.NewReader(st, hub)
	r.Clock, r.Heartbeat, r.Poll = clk, time.Second, time.Hour

	deliveries := make(chan int, 10)
	go func() {
		_ = r.Follow(ctx, eventlog.FollowParams{TenantID: run.TenantID, RunID: run.ID}, func(events []store.Event, _ int64) error {
			deliveries <- len(events)
			return nil
		})
	}()
	require.Equal(t, 0, <-deliveries, "the start point")
	require.NoError(t, clk.WaitTimers(ctx, 2), "the feed's poll and the subscriber's heartbeat")
	clk.Advance(999 * time.Millisecond)
	select {
	case n := <-deliveries:
		t.Fatalf("delivery of %d events before the heartbeat", n)
	default:
	}
	clk.Advance(time.Millisecond)
	select {
	case n := <-deliveries:
		require.Equal(t, 0, n, "a heartbeat")
	case <-ctx.Done():
		t.Fatal("no heartbeat")
	}
}
