package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/store"
	"github.com/runnel-dev/runnel/internal/store/storetest"
	"github.com/runnel-dev/runnel/internal/testdb"
)

// openTest opens a store on a schema of the test's own.
func openTest(t testing.TB, hook store.CommitHook) *Store {
	t.Helper()
	return openURL(t, testdb.PostgresURL(t), hook)
}

func openURL(t testing.TB, url string, hook store.CommitHook) *Store {
	t.Helper()
	s, err := Open(context.Background(), url, store.Options{CommitHook: hook})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)

// seedRun creates a run, and its tenant (named as its ID) if need be.
func seedRun(t testing.TB, s *Store, tenantID, runID string) {
	t.Helper()
	ctx := testCtx(t)
	err := s.Write(ctx, func(tx store.Tx) error {
		if _, err := tx.GetTenantByName(ctx, tenantID); errors.Is(err, store.ErrNotFound) {
			if err := tx.CreateTenant(ctx, store.Tenant{ID: tenantID, Name: tenantID, CreatedAt: t0}); err != nil {
				return err
			}
		}
		return tx.InsertRun(ctx, store.Run{
			ID: runID, TenantID: tenantID, Workflow: "wf", Status: store.RunRunning,
			Input: []byte(`{}`), CreatedAt: t0,
		})
	})
	require.NoError(t, err)
}

func TestOpenMigratesOnceAndKeepsLogID(t *testing.T) {
	t.Parallel()
	url := testdb.PostgresURL(t)
	ctx := testCtx(t)

	// Several nodes starting at once on a fresh schema: the advisory lock
	// makes them migrate one after the other, and all agree on the log.
	const nodes = 4
	stores := make([]*Store, nodes)
	errs := make([]error, nodes)
	var wg sync.WaitGroup
	for i := range nodes {
		wg.Go(func() { stores[i], errs[i] = Open(ctx, url, store.Options{}) })
	}
	wg.Wait()
	var ids []string
	for i := range nodes {
		require.NoError(t, errs[i])
		id, err := stores[i].LogID(ctx)
		require.NoError(t, err)
		ids = append(ids, id)
		require.NoError(t, stores[i].Close())
	}
	for _, id := range ids[1:] {
		assert.Equal(t, ids[0], id)
	}
	s := openURL(t, url, nil)
	id, err := s.LogID(ctx)
	require.NoError(t, err)
	assert.Equal(t, ids[0], id, "reopening must keep the log ID")
	assert.NotEmpty(t, id)
}

func TestOpenUnreachableNamesRedactedURL(t *testing.T) {
	t.Parallel()
	// Port 1 on loopback refuses connections at once.
	url := "postgres://runnel:s3cret@127.0.0.1:1/db?sslmode=disable&connect_timeout=5"
	_, err := Open(testCtx(t), url, store.Options{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "127.0.0.1:1")
	assert.NotContains(t, err.Error(), "s3cret")

	kv := "host=127.0.0.1 port=1 user=runnel password=s3cret dbname=db sslmode=disable connect_timeout=5"
	_, err = Open(testCtx(t), kv, store.Options{})
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "s3cret")
}

