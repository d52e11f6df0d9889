package storetest

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/store"
)

func testTenantsAndTokens(t *testing.T, open Opener) {
	s := open(t, nil)
	ctx := t.Context()

	n, err := s.CountTenants(ctx)
	require.NoError(t, err)
	require.Zero(t, n)

	a := newTenant(t, s, "acme")
	b := newTenant(t, s, "globex")

	n, err = s.CountTenants(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, n)

	got, err := s.GetTenant(ctx, a.ID)
	require.NoError(t, err)
	require.Equal(t, a, norm(got))

	write(t, s, func(tx store.Tx) error {
		got, err := tx.GetTenantByName(ctx, "globex")
		require.NoError(t, err)
		require.Equal(t, b, norm(got))
		_, err = tx.GetTenantByName(ctx, "initech")
		require.ErrorIs(t, err, store.ErrNotFound)
		return nil
	})

	// A second tenant of the same name, or with the same ID, is a conflict.
	err = s.Write(ctx, func(tx store.Tx) error {
		return tx.CreateTenant(ctx, store.Tenant{ID: newID(), Name: "acme", CreatedAt: at(5)})
	})
	require.ErrorIs(t, err, store.ErrConflict)
	err = s.Write(ctx, func(tx store.Tx) error {
		return tx.CreateTenant(ctx, store.Tenant{ID: a.ID, Name: "other", CreatedAt: at(5)})
	})
	require.ErrorIs(t, err, store.ErrConflict)
	n, err = s.CountTenants(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, n)

	// Tokens: every field round-trips; lookup is by hash.
	api := store.Token{
		ID:        newID(),
		TenantID:  a.ID,
		Hash:      "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		Kind:      store.TokenAPI,
		Name:      "ci",
		CreatedAt: at(3),
	}
	browser := store.Token{
		ID:        newID(),
		TenantID:  a.ID,
		Hash:      "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752",
		Kind:      store.TokenBrowser,
		Name:      "dashboard",
		RunID:     newID(),
		MetaKey:   "customer",
		MetaValue: "42",
		ExpiresAt: at(3600),
		CreatedAt: at(4),
	}
	// Expired long ago: still returned, the caller checks ExpiresAt.
	expired := store.Token{
		ID:        newID(),
		TenantID:  b.ID,
		Hash:      "fd61a03af4f77d870fc21e05e7e80678095c92d808cfb3b5c279ee04c74aca13",
		Kind:      store.TokenAPI,
		ExpiresAt: at(-3600),
		CreatedAt: at(-7200),
	}
	write(t, s, func(tx store.Tx) error {
		for _, tk := range []store.Token{api, browser, expired} {
			if err := tx.CreateToken(ctx, tk); err != nil {
				return err
			}
		}
		return nil
	})
	for _, want := range []store.Token{api, browser, expired} {
		got, err := s.LookupToken(ctx, want.Hash)
		require.NoError(t, err)
		require.Equal(t, want, norm(got))
	}
	_, err = s.LookupToken(ctx, "0000000000000000000000000000000000000000000000000000000000000000")
	require.ErrorIs(t, err, store.ErrNotFound)

	err = s.Write(ctx, func(tx store.Tx) error {
		dup := api
		dup.ID = newID()
		return tx.CreateToken(ctx, dup)
	})
	require.ErrorIs(t, err, store.ErrConflict, "a second token with the same hash")
}

func testWorkflows(t *testing.T, open Opener) {
	s := open(t, nil)
	ctx := t.Context()
	a := newTenant(t, s, "a")
	b := newTenant(t, s, "b")

	w1 := store.Workflow{TenantID: a.ID, Name: "order", Definition: []byte(`{"steps":[1]}`), OnEvents: []string{"order.created", "order.updated"}, UpdatedAt: at(1)}
	w2 := store.Workflow{TenantID: a.ID, Name: "invoice", Definition: []byte(`{"steps":[2]}`), UpdatedAt: at(2)}
	wb := store.Workflow{TenantID: b.ID, Name: "order", Definition: []byte(`{"other":true}`), UpdatedAt: at(3)}
	write(t, s, func(tx store.Tx) error {
		for _, w := range []store.Workflow{w1, w2, wb} {
			if err := tx.UpsertWorkflow(ctx, w); err != nil {
				return err
			}
		}
		return nil
	})

	got, err := s.GetWorkflowByName(ctx, a.ID, "order")
	require.NoError(t, err)
	require.Equal(t, w1, norm(got))
	got, err = s.GetWorkflowByName(ctx, b.ID, "order")
	require.NoError(t, err)
	require.Equal(t, wb, norm(got))

	list, err := s.ListWorkflows(ctx, a.ID)
	require.NoError(t, err)
	require.ElementsMatch(t, []store.Workflow{w1, w2}, norm(list))

	// Upsert replaces the definition, its events and the time.
	w1v2 := w1
	w1v2.Definition = []byte(`{"steps":[1,2,3]}`)
	w1v2.OnEvents = []string{"order.deleted"}
	w1v2.UpdatedAt = at(100)
	write(t, s, func(tx store.Tx) error {
		if err := tx.UpsertWorkflow(ctx, w1v2); err != nil {
			return err
		}
		got, err := tx.GetWorkflow(ctx, a.ID, "order")
		require.NoError(t, err)
		require.Equal(t, w1v2, norm(got))
		_, err = tx.GetWorkflow(ctx, a.ID, "missing")
		require.ErrorIs(t, err, store.ErrNotFound)
		_, err = tx.GetWorkflow(ctx, b.ID, "invoice")
		require.ErrorIs(t, err, store.ErrNotFound, "another tenant's workflow")
		return nil
	})
	list, err = s.ListWorkflows(ctx, a.ID)
	require.NoError(t, err)
	require.ElementsMatch(t, []store.Workflow{w1v2, w2}, norm(list))

	list, err = s.ListWorkflows(ctx, b.ID)
	require.NoError(t, err)
	require.Equal(t, []store.Workflow{wb}, norm(list))

	_, err = s.GetWorkflowByName(ctx, b.ID, "invoice")
	require.ErrorIs(t, err, store.ErrNotFound)
	list, err = s.ListWorkflows(ctx, newID())
	require.NoError(t, err)
	require.Empty(t, list)
}
