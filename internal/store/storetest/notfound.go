package storetest

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/store"
)

// testNotFound: every method that names one row reports ErrNotFound for an
// unknown ID, and methods that list rows return none.
func testNotFound(t *testing.T, open Opener) {
	s := open(t, nil)
	ctx := t.Context()
	f := newFixture(t, s) // known tenant, so only the other ID is unknown
	unknown := newID()

	_, err := s.GetRun(ctx, f.tenant.ID, unknown)
	require.ErrorIs(t, err, store.ErrNotFound, "GetRun")
	_, err = s.GetStepRun(ctx, unknown)
	require.ErrorIs(t, err, store.ErrNotFound, "GetStepRun")
	_, err = s.GetWorkflowByName(ctx, f.tenant.ID, "unknown")
	require.ErrorIs(t, err, store.ErrNotFound, "GetWorkflowByName")
	_, err = s.GetTenant(ctx, unknown)
	require.ErrorIs(t, err, store.ErrNotFound, "GetTenant")
	_, err = s.LookupToken(ctx, "unknown")
	require.ErrorIs(t, err, store.ErrNotFound, "LookupToken")
	require.ErrorIs(t, s.TouchWorker(ctx, f.tenant.ID, unknown, at(1)), store.ErrNotFound, "TouchWorker")

	runs, err := s.ListRuns(ctx, store.ListRunsParams{TenantID: unknown})
	require.NoError(t, err)
	require.Empty(t, runs)
	steps, err := s.ListStepRuns(ctx, unknown)
	require.NoError(t, err)
	require.Empty(t, steps)
	attempts, err := s.ListStepAttempts(ctx, unknown)
	require.NoError(t, err)
	require.Empty(t, attempts)
	wfs, err := s.ListWorkflows(ctx, unknown)
	require.NoError(t, err)
	require.Empty(t, wfs)
	events, err := s.ReadEvents(ctx, store.ReadEventsParams{TenantID: f.tenant.ID, RunID: unknown})
	require.NoError(t, err)
	require.Empty(t, events)
	pos, err := s.LastRunPosition(ctx, f.tenant.ID, unknown)
	require.NoError(t, err)
	require.Zero(t, pos)

	inTx := func(name string, fn func(tx store.Tx) error) {
		t.Helper()
		err := s.Write(ctx, fn)
		require.ErrorIs(t, err, store.ErrNotFound, name)
	}
	inTx("GetTenantByName", func(tx store.Tx) error { _, err := tx.GetTenantByName(ctx, "unknown"); return err })
	inTx("GetWorkflow", func(tx store.Tx) error { _, err := tx.GetWorkflow(ctx, f.tenant.ID, "unknown"); return err })
	inTx("GetRunForUpdate", func(tx store.Tx) error { _, err := tx.GetRunForUpdate(ctx, f.tenant.ID, unknown); return err })
	inTx("UpdateRun", func(tx store.Tx) error {
		r := newRun(f.tenant.ID, "wf")
		return tx.UpdateRun(ctx, r)
	})
	inTx("GetStepRunForUpdate", func(tx store.Tx) error { _, err := tx.GetStepRunForUpdate(ctx, unknown); return err })
	inTx("UpdateStepRun", func(tx store.Tx) error { return tx.UpdateStepRun(ctx, f.newStep("x")) })
	inTx("ClaimStepRun", func(tx store.Tx) error {
		_, _, err := tx.ClaimStepRun(ctx, store.ClaimStepRunParams{StepRunID: unknown, WorkerID: "w", Now: at(1)})
		return err
	})
	inTx("UpsertStepAttempt", func(tx store.Tx) error {
		return tx.UpsertStepAttempt(ctx, store.StepAttempt{StepRunID: unknown, Attempt: 1, Status: store.StepRunning})
	})
	inTx("GetWorkerForUpdate", func(tx store.Tx) error { _, err := tx.GetWorkerForUpdate(ctx, unknown); return err })
	inTx("MarkWorkerDead", func(tx store.Tx) error { _, err := tx.MarkWorkerDead(ctx, unknown); return err })

	// Lists inside a transaction return nothing.
	write(t, s, func(tx store.Tx) error {
		steps, err := tx.ListStepRunsForUpdate(ctx, unknown)
		require.NoError(t, err)
		require.Empty(t, steps)
		steps, err = tx.ListStepRunsOfWorker(ctx, unknown)
		require.NoError(t, err)
		require.Empty(t, steps)
		return nil
	})
}
