package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/store"
)

func testRuns(t *testing.T, open Opener) {
	s := open(t, nil)
	ctx := t.Context()
	tn := newTenant(t, s, "t")

	parent := newRun(tn.ID, "parent")
	child := store.Run{
		ID:              newID(),
		TenantID:        tn.ID,
		Workflow:        "child",
		Status:          store.RunRunning,
		Input:           []byte(`{"a":[1,2,3]}`),
		Output:          []byte(`{"partial":true}`),
		Error:           "previous failure",
		Metadata:        map[string]string{"customer": "42", "region": "eu"},
		ParentRunID:     parent.ID,
		ParentStepRunID: newID(),
		CreatedAt:       at(1),
		StartedAt:       at(2),
		FinishedAt:      at(3),
	}
	insertRuns(t, s, parent, child)

	for _, want := range []store.Run{parent, child} {
		got, err := s.GetRun(ctx, tn.ID, want.ID)
		require.NoError(t, err)
		require.Equal(t, want, norm(got))
	}

	// UpdateRun writes Status, Output, Error, StartedAt and FinishedAt only.
	upd := parent
	upd.Status = store.RunCompleted
	upd.Output = []byte(`{"result":"ok"}`)
	upd.Error = "none really"
	upd.StartedAt = at(20)
	upd.FinishedAt = at(30)
	changedElsewhere := upd
	changedElsewhere.Workflow = "renamed"
	changedElsewhere.Input = []byte(`{"changed":true}`)
	changedElsewhere.Metadata = map[string]string{"x": "y"}
	changedElsewhere.CreatedAt = at(999)
	write(t, s, func(tx store.Tx) error {
		got, err := tx.GetRunForUpdate(ctx, tn.ID, parent.ID)
		require.NoError(t, err)
		require.Equal(t, parent, norm(got))
		return tx.UpdateRun(ctx, changedElsewhere)
	})
	got, err := s.GetRun(ctx, tn.ID, parent.ID)
	require.NoError(t, err)
	require.Equal(t, upd, norm(got))

	// Back to no output, no error, no times.
	upd2 := upd
	upd2.Status = store.RunQueued
	upd2.Output = nil
	upd2.Error = ""
	upd2.StartedAt = time.Time{}
	upd2.FinishedAt = time.Time{}
	write(t, s, func(tx store.Tx) error { return tx.UpdateRun(ctx, upd2) })
	got, err = s.GetRun(ctx, tn.ID, parent.ID)
	require.NoError(t, err)
	require.Equal(t, upd2, norm(got))
	require.Nil(t, got.Output)

	// A second run with the same ID is a conflict, and changes nothing.
	err = s.Write(ctx, func(tx store.Tx) error {
		dup := newRun(tn.ID, "dup")
		dup.ID = child.ID
		return tx.InsertRun(ctx, dup)
	})
	require.ErrorIs(t, err, store.ErrConflict)
	got, err = s.GetRun(ctx, tn.ID, child.ID)
	require.NoError(t, err)
	require.Equal(t, child, norm(got))
}

