package eventlog_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/eventlog"
	"github.com/runnel-dev/runnel/internal/store"
)

// waitTimeout bounds every wait of these tests, so a bug fails rather than
// hangs them.
const waitTimeout = 30 * time.Second

// collector runs one FollowMetadata and records what it delivers.
type collector struct {
	cancel context.CancelFunc
	done   chan error

	mu      sync.Mutex
	calls   int           // deliver calls, events or not
	events  []store.Event // every event delivered
	first   int64         // position of the first (start point) delivery
	last    int64         // position of the last delivery
	changed chan struct{} // closed and replaced at every delivery
}

func follow(r *eventlog.Reader, p eventlog.MetadataFollowParams) *collector {
	ctx, cancel := context.WithCancel(context.Background())
	c := &collector{cancel: cancel, done: make(chan error, 1), changed: make(chan struct{})}
	go func() {
		c.done <- r.FollowMetadata(ctx, p, func(events []store.Event, pos int64) error {
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.calls == 0 {
				c.first = pos
			}
			c.calls++
			c.events = append(c.events, events...)
			c.last = pos
			close(c.changed)
			c.changed = make(chan struct{})
			return nil
		})
	}()
	return c
}

// waitUntil waits for the collector's state to satisfy ok.
func (c *collector) waitUntil(t *testing.T, what string, ok func(c *collector) bool) {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		c.mu.Lock()
		done, ch := ok(c), c.changed
		c.mu.Unlock()
		if done {
			return
		}
		select {
		case <-ch:
		case err := <-c.done:
			t.Fatalf("subscription ended while waiting for %s: %v", what, err)
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// waitEvents waits for n events and returns them.
func (c *collector) waitEvents(t *testing.T, n int) []store.Event {
	t.Helper()
	c.waitUntil(t, fmt.Sprintf("%d events", n), func(c *collector) bool { return len(c.events) >= n })
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]store.Event(nil), c.events...)
}

// stop ends the subscription and requires that it ended because of that.
func (c *collector) stop(t *testing.T) {
	t.Helper()
	c.cancel()
	select {
	case err := <-c.done:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(waitTimeout):
		t.Fatal("subscription did not stop")
	}
}

// metaLog writes runs with metadata and their events straight to a store.
type metaLog struct {
	t      *testing.T
	st     store.Store
	tenant string
}

func newMetaLog(t *testing.T, st store.Store) *metaLog {
	ctx := context.Background()
	tn := store.Tenant{ID: uuid.NewString(), Name: "t-" + uuid.NewString()[:8], CreatedAt: time.Now()}
	require.NoError(t, st.Write(ctx, func(tx store.Tx) error { return tx.CreateTenant(ctx, tn) }))
	return &metaLog{t: t, st: st, tenant: tn.ID}
}

func (l *metaLog) run(meta map[string]string) store.Run {
	ctx := context.Background()
	r := store.Run{ID: uuid.Must(uuid.NewV7()).String(), TenantID: l.tenant, Workflow: "wf", Status: store.RunRunning,
		Input: []byte("{}"), Metadata: meta, CreatedAt: time.Now().UTC().Truncate(time.Microsecond)}
	require.NoError(l.t, l.st.Write(ctx, func(tx store.Tx) error { return tx.InsertRun(ctx, r) }))
	return r
}

// emit appends n stream events to each run, in one transaction, and
// returns them with their positions.
func (l *metaLog) emit(n int, runs ...store.Run) []store.Event {
	ctx := context.Background()
	var events []store.Event
	for i := range n {
		for _, r := range runs {
			events = append(events, store.Event{TenantID: r.TenantID, RunID: r.ID, Workflow: r.Workflow,
				Type: store.EventStepStream, Step: "s", Attempt: 1, Payload: fmt.Appendf(nil, "%s %d", r.ID, i)})
		}
	}
	require.NoError(l.t, l.st.Write(ctx, func(tx store.Tx) error { return tx.AppendEvents(ctx, events) }))
	return events
}

func (l *metaLog) end(r store.Run) store.Event {
	ctx := context.Background()
	ev := []store.Event{{TenantID: r.TenantID, RunID: r.ID, Workflow: r.Workflow, Type: store.EventRunCompleted}}
	require.NoError(l.t, l.st.Write(ctx, func(tx store.Tx) error { return tx.AppendEvents(ctx, ev) }))
	return ev[0]
}

func positionsOf(events []store.Event) []int64 {
	out := make([]int64, len(events))
	for i, e := range events {
		out[i] = e.Position
	}
	return out
}

