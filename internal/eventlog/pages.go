package eventlog

import (
	"context"
	"sync"

	"github.com/runnel-dev/runnel/internal/store"
)

// pageCache shares the store reads of subscribers catching up on the same
// part of a run (or metadata pair): when thousands of viewers open a popular
// run from its start at once, each of them is behind the live tail and
// would read the same first pages of the store for itself — a join storm
// of identical queries. With the cache the first one reads a page and the
// others take it: those asking meanwhile wait for that one read, those
// asking later find it kept, up to a byte budget (oldest pages go first).
//
// A kept page stays right: it holds exactly the followed events after its
// start position up to its last one (the log below the horizon never
// changes), so a subscriber that takes it continues after its last event
// as if it had read it itself. Empty pages are neither kept nor handed to
// those waiting (they read again): events may have come since. A short
// page may be kept, and only costs its taker one more read. Pages are
// shared: nobody may change their events.
type pageCache struct {
	mu     sync.Mutex
	pages  map[pageKey]*cachedPage
	order  []pageKey // insertion order; order[head:] are kept
	head   int
	bytes  int
	budget int
	// waiting counts callers waiting for another's read (tests watch it).
	waiting int
}

type pageKey struct {
	feed  feedKey
	after int64
}

type cachedPage struct {
	ready  chan struct{} // closed when events and err are set
	events []store.Event
	err    error
	bytes  int
}

// pageCacheBudget bounds the pages kept: a few hundred full pages of small
// events.
const pageCacheBudget = 16 << 20

func newPageCache(budget int) *pageCache {
	return &pageCache{pages: make(map[pageKey]*cachedPage), budget: budget}
}

// read returns the page after key.after, from the cache or by calling
// readPage (once for everyone asking at the same time).
func (c *pageCache) read(ctx context.Context, key pageKey, readPage func() ([]store.Event, error)) ([]store.Event, error) {
	c.mu.Lock()
	if p, ok := c.pages[key]; ok {
		c.waiting++
		c.mu.Unlock()
		select {
		case <-p.ready:
		case <-ctx.Done():
		}
		c.mu.Lock()
		c.waiting--
		c.mu.Unlock()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if p.err == nil && len(p.events) > 0 {
			return p.events, nil
		}
		// The reader failed (its context ended, say), or found nothing
		// after the position: read for ourselves. An empty page read by
		// another says nothing of what committed since it started, which
		// the caller may rely on (see Reader.serve).
		return readPage()
	}
	p := &cachedPage{ready: make(chan struct{})}
	c.pages[key] = p
	c.mu.Unlock()

	p.events, p.err = readPage()
	for _, ev := range p.events {
		p.bytes += len(ev.Payload) + len(ev.Data) + eventOverhead
	}
	close(p.ready)

	c.mu.Lock()
	defer c.mu.Unlock()
	if p.err != nil || len(p.events) == 0 || p.bytes > c.budget {
		if c.pages[key] == p {
			delete(c.pages, key)
		}
		return p.events, p.err
	}
	c.order = append(c.order, key)
	c.bytes += p.bytes
	for c.bytes > c.budget {
		old := c.order[c.head]
		c.head++
		if q, ok := c.pages[old]; ok {
			c.bytes -= q.bytes
			delete(c.pages, old)
		}
	}
	if c.head > len(c.order)/2 {
		c.order = append(c.order[:0:0], c.order[c.head:]...)
		c.head = 0
	}
	return p.events, nil
}

// eventOverhead is what an event costs in memory besides its payload and
// data: the struct and its strings.
const eventOverhead = 256
