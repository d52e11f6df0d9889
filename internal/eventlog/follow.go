package eventlog

import (
	"context"
	"time"

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
}

// Reader serves run subscriptions from the store.
//
// It is a pull model: each subscriber reads pages from the store after its
// own position, at its own pace. A slow subscriber only lags; it never holds
// memory of other subscribers' events or slows the appender, and its memory
// is one page.
type Reader struct {
	store store.Store
	hub   *Hub
	// PageSize is the number of events read per query (default 512).
	PageSize int
	// PageBytes caps the payload bytes of a page (default 8 MiB).
	PageBytes int
	// Poll is the longest wait without a wake-up before reading again: a
	// safety net, since wake-ups are hints (default 2s).
	Poll time.Duration
}

// NewReader returns a reader over st, woken by hub.
func NewReader(st store.Store, hub *Hub) *Reader {
	return &Reader{store: st, hub: hub, PageSize: 512, PageBytes: 8 << 20, Poll: 2 * time.Second}
}

// Follow delivers a run's events in position order to deliver, in pages,
// from the start point until the run's terminal event has been delivered
// (then it returns nil), ctx ends, deliver fails, or the store fails.
//
// Replay and live are one loop: arm the wake-up, read everything stored
// after the last delivered position, and wait only when caught up. Because
// the wake-up is armed before the read, an event committed after the read is
// either in the read or fires the wake-up: there is no gap at the hand-over,
// and since every read starts after the last delivered position, no
// duplicate. Positions follow commit order (see package store), so nothing
// can appear behind a position already passed.
func (r *Reader) Follow(ctx context.Context, p FollowParams, deliver func([]store.Event) error) error {
	// The run must exist (and belong to the tenant) before we wait on it.
	run, err := r.store.GetRun(ctx, p.TenantID, p.RunID)
	if err != nil {
		return err
	}
	after := p.After
	if p.FromNow {
		if after, err = r.store.LastRunPosition(ctx, p.TenantID, p.RunID); err != nil {
			return err
		}
		if run.Status.Terminal() {
			return nil // nothing can come after the terminal event
		}
	}
	timer := time.NewTimer(r.Poll)
	defer timer.Stop()
	finished := false // the run was seen terminal before the last read
	for {
		wake := r.hub.Wait(p.RunID)
		page, err := r.store.ReadEvents(ctx, store.ReadEventsParams{
			TenantID: p.TenantID, RunID: p.RunID, After: after, Limit: r.PageSize, MaxBytes: r.PageBytes,
		})
		if err != nil {
			return err
		}
		if len(page) > 0 {
			terminal := false
			for i, ev := range page {
				if ev.Terminal() {
					// Nothing of the run follows its terminal event.
					page, terminal = page[:i+1], true
					break
				}
			}
			after = page[len(page)-1].Position
			out := page
			if p.Types != nil {
				out = filter(page, p.Types)
			}
			if len(out) > 0 {
				if err := deliver(out); err != nil {
					return err
				}
			}
			if terminal {
				return nil
			}
			continue // there may be more stored: read before waiting
		}
		// Caught up. A run whose status is terminal has committed its
		// terminal event with that status, so if it is terminal now, one
		// more read is guaranteed to contain the rest; if that read is empty
		// too, the subscriber started after the terminal event.
		if finished {
			return nil
		}
		run, err := r.store.GetRun(ctx, p.TenantID, p.RunID)
		if err != nil {
			return err
		}
		if run.Status.Terminal() {
			finished = true
			continue
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(r.Poll)
		select {
		case <-wake:
		case <-timer.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func filter(events []store.Event, types map[string]bool) []store.Event {
	out := events[:0:0]
	for _, ev := range events {
		if types[ev.Type] {
			out = append(out, ev)
		}
	}
	return out
}
