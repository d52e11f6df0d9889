package engine

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/runnel-dev/runnel/internal/apierr"
	"github.com/runnel-dev/runnel/internal/store"
)

// DefaultTenant is the tenant created on first start.
const DefaultTenant = "default"

// tokenPrefix marks Runnel secrets, so they are recognisable in leaked text.
const tokenPrefix = "rnl_"

// Principal is who a request acts as: a token's tenant, kind and scope.
type Principal struct {
	TenantID  string
	TokenID   string
	Kind      string // store.TokenAdmin, TokenAPI or TokenBrowser
	RunID     string // browser scope
	MetaKey   string
	MetaValue string
	Stream    string // browser scope: one standalone durable stream
	// MintedBy is the id of the token that minted this browser token, if
	// known: revoking that one ends this one too.
	MintedBy string
	// ExpiresAt is when the token stops working (zero: never). Streams
	// opened with it end then (see Engine.subscription).
	ExpiresAt time.Time
}

// IsAdmin reports whether the principal may manage tenants and tokens.
func (p Principal) IsAdmin() bool { return p.Kind == store.TokenAdmin }

// CanWrite reports whether the principal may change anything (browser
// tokens are read-only).
func (p Principal) CanWrite() bool { return p.Kind == store.TokenAdmin || p.Kind == store.TokenAPI }

// CanReadRun reports whether the principal may read the run: every run of
// its tenant, or, for a browser token, only the run it was minted for (or
// runs carrying its metadata pair).
func (p Principal) CanReadRun(run store.Run) bool {
	if run.TenantID != p.TenantID {
		return false
	}
	if p.Kind != store.TokenBrowser {
		return true
	}
	if p.RunID != "" {
		return run.ID == p.RunID
	}
	// The key must be present: a missing key is not the empty value, or a
	// token for (K, "") would read every run without K.
	v, ok := run.Metadata[p.MetaKey]
	return p.MetaKey != "" && ok && v == p.MetaValue
}

func newSecret() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("read random bytes: %v", err)) // crypto/rand does not fail on Linux
	}
	return tokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
}

func hashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// tokenCache spares a store read per request. Expiry is checked on every
// request against the cached token; a revocation removes the token from
// the cache at once (ForgetToken), on every node. Entries are re-read after
// tokenCacheTTL anyway.
type tokenCache struct {
	mu      sync.Mutex
	entries map[string]cachedToken
	// live are the live subscriptions by token id (see revoke.go).
	live map[string]map[*liveSub]struct{}
}

type cachedToken struct {
	tok     store.Token
	fetched time.Time
}

const (
	tokenCacheTTL  = 10 * time.Second
	tokenCacheSize = 10000
)

func newTokenCache() *tokenCache { return &tokenCache{entries: map[string]cachedToken{}} }

// Authenticate resolves a secret to its principal. Errors: Unauthenticated
// for a missing, unknown or expired token.
func (e *Engine) Authenticate(ctx context.Context, secret string) (Principal, error) {
	if secret == "" {
		return Principal{}, apierr.New(apierr.Unauthenticated, "missing token: send Authorization: Bearer <token> (runnel dev prints one; or set RUNNEL_TOKEN)")
	}
	if !strings.HasPrefix(secret, tokenPrefix) || len(secret) > 256 {
		return Principal{}, apierr.New(apierr.Unauthenticated, "invalid token")
	}
	hash := hashSecret(secret)
	now := e.now()
	e.tokens.mu.Lock()
	c, ok := e.tokens.entries[hash]
	e.tokens.mu.Unlock()
	if !ok || now.Sub(c.fetched) > tokenCacheTTL {
		tok, err := e.store.LookupToken(ctx, hash)
		if errors.Is(err, store.ErrNotFound) {
			return Principal{}, apierr.New(apierr.Unauthenticated, "invalid token")
		}
		if err != nil {
			return Principal{}, fmt.Errorf("look up token: %w", err)
		}
		c = cachedToken{tok: tok, fetched: now}
		e.tokens.mu.Lock()
		if len(e.tokens.entries) >= tokenCacheSize {
			clear(e.tokens.entries)
		}
		e.tokens.entries[hash] = c
		e.tokens.mu.Unlock()
	}
	if !c.tok.RevokedAt.IsZero() {
		return Principal{}, errTokenRevoked
	}
	if !c.tok.ExpiresAt.IsZero() && !now.Before(c.tok.ExpiresAt) {
		return Principal{}, apierr.New(apierr.Unauthenticated, "token expired")
	}
	return Principal{
		TenantID: c.tok.TenantID, TokenID: c.tok.ID, Kind: c.tok.Kind,
		RunID: c.tok.RunID, MetaKey: c.tok.MetaKey, MetaValue: c.tok.MetaValue, Stream: c.tok.Stream, MintedBy: c.tok.CreatedBy,
		ExpiresAt: c.tok.ExpiresAt,
	}, nil
}

