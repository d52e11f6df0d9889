package storetest

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/store"
)

func testWorkers(t *testing.T, open Opener) {
	s := open(t, nil)
	ctx := t.Context()
	tn := newTenant(t, s, "t")
	mk := func(name string, heartbeat int) store.Worker {
		return store.Worker{
			ID:          newID(),
			TenantID:    tn.ID,
			Name:        name,
			NodeID:      "node-1",
			Workflows:   []string{"wf", "other"},
			Slots:       4,
			Alive:       true,
			HeartbeatAt: at(heartbeat),
			CreatedAt:   at(0),
		}
	}
	w1 := mk("w1", 10)
	w2 := mk("w2", 20)
	w3 := mk("w3", 30)
	w3.Workflows = nil
	w3.Slots = 1
	w3.PreviousID = w2.ID
	dead := mk("dead", 1)
	dead.Alive = false
	write(t, s, func(tx store.Tx) error {
		for _, w := range []store.Worker{w1, w2, w3, dead} {
			if err := tx.InsertWorker(ctx, w); err != nil {
				return err
			}
		}
		return nil
	})
	err := s.Write(ctx, func(tx store.Tx) error { return tx.InsertWorker(ctx, w1) })
	require.ErrorIs(t, err, store.ErrConflict)

	get := func(id string) store.Worker {
		t.Helper()
		var w store.Worker
		write(t, s, func(tx store.Tx) error {
			var err error
			w, err = tx.GetWorkerForUpdate(ctx, id)
			return err
		})
		return norm(w)
	}
	for _, want := range []store.Worker{w1, w2, w3, dead} {
		require.Equal(t, want, get(want.ID))
	}

	listDead := func(before int, limit int) []store.Worker {
		t.Helper()
		var ws []store.Worker
		write(t, s, func(tx store.Tx) error {
			var err error
			ws, err = tx.ListDeadWorkers(ctx, at(before), limit)
			return err
		})
		return norm(ws)
	}
	// Heartbeats strictly before the deadline, alive only, oldest first.
	require.Equal(t, []store.Worker{w1, w2}, listDead(30, 10))
	require.Equal(t, []store.Worker{w1}, listDead(30, 1))
	require.Empty(t, listDead(10, 10))

	// A heartbeat moves w1 past the deadline.
	require.NoError(t, s.TouchWorker(ctx, w1.TenantID, w1.ID, at(40)))
	w1.HeartbeatAt = at(40)
	require.Equal(t, w1, get(w1.ID))
	require.Equal(t, []store.Worker{w2, w3}, listDead(35, 10))

	// MarkWorkerDead reports whether it was alive.
	write(t, s, func(tx store.Tx) error {
		was, err := tx.MarkWorkerDead(ctx, w2.ID)
		require.NoError(t, err)
		require.True(t, was)
		was, err = tx.MarkWorkerDead(ctx, w2.ID)
		require.NoError(t, err)
		require.False(t, was)
		was, err = tx.MarkWorkerDead(ctx, dead.ID)
		require.NoError(t, err)
		require.False(t, was)
		_, err = tx.MarkWorkerDead(ctx, newID())
		require.ErrorIs(t, err, store.ErrNotFound)
		return nil
	})
	w2.Alive = false
	require.Equal(t, w2, get(w2.ID))
	require.Equal(t, []store.Worker{w3}, listDead(35, 10))

	// A dead or unknown worker cannot be touched.
	require.ErrorIs(t, s.TouchWorker(ctx, w2.TenantID, w2.ID, at(50)), store.ErrNotFound)
	require.ErrorIs(t, s.TouchWorker(ctx, dead.TenantID, dead.ID, at(50)), store.ErrNotFound)
	require.ErrorIs(t, s.TouchWorker(ctx, w3.TenantID, newID(), at(50)), store.ErrNotFound)
	require.Equal(t, w2, get(w2.ID))

	// Another tenant's heartbeat does not keep a worker alive.
	other := newTenant(t, s, "other")
	require.ErrorIs(t, s.TouchWorker(ctx, other.ID, w3.ID, at(50)), store.ErrNotFound)
	require.Equal(t, w3, get(w3.ID))
}
