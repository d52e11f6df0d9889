package eventlog

import (
	"context"
	"sync"
	"time"

	"github.com/runnel-dev/runnel/internal/clock"
	"github.com/runnel-dev/runnel/internal/store"
)

// FollowParams says which run to follow and from where.
type FollowParams struct {
	TenantID string
	RunID    string
	// After is the position to resume after (exclusive); 0 starts at the
	// beginning of the run.
	After int64
	// FromNow starts after the run's newest event at the time of the call
	// (After is ignored).
	FromNow bool
	// Types keeps only these event types (nil: all). Filtered-out events
	// still advance the position, and the terminal event still ends the
	// subscription.
	Types map[string]bool
	// Streams keeps only the stream events (step.stream, step.stream_closed)
	// of these streams ("" the default one; nil: all); other events pass.
	Streams map[string]bool
}

// Deliver receives a batch of events and the subscription's position after
// it. A batch may be empty: the first call gives the resolved start point,
// and later empty calls are heartbeats or pages filtered out entirely.
type Deliver func(events []store.Event, position int64) error

// Reader serves run subscriptions.
//
// Subscribers pull: each one has its own position and moves at its own
// pace. Live subscribers of a run share one feed (see feed), so a hot run
// costs one store read per wake-up, not one per subscriber; a subscriber
// behind the feed's in-memory tail reads pages from the store itself. A
// slow subscriber therefore only lags: it holds no events of its own beyond
// the page it is writing, never slows the appender or other subscribers, and
// the engine's memory is bounded by one tail per followed run.
type Reader struct {
	store store.Store
	hub   *Hub
	// PageSize is the number of events read per query and delivered per
	// batch (default 256).
	PageSize int
	// PageBytes caps the payload bytes of a page read from the store
	// (default 256 KiB; a single larger event is still read alone).
	PageBytes int
	// BatchBytes caps the payload bytes delivered in one batch (default 64
	// KiB; a single larger event goes alone). A subscriber that stops
	// reading holds one batch in the engine while its write blocks, so this
	// bounds what stuck subscribers cost.
	BatchBytes int
	// CatchUpPageSize and CatchUpPageBytes size the store reads of a
	// subscriber behind the tail (replaying a run): larger pages, fewer
	// queries (defaults 4096 events, 1 MiB). It still gets batches of at
	// most PageSize events and BatchBytes.
	CatchUpPageSize  int
	CatchUpPageBytes int
	// TailEvents and TailBytes bound the in-memory tail of each followed
	// run (defaults 4096 events, 8 MiB).
	TailEvents int
	TailBytes  int
	// Poll is the longest wait without a wake-up before the store is read
	// again: a safety net, since wake-ups are hints (default 2s).
	Poll time.Duration
	// Heartbeat is the longest a subscriber goes without a delivery; an idle
	// subscription gets an empty one (default 15s).
	Heartbeat time.Duration
	// Clock times the heartbeats and polls (default clock.Real).
	Clock clock.Clock

	// shared holds recent large payloads read from the store, so that the
	// subscribers replaying one share a copy.
	shared *sharedPayloads
	// pages shares the store reads of subscribers catching up on the same
	// events (pages.go).
	pages *pageCache

	mu    sync.Mutex
	feeds map[feedKey]*feed
}

// sharedPayloadBudget bounds the large payloads kept for sharing: four of
// the largest.
const sharedPayloadBudget = 16 << 20

// NewReader returns a reader over st, woken by hub.
func NewReader(st store.Store, hub *Hub) *Reader {
	return &Reader{
		store: st, hub: hub,
		PageSize: 256, PageBytes: 256 << 10, BatchBytes: 64 << 10, TailEvents: 4096, TailBytes: 8 << 20,
		CatchUpPageSize: 4096, CatchUpPageBytes: 1 << 20,
		Poll: 2 * time.Second, Heartbeat: 15 * time.Second, Clock: clock.Real(),
		feeds:  make(map[feedKey]*feed),
		shared: newSharedPayloads(sharedPayloadBudget),
		pages:  newPageCache(pageCacheBudget),
	}
}

