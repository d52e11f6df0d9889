package storetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/store"
)

// retained is a run seeded with one row of each kind that belongs to it, so
// the test can check they all go or all stay.
type retained struct {
	run  store.Run
	step store.StepRun
}

// seedRetained inserts a run with the given status and finish time, with
// metadata, a step run, an attempt and two events.
func seedRetained(t testing.TB, s store.Store, r store.Run, status store.RunStatus, finishedAt time.Time) retained {
	t.Helper()
	ctx := context.Background()
	r.Status = status
	r.Metadata = map[string]string{"keep": "?"}
	r.StartedAt = r.CreatedAt
	r.FinishedAt = finishedAt
	st := store.StepRun{
		ID: newID(), RunID: r.ID, TenantID: r.TenantID, Workflow: r.Workflow, Step: "one",
		Status: store.StepCompleted, Attempt: 1, CreatedAt: r.CreatedAt,
	}
	write(t, s, func(tx store.Tx) error {
		if err := tx.InsertRun(ctx, r); err != nil {
			return err
		}
		if err := tx.InsertStepRuns(ctx, []store.StepRun{st}); err != nil {
			return err
		}
		a := store.StepAttempt{StepRunID: st.ID, Attempt: 1, Status: store.StepCompleted, StartedAt: r.CreatedAt}
		if err := tx.UpsertStepAttempt(ctx, a); err != nil {
			return err
		}
		return tx.AppendEvents(ctx, []store.Event{
			runEvent(r, store.EventRunStarted, nil),
			{TenantID: r.TenantID, RunID: r.ID, Workflow: r.Workflow, Type: store.EventStepStream, StepRunID: st.ID, Step: "one", Attempt: 1, Payload: []byte("x")},
		})
	})
	return retained{run: r, step: st}
}

// deleteFinished runs DeleteFinishedRuns in a transaction of its own.
func deleteFinished(t testing.TB, s store.Store, before time.Time, limit int) int {
	t.Helper()
	var n int
	write(t, s, func(tx store.Tx) error {
		var err error
		n, err = tx.DeleteFinishedRuns(context.Background(), before, limit)
		return err
	})
	return n
}

// requireGone checks that nothing of a run is left.
func requireGone(t testing.TB, s store.Store, r retained) {
	t.Helper()
	ctx := context.Background()
	_, err := s.GetRun(ctx, r.run.TenantID, r.run.ID)
	require.ErrorIs(t, err, store.ErrNotFound, "run %s", r.run.ID)
	_, err = s.GetStepRun(ctx, r.step.ID)
	require.ErrorIs(t, err, store.ErrNotFound, "step run of %s", r.run.ID)
	steps, err := s.ListStepRuns(ctx, r.run.ID)
	require.NoError(t, err)
	require.Empty(t, steps, "step runs of %s", r.run.ID)
	attempts, err := s.ListStepAttempts(ctx, r.run.ID)
	require.NoError(t, err)
	require.Empty(t, attempts, "attempts of %s", r.run.ID)
	require.Empty(t, readAll(t, s, r.run.TenantID, r.run.ID, 0, 10), "events of %s", r.run.ID)
	pos, err := s.LastRunPosition(ctx, r.run.TenantID, r.run.ID)
	require.NoError(t, err)
	require.Zero(t, pos, "last position of %s", r.run.ID)
}

// requireKept checks that a run and all its rows are still there.
func requireKept(t testing.TB, s store.Store, r retained) {
	t.Helper()
	ctx := context.Background()
	got, err := s.GetRun(ctx, r.run.TenantID, r.run.ID)
	require.NoError(t, err, "run %s", r.run.ID)
	require.Equal(t, r.run.Status, got.Status)
	steps, err := s.ListStepRuns(ctx, r.run.ID)
	require.NoError(t, err)
	require.Equal(t, []string{r.step.ID}, ids(steps, stepID), "step runs of %s", r.run.ID)
	attempts, err := s.ListStepAttempts(ctx, r.run.ID)
	require.NoError(t, err)
	require.Len(t, attempts, 1, "attempts of %s", r.run.ID)
	require.Len(t, readAll(t, s, r.run.TenantID, r.run.ID, 0, 10), 2, "events of %s", r.run.ID)
}

// testRetention runs the checks of retention, each on a store of its own.
func testRetention(t *testing.T, open Opener) {
	t.Run("DeleteFinishedRuns", func(t *testing.T) { t.Parallel(); testDeleteFinishedRuns(t, open) })
	t.Run("Concurrently", func(t *testing.T) { t.Parallel(); testDeleteFinishedRunsConcurrently(t, open) })
}