// TestConcurrentAppendsAreCommitOrdered is the positions invariant: while
// many writers append concurrently (some holding their transaction open a
// while before appending), a reader that always reads after the last
// position it saw must see every event exactly once, in order. An event
// committed below a position the reader already passed would be missed.
func TestConcurrentAppendsAreCommitOrdered(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)

	var hookMu sync.Mutex
	var hooked []int64
	s := openTest(t, func(events []store.Event) {
		hookMu.Lock()
		defer hookMu.Unlock()
		for _, e := range events {
			hooked = append(hooked, e.Position)
		}
	})
	seedRun(t, s, "tn", "run")

	const writers, writes = 8, 40
	type tag struct{ W, I, K int }
	total := 0
	batch := func(w, i int) int { return 1 + (w*writes+i)%13 } // 1..13: INSERT and COPY paths
	for w := range writers {
		for i := range writes {
			total += batch(w, i)
		}
	}

	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range writes {
				n := batch(w, i)
				err := s.Write(ctx, func(tx store.Tx) error {
					// No other lock (such as the run's) orders the writers:
					// only log_head's.
					if i%3 == 0 {
						// Hold the transaction open before appending, so
						// that transactions begun later append first.
						time.Sleep(time.Duration(w%3) * time.Millisecond)
					}
					events := make([]store.Event, n)
					for k := range events {
						data, _ := json.Marshal(tag{w, i, k})
						events[k] = store.Event{TenantID: "tn", RunID: "run", Workflow: "wf", Type: store.EventStepStream, Data: data}
					}
					return tx.AppendEvents(ctx, events)
				})
				if err != nil {
					t.Errorf("writer %d write %d: %v", w, i, err)
					return
				}
			}
		})
	}

	// The reader polls until it has seen everything (or the writers
	// failed), checking each page continues strictly after the last.
	seen := make(map[tag]int64, total)
	var last int64
	var written atomic.Bool
	go func() { wg.Wait(); written.Store(true) }()
	for len(seen) < total {
		done := written.Load()
		page, err := s.ReadEvents(ctx, store.ReadEventsParams{TenantID: "tn", RunID: "run", After: last, Limit: 500})
		require.NoError(t, err)
		for _, e := range page {
			require.Greater(t, e.Position, last, "event below a position already read")
			last = e.Position
			var tg tag
			require.NoError(t, json.Unmarshal(e.Data, &tg))
			if prev, dup := seen[tg]; dup {
				t.Fatalf("event %+v seen twice, at %d and %d", tg, prev, e.Position)
			}
			seen[tg] = e.Position
		}
		if done && len(page) == 0 {
			break // everything committed and read: missing events are lost
		}
	}
	wg.Wait()
	require.Equal(t, total, len(seen), "the reader missed events committed below a position it had passed")
	assert.Equal(t, int64(total), last, "positions are consecutive from 1")

	// Within one transaction, positions follow slice order.
	for tg, pos := range seen {
		if tg.K > 0 {
			assert.Equal(t, seen[tag{tg.W, tg.I, tg.K - 1}]+1, pos)
		}
	}
	// The commit hook saw every event once.
	hookMu.Lock()
	defer hookMu.Unlock()
	require.Equal(t, total, len(hooked))
	got := make(map[int64]bool, total)
	for _, p := range hooked {
		got[p] = true
	}
	assert.Equal(t, total, len(got))
}

func TestAppendAssignsPositionsAndNotifiesOncePerTx(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	// One pooled connection, so every notification the store sends comes
	// from one backend we can recognise (other tests notify the same
	// database-wide channel).
	url := testdb.PostgresURL(t)
	s := openURL(t, url+"&pool_max_conns=1", nil)
	var pid uint32
	require.NoError(t, s.pool.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid))

	listener, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer listener.Close(context.Background())
	_, err = listener.Exec(ctx, "LISTEN "+pgx.Identifier{s.channel}.Sanitize())
	require.NoError(t, err)

	seedRun(t, s, "tn", "run")
	small := make([]store.Event, 3)
	big := make([]store.Event, 50) // COPY path
	for i := range small {
		small[i] = store.Event{TenantID: "tn", RunID: "run", Workflow: "wf", Type: store.EventStepStream, Payload: []byte{byte(i)}}
	}
	for i := range big {
		big[i] = store.Event{TenantID: "tn", RunID: "run", Workflow: "wf", Type: store.EventStepStream, Payload: []byte(strconv.Itoa(i))}
	}
	require.NoError(t, s.Write(ctx, func(tx store.Tx) error { return tx.AppendEvents(ctx, small) }))
	require.NoError(t, s.Write(ctx, func(tx store.Tx) error {
		// Two appends in one transaction: still one notification.
		if err := tx.AppendEvents(ctx, big[:20]); err != nil {
			return err
		}
		return tx.AppendEvents(ctx, big[20:])
	}))
	// A transaction without events sends nothing.
	require.NoError(t, s.Write(ctx, func(tx store.Tx) error {
		_, err := tx.GetRunForUpdate(ctx, "tn", "run")
		return err
	}))
	// Nor does one that rolls back.
	boom := errors.New("boom")
	err = s.Write(ctx, func(tx store.Tx) error {
		if err := tx.AppendEvents(ctx, []store.Event{{TenantID: "tn", RunID: "run", Workflow: "wf", Type: "x"}}); err != nil {
			return err
		}
		return boom
	})
	require.ErrorIs(t, err, boom)
	require.NoError(t, s.Write(ctx, func(tx store.Tx) error {
		return tx.AppendEvents(ctx, []store.Event{{TenantID: "tn", RunID: "run", Workflow: "wf", Type: "last"}})
	}))

	for i, e := range small {
		assert.Equal(t, int64(i+1), e.Position)
		assert.False(t, e.CreatedAt.IsZero())
	}
	for i, e := range big {
		assert.Equal(t, int64(i+4), e.Position)
	}

	var payloads []string
	for len(payloads) < 3 {
		n, err := listener.WaitForNotification(ctx)
		require.NoError(t, err)
		if n.PID == pid {
			payloads = append(payloads, n.Payload)
		}
	}
	// The rolled-back append gave its position back.
	assert.Equal(t, []string{"3", "53", "54"}, payloads)

	got, err := s.ReadEvents(ctx, store.ReadEventsParams{TenantID: "tn", RunID: "run"})
	require.NoError(t, err)
	require.Len(t, got, 54)
	assert.Equal(t, []byte("49"), got[52].Payload)
	assert.Equal(t, big[49].CreatedAt, got[52].CreatedAt)
	last, err := s.LastRunPosition(ctx, "tn", "run")
	require.NoError(t, err)
	assert.Equal(t, int64(54), last)
}

