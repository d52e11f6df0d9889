package eventlog

import (
	"context"
	"errors"
	"sort"
	"sync"

	"github.com/runnel-dev/runnel/internal/startstop"
	"github.com/runnel-dev/runnel/internal/store"
)

// feed shares the reading of new events among the live subscribers of one
// source (a run, or a metadata pair): one goroutine reads what was appended
// after its last position (once per wake-up, whatever the number of
// subscribers) into a bounded tail kept in memory, and subscribers caught up
// with the tail are served from it. A subscriber behind the tail reads the
// store itself, at its own pace.
//
// The tail is read from the store, not taken from the append path, so it is
// exactly the store's log: contiguous (every followed event with a position
// above base is in it) because positions follow commit order, and equally
// correct when another engine node appended the events.
type feed struct {
	reader *Reader
	key    feedKey
	src    feedSource
	refs   int // guarded by Reader.mu

	mu       sync.Mutex
	base     int64         // events holds every event of the run after base
	events   []store.Event // ascending positions; bounded by the reader's tail limits
	bytes    int
	terminal bool          // run feeds: the run's terminal event is at or before the tail's end
	changed  chan struct{} // closed when the tail grows or the run ends

	// ready is closed once the feed has started (src, base and terminal
	// set, its goroutine running) or failed to (err set). Until then it is
	// in the reader's map already, so that others subscribing to the same
	// source wait for it instead of starting a second feed.
	ready chan struct{}
	err   error
	svc   startstop.Base
}

// feedKey identifies a feed among the reader's: a run (runID alone, as run
// IDs are unique across tenants) or a tenant's metadata pair.
type feedKey struct {
	runID                        string
	tenantID, metaKey, metaValue string
}

// feedSource is what a feed follows: one run (runSource) or every run
// carrying a metadata pair (metadataSource).
type feedSource interface {
	// read returns a page of the followed events after a position, in
	// position order: exactly the followed events after it up to the
	// page's last one, with none to appear below that later (see package
	// store). A subscriber behind the tail reads with it too.
	read(ctx context.Context, after int64, size pageSize) ([]store.Event, error)
	// wake returns a channel closed at the next commit on this node that may
	// have appended followed events. The feed takes it before each read, so
	// a commit the read missed still wakes it.
	wake() <-chan struct{}
	// endsWithRun reports whether the followed events end with the run's
	// terminal event; a metadata feed never ends, as runs come and go.
	endsWithRun() bool
}

// runSource follows one run.
type runSource struct {
	r        *Reader
	tenantID string
	runID    string
}

func (s runSource) read(ctx context.Context, after int64, size pageSize) ([]store.Event, error) {
	return s.r.store.ReadEvents(ctx, store.ReadEventsParams{
		TenantID: s.tenantID, RunID: s.runID, After: after, Limit: size.events, MaxBytes: size.bytes,
	})
}

func (s runSource) wake() <-chan struct{} { return s.r.hub.Wait(s.runID) }
func (s runSource) endsWithRun() bool     { return true }

// tailView is a subscriber's snapshot of a feed.
type tailView struct {
	base     int64
	events   []store.Event
	terminal bool
	changed  <-chan struct{}
}

func (f *feed) view() tailView {
	f.mu.Lock()
	defer f.mu.Unlock()
	return tailView{base: f.base, events: f.events, terminal: f.terminal, changed: f.changed}
}

// acquireRun returns the run's feed, starting it if needed. The caller must
// release it.
func (r *Reader) acquireRun(ctx context.Context, tenantID, runID string) (*feed, error) {
	return r.acquire(ctx, feedKey{runID: runID}, func(ctx context.Context) (feedSource, int64, bool, error) {
		// The status first: a run seen terminal has its terminal event
		// committed (both are written in one transaction), so the position
		// read next covers it. In the other order, a run ending in between
		// would give a tail marked terminal that starts after a position
		// below the terminal event, and its subscribers would be told the
		// run ended without getting its last events.
		run, err := r.store.GetRun(ctx, tenantID, runID)
		if err != nil {
			return nil, 0, false, err
		}
		// Start at the current end of the run's log; anything before is
		// read from the store by the subscribers that need it.
		last, err := r.store.LastRunPosition(ctx, tenantID, runID)
		if err != nil {
			return nil, 0, false, err
		}
		return runSource{r: r, tenantID: tenantID, runID: runID}, last, run.Status.Terminal(), nil
	})
}