// Bootstrap creates the default tenant and an admin token on an empty
// store, and returns the token's secret (shown once; only its hash is
// stored). On a store that already has tenants it returns "".
func (e *Engine) Bootstrap(ctx context.Context) (string, error) {
	n, err := e.store.CountTenants(ctx)
	if err != nil {
		return "", fmt.Errorf("count tenants: %w", err)
	}
	if n > 0 {
		return "", nil
	}
	secret := newSecret()
	now := e.now()
	tenant := store.Tenant{ID: newID(), Name: DefaultTenant, CreatedAt: now}
	err = e.store.Write(ctx, func(tx store.Tx) error {
		if err := tx.CreateTenant(ctx, tenant); err != nil {
			return err
		}
		return tx.CreateToken(ctx, store.Token{
			ID: newID(), TenantID: tenant.ID, Hash: hashSecret(secret), Kind: store.TokenAdmin,
			Name: "admin", CreatedAt: now,
		})
	})
	if errors.Is(err, store.ErrConflict) {
		return "", nil // another node bootstrapped first
	}
	if err != nil {
		return "", fmt.Errorf("create default tenant and admin token: %w", err)
	}
	return secret, nil
}

// MaxTokenNameLen bounds a token's label.
const MaxTokenNameLen = 256

// CreateToken mints an API token (or, with Admin, an admin token) for a
// tenant, creating the tenant if it does not exist, optionally expiring.
// Only admin tokens may. Errors: PermissionDenied, InvalidArgument for a
// bad tenant name, label or lifetime, ResourceExhausted (with a
// RetryAfter) when p mints too fast.
func (e *Engine) CreateToken(ctx context.Context, p Principal, tp APITokenParams) (created CreatedToken, err error) {
	if !p.IsAdmin() {
		return created, apierr.New(apierr.PermissionDenied, "only an admin token may create tokens")
	}
	tenantName, name := tp.Tenant, tp.Name
	if tenantName == "" {
		tenantName = DefaultTenant
	}
	if err := CheckText("token name", name); err != nil {
		return created, err
	}
	if len(name) > MaxTokenNameLen {
		return created, apierr.New(apierr.InvalidArgument, "token name of %d bytes: at most %d", len(name), MaxTokenNameLen)
	}
	if err := validateName("tenant", tenantName); err != nil {
		return created, err
	}
	if tp.ExpiresIn < 0 || (tp.ExpiresIn > 0 && tp.ExpiresIn < time.Second) {
		return created, apierr.New(apierr.InvalidArgument, "token lifetime %s: want at least 1s (or none, for a token that never expires)", tp.ExpiresIn)
	}
	kind := store.TokenAPI
	if tp.Admin {
		kind = store.TokenAdmin
	}
	if err := e.mints.take(p.TokenID, e.now()); err != nil {
		return created, err
	}
	defer func() {
		if err != nil {
			e.mints.refund(p.TokenID)
		}
	}()
	secret := newSecret()
	now := e.now()
	var expires time.Time
	if tp.ExpiresIn > 0 {
		expires = now.Add(tp.ExpiresIn)
	}
	id := newID()
	var tenantID string
	err = e.store.Write(ctx, func(tx store.Tx) error {
		t, err := tx.GetTenantByName(ctx, tenantName)
		if errors.Is(err, store.ErrNotFound) {
			t = store.Tenant{ID: newID(), Name: tenantName, CreatedAt: now}
			err = tx.CreateTenant(ctx, t)
		}
		if err != nil {
			return fmt.Errorf("tenant %q: %w", tenantName, err)
		}
		tenantID = t.ID
		return tx.CreateToken(ctx, store.Token{
			ID: id, TenantID: t.ID, Hash: hashSecret(secret), Kind: kind, Name: name,
			ExpiresAt: expires, CreatedAt: now, CreatedBy: p.TokenID,
		})
	})
	if err != nil {
		return created, err
	}
	return CreatedToken{Secret: secret, ID: id, TenantID: tenantID, ExpiresAt: expires}, nil
}

// Browser token lifetimes.
const (
	DefaultBrowserTokenTTL = 15 * time.Minute
	MaxBrowserTokenTTL     = 24 * time.Hour
)