func TestReadEventsMaxBytes(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	s := openTest(t, nil)
	seedRun(t, s, "tn", "run")
	seedRun(t, s, "tn", "other")
	events := []store.Event{
		{Payload: make([]byte, 10)},
		{Payload: make([]byte, 10)},
		{}, // no payload
		{Payload: make([]byte, 30)},
		{Payload: make([]byte, 10)},
	}
	for i := range events {
		events[i].TenantID, events[i].RunID, events[i].Workflow, events[i].Type = "tn", "run", "wf", store.EventStepStream
	}
	require.NoError(t, s.Write(ctx, func(tx store.Tx) error {
		if err := tx.AppendEvents(ctx, []store.Event{{TenantID: "tn", RunID: "other", Workflow: "wf", Type: "x"}}); err != nil {
			return err
		}
		return tx.AppendEvents(ctx, events)
	}))
	positions := func(p store.ReadEventsParams) []int64 {
		p.TenantID, p.RunID = "tn", "run"
		got, err := s.ReadEvents(ctx, p)
		require.NoError(t, err)
		var out []int64
		for _, e := range got {
			out = append(out, e.Position)
		}
		return out
	}
	assert.Equal(t, []int64{2, 3, 4, 5, 6}, positions(store.ReadEventsParams{}))
	assert.Equal(t, []int64{2, 3}, positions(store.ReadEventsParams{MaxBytes: 20}))
	assert.Equal(t, []int64{2, 3, 4, 5}, positions(store.ReadEventsParams{MaxBytes: 21}))
	assert.Equal(t, []int64{2}, positions(store.ReadEventsParams{MaxBytes: 1}), "always at least one event")
	assert.Equal(t, []int64{5}, positions(store.ReadEventsParams{After: 4, MaxBytes: 5}))
	assert.Equal(t, []int64{3, 4}, positions(store.ReadEventsParams{After: 2, Limit: 2}))
	assert.Empty(t, positions(store.ReadEventsParams{After: 6}))
	got, err := s.ReadEvents(ctx, store.ReadEventsParams{TenantID: "other-tenant", RunID: "run"})
	require.NoError(t, err)
	assert.Empty(t, got)
}

