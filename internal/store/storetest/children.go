package storetest

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/store"
)

// newChild returns a queued run spawned from a step run of parent.
func newChild(parent store.Run, stepRunID, key string, sec int) store.Run {
	r := newRun(parent.TenantID, "child")
	r.ParentRunID = parent.ID
	r.ParentStepRunID = stepRunID
	r.SpawnKey = key
	r.Metadata = map[string]string{"from": parent.ID}
	r.CreatedAt = at(sec)
	return r
}

// testChildren runs the checks of child runs, each on a store of its own.
func testChildren(t *testing.T, open Opener) {
	t.Run("ChildRuns", func(t *testing.T) { t.Parallel(); testChildRuns(t, open) })
	t.Run("ActiveAndOrphaned", func(t *testing.T) { t.Parallel(); testActiveAndOrphanedChildRuns(t, open) })
}

// testChildRuns: spawn keys are unique per parent step run and round-trip;
// children list oldest first, per tenant, without grandchildren.
func testChildRuns(t *testing.T, open Opener) {
	s := open(t, nil)
	ctx := t.Context()
	tn := newTenant(t, s, "t")
	other := newTenant(t, s, "other")

	parent := newRun(tn.ID, "parent")
	step1, step2 := newID(), newID()
	// Created out of ID order, to check that the list follows creation time.
	late := newChild(parent, step1, "1:0", 30)
	early := newChild(parent, step1, "1:1", 10)
	sameKeyOtherStep := newChild(parent, step2, "1:0", 20)
	noKey1 := newChild(parent, step2, "", 40)
	noKey2 := newChild(parent, step2, "", 50)
	grandchild := newChild(late, newID(), "1:0", 60)
	insertRuns(t, s, parent, late, early, sameKeyOtherStep, noKey1, noKey2, grandchild)

	// Every field round-trips, through each way of reading a run.
	got, err := s.GetRun(ctx, tn.ID, late.ID)
	require.NoError(t, err)
	require.Equal(t, late, norm(got))
	write(t, s, func(tx store.Tx) error {
		got, err := tx.GetRunForUpdate(ctx, tn.ID, late.ID)
		require.NoError(t, err)
		require.Equal(t, late, norm(got))
		return nil
	})
	listed, err := s.ListRuns(ctx, store.ListRunsParams{TenantID: tn.ID, Workflow: "child", Limit: 1})
	require.NoError(t, err)
	require.Equal(t, []store.Run{grandchild}, norm(listed))

	// Lookup by spawn key, inside a transaction.
	write(t, s, func(tx store.Tx) error {
		got, err := tx.GetChildRunBySpawnKey(ctx, step1, "1:0")
		require.NoError(t, err)
		require.Equal(t, late, norm(got))
		got, err = tx.GetChildRunBySpawnKey(ctx, step2, "1:0")
		require.NoError(t, err)
		require.Equal(t, sameKeyOtherStep, norm(got))
		_, err = tx.GetChildRunBySpawnKey(ctx, step1, "2:0")
		require.ErrorIs(t, err, store.ErrNotFound, "a key of another attempt")
		_, err = tx.GetChildRunBySpawnKey(ctx, newID(), "1:0")
		require.ErrorIs(t, err, store.ErrNotFound, "an unknown step run")
		_, err = tx.GetChildRunBySpawnKey(ctx, step2, "")
		require.ErrorIs(t, err, store.ErrNotFound, "the empty key names no run, even where keyless runs exist")
		return nil
	})

	// A second run with a taken key is a conflict; the transaction can go
	// on and find the run that holds the key.
	dup := newChild(parent, step1, "1:0", 70)
	write(t, s, func(tx store.Tx) error {
		require.ErrorIs(t, tx.InsertRun(ctx, dup), store.ErrConflict)
		got, err := tx.GetChildRunBySpawnKey(ctx, step1, "1:0")
		require.NoError(t, err)
		require.Equal(t, late.ID, got.ID)
		return nil
	})
	_, err = s.GetRun(ctx, tn.ID, dup.ID)
	require.ErrorIs(t, err, store.ErrNotFound, "the conflicting run was not stored")

	// Children of the parent only (no grandchildren), oldest first.
	children, err := s.ListChildRuns(ctx, tn.ID, parent.ID)
	require.NoError(t, err)
	require.Equal(t, []store.Run{early, sameKeyOtherStep, late, noKey1, noKey2}, norm(children))
	children, err = s.ListChildRuns(ctx, tn.ID, late.ID)
	require.NoError(t, err)
	require.Equal(t, []store.Run{grandchild}, norm(children))

	// Another tenant sees none; a run without children has none; the empty
	// parent ID does not list top-level runs.
	for _, c := range []struct{ tenant, parent string }{
		{other.ID, parent.ID}, {tn.ID, early.ID}, {tn.ID, newID()}, {tn.ID, ""},
	} {
		children, err := s.ListChildRuns(ctx, c.tenant, c.parent)
		require.NoError(t, err)
		require.Empty(t, children, "tenant %s parent %q", c.tenant, c.parent)
	}
}

