package eventlog

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/runnel-dev/runnel/internal/store"
)

// feed shares the reading of one run's new events among the run's live
// subscribers: one goroutine reads what was appended after its last position
// (once per wake-up, whatever the number of subscribers) into a bounded tail
// kept in memory, and subscribers caught up with the tail are served from it.
// A subscriber behind the tail reads the store itself, at its own pace.
//
// The tail is read from the store, not taken from the append path, so it is
// exactly the store's log: contiguous (every event of the run with a
// position above base is in it) because positions follow commit order, and
// equally correct when another engine node appended the events.
type feed struct {
	reader   *Reader
	tenantID string
	runID    string
	refs     int // guarded by Reader.mu

	mu       sync.Mutex
	base     int64         // events holds every event of the run after base
	events   []store.Event // ascending positions; bounded by the reader's tail limits
	bytes    int
	terminal bool          // the run's terminal event is at or before the tail's end
	changed  chan struct{} // closed when the tail grows or the run ends
	stop     context.CancelFunc
	done     chan struct{}
}

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

// acquire returns the run's feed, starting it if needed. The caller must
// release it.
func (r *Reader) acquire(ctx context.Context, tenantID, runID string) (*feed, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if f, ok := r.feeds[runID]; ok {
		f.refs++
		return f, nil
	}
	// Start at the current end of the run's log; anything before is read
	// from the store by the subscribers that need it.
	last, err := r.store.LastRunPosition(ctx, tenantID, runID)
	if err != nil {
		return nil, err
	}
	run, err := r.store.GetRun(ctx, tenantID, runID)
	if err != nil {
		return nil, err
	}
	fctx, stop := context.WithCancel(context.Background())
	f := &feed{
		reader: r, tenantID: tenantID, runID: runID, refs: 1,
		base: last, terminal: run.Status.Terminal(), changed: make(chan struct{}),
		stop: stop, done: make(chan struct{}),
	}
	r.feeds[runID] = f
	go f.run(fctx)
	return f, nil
}

// release drops a reference; the last one stops the feed.
func (r *Reader) release(f *feed) {
	r.mu.Lock()
	f.refs--
	last := f.refs == 0
	if last {
		delete(r.feeds, f.runID)
	}
	r.mu.Unlock()
	if last {
		f.stop()
		<-f.done
	}
}

// run reads new events into the tail until the run ends or the feed stops.
func (f *feed) run(ctx context.Context) {
	defer close(f.done)
	r := f.reader
	poll := time.NewTimer(r.Poll)
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
		wake := r.hub.Wait(f.runID)
		page, err := r.store.ReadEvents(ctx, store.ReadEventsParams{
			TenantID: f.tenantID, RunID: f.runID, After: after, Limit: r.PageSize, MaxBytes: r.PageBytes,
		})
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			// Subscribers keep their own positions; retry after a poll.
			page = nil
		}
		if len(page) > 0 {
			f.append(page)
			continue
		}
		resetTimer(poll, r.Poll)
		select {
		case <-wake:
		case <-poll.C:
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
		if ev.Terminal() {
			f.terminal = true // nothing of the run follows
			break
		}
	}
	if len(f.events) > r.TailEvents || f.bytes > r.TailBytes {
		drop := max(len(f.events)/4, 1)
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