// TestTimeoutAndDeadWorkerScansSkipLockedRows: the sweepers of several
// engine nodes split the work instead of queueing on each other.
func TestTimeoutAndDeadWorkerScansSkipLockedRows(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	s := openTest(t, nil)
	seedRun(t, s, "tn", "run")
	require.NoError(t, s.Write(ctx, func(tx store.Tx) error {
		for i, id := range []string{"x", "y"} {
			if err := tx.InsertWorker(ctx, store.Worker{
				ID: "w-" + id, TenantID: "tn", Name: id, NodeID: "n", Workflows: []string{"wf"}, Slots: 1,
				Alive: true, HeartbeatAt: t0.Add(time.Duration(i) * time.Second), CreatedAt: t0,
			}); err != nil {
				return err
			}
		}
		return tx.InsertStepRuns(ctx, []store.StepRun{
			{ID: "s-x", RunID: "run", TenantID: "tn", Workflow: "wf", Step: "x", Status: store.StepRunning, WorkerID: "w-x", TimeoutAt: t0, CreatedAt: t0},
			{ID: "s-y", RunID: "run", TenantID: "tn", Workflow: "wf", Step: "y", Status: store.StepRunning, WorkerID: "w-y", TimeoutAt: t0.Add(time.Second), CreatedAt: t0},
			{ID: "s-z", RunID: "run", TenantID: "tn", Workflow: "wf", Step: "z", Status: store.StepRunning, WorkerID: "w-y", CreatedAt: t0},
		})
	}))
	later := t0.Add(time.Minute)

	locked := make(chan struct{})
	release := make(chan struct{})
	holder := make(chan error, 1)
	go func() {
		holder <- s.Write(ctx, func(tx store.Tx) error {
			steps, err := tx.ListTimedOutStepRuns(ctx, later, 1)
			if err != nil || len(steps) != 1 || steps[0].ID != "s-x" {
				return fmt.Errorf("first sweep got %v, %v", steps, err)
			}
			workers, err := tx.ListDeadWorkers(ctx, later, 1)
			if err != nil || len(workers) != 1 || workers[0].ID != "w-x" {
				return fmt.Errorf("first sweep got %v, %v", workers, err)
			}
			close(locked)
			<-release
			return nil
		})
	}()
	<-locked
	require.NoError(t, s.Write(ctx, func(tx store.Tx) error {
		steps, err := tx.ListTimedOutStepRuns(ctx, later, 10)
		require.NoError(t, err)
		require.Len(t, steps, 1)
		assert.Equal(t, "s-y", steps[0].ID)
		workers, err := tx.ListDeadWorkers(ctx, later, 10)
		require.NoError(t, err)
		require.Len(t, workers, 1)
		assert.Equal(t, "w-y", workers[0].ID)
		assert.Equal(t, []string{"wf"}, workers[0].Workflows)
		return nil
	}))
	close(release)
	require.NoError(t, <-holder)

	// Not yet timed out / heartbeat recent enough: nothing.
	require.NoError(t, s.Write(ctx, func(tx store.Tx) error {
		steps, err := tx.ListTimedOutStepRuns(ctx, t0.Add(-time.Second), 10)
		require.NoError(t, err)
		assert.Empty(t, steps)
		workers, err := tx.ListDeadWorkers(ctx, t0, 10)
		require.NoError(t, err)
		assert.Empty(t, workers)
		return nil
	}))
}

// TestDeadlockIsRetried: two transactions locking two runs in opposite
// orders deadlock; PostgreSQL aborts one, and Write runs it again.
func TestDeadlockIsRetried(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	s := openTest(t, nil)
	seedRun(t, s, "tn", "r1")
	seedRun(t, s, "tn", "r2")

	var attempts atomic.Int32
	var bothLocked sync.WaitGroup
	bothLocked.Add(2)
	lockBoth := func(first, second string, once *sync.Once) func(store.Tx) error {
		return func(tx store.Tx) error {
			attempts.Add(1)
			if _, err := tx.GetRunForUpdate(ctx, "tn", first); err != nil {
				return err
			}
			// Only the first attempts meet here; a retry goes straight on.
			once.Do(func() { bothLocked.Done(); bothLocked.Wait() })
			_, err := tx.GetRunForUpdate(ctx, "tn", second)
			return err
		}
	}
	var once1, once2 sync.Once
	errs := make(chan error, 2)
	go func() { errs <- s.Write(ctx, lockBoth("r1", "r2", &once1)) }()
	go func() { errs <- s.Write(ctx, lockBoth("r2", "r1", &once2)) }()
	require.NoError(t, <-errs)
	require.NoError(t, <-errs)
	// One of the first two attempts was the deadlock victim and ran again.
	// (Its retry can, rarely, deadlock once more: it may lock its first run
	// again before the winner, just woken, takes it.)
	assert.GreaterOrEqual(t, attempts.Load(), int32(3))
}