// acquire returns the feed of key, starting it if needed with what start
// returns: its source, the position its tail starts after (every followed
// event at or below it has committed), and whether the run already ended.
// The caller must release the feed. The feed's goroutine is owned by the
// reader: the last release stops it and waits for it.
//
// start reads the store, so it runs outside r.mu, which every subscription
// on the node takes: a slow read delays only the subscribers of this
// source. They wait for the feed's ready signal; the feed is in the map
// from before start runs, so a source never gets two feeds.
func (r *Reader) acquire(ctx context.Context, key feedKey, start func(context.Context) (feedSource, int64, bool, error)) (*feed, error) {
	for {
		r.mu.Lock()
		f, ok := r.feeds[key]
		if !ok {
			f = &feed{reader: r, key: key, refs: 1, changed: make(chan struct{}), ready: make(chan struct{})}
			r.feeds[key] = f
			r.mu.Unlock()
			if err := r.start(ctx, f, start); err != nil {
				return nil, err
			}
			return f, nil
		}
		f.refs++
		r.mu.Unlock()
		select {
		case <-f.ready:
		case <-ctx.Done():
			// Our reference is released once the feed is up (or it failed,
			// and is gone with its references).
			go func() {
				<-f.ready
				if f.err == nil {
					r.release(f)
				}
			}()
			return nil, ctx.Err()
		}
		if f.err == nil {
			return f, nil
		}
		// The subscriber that started it failed. Its error is ours too,
		// unless it was only that subscriber leaving: then try again.
		if ctx.Err() != nil || !(errors.Is(f.err, context.Canceled) || errors.Is(f.err, context.DeadlineExceeded)) {
			return nil, f.err
		}
	}
}

// start sets up a new feed of the reader's map with what start returns and
// runs it, or removes it on error; either way it then signals ready.
func (r *Reader) start(ctx context.Context, f *feed, start func(context.Context) (feedSource, int64, bool, error)) error {
	defer close(f.ready)
	src, base, terminal, err := start(ctx)
	if err != nil {
		// Nobody released it: references are released only once it is up.
		r.mu.Lock()
		delete(r.feeds, f.key)
		r.mu.Unlock()
		f.err = err
		return err
	}
	f.src, f.base, f.terminal = src, base, terminal
	// The feed outlives the subscription that started it, so not ctx.
	return f.svc.Start(context.Background(), f.run)
}

// release drops a reference; the last one stops the feed.
func (r *Reader) release(f *feed) {
	r.mu.Lock()
	f.refs--
	last := f.refs == 0
	if last {
		delete(r.feeds, f.key)
	}
	r.mu.Unlock()
	if last {
		f.svc.Stop()
	}
}

// run reads new events into the tail until the run ends (run feeds) or the
// feed stops.
func (f *feed) run(ctx context.Context) {
	r := f.reader
	poll := r.Clock.NewTimer(r.Poll)
	defer poll.Stop()
	for {
		f.mu.Lock()
		after, terminal := f.base, f.terminal
		if n := len(f.events); n > 0 {
			after = f.events[n-1].Position
		}
		f.mu.Unlock()
		if terminal {
			return
		}
		// Arm before reading: a commit after this closes wake, so a commit
		// the read does not see still causes another read.
		wake := f.src.wake()
		page, err := f.src.read(ctx, after, f.reader.livePage())
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			// Subscribers keep their own positions; retry after a poll.
			page = nil
		}
		if len(page) > 0 {
			r.shared.share(page) // subscribers behind the tail then read the same copy
			f.append(page)
			continue
		}
		resetTimer(poll, r.Poll)
		select {
		case <-wake:
		case <-poll.C():
		case <-ctx.Done():
			return
		}
	}
}

// append adds a page to the tail, dropping the oldest quarter whenever the
// tail is over its limits (copying, so the dropped events can be freed once
// no subscriber still holds an older view).
func (f *feed) append(page []store.Event) {
	r := f.reader
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ev := range page {
		f.events = append(f.events, ev)
		f.bytes += len(ev.Payload) + len(ev.Data)
		if ev.Terminal() && f.src.endsWithRun() {
			f.terminal = true // nothing of the run follows
			break
		}
	}
	if len(f.events) > r.TailEvents || f.bytes > r.TailBytes {
		// At least a quarter, so trimming is rare, and at least the excess,
		// so the tail never holds more than TailEvents.
		drop := max(len(f.events)/4, len(f.events)-r.TailEvents, 1)
		for f.bytes-sizeOf(f.events[:drop]) > r.TailBytes && drop < len(f.events)-1 {
			drop++
		}
		f.bytes -= sizeOf(f.events[:drop])
		f.base = f.events[drop-1].Position
		f.events = append([]store.Event(nil), f.events[drop:]...)
	}
	close(f.changed)
	f.changed = make(chan struct{})
}

func sizeOf(events []store.Event) int {
	n := 0
	for _, ev := range events {
		n += len(ev.Payload) + len(ev.Data)
	}
	return n
}

// after returns the events of the view with a position above pos, and
// whether the view covers pos (pos >= base).
func (v tailView) after(pos int64) ([]store.Event, bool) {
	if pos < v.base {
		return nil, false
	}
	i := sort.Search(len(v.events), func(i int) bool { return v.events[i].Position > pos })
	return v.events[i:], true
}