func testListRuns(t *testing.T, open Opener) {
	s := open(t, nil)
	ctx := t.Context()
	tn := newTenant(t, s, "t")
	other := newTenant(t, s, "other")

	// Runs are inserted oldest first; IDs are UUIDv7, so ID order is
	// creation order.
	type spec struct {
		wf     string
		status store.RunStatus
		meta   map[string]string
	}
	specs := []spec{
		{"a", store.RunCompleted, map[string]string{"customer": "1"}},
		{"b", store.RunFailed, nil},
		{"a", store.RunRunning, map[string]string{"customer": "2"}},
		{"a", store.RunCompleted, map[string]string{"customer": "1", "env": "prod"}},
		{"b", store.RunCompleted, map[string]string{"customer": "1"}},
		{"a", store.RunQueued, nil},
		{"c", store.RunCancelled, map[string]string{"env": "prod"}},
	}
	var all []store.Run
	for i, sp := range specs {
		r := newRun(tn.ID, sp.wf)
		r.Status = sp.status
		r.Metadata = sp.meta
		r.CreatedAt = at(i)
		all = append(all, r)
	}
	insertRuns(t, s, all...)
	// Noise in another tenant, with the same workflow and metadata.
	o := newRun(other.ID, "a")
	o.Status = store.RunCompleted
	o.Metadata = map[string]string{"customer": "1"}
	insertRuns(t, s, o)

	newest := func(idx ...int) []string {
		var out []string
		for i := len(idx) - 1; i >= 0; i-- {
			out = append(out, all[idx[i]].ID)
		}
		return out
	}
	list := func(p store.ListRunsParams) []string {
		t.Helper()
		p.TenantID = tn.ID
		runs, err := s.ListRuns(ctx, p)
		require.NoError(t, err)
		return ids(runs, runID)
	}

	require.Equal(t, newest(0, 1, 2, 3, 4, 5, 6), list(store.ListRunsParams{}))
	require.Equal(t, newest(0, 2, 3, 5), list(store.ListRunsParams{Workflow: "a"}))
	require.Equal(t, newest(0, 3, 4), list(store.ListRunsParams{Status: store.RunCompleted}))
	require.Equal(t, newest(0, 3), list(store.ListRunsParams{Workflow: "a", Status: store.RunCompleted}))
	require.Equal(t, newest(0, 3, 4), list(store.ListRunsParams{MetaKey: "customer", MetaValue: "1"}))
	require.Equal(t, newest(3, 6), list(store.ListRunsParams{MetaKey: "env", MetaValue: "prod"}))
	require.Equal(t, newest(0, 3), list(store.ListRunsParams{Workflow: "a", MetaKey: "customer", MetaValue: "1"}))
	require.Equal(t, newest(4), list(store.ListRunsParams{Workflow: "b", Status: store.RunCompleted, MetaKey: "customer", MetaValue: "1"}))
	require.Empty(t, list(store.ListRunsParams{MetaKey: "customer", MetaValue: "3"}))
	require.Empty(t, list(store.ListRunsParams{Workflow: "zzz"}))
	require.Empty(t, list(store.ListRunsParams{Status: store.RunTimedOut}))

	// Limit and Before page through newest first.
	require.Equal(t, newest(4, 5, 6), list(store.ListRunsParams{Limit: 3}))
	require.Equal(t, newest(1, 2, 3), list(store.ListRunsParams{Limit: 3, Before: all[4].ID}))
	require.Equal(t, newest(0), list(store.ListRunsParams{Limit: 3, Before: all[1].ID}))
	require.Empty(t, list(store.ListRunsParams{Limit: 3, Before: all[0].ID}))
	require.Equal(t, newest(0, 2), list(store.ListRunsParams{Workflow: "a", Before: all[3].ID}))
	require.Equal(t, newest(0), list(store.ListRunsParams{MetaKey: "customer", MetaValue: "1", Before: all[3].ID}))

	// Paging with a filter visits every match once.
	var paged []string
	before := ""
	for {
		page := list(store.ListRunsParams{Workflow: "a", Limit: 1, Before: before})
		if len(page) == 0 {
			break
		}
		require.Len(t, page, 1)
		paged = append(paged, page...)
		before = page[0]
	}
	require.Equal(t, newest(0, 2, 3, 5), paged)

	// The rows themselves are complete.
	runs, err := s.ListRuns(ctx, store.ListRunsParams{TenantID: tn.ID, Limit: 1})
	require.NoError(t, err)
	require.Equal(t, []store.Run{all[6]}, norm(runs))

	runs, err = s.ListRuns(ctx, store.ListRunsParams{TenantID: other.ID})
	require.NoError(t, err)
	require.Equal(t, []store.Run{o}, norm(runs))
}

// testListRunsLimits checks the default page size (50) and the cap (1000).
func testListRunsLimits(t *testing.T, open Opener) {
	s := open(t, nil)
	ctx := t.Context()
	tn := newTenant(t, s, "t")
	runs := make([]store.Run, 1001)
	for i := range runs {
		runs[i] = newRun(tn.ID, "wf")
	}
	insertRuns(t, s, runs...)

	got, err := s.ListRuns(ctx, store.ListRunsParams{TenantID: tn.ID})
	require.NoError(t, err)
	require.Len(t, got, 50)
	require.Equal(t, runs[1000].ID, got[0].ID)
	require.Equal(t, runs[951].ID, got[49].ID)

	got, err = s.ListRuns(ctx, store.ListRunsParams{TenantID: tn.ID, Limit: 5000})
	require.NoError(t, err)
	require.Len(t, got, 1000)
	require.Equal(t, runs[1].ID, got[999].ID)
}

