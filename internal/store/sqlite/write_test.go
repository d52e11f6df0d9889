package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/store"
	"github.com/runnel-dev/runnel/internal/testdb"
)

// Writes queued behind the writer commit as one batch, yet each succeeds or
// fails on its own: a write whose function fails or panics leaves nothing
// behind and gets its own error (or panic) back, a write abandoned while
// queued never runs, and the others' events are stored and reach the commit
// hook in position order.
func TestWriteBatchIsolatesWrites(t *testing.T) {
	t.Parallel()
	var (
		mu     sync.Mutex
		hooked []store.Event
	)
	s := open(t, testdb.SQLitePath(t), func(evs []store.Event) {
		mu.Lock()
		hooked = append(hooked, evs...)
		mu.Unlock()
	})
	ctx := context.Background()

	// Hold the writer, so that the writes below queue up behind it.
	holding, release := make(chan struct{}), make(chan struct{})
	held := make(chan error, 1)
	go func() {
		held <- s.Write(ctx, func(store.Tx) error { close(holding); <-release; return nil })
	}()
	<-holding

	const writes = 30
	errBoom := errors.New("boom")
	results := make([]error, writes)
	panics := make([]any, writes)
	ran := make([]bool, writes)
	const abandon = 7
	abandonCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	abandoned := make(chan struct{})
	for i := range writes {
		wctx := ctx
		if i == abandon {
			wctx = abandonCtx
		}
		wg.Go(func() {
			if i == abandon {
				defer close(abandoned)
			}
			defer func() { panics[i] = recover() }()
			results[i] = s.Write(wctx, func(tx store.Tx) error {
				ran[i] = true
				ev := store.Event{TenantID: "t", RunID: "r", Workflow: "wf", Type: store.EventStepStream,
					Payload: fmt.Appendf(nil, "%02d", i), CreatedAt: time.Unix(0, 0)}
				if err := tx.AppendEvents(ctx, []store.Event{ev}); err != nil {
					return err
				}
				switch i % 5 {
				case 1:
					return errBoom
				case 2:
					panic(fmt.Sprintf("panic in write %d", i))
				}
				return nil
			})
		})
	}
	deadline := time.Now().Add(30 * time.Second)
	for s.PendingWrites() < writes {
		require.True(t, time.Now().Before(deadline), "writes never queued")
		time.Sleep(time.Millisecond)
	}
	cancel() // write 7 gives up while queued
	<-abandoned
	close(release)
	require.NoError(t, <-held)
	wg.Wait()

	var want []string
	for i := range writes {
		switch {
		case i == abandon:
			require.ErrorIs(t, results[i], context.Canceled)
			require.False(t, ran[i], "abandoned write %d ran", i)
		case i%5 == 1:
			require.ErrorIs(t, results[i], errBoom, "write %d", i)
		case i%5 == 2:
			require.Equal(t, fmt.Sprintf("panic in write %d", i), panics[i])
		default:
			require.NoError(t, results[i], "write %d", i)
			require.Nil(t, panics[i])
			want = append(want, fmt.Sprintf("%02d", i))
		}
	}
	stored, err := s.ReadEvents(ctx, store.ReadEventsParams{TenantID: "t", RunID: "r", Limit: 100})
	require.NoError(t, err)
	var got []string
	for i, ev := range stored {
		got = append(got, string(ev.Payload))
		require.Equal(t, stored[0].Position+int64(i), ev.Position, "positions of a batch are contiguous")
	}
	require.ElementsMatch(t, want, got)
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, hooked, len(stored))
	for i := range stored {
		require.Equal(t, stored[i].Position, hooked[i].Position)
		require.Equal(t, stored[i].Payload, hooked[i].Payload)
	}
}
