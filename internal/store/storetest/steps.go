package storetest

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/store"
)

func testStepRuns(t *testing.T, open Opener) {
	s := open(t, nil)
	ctx := t.Context()
	f := newFixture(t, s)

	root := f.newStep("fetch")
	full := store.StepRun{
		ID:          newID(),
		RunID:       f.run.ID,
		TenantID:    f.tenant.ID,
		Workflow:    f.run.Workflow,
		Step:        "transform",
		Parents:     []string{"fetch", "config"},
		Status:      store.StepRunning,
		Attempt:     3,
		Failures:    2,
		Retries:     5,
		BackoffMs:   1500,
		TimeoutMs:   60000,
		WorkerID:    newID(),
		StreamSeq:   17,
		AvailableAt: at(5),
		TimeoutAt:   at(65),
		Output:      []byte(`{"rows":10}`),
		Error:       "attempt 2: boom",
		CreatedAt:   at(1),
		StartedAt:   at(6),
		FinishedAt:  at(7),
	}
	pending := f.newStep("load")
	pending.Status = store.StepPending
	pending.Parents = []string{"transform"}
	pending.AvailableAt = time.Time{}
	insertSteps(t, s, root, full, pending)
	want := sortSteps([]store.StepRun{root, full, pending})

	got, err := s.ListStepRuns(ctx, f.run.ID)
	require.NoError(t, err)
	require.Equal(t, want, sortSteps(norm(got)))

	for _, w := range want {
		got, err := s.GetStepRun(ctx, w.ID)
		require.NoError(t, err)
		require.Equal(t, w, norm(got))
	}

	// UpdateStepRun writes every mutable field.
	upd := full
	upd.Status = store.StepQueued
	upd.Attempt = 4
	upd.Failures = 3
	upd.Retries = 6
	upd.BackoffMs = 3000
	upd.TimeoutMs = 0
	upd.WorkerID = ""
	upd.StreamSeq = 0
	upd.AvailableAt = at(500)
	upd.TimeoutAt = time.Time{}
	upd.Output = nil
	upd.Error = "attempt 3: timeout"
	upd.StartedAt = time.Time{}
	upd.FinishedAt = at(499)
	write(t, s, func(tx store.Tx) error {
		got, err := tx.GetStepRunForUpdate(ctx, full.ID)
		require.NoError(t, err)
		require.Equal(t, full, norm(got))
		all, err := tx.ListStepRunsForUpdate(ctx, f.run.ID)
		require.NoError(t, err)
		require.Equal(t, want, sortSteps(norm(all)))
		return tx.UpdateStepRun(ctx, upd)
	})
	got1, err := s.GetStepRun(ctx, full.ID)
	require.NoError(t, err)
	require.Equal(t, upd, norm(got1))

	// ...and back again, to non-zero values everywhere.
	write(t, s, func(tx store.Tx) error { return tx.UpdateStepRun(ctx, full) })
	got1, err = s.GetStepRun(ctx, full.ID)
	require.NoError(t, err)
	require.Equal(t, full, norm(got1))

	// One step name per run.
	err = s.Write(ctx, func(tx store.Tx) error {
		dup := f.newStep("fetch")
		return tx.InsertStepRuns(ctx, []store.StepRun{dup})
	})
	require.ErrorIs(t, err, store.ErrConflict)
	// A failed batch inserts none of its rows.
	err = s.Write(ctx, func(tx store.Tx) error {
		return tx.InsertStepRuns(ctx, []store.StepRun{f.newStep("new"), f.newStep("fetch")})
	})
	require.ErrorIs(t, err, store.ErrConflict)
	got, err = s.ListStepRuns(ctx, f.run.ID)
	require.NoError(t, err)
	require.Len(t, got, 3)

	// Many steps in one call.
	other := newRun(f.tenant.ID, "wf")
	insertRuns(t, s, other)
	var many []store.StepRun
	for i := range 300 {
		st := f.newStep(fmt.Sprintf("step-%03d", i))
		st.RunID = other.ID
		st.Parents = []string{fmt.Sprintf("step-%03d", i-1)}
		many = append(many, st)
	}
	insertSteps(t, s, many...)
	got, err = s.ListStepRuns(ctx, other.ID)
	require.NoError(t, err)
	require.Equal(t, sortSteps(many), sortSteps(norm(got)))

	got, err = s.ListStepRuns(ctx, newID())
	require.NoError(t, err)
	require.Empty(t, got)
}