// Follow delivers a run's events in position order, in batches, from the
// start point until the run's terminal event has been delivered, or the
// start point was already past it: then it returns nil, meaning the run
// ended and the subscriber has everything. It also returns when ctx ends,
// deliver fails, or the store fails.
//
// No gap and no duplicate, also at the replay→live hand-over: every read,
// from the store or the feed's tail, returns exactly the run's events after
// the subscriber's last position (positions follow commit order, see package
// store), and the feed arms its wake-up before each read, so an append that
// commits after a read always causes another.
//
// The caller has checked that the run exists and may be read
// (engine.Subscribe does, once, for every edge): Follow does not look it
// up again.
func (r *Reader) Follow(ctx context.Context, p FollowParams, deliver Deliver) error {
	after := p.After
	if p.FromNow {
		var err error
		if after, err = r.store.LastRunPosition(ctx, p.TenantID, p.RunID); err != nil {
			return err
		}
	}
	if err := deliver(nil, after); err != nil {
		return err
	}
	f, err := r.acquireRun(ctx, p.TenantID, p.RunID)
	if err != nil {
		return err
	}
	defer r.release(f)
	return r.serve(ctx, f, after, eventFilter{types: p.Types, streams: p.Streams}, deliver)
}

// serve delivers the feed's events after `after` (already delivered as the
// start point) to one subscriber, from the feed's tail when `after` is in
// it, from the store otherwise, until a run feed's terminal event has been
// delivered (then nil), ctx ends, deliver fails or the store fails.
func (r *Reader) serve(ctx context.Context, f *feed, after int64, keep eventFilter, deliver Deliver) error {
	endsWithRun := f.src.endsWithRun()
	heartbeat := r.Clock.NewTimer(r.Heartbeat)
	defer heartbeat.Stop()
	// A page read ahead while the previous one is delivered: readAhead
	// until it is taken (serve waits for it before returning), then ahead.
	var (
		readAhead chan pageResult
		ahead     *pageResult
	)
	takeAhead := func() {
		if readAhead != nil {
			res := <-readAhead
			ahead, readAhead = &res, nil
		}
	}
	defer takeAhead()
	// send delivers events (ascending, after `after`) and reports whether
	// the run's terminal event was among them.
	send := func(events []store.Event) (bool, error) {
		terminal := false
		for i, ev := range events {
			if endsWithRun && ev.Terminal() {
				events, terminal = events[:i+1], true
				break
			}
		}
		after = events[len(events)-1].Position
		out := events
		if !keep.all() {
			out = keep.apply(events)
		}
		if err := deliver(out, after); err != nil {
			return false, err
		}
		resetTimer(heartbeat, r.Heartbeat)
		return terminal, nil
	}
	for {
		view := f.view()
		if events, covered := view.after(after); covered {
			if len(events) > 0 {
				for len(events) > 0 {
					n := r.batchLen(events)
					done, err := send(events[:n])
					if err != nil || done {
						return err
					}
					events = events[n:]
				}
				continue
			}
			if view.terminal {
				return nil // the terminal event is at or before `after`
			}
			select {
			case <-view.changed:
			case <-heartbeat.C():
				if err := deliver(nil, after); err != nil {
					return err
				}
				heartbeat.Reset(r.Heartbeat)
			case <-ctx.Done():
				return ctx.Err()
			}
			continue
		}
		// Behind the tail: read the store at our own pace, the next page
		// while this one is delivered.
		takeAhead()
		var page []store.Event
		var err error
		// An empty page read ahead is not used: it was read before this
		// iteration's view, so it cannot vouch for the view's base (see
		// below).
		if ahead != nil && ahead.after == after && len(ahead.events) > 0 {
			page, err = ahead.events, ahead.err
		} else {
			page, err = r.readCatchUp(ctx, f, after)
		}
		ahead = nil
		if err != nil {
			return err
		}
		if len(page) >= r.catchUpPage().events/2 && !(endsWithRun && page[len(page)-1].Terminal()) {
			next := page[len(page)-1].Position
			readAhead = make(chan pageResult, 1)
			go func(ch chan<- pageResult) {
				events, err := r.readCatchUp(ctx, f, next)
				ch <- pageResult{after: next, events: events, err: err}
			}(readAhead)
		}
		if len(page) == 0 {
			// Nothing followed lies between `after` and the tail's base (a
			// position of another run can land there): every event at or
			// below base committed before the view was taken, so before
			// this read (which started after the view: an empty page is
			// never one read ahead or read by someone else). Move up to it.
			after = view.base
			continue
		}
		for len(page) > 0 {
			n := r.batchLen(page)
			done, err := send(page[:n])
			if err != nil || done {
				return err
			}
			page = page[n:]
		}
	}
}

