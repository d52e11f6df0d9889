package storetest

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/store"
)

// testCountActiveRuns checks that CountActiveRuns counts queued and running
// runs of every tenant, and nothing else.
func testCountActiveRuns(t *testing.T, open Opener) {
	s := open(t, nil)
	ctx := t.Context()

	counts, err := s.CountActiveRuns(ctx)
	require.NoError(t, err)
	require.Equal(t, map[store.RunStatus]int{store.RunQueued: 0, store.RunRunning: 0}, counts, "an empty store has both statuses at 0")

	a, b := newTenant(t, s, "a"), newTenant(t, s, "b")
	var runs []store.Run
	add := func(tenantID string, status store.RunStatus, n int) {
		for range n {
			r := newRun(tenantID, "wf")
			r.Status = status
			runs = append(runs, r)
		}
	}
	add(a.ID, store.RunQueued, 3)
	add(b.ID, store.RunQueued, 1)
	add(a.ID, store.RunRunning, 2)
	for _, st := range []store.RunStatus{store.RunCompleted, store.RunFailed, store.RunCancelled, store.RunTimedOut} {
		add(b.ID, st, 2)
	}
	insertRuns(t, s, runs...)

	counts, err = s.CountActiveRuns(ctx)
	require.NoError(t, err)
	require.Equal(t, map[store.RunStatus]int{store.RunQueued: 4, store.RunRunning: 2}, counts)

	// A run that finishes leaves the count.
	done := runs[0]
	done.Status = store.RunCompleted
	write(t, s, func(tx store.Tx) error { return tx.UpdateRun(ctx, done) })
	counts, err = s.CountActiveRuns(ctx)
	require.NoError(t, err)
	require.Equal(t, map[store.RunStatus]int{store.RunQueued: 3, store.RunRunning: 2}, counts)
}