func testRunMetadata(t *testing.T, open Opener) {
	s := open(t, nil)
	ctx := t.Context()
	tn := newTenant(t, s, "t")

	odd := map[string]string{
		"empty":        "",
		"unicode ключ": "значение ✓",
		"quote\"and'":  `{"json":"in a value"}`,
		"spaces key":   " padded ",
	}
	r1 := newRun(tn.ID, "wf")
	r1.Metadata = odd
	r2 := newRun(tn.ID, "wf")
	r2.Metadata = map[string]string{"empty": "not empty"}
	r3 := newRun(tn.ID, "wf")
	insertRuns(t, s, r1, r2, r3)

	got, err := s.GetRun(ctx, tn.ID, r1.ID)
	require.NoError(t, err)
	require.Equal(t, odd, got.Metadata)
	got, err = s.GetRun(ctx, tn.ID, r3.ID)
	require.NoError(t, err)
	require.Empty(t, got.Metadata)

	for k, v := range odd {
		runs, err := s.ListRuns(ctx, store.ListRunsParams{TenantID: tn.ID, MetaKey: k, MetaValue: v})
		require.NoError(t, err)
		require.Equal(t, []string{r1.ID}, ids(runs, runID), fmt.Sprintf("pair %q=%q", k, v))
	}
	runs, err := s.ListRuns(ctx, store.ListRunsParams{TenantID: tn.ID, MetaKey: "empty", MetaValue: "not empty"})
	require.NoError(t, err)
	require.Equal(t, []string{r2.ID}, ids(runs, runID))
	// A key alone does not match a different value.
	runs, err = s.ListRuns(ctx, store.ListRunsParams{TenantID: tn.ID, MetaKey: "spaces key", MetaValue: "padded"})
	require.NoError(t, err)
	require.Empty(t, runs)
}

func testTenantIsolation(t *testing.T, open Opener) {
	s := open(t, nil)
	ctx := t.Context()
	f := newFixture(t, s)
	b := newTenant(t, s, "b")
	write(t, s, func(tx store.Tx) error {
		return tx.AppendEvents(ctx, []store.Event{{TenantID: f.tenant.ID, RunID: f.run.ID, Workflow: "wf", Type: store.EventRunStarted}})
	})

	_, err := s.GetRun(ctx, b.ID, f.run.ID)
	require.ErrorIs(t, err, store.ErrNotFound)
	err = s.Write(ctx, func(tx store.Tx) error {
		_, err := tx.GetRunForUpdate(ctx, b.ID, f.run.ID)
		return err
	})
	require.ErrorIs(t, err, store.ErrNotFound)
	err = s.Write(ctx, func(tx store.Tx) error {
		r := f.run
		r.TenantID = b.ID
		r.Status = store.RunCancelled
		return tx.UpdateRun(ctx, r)
	})
	require.ErrorIs(t, err, store.ErrNotFound)
	got, err := s.GetRun(ctx, f.tenant.ID, f.run.ID)
	require.NoError(t, err)
	require.Equal(t, store.RunQueued, got.Status, "another tenant's update changed nothing")

	runs, err := s.ListRuns(ctx, store.ListRunsParams{TenantID: b.ID})
	require.NoError(t, err)
	require.Empty(t, runs)

	events, err := s.ReadEvents(ctx, store.ReadEventsParams{TenantID: b.ID, RunID: f.run.ID})
	require.NoError(t, err)
	require.Empty(t, events)
	pos, err := s.LastRunPosition(ctx, b.ID, f.run.ID)
	require.NoError(t, err)
	require.Zero(t, pos)
	pos, err = s.LastRunPosition(ctx, f.tenant.ID, f.run.ID)
	require.NoError(t, err)
	require.Positive(t, pos)

	// Claims only see the claimer's tenant.
	insertSteps(t, s, f.newStep("s"))
	write(t, s, func(tx store.Tx) error {
		got, err := tx.ListClaimableStepRuns(ctx, store.ClaimParams{TenantID: b.ID, Workflows: []string{"wf"}, Now: at(100), Limit: 10})
		require.NoError(t, err)
		require.Empty(t, got)
		return nil
	})
}