// testDeleteFinishedRuns: DeleteFinishedRuns deletes terminal runs finished before
// the cutoff, oldest first and at most limit per call, with every row that
// belongs to them, across tenants; it keeps recent and unfinished runs, and
// parents and children the other end of which is unfinished.
func testDeleteFinishedRuns(t *testing.T, open Opener) {
	s := open(t, nil)
	ctx := t.Context()
	tn := newTenant(t, s, "t")
	other := newTenant(t, s, "other")
	cutoff := at(1000)
	seed := func(tenantID string, status store.RunStatus, finishedAt time.Time) retained {
		return seedRetained(t, s, newRun(tenantID, "wf"), status, finishedAt)
	}

	// Due, oldest first: one of each terminal status, and one of another
	// tenant (retention is not per tenant).
	old1 := seed(tn.ID, store.RunCompleted, at(100))
	oldOther := seed(other.ID, store.RunFailed, at(150))
	old2 := seed(tn.ID, store.RunFailed, at(200))
	old3 := seed(tn.ID, store.RunCancelled, at(300))
	old4 := seed(tn.ID, store.RunTimedOut, at(400))
	// Kept: finished at or after the cutoff, or not terminal (even with a
	// finish time set, which the engine never writes: status decides).
	atCutoff := seed(tn.ID, store.RunCompleted, cutoff)
	recent := seed(tn.ID, store.RunCompleted, at(2000))
	recentOther := seed(other.ID, store.RunCompleted, at(1500))
	running := seed(tn.ID, store.RunRunning, time.Time{})
	queued := seed(tn.ID, store.RunQueued, time.Time{})
	runningWithTime := seed(tn.ID, store.RunRunning, at(50))
	// Kept for now: a finished parent whose child still runs, and a finished
	// child whose parent still runs.
	parentP := seedRetained(t, s, newRun(tn.ID, "parent"), store.RunCompleted, at(10))
	childC := seedRetained(t, s, newChild(parentP.run, parentP.step.ID, "1:0", 11), store.RunRunning, time.Time{})
	parentQ := seedRetained(t, s, newRun(tn.ID, "parent"), store.RunRunning, time.Time{})
	childD := seedRetained(t, s, newChild(parentQ.run, parentQ.step.ID, "1:0", 12), store.RunCompleted, at(20))
	kept := []retained{atCutoff, recent, recentOther, running, queued, runningWithTime, parentP, childC, parentQ, childD}

	require.Zero(t, deleteFinished(t, s, cutoff, 0), "a limit of 0 deletes nothing")

	// The limit is honoured, and the oldest go first.
	require.Equal(t, 3, deleteFinished(t, s, cutoff, 3))
	for _, r := range []retained{old1, oldOther, old2} {
		requireGone(t, s, r)
	}
	for _, r := range append([]retained{old3, old4}, kept...) {
		requireKept(t, s, r)
	}

	// The next call deletes the rest; fewer than the limit means done.
	require.Equal(t, 2, deleteFinished(t, s, cutoff, 3))
	requireGone(t, s, old3)
	requireGone(t, s, old4)
	require.Zero(t, deleteFinished(t, s, cutoff, 3))
	for _, r := range kept {
		requireKept(t, s, r)
	}

	// Metadata subscriptions no longer see the deleted runs.
	events := readMeta(t, s, store.ReadMetadataEventsParams{TenantID: tn.ID, Key: "keep", Value: "?", Limit: 100})
	for _, e := range events {
		require.NotContains(t, []string{old1.run.ID, old2.run.ID, old3.run.ID, old4.run.ID}, e.RunID)
	}
	listed, err := s.ListRuns(ctx, store.ListRunsParams{TenantID: tn.ID, MetaKey: "keep", MetaValue: "?", Limit: 100})
	require.NoError(t, err)
	require.Len(t, listed, len(kept)-1, "every kept run of the tenant, and no deleted one")

	// No row of a deleted run is left behind: the run can be inserted again
	// with the same ID, metadata and step run ID (each is a primary key).
	write(t, s, func(tx store.Tx) error {
		if err := tx.InsertRun(ctx, old1.run); err != nil {
			return err
		}
		return tx.InsertStepRuns(ctx, []store.StepRun{old1.step})
	})
	write(t, s, func(tx store.Tx) error {
		got, err := tx.GetRunForUpdate(ctx, tn.ID, old1.run.ID)
		require.NoError(t, err)
		require.Equal(t, old1.run.Metadata, got.Metadata)
		return nil
	})

	// Once the child ends, it and its parent are both due.
	childC.run.Status = store.RunCompleted
	childC.run.FinishedAt = at(30)
	write(t, s, func(tx store.Tx) error { return tx.UpdateRun(ctx, childC.run) })
	require.Equal(t, 3, deleteFinished(t, s, cutoff, 10), "the parent, its child and the re-inserted run")
	requireGone(t, s, parentP)
	requireGone(t, s, childC)
	for _, r := range []retained{atCutoff, recent, recentOther, running, queued, runningWithTime, parentQ, childD} {
		requireKept(t, s, r)
	}

	// A later cutoff takes the recent runs too, never the unfinished ones.
	require.Equal(t, 3, deleteFinished(t, s, at(3000), 10))
	for _, r := range []retained{atCutoff, recent, recentOther} {
		requireGone(t, s, r)
	}
	for _, r := range []retained{running, queued, runningWithTime, parentQ, childD} {
		requireKept(t, s, r)
	}
}

// testDeleteFinishedRunsConcurrently: nodes running retention at once share
// the work (PostgreSQL skips the runs another transaction holds) and delete
// every run once, without errors.
func testDeleteFinishedRunsConcurrently(t *testing.T, open Opener) {
	s := open(t, nil)
	tn := newTenant(t, s, "t")
	const runs, nodes = 40, 4
	all := make([]retained, runs)
	for i := range all {
		all[i] = seedRetained(t, s, newRun(tn.ID, "wf"), store.RunCompleted, at(i))
	}
	var mu sync.Mutex
	deleted := 0
	var wg sync.WaitGroup
	for range nodes {
		wg.Go(func() {
			for {
				var n int
				err := s.Write(context.Background(), func(tx store.Tx) error {
					var err error
					n, err = tx.DeleteFinishedRuns(context.Background(), at(1000), 3)
					return err
				})
				if !assertNoError(t, err) || n == 0 {
					return
				}
				mu.Lock()
				deleted += n
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	require.Equal(t, runs, deleted, "each run deleted once")
	for _, r := range all {
		requireGone(t, s, r)
	}
}