func TestDBErrMapsSentinels(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	s := openTest(t, nil)

	_, err := s.GetRun(ctx, "tn", "nope")
	require.ErrorIs(t, err, store.ErrNotFound)
	assert.Contains(t, err.Error(), "get run nope")

	// A unique violation raised by the server (not by ON CONFLICT).
	_, err = s.pool.Exec(ctx, "INSERT INTO log_head (id, log_id, last_position) VALUES (1, 'x', 0)")
	err = mapErr(err, "insert log head")
	require.ErrorIs(t, err, store.ErrConflict)
	assert.Contains(t, err.Error(), "23505")

	// Write gives up on a transaction that keeps losing.
	var runs atomic.Int32
	err = s.Write(ctx, func(store.Tx) error {
		runs.Add(1)
		return fmt.Errorf("lost: %w", store.ErrRetry)
	})
	require.ErrorIs(t, err, store.ErrRetry)
	assert.Equal(t, int32(maxWriteAttempts), runs.Load())
}

// TestConflictLeavesTransactionUsable: after ErrConflict the caller may go
// on in the same transaction (as with SQLite), which a raised unique
// violation would not allow in PostgreSQL.
func TestConflictLeavesTransactionUsable(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	s := openTest(t, nil)
	seedRun(t, s, "tn", "run")
	require.NoError(t, s.Write(ctx, func(tx store.Tx) error {
		err := tx.CreateTenant(ctx, store.Tenant{ID: "tn2", Name: "tn", CreatedAt: t0})
		require.ErrorIs(t, err, store.ErrConflict)
		err = tx.InsertRun(ctx, store.Run{ID: "run", TenantID: "tn", Workflow: "wf", Status: store.RunQueued, CreatedAt: t0})
		require.ErrorIs(t, err, store.ErrConflict)
		require.NoError(t, tx.InsertStepRuns(ctx, []store.StepRun{{ID: "s1", RunID: "run", TenantID: "tn", Workflow: "wf", Step: "a", Status: store.StepPending, CreatedAt: t0}}))
		err = tx.InsertStepRuns(ctx, []store.StepRun{
			{ID: "s2", RunID: "run", TenantID: "tn", Workflow: "wf", Step: "b", Status: store.StepPending, CreatedAt: t0},
			{ID: "s3", RunID: "run", TenantID: "tn", Workflow: "wf", Step: "a", Status: store.StepPending, CreatedAt: t0},
		})
		require.ErrorIs(t, err, store.ErrConflict)
		assert.Contains(t, err.Error(), "s3")
		w := store.Worker{ID: "w", TenantID: "tn", Name: "w", NodeID: "n", Slots: 1, Alive: true, HeartbeatAt: t0, CreatedAt: t0}
		require.NoError(t, tx.InsertWorker(ctx, w))
		require.ErrorIs(t, tx.InsertWorker(ctx, w), store.ErrConflict)
		tk := store.Token{ID: "k", TenantID: "tn", Hash: "h", Kind: store.TokenAPI, CreatedAt: t0}
		require.NoError(t, tx.CreateToken(ctx, tk))
		tk.ID = "k2"
		require.ErrorIs(t, tx.CreateToken(ctx, tk), store.ErrConflict)
		tn, err := tx.GetTenantByName(ctx, "tn")
		require.NoError(t, err)
		assert.Equal(t, "tn", tn.ID)
		return nil
	}))
	steps, err := s.ListStepRuns(ctx, "run")
	require.NoError(t, err)
	assert.Len(t, steps, 2, "s1 and s2 committed")
}