// pageSize bounds one store read.
type pageSize struct{ events, bytes int }

// livePage sizes the feed's reads of new events.
func (r *Reader) livePage() pageSize { return pageSize{r.PageSize, r.PageBytes} }

// catchUpPage sizes the reads of a subscriber behind the tail.
func (r *Reader) catchUpPage() pageSize {
	return pageSize{max(r.CatchUpPageSize, r.PageSize), max(r.CatchUpPageBytes, r.PageBytes)}
}

// pageResult is a page read ahead.
type pageResult struct {
	after  int64 // the page holds the events after this position
	events []store.Event
	err    error
}

// readCatchUp reads a page for a subscriber behind the tail, sharing the
// read with others catching up on the same events (pages.go).
func (r *Reader) readCatchUp(ctx context.Context, f *feed, after int64) ([]store.Event, error) {
	return r.pages.read(ctx, pageKey{f.key, after}, func() ([]store.Event, error) {
		page, err := f.src.read(ctx, after, r.catchUpPage())
		r.shared.share(page)
		return page, err
	})
}

// batchLen returns how many of events go in the next batch: at most
// PageSize events and BatchBytes of payload, and at least one event.
func (r *Reader) batchLen(events []store.Event) int {
	n, bytes := 0, 0
	for n < len(events) && n < r.PageSize {
		bytes += len(events[n].Payload) + len(events[n].Data)
		if n > 0 && bytes > r.BatchBytes {
			break
		}
		n++
	}
	return n
}

// resetTimer re-arms t to fire d from now. Since Go 1.23 a Reset timer
// delivers no value from before the Reset, so there is nothing to drain.
func resetTimer(t clock.Timer, d time.Duration) {
	t.Reset(max(d, time.Millisecond))
}

// eventFilter is what one subscriber keeps of the events it is served; the
// zero value keeps everything.
type eventFilter struct {
	types   map[string]bool // nil: every type
	streams map[string]bool // nil: every stream
}

func (k eventFilter) all() bool { return k.types == nil && k.streams == nil }

func (k eventFilter) keeps(ev store.Event) bool {
	if k.types != nil && !k.types[ev.Type] {
		return false
	}
	if k.streams != nil && (ev.Type == store.EventStepStream || ev.Type == store.EventStepStreamClosed) {
		return k.streams[ev.Stream]
	}
	return true
}

// apply returns the kept events: events itself when it keeps them all
// (the common case: a filter on step.stream during a stream), else a new
// slice, since events may be shared with other subscribers. Either is
// only read by the subscriber.
func (k eventFilter) apply(events []store.Event) []store.Event {
	for i, ev := range events {
		if k.keeps(ev) {
			continue
		}
		out := make([]store.Event, i, len(events)-1)
		copy(out, events[:i])
		for _, ev := range events[i+1:] {
			if k.keeps(ev) {
				out = append(out, ev)
			}
		}
		return out
	}
	return events
}
