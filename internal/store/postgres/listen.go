package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Handlers receive what Listen hears.
type Handlers struct {
	// Events is called whenever a transaction that appended events
	// commits, and once after every (re)connection. Notifications are only
	// hints: it should make readers look at the store again.
	Events func()
	// TokenRevoked is called with a revoked token's id when its revocation
	// commits, on any node, and with "" after every (re)connection, since a
	// revocation may have been missed: forget every cached token then.
	// Optional.
	TokenRevoked func(tokenID string)
	// Error is told why the connection failed, before each reconnection.
	Error func(error)
}

// Listen calls h.Events whenever a transaction that appended events to this
// store commits, on any engine node sharing the database, and h.TokenRevoked
// when a token revocation commits; both also after every (re)connection,
// since notifications sent while it was not listening are lost. Listen
// holds one connection of its own (outside the pool) and reconnects with
// backoff after a failure, reporting it to h.Error. It returns when ctx
// ends.
func (s *Store) Listen(ctx context.Context, h Handlers) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		listening, err := s.listenOnce(ctx, h)
		if ctx.Err() != nil {
			return
		}
		if listening {
			backoff = 100 * time.Millisecond
		}
		h.Error(err)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// listenOnce listens on one connection until it fails; listening reports
// whether LISTEN succeeded first.
func (s *Store) listenOnce(ctx context.Context, h Handlers) (listening bool, err error) {
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig)
	if err != nil {
		return false, fmt.Errorf("postgres: connect to listen for events: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{s.channel}.Sanitize()); err != nil {
		return false, fmt.Errorf("postgres: listen on %s: %w", s.channel, err)
	}
	// Anything committed while nobody listened.
	if h.TokenRevoked != nil {
		h.TokenRevoked("")
	}
	h.Events()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return true, fmt.Errorf("postgres: wait for event notifications: %w", err)
		}
		if id, ok := strings.CutPrefix(n.Payload, RevokedPayloadPrefix); ok {
			if h.TokenRevoked != nil {
				h.TokenRevoked(id)
			}
			continue
		}
		h.Events()
	}
}