// TestRoundTrip writes every kind of row and reads it back unchanged.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	s := openTest(t, nil)

	tenant := store.Tenant{ID: "tn", Name: "acme", CreatedAt: t0}
	token := store.Token{ID: "k", TenantID: "tn", Hash: "abc", Kind: store.TokenBrowser, Name: "b", RunID: "r1",
		MetaKey: "k", MetaValue: "v", ExpiresAt: t0.Add(-time.Hour), CreatedAt: t0}
	wf := store.Workflow{TenantID: "tn", Name: "wf", Definition: []byte(`{"steps":[]}`), OnEvents: []string{"a", "b"}, UpdatedAt: t0}
	run := store.Run{ID: "r1", TenantID: "tn", Workflow: "wf", Status: store.RunQueued, Input: []byte(`{"x":1}`),
		Metadata: map[string]string{"user": "u1", "env": "prod"}, ParentRunID: "p", ParentStepRunID: "ps", CreatedAt: t0}
	step := store.StepRun{ID: "s1", RunID: "r1", TenantID: "tn", Workflow: "wf", Step: "a", Parents: []string{"x", "y"},
		Status: store.StepQueued, Retries: 3, BackoffMs: 100, TimeoutMs: 5000, AvailableAt: t0, CreatedAt: t0}
	worker := store.Worker{ID: "w1", TenantID: "tn", Name: "w", NodeID: "n1", Workflows: []string{"wf"}, Slots: 4,
		Alive: true, HeartbeatAt: t0, CreatedAt: t0}
	require.NoError(t, s.Write(ctx, func(tx store.Tx) error {
		require.NoError(t, tx.CreateTenant(ctx, tenant))
		require.NoError(t, tx.CreateToken(ctx, token))
		require.NoError(t, tx.UpsertWorkflow(ctx, store.Workflow{TenantID: "tn", Name: "wf", Definition: []byte(`{}`), UpdatedAt: t0}))
		require.NoError(t, tx.UpsertWorkflow(ctx, wf))
		require.NoError(t, tx.InsertRun(ctx, run))
		require.NoError(t, tx.InsertStepRuns(ctx, []store.StepRun{step}))
		require.NoError(t, tx.InsertWorker(ctx, worker))
		return nil
	}))

	gotTenant, err := s.GetTenant(ctx, "tn")
	require.NoError(t, err)
	assert.Equal(t, tenant, gotTenant)
	n, err := s.CountTenants(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	gotToken, err := s.LookupToken(ctx, "abc")
	require.NoError(t, err)
	assert.Equal(t, token, gotToken, "expired tokens are returned too")
	gotWF, err := s.GetWorkflowByName(ctx, "tn", "wf")
	require.NoError(t, err)
	assert.Equal(t, wf, gotWF)
	wfs, err := s.ListWorkflows(ctx, "tn")
	require.NoError(t, err)
	assert.Equal(t, []store.Workflow{wf}, wfs)
	gotRun, err := s.GetRun(ctx, "tn", "r1")
	require.NoError(t, err)
	assert.Equal(t, run, gotRun)
	_, err = s.GetRun(ctx, "other", "r1")
	require.ErrorIs(t, err, store.ErrNotFound, "runs are scoped to their tenant")
	gotStep, err := s.GetStepRun(ctx, "s1")
	require.NoError(t, err)
	assert.Equal(t, step, gotStep)

	// Claim one step through the engine's path, finish it, record attempts.
	require.NoError(t, s.Write(ctx, func(tx store.Tx) error {
		cands, err := tx.ListClaimableStepRuns(ctx, store.ClaimParams{TenantID: "tn", Workflows: []string{"wf"}, Now: t0, Limit: 5})
		require.NoError(t, err)
		require.Len(t, cands, 1)
		r, err := tx.GetRunForUpdate(ctx, "tn", "r1")
		require.NoError(t, err)
		got, ok, err := tx.ClaimStepRun(ctx, store.ClaimStepRunParams{StepRunID: "s1", WorkerID: "w1", Now: t0, TimeoutAt: t0.Add(5 * time.Second)})
		require.NoError(t, err)
		require.True(t, ok)
		assert.Equal(t, 1, got.Attempt)
		assert.Equal(t, t0.Add(5*time.Second), got.TimeoutAt)
		_, ok, err = tx.ClaimStepRun(ctx, store.ClaimStepRunParams{StepRunID: "s1", WorkerID: "w2", Now: t0})
		require.NoError(t, err)
		assert.False(t, ok, "no longer queued")
		_, _, err = tx.ClaimStepRun(ctx, store.ClaimStepRunParams{StepRunID: "nope", WorkerID: "w2", Now: t0})
		require.ErrorIs(t, err, store.ErrNotFound)
		mine, err := tx.ListStepRunsOfWorker(ctx, "w1")
		require.NoError(t, err)
		require.Len(t, mine, 1)

		got.Status, got.Output, got.FinishedAt, got.StreamSeq = store.StepCompleted, []byte(`"ok"`), t0.Add(time.Second), 7
		require.NoError(t, tx.UpdateStepRun(ctx, got))
		require.NoError(t, tx.UpsertStepAttempt(ctx, store.StepAttempt{StepRunID: "s1", Attempt: 1, Status: store.StepRunning, WorkerID: "w1", StartedAt: t0}))
		require.NoError(t, tx.UpsertStepAttempt(ctx, store.StepAttempt{StepRunID: "s1", Attempt: 1, Status: store.StepCompleted, WorkerID: "w1", StartedAt: t0, FinishedAt: t0.Add(time.Second)}))
		require.ErrorIs(t, tx.UpsertStepAttempt(ctx, store.StepAttempt{StepRunID: "nope", Attempt: 1}), store.ErrNotFound)

		r.Status, r.Output, r.StartedAt, r.FinishedAt = store.RunCompleted, []byte(`"done"`), t0, t0.Add(time.Second)
		require.NoError(t, tx.UpdateRun(ctx, r))
		require.ErrorIs(t, tx.UpdateRun(ctx, store.Run{ID: "nope", TenantID: "tn"}), store.ErrNotFound)
		require.ErrorIs(t, tx.UpdateStepRun(ctx, store.StepRun{ID: "nope"}), store.ErrNotFound)
		locked, err := tx.ListStepRunsForUpdate(ctx, "r1")
		require.NoError(t, err)
		require.Len(t, locked, 1)
		assert.Equal(t, int64(7), locked[0].StreamSeq)
		return nil
	}))
	attempts, err := s.ListStepAttempts(ctx, "r1")
	require.NoError(t, err)
	assert.Equal(t, []store.StepAttempt{{StepRunID: "s1", Attempt: 1, Status: store.StepCompleted, WorkerID: "w1", StartedAt: t0, FinishedAt: t0.Add(time.Second)}}, attempts)
	gotRun, err = s.GetRun(ctx, "tn", "r1")
	require.NoError(t, err)
	assert.Equal(t, store.RunCompleted, gotRun.Status)
	assert.Equal(t, []byte(`"done"`), gotRun.Output)
	assert.Equal(t, t0.Add(time.Second), gotRun.FinishedAt)

	// Workers: heartbeat while alive, then dead.
	require.NoError(t, s.TouchWorker(ctx, "tn", "w1", t0.Add(time.Minute)))
	require.ErrorIs(t, s.TouchWorker(ctx, "tn", "nope", t0), store.ErrNotFound)
	require.NoError(t, s.Write(ctx, func(tx store.Tx) error {
		w, err := tx.GetWorkerForUpdate(ctx, "w1")
		require.NoError(t, err)
		assert.Equal(t, t0.Add(time.Minute), w.HeartbeatAt)
		was, err := tx.MarkWorkerDead(ctx, "w1")
		require.NoError(t, err)
		assert.True(t, was)
		was, err = tx.MarkWorkerDead(ctx, "w1")
		require.NoError(t, err)
		assert.False(t, was)
		_, err = tx.MarkWorkerDead(ctx, "nope")
		require.ErrorIs(t, err, store.ErrNotFound)
		return nil
	}))
	require.ErrorIs(t, s.TouchWorker(ctx, "tn", "w1", t0), store.ErrNotFound, "dead workers are not touched")
}

