package postgres

import (
	"context"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/store"
	"github.com/runnel-dev/runnel/internal/testdb"
)

// A transaction that took a position and stays open holds readers back
// below it, however many transactions with later positions commit
// meanwhile: they are committed (another connection counts their rows) but
// not readable, and their writers wait. Once it commits, everything is
// readable in position order.
func TestHorizonHoldsReadersBelowAnOpenAppend(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	url := testdb.PostgresURL(t)
	s := openURL(t, url, nil)
	seedRun(t, s, "tn", "run")
	ev := func(typ string) []store.Event {
		return []store.Event{{TenantID: "tn", RunID: "run", Workflow: "wf", Type: typ}}
	}

	appended, release := make(chan int64), make(chan struct{})
	var releaseOnce sync.Once
	free := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(free) // before the store closes (cleanups run last first), even when a check fails
	firstDone := make(chan error, 1)
	go func() {
		firstDone <- s.Write(ctx, func(tx store.Tx) error {
			events := ev("first")
			if err := tx.AppendEvents(ctx, events); err != nil {
				return err
			}
			appended <- events[0].Position
			<-release
			return nil
		})
	}()
	firstPos := <-appended

	const later = 3
	laterDone := make(chan error, later)
	for range later {
		go func() {
			laterDone <- s.Write(ctx, func(tx store.Tx) error { return tx.AppendEvents(ctx, ev("later")) })
		}()
	}
	// Wait, on the database itself, until all of them have committed.
	raw, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer raw.Close(context.Background())
	for {
		var n int
		require.NoError(t, raw.QueryRow(ctx, `SELECT count(*) FROM events WHERE type = 'later'`).Scan(&n))
		if n == later {
			break
		}
	}
	got, err := s.ReadEvents(ctx, store.ReadEventsParams{TenantID: "tn", RunID: "run"})
	require.NoError(t, err)
	require.Empty(t, got, "read events committed above a position still in flight")
	require.Less(t, s.horizon.current(), firstPos, "the horizon passed a position still in flight")
	select {
	case err := <-laterDone:
		t.Fatalf("a later append's write returned (%v) before earlier positions settled", err)
	default:
	}

	free()
	require.NoError(t, <-firstDone)
	for range later {
		require.NoError(t, <-laterDone)
	}
	got, err = s.ReadEvents(ctx, store.ReadEventsParams{TenantID: "tn", RunID: "run"})
	require.NoError(t, err)
	require.Len(t, got, 1+later)
	require.Equal(t, "first", got[0].Type)
	requireIncreasingPositions(t, got)
}

// A long transaction that is not an appender of this log — another
// application's, on any database of the server — holds nothing back.
func TestHorizonIgnoresForeignTransactions(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	url := testdb.PostgresURL(t)
	s := openURL(t, url, nil)
	seedRun(t, s, "tn", "run")

	foreign, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer foreign.Close(context.Background())
	ftx, err := foreign.Begin(ctx)
	require.NoError(t, err)
	defer ftx.Rollback(context.Background()) //nolint:errcheck // test cleanup
	var xid string
	require.NoError(t, ftx.QueryRow(ctx, `SELECT pg_current_xact_id()::text`).Scan(&xid)) // it has a transaction ID

	for i := range 5 {
		events := []store.Event{{TenantID: "tn", RunID: "run", Workflow: "wf", Type: "x"}}
		require.NoError(t, s.Write(ctx, func(tx store.Tx) error { return tx.AppendEvents(ctx, events) }))
		got, err := s.ReadEvents(ctx, store.ReadEventsParams{TenantID: "tn", RunID: "run"})
		require.NoError(t, err)
		require.Len(t, got, i+1, "an append is readable once its write returned")
	}
}

func requireIncreasingPositions(t *testing.T, events []store.Event) {
	t.Helper()
	for i := 1; i < len(events); i++ {
		require.Greater(t, events[i].Position, events[i-1].Position)
	}
}
