package sqlite_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/store"
	"github.com/runnel-dev/runnel/internal/store/sqlite"
	"github.com/runnel-dev/runnel/internal/store/storetest"
	"github.com/runnel-dev/runnel/internal/testdb"
)

func open(t testing.TB, path string, hook store.CommitHook) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), path, store.Options{CommitHook: hook})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Exercise(t, func(t *testing.T, hook store.CommitHook) store.Store {
		return open(t, testdb.SQLitePath(t), hook)
	})
}

func BenchmarkAppend(b *testing.B) {
	storetest.BenchmarkAppend(b, func(b *testing.B) store.Store {
		return open(b, testdb.SQLitePath(b), nil)
	})
}

// TestSyncFull checks the FULL synchronous mode opens and works.
func TestSyncFull(t *testing.T) {
	ctx := t.Context()
	s, err := sqlite.OpenConfig(ctx, sqlite.Config{Path: testdb.SQLitePath(t), SyncFull: true}, store.Options{})
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, s.Write(ctx, func(tx store.Tx) error {
		return tx.CreateTenant(ctx, store.Tenant{ID: "t1", Name: "t1"})
	}))
	n, err := s.CountTenants(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
}

func TestReopenKeepsDataAndLogID(t *testing.T) {
	ctx := t.Context()
	path := testdb.SQLitePath(t)

	s, err := sqlite.Open(ctx, path, store.Options{})
	require.NoError(t, err)
	logID, err := s.LogID(ctx)
	require.NoError(t, err)
	require.NotEmpty(t, logID)
	events := []store.Event{{TenantID: "t1", RunID: "r1", Workflow: "wf", Type: store.EventRunStarted}}
	require.NoError(t, s.Write(ctx, func(tx store.Tx) error {
		if err := tx.CreateTenant(ctx, store.Tenant{ID: "t1", Name: "acme"}); err != nil {
			return err
		}
		if err := tx.InsertRun(ctx, store.Run{ID: "r1", TenantID: "t1", Workflow: "wf", Status: store.RunQueued, Input: []byte("{}")}); err != nil {
			return err
		}
		return tx.AppendEvents(ctx, events)
	}))
	require.NoError(t, s.Close())

	s2 := open(t, path, nil)
	again, err := s2.LogID(ctx)
	require.NoError(t, err)
	require.Equal(t, logID, again)
	run, err := s2.GetRun(ctx, "t1", "r1")
	require.NoError(t, err)
	require.Equal(t, "wf", run.Workflow)
	got, err := s2.ReadEvents(ctx, store.ReadEventsParams{TenantID: "t1", RunID: "r1"})
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, events[0].Position, got[0].Position)

	// Positions continue after the reopen.
	more := []store.Event{{TenantID: "t1", RunID: "r1", Workflow: "wf", Type: store.EventRunCompleted}}
	require.NoError(t, s2.Write(ctx, func(tx store.Tx) error { return tx.AppendEvents(ctx, more) }))
	require.Equal(t, events[0].Position+1, more[0].Position)
}

func TestOpenErrors(t *testing.T) {
	ctx := t.Context()
	missing := filepath.Join(t.TempDir(), "no", "such", "dir", "runnel.db")
	_, err := sqlite.Open(ctx, missing, store.Options{})
	require.Error(t, err)
	require.ErrorIs(t, err, os.ErrNotExist)
	require.Contains(t, err.Error(), missing)

	// A file where the directory should be.
	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	_, err = sqlite.Open(ctx, filepath.Join(file, "runnel.db"), store.Options{})
	require.Error(t, err)
	require.Contains(t, err.Error(), "not a directory")

	// Not a database.
	junk := filepath.Join(t.TempDir(), "junk.db")
	require.NoError(t, os.WriteFile(junk, []byte("this is not an SQLite database, just some text long enough to have a header..........."), 0o600))
	_, err = sqlite.Open(ctx, junk, store.Options{})
	require.Error(t, err)
	require.Contains(t, err.Error(), junk)

	_, err = sqlite.Open(ctx, "", store.Options{})
	require.Error(t, err)

	if os.Geteuid() != 0 { // root ignores permissions
		ro := filepath.Join(t.TempDir(), "ro")
		require.NoError(t, os.Mkdir(ro, 0o500))
		_, err = sqlite.Open(ctx, filepath.Join(ro, "runnel.db"), store.Options{})
		require.Error(t, err)
		require.Contains(t, err.Error(), ro)
	}
}

// TestPathWithURIChars: a path is a path, even with URI syntax in it.
func TestPathWithURIChars(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a dir?x=1#frag%20")
	require.NoError(t, os.Mkdir(dir, 0o700))
	path := filepath.Join(dir, "runnel.db")
	s := open(t, path, nil)
	require.NoError(t, s.Write(t.Context(), func(tx store.Tx) error {
		return tx.CreateTenant(t.Context(), store.Tenant{ID: "t1", Name: "t1"})
	}))
	_, err := os.Stat(path)
	require.NoError(t, err, "database created at the literal path")
}

// TestBusyIsRetry: when another process holds the write lock past the busy
// timeout, Write gives up with ErrRetry; the transaction is IMMEDIATE, so fn
// never runs without the lock. Reads are not blocked meanwhile (WAL).
func TestBusyIsRetry(t *testing.T) {
	ctx := t.Context()
	path := testdb.SQLitePath(t)
	s, err := sqlite.OpenConfig(ctx, sqlite.Config{Path: path, BusyTimeout: 10 * time.Millisecond}, store.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	require.NoError(t, s.Write(ctx, func(tx store.Tx) error {
		return tx.CreateTenant(ctx, store.Tenant{ID: "t1", Name: "t1"})
	}))

	other, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	defer other.Close()
	conn, err := other.Conn(ctx)
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.ExecContext(ctx, "BEGIN IMMEDIATE")
	require.NoError(t, err)

	calls := 0
	err = s.Write(ctx, func(tx store.Tx) error {
		calls++
		return tx.CreateTenant(ctx, store.Tenant{ID: "t2", Name: "t2"})
	})
	require.ErrorIs(t, err, store.ErrRetry)
	require.Zero(t, calls, "fn ran without the write lock")
	require.ErrorIs(t, s.TouchWorker(ctx, "t", "w", time.Now()), store.ErrRetry)

	n, err := s.CountTenants(ctx)
	require.NoError(t, err, "reads go on while another connection writes")
	require.Equal(t, 1, n)

	_, err = conn.ExecContext(ctx, "ROLLBACK")
	require.NoError(t, err)
	require.NoError(t, s.Write(ctx, func(tx store.Tx) error {
		calls++
		return tx.CreateTenant(ctx, store.Tenant{ID: "t2", Name: "t2"})
	}))
	require.Equal(t, 1, calls)
}

func BenchmarkReadEvents(b *testing.B) {
	storetest.BenchmarkReadEvents(b, func(b *testing.B) store.Store {
		return open(b, testdb.SQLitePath(b), nil)
	})
}