func TestListRunsFilters(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	s := openTest(t, nil)
	require.NoError(t, s.Write(ctx, func(tx store.Tx) error {
		for _, tn := range []string{"tn", "tn2"} {
			require.NoError(t, tx.CreateTenant(ctx, store.Tenant{ID: tn, Name: tn, CreatedAt: t0}))
		}
		for i := range 60 {
			wf, status := "a", store.RunCompleted
			if i%2 == 1 {
				wf = "b"
			}
			if i%3 == 0 {
				status = store.RunFailed
			}
			require.NoError(t, tx.InsertRun(ctx, store.Run{
				ID: fmt.Sprintf("r%03d", i), TenantID: "tn", Workflow: wf, Status: status, Input: []byte(`{}`),
				Metadata: map[string]string{"mod": strconv.Itoa(i % 5), "all": "x"}, CreatedAt: t0,
			}))
		}
		return tx.InsertRun(ctx, store.Run{ID: "r999", TenantID: "tn2", Workflow: "a", Status: store.RunCompleted,
			Metadata: map[string]string{"all": "x"}, CreatedAt: t0})
	}))
	ids := func(p store.ListRunsParams) string {
		p.TenantID = cmpOr(p.TenantID, "tn")
		runs, err := s.ListRuns(ctx, p)
		require.NoError(t, err)
		var out []string
		for _, r := range runs {
			out = append(out, strings.TrimPrefix(r.ID, "r"))
		}
		return strings.Join(out, ",")
	}
	assert.Equal(t, 50, len(strings.Split(ids(store.ListRunsParams{}), ",")), "default limit")
	assert.Equal(t, "059,058,057", ids(store.ListRunsParams{Limit: 3}))
	assert.Equal(t, "009,008", ids(store.ListRunsParams{Before: "r010", Limit: 2}))
	assert.Equal(t, "057,051,045", ids(store.ListRunsParams{Workflow: "b", Status: store.RunFailed, Limit: 3}))
	assert.Equal(t, "059,054,049", ids(store.ListRunsParams{MetaKey: "mod", MetaValue: "4", Limit: 3}))
	assert.Equal(t, "049,039", ids(store.ListRunsParams{MetaKey: "mod", MetaValue: "4", Workflow: "b", Before: "r054", Limit: 2}))
	assert.Equal(t, "", ids(store.ListRunsParams{MetaKey: "mod", MetaValue: "9"}))
	assert.Equal(t, "999", ids(store.ListRunsParams{TenantID: "tn2", MetaKey: "all", MetaValue: "x"}))
	runs, err := s.ListRuns(ctx, store.ListRunsParams{TenantID: "tn", Limit: 1})
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"mod": "4", "all": "x"}, runs[0].Metadata)
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// TestConformance runs the shared store suite against PostgreSQL, each
// subtest on a schema of its own.
func TestConformance(t *testing.T) {
	storetest.Exercise(t, func(t *testing.T, hook store.CommitHook) store.Store {
		return openTest(t, hook)
	})
}

