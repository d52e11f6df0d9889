package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/runnel-dev/runnel/internal/store"
)

var _ store.Notifier = (*Store)(nil)

// Listen implements store.Notifier: it calls n.Events whenever a
// transaction that appended events to this store commits, on any engine
// node sharing the database, and n.TokenRevoked when a token revocation
// commits; both also after every (re)connection, since notifications sent
// while it was not listening are lost. Listen holds one connection of its
// own (outside the pool) and reconnects with backoff after a failure,
// reporting it to n.Error. It returns when ctx ends.
func (s *Store) Listen(ctx context.Context, h store.Notifications) {
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
func (s *Store) listenOnce(ctx context.Context, h store.Notifications) (listening bool, err error) {
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