// BrowserTokenParams scope a read-only browser token: one run, every run
// carrying one metadata pair, or one standalone durable stream.
type BrowserTokenParams struct {
	RunID     string
	MetaKey   string
	MetaValue string
	Stream    string
	TTL       time.Duration // 0: DefaultBrowserTokenTTL
}

// CreateBrowserToken mints a short-lived read-only token that can read only
// the run (or the metadata pair's runs) it is scoped to, in the principal's
// tenant. Errors: PermissionDenied for read-only principals, InvalidArgument
// for a bad scope or TTL, NotFound for a run outside the tenant,
// ResourceExhausted (with a RetryAfter) when p mints too fast.
func (e *Engine) CreateBrowserToken(ctx context.Context, p Principal, bp BrowserTokenParams) (secret string, expires time.Time, err error) {
	if !p.CanWrite() {
		return "", time.Time{}, apierr.New(apierr.PermissionDenied, "a browser token cannot mint tokens")
	}
	if err := checkTexts("runId", bp.RunID, "metaKey", bp.MetaKey, "metaValue", bp.MetaValue, "stream", bp.Stream); err != nil {
		return "", time.Time{}, err
	}
	scopes := 0
	for _, set := range []bool{bp.RunID != "", bp.MetaKey != "" || bp.MetaValue != "", bp.Stream != ""} {
		if set {
			scopes++
		}
	}
	switch {
	case scopes > 1:
		return "", time.Time{}, apierr.New(apierr.InvalidArgument, "scope a browser token to one of a run, a metadata pair or a durable stream, not several")
	case scopes == 0:
		return "", time.Time{}, apierr.New(apierr.InvalidArgument, "a browser token needs a scope: runId, metaKey and metaValue, or stream")
	case bp.Stream != "":
		// A stream scope: checked below (the stream must exist).
	case bp.RunID == "" && bp.MetaValue == "":
		// An empty value is too easily a missing one (an unset variable on
		// the backend): refuse it rather than mint a token for a pair that
		// reads as "every run with an empty K".
		return "", time.Time{}, apierr.New(apierr.InvalidArgument, "metaValue is empty: a browser token scoped to metadata key %q needs a non-empty value", bp.MetaKey)
	case bp.MetaKey != "" && (len(bp.MetaKey) > maxMetaKeyLen || len(bp.MetaValue) > maxMetaValueLen):
		return "", time.Time{}, apierr.New(apierr.InvalidArgument, "metaKey or metaValue too long")
	}
	if bp.TTL == 0 {
		bp.TTL = DefaultBrowserTokenTTL
	}
	if bp.TTL < time.Second || bp.TTL > MaxBrowserTokenTTL {
		return "", time.Time{}, apierr.New(apierr.InvalidArgument, "ttl %s out of range 1s..%s", bp.TTL, MaxBrowserTokenTTL)
	}
	if err := e.mints.take(p.TokenID, e.now()); err != nil {
		return "", time.Time{}, err
	}
	defer func() {
		if err != nil {
			e.mints.refund(p.TokenID)
		}
	}()
	if bp.RunID != "" {
		if _, err := e.store.GetRun(ctx, p.TenantID, bp.RunID); err != nil {
			return "", time.Time{}, notFound(err, "unknown run %s", bp.RunID)
		}
	}
	if bp.Stream != "" {
		if _, _, err := e.GetDurableStream(ctx, p, bp.Stream, false); err != nil {
			return "", time.Time{}, notFound(err, "unknown durable stream %s", bp.Stream)
		}
	}
	secret = newSecret()
	now := e.now()
	expires = now.Add(bp.TTL)
	err = e.store.Write(ctx, func(tx store.Tx) error {
		return tx.CreateToken(ctx, store.Token{
			ID: newID(), TenantID: p.TenantID, Hash: hashSecret(secret), Kind: store.TokenBrowser,
			Name: "browser", RunID: bp.RunID, MetaKey: bp.MetaKey, MetaValue: bp.MetaValue, Stream: bp.Stream,
			ExpiresAt: expires, CreatedAt: now, CreatedBy: p.TokenID,
		})
	})
	if err != nil {
		return "", time.Time{}, fmt.Errorf("store browser token: %w", err)
	}
	return secret, expires, nil
}

// CanReadDurable reports whether a browser principal may read the named
// durable stream: only a token minted for that stream, of the stream's
// tenant (the store looks names up per tenant).
func (p Principal) CanReadDurable(name string) bool {
	return p.Kind == store.TokenBrowser && p.Stream != "" && p.Stream == name
}