func BenchmarkAppend(b *testing.B) {
	storetest.BenchmarkAppend(b, func(b *testing.B) store.Store { return openTest(b, nil) })
}

// BenchmarkAppendConcurrent measures appends of 100-event batches by
// GOMAXPROCS and 4*GOMAXPROCS concurrent writers, which queue on log_head;
// it reports events per second.
func BenchmarkAppendConcurrent(b *testing.B) {
	for _, parallelism := range []int{1, 4} {
		b.Run(fmt.Sprintf("batch100/parallelism%d", parallelism), func(b *testing.B) {
			ctx := context.Background()
			s := openTest(b, nil)
			seedRun(b, s, "tn", "run")
			payload := make([]byte, 100)
			b.SetParallelism(parallelism)
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				events := make([]store.Event, 100)
				for pb.Next() {
					for i := range events {
						events[i] = store.Event{TenantID: "tn", RunID: "run", Workflow: "wf", Type: store.EventStepStream, Payload: payload}
					}
					if err := s.Write(ctx, func(tx store.Tx) error { return tx.AppendEvents(ctx, events) }); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N*100)/time.Since(start).Seconds(), "events/s")
		})
	}
}

func BenchmarkReadEvents(b *testing.B) {
	storetest.BenchmarkReadEvents(b, func(b *testing.B) store.Store { return openTest(b, nil) })
}

// A NUL in text reaching PostgreSQL (which cannot store it) is a client
// error (store.ErrInvalidText, coded invalid_argument at the edge), not an
// internal one: the safety net behind the engine's own check.
func TestNULInTextIsInvalidArgument(t *testing.T) {
	t.Parallel()
	s := openTest(t, nil)
	ctx := testCtx(t)
	err := s.Write(ctx, func(tx store.Tx) error {
		return tx.CreateTenant(ctx, store.Tenant{ID: "t1", Name: "bad\x00name", CreatedAt: time.Now()})
	})
	require.ErrorIs(t, err, store.ErrInvalidText)
	_, err = s.GetRun(ctx, "t1", "run\x00id")
	require.ErrorIs(t, err, store.ErrInvalidText)
}