// testActiveAndOrphanedChildRuns: the reads of the cancellation cascade.
func testActiveAndOrphanedChildRuns(t *testing.T, open Opener) {
	s := open(t, nil)
	ctx := t.Context()
	tn := newTenant(t, s, "t")

	withStatus := func(r store.Run, st store.RunStatus) store.Run {
		r.Status = st
		return r
	}
	// One parent per status, each with one child per status.
	statuses := []store.RunStatus{
		store.RunQueued, store.RunRunning, store.RunCompleted, store.RunFailed, store.RunCancelled, store.RunTimedOut,
	}
	parents := map[store.RunStatus]store.Run{}
	children := map[store.RunStatus][]store.Run{}
	sec := 0
	for _, ps := range statuses {
		p := withStatus(newRun(tn.ID, "parent"), ps)
		parents[ps] = p
		insertRuns(t, s, p)
		for _, cs := range statuses {
			sec++
			c := withStatus(newChild(p, newID(), "", sec), cs)
			children[ps] = append(children[ps], c)
			insertRuns(t, s, c)
		}
	}
	unfinished := func(ps store.RunStatus) []store.Run {
		return []store.Run{children[ps][0], children[ps][1]} // queued, running
	}

	write(t, s, func(tx store.Tx) error {
		for _, ps := range statuses {
			active, err := tx.ListActiveChildRuns(ctx, parents[ps].ID)
			require.NoError(t, err)
			require.Equal(t, unfinished(ps), norm(active), "active children of the %s parent", ps)
		}
		active, err := tx.ListActiveChildRuns(ctx, children[store.RunRunning][1].ID)
		require.NoError(t, err)
		require.Empty(t, active, "a run without children")
		active, err = tx.ListActiveChildRuns(ctx, "")
		require.NoError(t, err)
		require.Empty(t, active, "top-level runs are nobody's children")

		// Orphans: unfinished children of failed, cancelled and timed-out
		// parents, in ID order (the children were created in that order).
		var want []store.Run
		for _, ps := range []store.RunStatus{store.RunFailed, store.RunCancelled, store.RunTimedOut} {
			want = append(want, unfinished(ps)...)
		}
		orphans, err := tx.ListOrphanedChildRuns(ctx, 100)
		require.NoError(t, err)
		require.Equal(t, want, norm(orphans))
		orphans, err = tx.ListOrphanedChildRuns(ctx, 2)
		require.NoError(t, err)
		require.Equal(t, want[:2], norm(orphans), "limit")
		return nil
	})

	// Once cancelled, an orphan is no longer listed.
	write(t, s, func(tx store.Tx) error {
		for _, c := range unfinished(store.RunFailed) {
			if err := tx.UpdateRun(ctx, withStatus(c, store.RunCancelled)); err != nil {
				return err
			}
		}
		return nil
	})
	write(t, s, func(tx store.Tx) error {
		orphans, err := tx.ListOrphanedChildRuns(ctx, 100)
		require.NoError(t, err)
		require.Equal(t, append(unfinished(store.RunCancelled), unfinished(store.RunTimedOut)...), norm(orphans))
		active, err := tx.ListActiveChildRuns(ctx, parents[store.RunFailed].ID)
		require.NoError(t, err)
		require.Empty(t, active)
		return nil
	})
}
