package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/runnel-dev/runnel/internal/apierr"
	"github.com/runnel-dev/runnel/internal/store"
)

// Revocation: a revoked token is refused from the moment its revocation
// commits. The node that revokes it forgets it at once; other nodes sharing
// a PostgreSQL database hear of it through the store's notification
// channel (ForgetToken). Forgetting a token drops it from the token cache
// and ends its live subscriptions on this node, with Unauthenticated.

// errTokenRevoked ends the subscriptions of a revoked token.
var errTokenRevoked = apierr.New(apierr.Unauthenticated, "token revoked")

// liveSub is one live subscription, to end if its token is revoked.
type liveSub struct{ cancel context.CancelCauseFunc }

// watch records a live subscription of p, under its token and under the
// token that minted it (a browser token dies with its minter); the
// returned function forgets it.
func (c *tokenCache) watch(p Principal, cancel context.CancelCauseFunc) (unwatch func()) {
	sub := &liveSub{cancel: cancel}
	keys := []string{p.TokenID}
	if p.MintedBy != "" {
		keys = append(keys, p.MintedBy)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.live == nil {
		c.live = map[string]map[*liveSub]struct{}{}
	}
	for _, k := range keys {
		if c.live[k] == nil {
			c.live[k] = map[*liveSub]struct{}{}
		}
		c.live[k][sub] = struct{}{}
	}
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, k := range keys {
			delete(c.live[k], sub)
			if len(c.live[k]) == 0 {
				delete(c.live, k)
			}
		}
	}
}

// ForgetToken makes this node refuse a revoked token, and the browser
// tokens it minted, from now on: they leave the token cache, and their live
// subscriptions end with Unauthenticated. An empty id forgets every cached
// token (the caller may have missed revocations), ending no subscription.
func (e *Engine) ForgetToken(tokenID string) {
	c := e.tokens
	c.mu.Lock()
	var ended []*liveSub
	if tokenID == "" {
		clear(c.entries)
	} else {
		for hash, ct := range c.entries {
			if ct.tok.ID == tokenID || ct.tok.CreatedBy == tokenID {
				delete(c.entries, hash)
			}
		}
		for sub := range c.live[tokenID] {
			ended = append(ended, sub)
		}
	}
	c.mu.Unlock()
	for _, sub := range ended {
		sub.cancel(errTokenRevoked)
	}
}

// TokenInfo is a token as ListTokens shows it; never its secret.
type TokenInfo = store.ListedToken

// ListTokens returns the API and admin tokens of every tenant (not browser
// tokens), revoked and expired ones included. Errors: PermissionDenied
// unless p is an admin token.
func (e *Engine) ListTokens(ctx context.Context, p Principal) ([]TokenInfo, error) {
	if !p.IsAdmin() {
		return nil, apierr.New(apierr.PermissionDenied, "only an admin token may list tokens")
	}
	toks, err := e.store.ListTokens(ctx)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	return toks, nil
}

// RevokeToken revokes the token with this id, and the browser tokens it
// minted, and returns the ids revoked now (none when it was revoked
// already). They are refused at once on every node, and their live
// subscriptions end. Errors: PermissionDenied unless p is an admin token;
// NotFound for an unknown id; FailedPrecondition when p revokes itself
// (which would leave the caller locked out).
func (e *Engine) RevokeToken(ctx context.Context, p Principal, tokenID string) ([]string, error) {
	if !p.IsAdmin() {
		return nil, apierr.New(apierr.PermissionDenied, "only an admin token may revoke tokens")
	}
	if err := CheckText("token id", tokenID); err != nil {
		return nil, err
	}
	if tokenID == "" {
		return nil, apierr.New(apierr.InvalidArgument, "which token? give its id (runnel token list shows them)")
	}
	if tokenID == p.TokenID {
		return nil, apierr.New(apierr.FailedPrecondition, "a token cannot revoke itself: revoke it with another admin token (runnel token create --admin mints one)")
	}
	var ids []string
	err := e.store.Write(ctx, func(tx store.Tx) error {
		var err error
		ids, err = tx.RevokeToken(ctx, tokenID, e.now())
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, apierr.New(apierr.NotFound, "unknown token %s (runnel token list shows the ids)", truncateText(tokenID))
	}
	if err != nil {
		return nil, fmt.Errorf("revoke token %s: %w", tokenID, err)
	}
	e.ForgetToken(tokenID)
	e.log.Info("token revoked", "token_id", tokenID, "revoked", len(ids))
	return ids, nil
}

// APITokenParams describe an API (or admin) token to mint.
type APITokenParams struct {
	Tenant string // created if new; "" is DefaultTenant
	Name   string // a label
	// ExpiresIn is the token's lifetime; 0: it never expires.
	ExpiresIn time.Duration
	// Admin mints an admin token, which may also manage tokens.
	Admin bool
}

// CreatedToken is a minted token: its secret (shown once) and what
// identifies it.
type CreatedToken struct {
	Secret    string
	ID        string
	TenantID  string
	ExpiresAt time.Time // zero: never
}