func testListClaimableStepRuns(t *testing.T, open Opener) {
	s := open(t, nil)
	ctx := t.Context()
	f := newFixture(t, s)
	b := newFixture(t, s)
	now := at(100)

	mk := func(fx fixture, name, wf string, status store.StepStatus, avail int) store.StepRun {
		st := fx.newStep(name)
		st.Workflow = wf
		st.Status = status
		st.AvailableAt = at(avail)
		return st
	}
	// Claimable, oldest first: old2 (avail 10), old1 (avail 20, a retry
	// with leftovers of its last attempt), same (avail 20, larger ID), wf2.
	old2 := mk(f, "old2", "wf", store.StepQueued, 10)
	old1 := mk(f, "old1", "wf", store.StepQueued, 20)
	old1.Attempt = 1
	old1.Failures = 1
	old1.StreamSeq = 9
	old1.Error = "attempt 1 failed"
	old1.WorkerID = "previous-worker"
	old1.StartedAt = at(1)
	old1.FinishedAt = at(2)
	same := mk(f, "same", "wf", store.StepQueued, 20)
	wf2 := mk(f, "wf2", "wf2", store.StepQueued, 30)
	exact := mk(f, "exact", "wf", store.StepQueued, 100) // AvailableAt == now: claimable
	// Not claimable.
	future := mk(f, "future", "wf", store.StepQueued, 101)
	pending := mk(f, "pending", "wf", store.StepPending, 0)
	running := mk(f, "running", "wf", store.StepRunning, 0)
	done := mk(f, "done", "wf", store.StepCompleted, 0)
	unlisted := mk(f, "unlisted", "wf3", store.StepQueued, 0)
	otherTenant := mk(b, "other", "wf", store.StepQueued, 0)
	insertSteps(t, s, old2, old1, same, wf2, exact, future, pending, running, done, unlisted)
	insertSteps(t, s, otherTenant)

	list := func(limit int, now time.Time, wfs ...string) []store.StepRun {
		t.Helper()
		var got []store.StepRun
		write(t, s, func(tx store.Tx) error {
			var err error
			got, err = tx.ListClaimableStepRuns(ctx, store.ClaimParams{TenantID: f.tenant.ID, Workflows: wfs, Now: now, Limit: limit})
			return err
		})
		return got
	}

	got := list(10, now, "wf", "wf2")
	require.Equal(t, []string{old2.ID, old1.ID, same.ID, wf2.ID, exact.ID}, ids(got, stepID))
	require.Equal(t, old1, norm(got[1]))
	require.Equal(t, []string{old2.ID, old1.ID}, ids(list(2, now, "wf"), stepID))
	require.Empty(t, list(10, now), "no workflows")
	require.Empty(t, list(10, now, "nope"))
	require.Empty(t, list(0, now, "wf"), "limit 0")

	// Listing takes nothing: every row stays as it was.
	for _, want := range []store.StepRun{old2, old1, same, wf2, exact, future, pending, running, done, unlisted, otherTenant} {
		st, err := s.GetStepRun(ctx, want.ID)
		require.NoError(t, err)
		require.Equal(t, want, norm(st))
	}

	// Later, the future one becomes available.
	got = list(10, at(200), "wf3", "wf")
	require.Equal(t, []string{unlisted.ID, old2.ID, old1.ID, same.ID, exact.ID, future.ID}, ids(got, stepID))
}