// TestFollowMetadata follows a pair across many runs with a tiny tail and
// page, so that subscribers move between the store and the tail all the
// time: every subscriber, whenever and wherever it starts, gets exactly the
// pair's events after its start point, in position order; runs ending do
// not end it; the feed's tail stays within its bounds; and the feed goes
// away with its last subscriber.
func TestFollowMetadata(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			hub := eventlog.NewHub()
			st := openStore(t, kind, hub.CommitHook)
			r := eventlog.NewReader(st, hub)
			r.PageSize, r.TailEvents, r.TailBytes, r.Heartbeat = 7, 20, 1<<20, 50*time.Millisecond
			log := newMetaLog(t, st)
			other := newMetaLog(t, st)
			pair := eventlog.MetadataFollowParams{TenantID: log.tenant, Key: "session", Value: "s1"}

			before := follow(r, pair)
			before.waitUntil(t, "the start point", func(c *collector) bool { return c.calls > 0 })
			require.Zero(t, before.first, "from the start of the log")
			streamOnly := pair
			streamOnly.Types = map[string]bool{store.EventRunCompleted: true}
			completions := follow(r, streamOnly)

			var want []store.Event
			var during *collector
			var duringFrom int
			for i := range 60 {
				match := log.run(map[string]string{"session": "s1", "i": fmt.Sprint(i)})
				noise := log.run(map[string]string{"session": "s2"})
				foreign := other.run(map[string]string{"session": "s1"})
				for _, ev := range log.emit(1+i%4, match, noise, foreign) {
					if ev.RunID == match.ID {
						want = append(want, ev)
					}
				}
				want = append(want, log.end(match))
				if i == 30 {
					during = follow(r, eventlog.MetadataFollowParams{TenantID: log.tenant, Key: "session", Value: "s1", FromNow: true})
					during.waitUntil(t, "the start point", func(c *collector) bool { return c.calls > 0 })
					duringFrom = len(want)
				}
				st := r.Stats()
				require.Equal(t, 1, st.MetadataFeeds, "one feed shared by every subscriber of the pair")
				require.LessOrEqual(t, st.TailEvents, r.TailEvents)
			}
			// Ended runs do not end the subscription; a run created now
			// still arrives.
			late := log.run(map[string]string{"session": "s1"})
			want = append(want, log.emit(3, late)...)

			got := before.waitEvents(t, len(want))
			require.Equal(t, positionsOf(want), positionsOf(got), "every matching event once, in position order")
			for i, ev := range got {
				require.Equal(t, string(want[i].Payload), string(ev.Payload))
			}
			require.Equal(t, positionsOf(want[duringFrom:]), positionsOf(during.waitEvents(t, len(want)-duringFrom)))
			var ends []store.Event
			for _, ev := range want {
				if ev.Type == store.EventRunCompleted {
					ends = append(ends, ev)
				}
			}
			require.Equal(t, positionsOf(ends), positionsOf(completions.waitEvents(t, len(ends))), "types filter")

			// A late subscriber replays from the store (the tail holds only
			// the last events), and resuming after any delivered position
			// gives exactly the rest.
			for _, cut := range []int{0, 1, 7, 8, len(want) / 3, len(want) / 2, len(want) - 2} {
				c := follow(r, eventlog.MetadataFollowParams{TenantID: log.tenant, Key: "session", Value: "s1", After: want[cut].Position})
				rest := c.waitEvents(t, len(want)-cut-1)
				require.Equal(t, positionsOf(want[cut+1:]), positionsOf(rest), "resume after event %d", cut)
				require.Equal(t, want[cut].Position, c.first)
				c.stop(t)
			}

			// Idle, the subscription gets heartbeats at its position.
			calls := func() int { before.mu.Lock(); defer before.mu.Unlock(); return before.calls }()
			before.waitUntil(t, "two heartbeats", func(c *collector) bool { return c.calls >= calls+2 })
			before.mu.Lock()
			require.Len(t, before.events, len(want), "heartbeats carry no events")
			require.Equal(t, want[len(want)-1].Position, before.last)
			before.mu.Unlock()

			before.stop(t)
			completions.stop(t)
			during.stop(t)
			require.Zero(t, r.Stats().MetadataFeeds, "the last subscriber stops the feed")
		})
	}
}

// TestFollowMetadataFromNowOnEmptyLog: "now" on an empty log is position 0,
// and the first event to come is delivered.
func TestFollowMetadataFromNowOnEmptyLog(t *testing.T) {
	t.Parallel()
	hub := eventlog.NewHub()
	st := openStore(t, "sqlite", hub.CommitHook)
	r := eventlog.NewReader(st, hub)
	log := newMetaLog(t, st)
	c := follow(r, eventlog.MetadataFollowParams{TenantID: log.tenant, Key: "k", Value: "v", FromNow: true})
	c.waitUntil(t, "the start point", func(c *collector) bool { return c.calls > 0 })
	require.Zero(t, c.first)
	run := log.run(map[string]string{"k": "v"})
	want := log.emit(1, run)
	require.Equal(t, positionsOf(want), positionsOf(c.waitEvents(t, 1)))
	c.stop(t)
}

// A failing deliver ends the subscription with its error.
func TestFollowMetadataDeliverError(t *testing.T) {
	t.Parallel()
	hub := eventlog.NewHub()
	st := openStore(t, "sqlite", hub.CommitHook)
	r := eventlog.NewReader(st, hub)
	log := newMetaLog(t, st)
	run := log.run(map[string]string{"k": "v"})
	log.emit(2, run)
	boom := errors.New("client gone")
	err := r.FollowMetadata(context.Background(), eventlog.MetadataFollowParams{TenantID: log.tenant, Key: "k", Value: "v"},
		func(events []store.Event, _ int64) error {
			if len(events) > 0 {
				return boom
			}
			return nil
		})
	require.ErrorIs(t, err, boom)
	require.Zero(t, r.Stats().MetadataFeeds)
}
