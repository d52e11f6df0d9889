package storetest

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/store"
)

// Revocation: RevokeToken marks the token and the browser tokens it minted
// (CreatedBy), those not yet revoked, and returns their ids; LookupToken
// still returns them, with RevokedAt; ListTokens shows API and admin tokens
// of every tenant, oldest first, never browser tokens.
func testTokenRevocation(t *testing.T, open Opener) {
	s := open(t, nil)
	ctx := t.Context()
	a := newTenant(t, s, "acme")
	b := newTenant(t, s, "globex")
	hash := func(c byte) string {
		h := make([]byte, 64)
		for i := range h {
			h[i] = c
		}
		return string(h)
	}
	admin := store.Token{ID: newID(), TenantID: a.ID, Hash: hash('a'), Kind: store.TokenAdmin, Name: "admin", CreatedAt: at(1)}
	api := store.Token{ID: newID(), TenantID: b.ID, Hash: hash('b'), Kind: store.TokenAPI, Name: "backend",
		ExpiresAt: at(86400), CreatedAt: at(2), CreatedBy: admin.ID}
	minted := store.Token{ID: newID(), TenantID: b.ID, Hash: hash('c'), Kind: store.TokenBrowser, Name: "browser",
		MetaKey: "k", MetaValue: "v", ExpiresAt: at(900), CreatedAt: at(3), CreatedBy: api.ID}
	other := store.Token{ID: newID(), TenantID: b.ID, Hash: hash('d'), Kind: store.TokenBrowser, Name: "browser",
		RunID: newID(), ExpiresAt: at(900), CreatedAt: at(4), CreatedBy: admin.ID}
	streamTok := store.Token{ID: newID(), TenantID: b.ID, Hash: hash('e'), Kind: store.TokenBrowser, Name: "browser",
		Stream: "chat/42", ExpiresAt: at(900), CreatedAt: at(5), CreatedBy: admin.ID}
	write(t, s, func(tx store.Tx) error {
		for _, tk := range []store.Token{admin, api, minted, other, streamTok} {
			if err := tx.CreateToken(ctx, tk); err != nil {
				return err
			}
		}
		return nil
	})

	gotTok, err := s.LookupToken(ctx, streamTok.Hash)
	require.NoError(t, err)
	require.Equal(t, streamTok, norm(gotTok), "a browser token for one durable stream keeps its stream")

	list, err := s.ListTokens(ctx)
	require.NoError(t, err)
	require.Equal(t, []store.ListedToken{{Token: admin, TenantName: "acme"}, {Token: api, TenantName: "globex"}}, norm(list))

	var revoked []string
	write(t, s, func(tx store.Tx) error {
		got, err := tx.GetTokenForUpdate(ctx, api.ID)
		require.NoError(t, err)
		require.Equal(t, api, norm(got))
		revoked, err = tx.RevokeToken(ctx, api.ID, at(10))
		return err
	})
	slices.Sort(revoked)
	want := []string{api.ID, minted.ID}
	slices.Sort(want)
	require.Equal(t, want, revoked, "the token and the browser token it minted, not the admin's")

	for _, tk := range []store.Token{api, minted} {
		got, err := s.LookupToken(ctx, tk.Hash)
		require.NoError(t, err)
		tk.RevokedAt = at(10)
		require.Equal(t, tk, norm(got))
	}
	for _, tk := range []store.Token{admin, other} {
		got, err := s.LookupToken(ctx, tk.Hash)
		require.NoError(t, err)
		require.True(t, got.RevokedAt.IsZero(), "%s revoked with another token", tk.Name)
	}
	list, err = s.ListTokens(ctx)
	require.NoError(t, err)
	require.Equal(t, at(10), norm(list[1].RevokedAt))

	// Again: nothing left to revoke, and the first revocation time stays.
	write(t, s, func(tx store.Tx) error {
		again, err := tx.RevokeToken(ctx, api.ID, at(20))
		require.NoError(t, err)
		require.Empty(t, again)
		return nil
	})
	got, err := s.LookupToken(ctx, api.Hash)
	require.NoError(t, err)
	require.Equal(t, at(10), norm(got.RevokedAt))

	err = s.Write(ctx, func(tx store.Tx) error {
		_, err := tx.RevokeToken(ctx, newID(), at(30))
		return err
	})
	require.ErrorIs(t, err, store.ErrNotFound)
	err = s.Write(ctx, func(tx store.Tx) error {
		_, err := tx.GetTokenForUpdate(ctx, newID())
		return err
	})
	require.ErrorIs(t, err, store.ErrNotFound)
}
