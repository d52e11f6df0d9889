package eventlog

import (
	"context"
	"fmt"

	"github.com/runnel-dev/runnel/internal/store"
)

// MetadataFollowParams says which metadata pair to follow and from where.
type MetadataFollowParams struct {
	TenantID string
	Key      string
	Value    string
	// After is the position to resume after (exclusive); 0 starts at the
	// beginning of the log, so with every matching run still stored.
	After int64
	// FromNow starts after the log's newest event at the time of the call
	// (After is ignored).
	FromNow bool
	// Types keeps only these event types (nil: all). Filtered-out events
	// still advance the position.
	Types map[string]bool
}

// FollowMetadata delivers, in position order and in batches, the events of
// every run of the tenant whose additional metadata has Key = Value: runs
// that exist now and runs created later, interleaved in the one order of
// the log. It never ends by itself, as more such runs may come; it returns
// only when ctx ends, deliver fails, or the store fails.
//
// The guarantees are Follow's, across runs. Positions are global and follow
// commit order, and a run's metadata commits with the run, before or with
// its first event (see store.Store.ReadMetadataEvents): so every read, from
// the store or the feed's tail, returns exactly the matching events after
// the subscriber's last position, and none can later appear below it; a
// resume after any delivered position gives exactly the rest, with no gap
// or duplicate at the replay→live hand-over.
//
// Live subscribers of one pair share one feed (see feed), woken by every
// commit on this node (Hub.WaitAny: a new run carrying the pair cannot be
// waited on by id in advance) and by the poll safety net. The feed holds no
// state per run, only its bounded tail, so a subscription left open across
// any number of runs costs constant memory.
func (r *Reader) FollowMetadata(ctx context.Context, p MetadataFollowParams, deliver Deliver) error {
	after := p.After
	if p.FromNow {
		var err error
		if after, err = r.store.LastPosition(ctx); err != nil {
			return fmt.Errorf("resolve start point now: %w", err)
		}
	}
	if err := deliver(nil, after); err != nil {
		return err
	}
	key := feedKey{tenantID: p.TenantID, metaKey: p.Key, metaValue: p.Value}
	f, err := r.acquire(ctx, key, func(ctx context.Context) (feedSource, int64, bool, error) {
		// Start the tail at the log's current end: every matching event at
		// or below it has committed, so subscribers behind it find them in
		// the store.
		last, err := r.store.LastPosition(ctx)
		if err != nil {
			return nil, 0, false, fmt.Errorf("start metadata feed: %w", err)
		}
		src := metadataSource{r: r, tenantID: p.TenantID, key: p.Key, value: p.Value}
		return src, last, false, nil
	})
	if err != nil {
		return err
	}
	defer r.release(f)
	if err := r.serve(ctx, f, after, eventFilter{types: p.Types}, deliver); err != nil {
		return err
	}
	// serve returns nil only after a run's terminal event, which a metadata
	// feed never treats as an end.
	return fmt.Errorf("metadata subscription ended unexpectedly at position %d", after)
}

// metadataSource follows every run of a tenant carrying a metadata pair.
type metadataSource struct {
	r          *Reader
	tenantID   string
	key, value string
}

func (s metadataSource) read(ctx context.Context, after int64, size pageSize) ([]store.Event, error) {
	return s.r.store.ReadMetadataEvents(ctx, store.ReadMetadataEventsParams{
		TenantID: s.tenantID, Key: s.key, Value: s.value, After: after, Limit: size.events, MaxBytes: size.bytes,
	})
}

// wake waits for any commit: the runs that will carry the pair are not
// known in advance (a run created later must be seen too), and a wake-up is
// only a hint to read, cheap to get wrong.
func (s metadataSource) wake() <-chan struct{} { return s.r.hub.WaitAny() }
func (s metadataSource) endsWithRun() bool     { return false }

// FeedStats describes the reader's live feeds, for metrics and tests.
type FeedStats struct {
	// RunFeeds and MetadataFeeds count the feeds being followed.
	RunFeeds      int
	MetadataFeeds int
	// TailEvents and TailBytes are the largest tail of any feed (each is
	// bounded by the reader's TailEvents and TailBytes).
	TailEvents int
	TailBytes  int
}

// Stats reports the live feeds.
func (r *Reader) Stats() FeedStats {
	r.mu.Lock()
	feeds := make([]*feed, 0, len(r.feeds))
	for _, f := range r.feeds {
		feeds = append(feeds, f)
	}
	r.mu.Unlock()
	var st FeedStats
	for _, f := range feeds {
		select {
		case <-f.ready:
			if f.err != nil {
				continue
			}
		default:
			continue // starting; its source is not set yet
		}
		if f.src.endsWithRun() {
			st.RunFeeds++
		} else {
			st.MetadataFeeds++
		}
		f.mu.Lock()
		st.TailEvents = max(st.TailEvents, len(f.events))
		st.TailBytes = max(st.TailBytes, f.bytes)
		f.mu.Unlock()
	}
	return st
}
