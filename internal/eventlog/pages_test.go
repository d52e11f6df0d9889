package eventlog

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/store"
)

// Subscribers catching up on the same events at once share one store read;
// later ones take the kept page; an empty or failed read is not kept.
func TestPageCacheSharesReads(t *testing.T) {
	c := newPageCache(1 << 20)
	ctx := t.Context()
	key := pageKey{feed: feedKey{runID: "run"}, after: 0}
	page := []store.Event{{Position: 1, Payload: []byte("a")}, {Position: 2, Payload: []byte("b")}}

	var reads atomic.Int32
	release := make(chan struct{})
	readPage := func() ([]store.Event, error) {
		reads.Add(1)
		<-release
		return page, nil
	}
	const joiners = 50
	var wg sync.WaitGroup
	got := make([][]store.Event, joiners)
	for i := range joiners {
		wg.Go(func() {
			var err error
			got[i], err = c.read(ctx, key, readPage)
			require.NoError(t, err)
		})
	}
	// Every joiner is waiting on the one read before it returns.
	for {
		c.mu.Lock()
		p := c.pages[key]
		c.mu.Unlock()
		if p != nil && reads.Load() == 1 {
			break
		}
	}
	close(release)
	wg.Wait()
	require.EqualValues(t, 1, reads.Load(), "joiners read the same page once")
	for _, g := range got {
		require.Equal(t, page, g)
	}
	// A later joiner takes the kept page.
	g, err := c.read(ctx, key, func() ([]store.Event, error) { t.Fatal("read again"); return nil, nil })
	require.NoError(t, err)
	require.Equal(t, page, g)

	// Empty pages are not kept: events may come after them.
	empty := pageKey{feed: feedKey{runID: "run"}, after: 2}
	n := 0
	for range 2 {
		_, err := c.read(ctx, empty, func() ([]store.Event, error) { n++; return nil, nil })
		require.NoError(t, err)
	}
	require.Equal(t, 2, n)

	// Nor are failed reads.
	failed := pageKey{feed: feedKey{runID: "other"}, after: 0}
	boom := errors.New("boom")
	_, err = c.read(ctx, failed, func() ([]store.Event, error) { return nil, boom })
	require.ErrorIs(t, err, boom)
	g, err = c.read(ctx, failed, func() ([]store.Event, error) { return page, nil })
	require.NoError(t, err)
	require.Equal(t, page, g)
}

// The cache holds at most its budget, dropping the oldest pages.
func TestPageCacheBudget(t *testing.T) {
	c := newPageCache(3 * (eventOverhead + 1))
	ctx := context.Background()
	for i := range 10 {
		_, err := c.read(ctx, pageKey{after: int64(i)}, func() ([]store.Event, error) {
			return []store.Event{{Position: int64(i + 1), Payload: []byte("x")}}, nil
		})
		require.NoError(t, err)
	}
	require.LessOrEqual(t, c.bytes, c.budget)
	require.Len(t, c.pages, 3)
	require.Contains(t, c.pages, pageKey{after: 9})
	require.NotContains(t, c.pages, pageKey{after: 0})
}

// An empty page read by another subscriber is not handed to one waiting
// for it: that read started before the waiter looked at the feed, so it
// cannot tell the waiter nothing committed since (a waiter trusting it
// would skip to the feed's base past events committed meanwhile).
func TestPageCacheWaiterRereadsEmptyPage(t *testing.T) {
	c := newPageCache(1 << 20)
	ctx := t.Context()
	key := pageKey{feed: feedKey{runID: "run"}, after: 5}
	started, release := make(chan struct{}), make(chan struct{})
	leaderDone := make(chan struct{})
	go func() {
		defer close(leaderDone)
		page, err := c.read(ctx, key, func() ([]store.Event, error) {
			close(started)
			<-release
			return nil, nil // nothing after 5 when this read started
		})
		require.NoError(t, err)
		require.Empty(t, page)
	}()
	<-started
	waiterDone := make(chan []store.Event)
	go func() {
		page, err := c.read(ctx, key, func() ([]store.Event, error) {
			return []store.Event{{Position: 6}}, nil // committed since
		})
		require.NoError(t, err)
		waiterDone <- page
	}()
	// The waiter is waiting for the leader's read before it ends.
	for {
		c.mu.Lock()
		w := c.waiting
		c.mu.Unlock()
		if w == 1 {
			break
		}
	}
	close(release)
	<-leaderDone
	require.Equal(t, []store.Event{{Position: 6}}, <-waiterDone)
}