// testClaimStepRunsConcurrently has several claimers race for the same
// queue, as engine nodes do (ListClaimableStepRuns, then ClaimStepRun on
// each candidate): every step run is claimed exactly once.
func testClaimStepRunsConcurrently(t *testing.T, open Opener) {
	s := open(t, nil)
	ctx := t.Context()
	f := newFixture(t, s)
	const steps = 200
	var queue []store.StepRun
	for i := range steps {
		st := f.newStep(fmt.Sprintf("s%03d", i))
		st.AvailableAt = at(i % 7)
		queue = append(queue, st)
	}
	insertSteps(t, s, queue...)

	const claimers = 6
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		got = map[string]string{} // step run ID -> worker
		dup []string
	)
	for w := range claimers {
		worker := fmt.Sprintf("w%d", w)
		wg.Go(func() {
			for {
				var cands, claimed []store.StepRun
				err := s.Write(ctx, func(tx store.Tx) error {
					claimed = claimed[:0]
					var err error
					cands, err = tx.ListClaimableStepRuns(ctx, store.ClaimParams{TenantID: f.tenant.ID, Workflows: []string{"wf"}, Now: at(1000), Limit: 3})
					if err != nil {
						return err
					}
					for _, c := range cands {
						sr, ok, err := tx.ClaimStepRun(ctx, store.ClaimStepRunParams{StepRunID: c.ID, WorkerID: worker, Now: at(1000)})
						if err != nil {
							return err
						}
						if ok {
							claimed = append(claimed, sr)
						}
					}
					return nil
				})
				if !assertNoError(t, err) || len(cands) == 0 {
					return
				}
				mu.Lock()
				for _, c := range claimed {
					if prev, ok := got[c.ID]; ok {
						dup = append(dup, fmt.Sprintf("%s by %s and %s", c.ID, prev, worker))
					}
					got[c.ID] = worker
					if c.WorkerID != worker || c.Attempt != 1 || c.Status != store.StepRunning {
						dup = append(dup, fmt.Sprintf("%s: bad claim %+v", c.ID, c))
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	require.Empty(t, dup)
	require.Len(t, got, steps)

	all, err := s.ListStepRuns(ctx, f.run.ID)
	require.NoError(t, err)
	for _, st := range all {
		require.Equal(t, store.StepRunning, st.Status)
		require.Equal(t, got[st.ID], st.WorkerID)
		require.Equal(t, 1, st.Attempt)
	}
}

// assertNoError is require.NoError for goroutines other than the test's.
func assertNoError(t *testing.T, err error) bool {
	if err != nil {
		t.Errorf("unexpected error: %v", err)
		return false
	}
	return true
}

func testClaimStepRun(t *testing.T, open Opener) {
	s := open(t, nil)
	ctx := t.Context()
	f := newFixture(t, s)
	q := f.newStep("q")
	q.Attempt = 2
	q.StreamSeq = 4
	q.Error = "old"
	q.FinishedAt = at(3)
	p := f.newStep("p")
	p.Status = store.StepPending
	insertSteps(t, s, q, p)

	want := q
	want.Status = store.StepRunning
	want.WorkerID = "w1"
	want.Attempt = 3
	want.StartedAt = at(50)
	want.TimeoutAt = at(80)
	want.FinishedAt = time.Time{}
	want.StreamSeq = 0
	want.Error = ""
	write(t, s, func(tx store.Tx) error {
		got, ok, err := tx.ClaimStepRun(ctx, store.ClaimStepRunParams{StepRunID: q.ID, WorkerID: "w1", Now: at(50), TimeoutAt: at(80)})
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, want, norm(got))

		// No longer queued: false, no error, nothing changed.
		_, ok, err = tx.ClaimStepRun(ctx, store.ClaimStepRunParams{StepRunID: q.ID, WorkerID: "w2", Now: at(60)})
		require.NoError(t, err)
		require.False(t, ok)
		_, ok, err = tx.ClaimStepRun(ctx, store.ClaimStepRunParams{StepRunID: p.ID, WorkerID: "w2", Now: at(60)})
		require.NoError(t, err)
		require.False(t, ok, "pending is not claimable")

		_, _, err = tx.ClaimStepRun(ctx, store.ClaimStepRunParams{StepRunID: newID(), WorkerID: "w2", Now: at(60)})
		require.ErrorIs(t, err, store.ErrNotFound)
		return nil
	})
	got, err := s.GetStepRun(ctx, q.ID)
	require.NoError(t, err)
	require.Equal(t, want, norm(got))
	got, err = s.GetStepRun(ctx, p.ID)
	require.NoError(t, err)
	require.Equal(t, p, norm(got))

	// Zero TimeoutAt: no timeout.
	r := f.newStep("r")
	insertSteps(t, s, r)
	write(t, s, func(tx store.Tx) error {
		got, ok, err := tx.ClaimStepRun(ctx, store.ClaimStepRunParams{StepRunID: r.ID, WorkerID: "w1", Now: at(50)})
		require.NoError(t, err)
		require.True(t, ok)
		require.True(t, got.TimeoutAt.IsZero())
		require.Equal(t, 1, got.Attempt)
		return nil
	})
}

func testListTimedOutStepRuns(t *testing.T, open Opener) {
	s := open(t, nil)
	ctx := t.Context()
	f := newFixture(t, s)
	mk := func(name string, status store.StepStatus, timeoutAt time.Time) store.StepRun {
		st := f.newStep(name)
		st.Status = status
		st.WorkerID = "w"
		st.TimeoutAt = timeoutAt
		return st
	}
	late2 := mk("late2", store.StepRunning, at(10))
	late1 := mk("late1", store.StepRunning, at(20))
	exact := mk("exact", store.StepRunning, at(50)) // at now: timed out
	notYet := mk("notyet", store.StepRunning, at(51))
	never := mk("never", store.StepRunning, time.Time{})
	queued := mk("queued", store.StepQueued, at(1))
	done := mk("done", store.StepCompleted, at(1))
	insertSteps(t, s, late1, late2, exact, notYet, never, queued, done)

	write(t, s, func(tx store.Tx) error {
		got, err := tx.ListTimedOutStepRuns(ctx, at(50), 10)
		require.NoError(t, err)
		require.Equal(t, []store.StepRun{late2, late1, exact}, norm(got))
		got, err = tx.ListTimedOutStepRuns(ctx, at(50), 2)
		require.NoError(t, err)
		require.Equal(t, []string{late2.ID, late1.ID}, ids(got, stepID))
		got, err = tx.ListTimedOutStepRuns(ctx, at(5), 10)
		require.NoError(t, err)
		require.Empty(t, got)
		return nil
	})
}

func testListStepRunsOfWorker(t *testing.T, open Opener) {
	s := open(t, nil)
	ctx := t.Context()
	f := newFixture(t, s)
	mk := func(name, worker string, status store.StepStatus) store.StepRun {
		st := f.newStep(name)
		st.WorkerID = worker
		st.Status = status
		return st
	}
	a1 := mk("a1", "wa", store.StepRunning)
	a2 := mk("a2", "wa", store.StepRunning)
	aDone := mk("a3", "wa", store.StepCompleted)
	aFailed := mk("a4", "wa", store.StepFailed)
	b1 := mk("b1", "wb", store.StepRunning)
	insertSteps(t, s, a1, a2, aDone, aFailed, b1)

	write(t, s, func(tx store.Tx) error {
		got, err := tx.ListStepRunsOfWorker(ctx, "wa")
		require.NoError(t, err)
		require.Equal(t, sortSteps([]store.StepRun{a1, a2}), sortSteps(norm(got)))
		got, err = tx.ListStepRunsOfWorker(ctx, "wb")
		require.NoError(t, err)
		require.Equal(t, []store.StepRun{b1}, norm(got))
		got, err = tx.ListStepRunsOfWorker(ctx, "nobody")
		require.NoError(t, err)
		require.Empty(t, got)
		return nil
	})
}

func testStepAttempts(t *testing.T, open Opener) {
	s := open(t, nil)
	ctx := t.Context()
	f := newFixture(t, s)
	st1 := f.newStep("one")
	st2 := f.newStep("two")
	insertSteps(t, s, st1, st2)
	other := newFixture(t, s)
	stOther := other.newStep("x")
	insertSteps(t, s, stOther)

	a1 := store.StepAttempt{StepRunID: st1.ID, Attempt: 1, Status: store.StepRunning, WorkerID: "w1", StartedAt: at(1)}
	a2 := store.StepAttempt{StepRunID: st1.ID, Attempt: 2, Status: store.StepRunning, WorkerID: "w2", StartedAt: at(5)}
	b1 := store.StepAttempt{StepRunID: st2.ID, Attempt: 1, Status: store.StepCompleted, WorkerID: "w1", StartedAt: at(2), FinishedAt: at(3)}
	o1 := store.StepAttempt{StepRunID: stOther.ID, Attempt: 1, Status: store.StepRunning, WorkerID: "w9", StartedAt: at(2)}
	write(t, s, func(tx store.Tx) error {
		for _, a := range []store.StepAttempt{a1, a2, b1, o1} {
			if err := tx.UpsertStepAttempt(ctx, a); err != nil {
				return err
			}
		}
		return nil
	})
	// The first attempt ends: the upsert replaces it.
	a1.Status = store.StepFailed
	a1.Error = "boom"
	a1.FinishedAt = at(4)
	write(t, s, func(tx store.Tx) error { return tx.UpsertStepAttempt(ctx, a1) })

	sortAttempts := func(as []store.StepAttempt) []store.StepAttempt {
		slices.SortFunc(as, func(x, y store.StepAttempt) int {
			if c := strings.Compare(x.StepRunID, y.StepRunID); c != 0 {
				return c
			}
			return x.Attempt - y.Attempt
		})
		return as
	}
	got, err := s.ListStepAttempts(ctx, f.run.ID)
	require.NoError(t, err)
	require.Equal(t, sortAttempts([]store.StepAttempt{a1, a2, b1}), sortAttempts(norm(got)))

	got, err = s.ListStepAttempts(ctx, other.run.ID)
	require.NoError(t, err)
	require.Equal(t, []store.StepAttempt{o1}, norm(got))

	got, err = s.ListStepAttempts(ctx, newID())
	require.NoError(t, err)
	require.Empty(t, got)

	err = s.Write(ctx, func(tx store.Tx) error {
		return tx.UpsertStepAttempt(ctx, store.StepAttempt{StepRunID: newID(), Attempt: 1, Status: store.StepRunning})
	})
	require.ErrorIs(t, err, store.ErrNotFound, "attempt of an unknown step run")
}
