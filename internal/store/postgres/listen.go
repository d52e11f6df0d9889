package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/runnel-dev/runnel/internal/store"
)

var _ store.Notifier = (*Store)(nil)

// Listen implements store.Notifier: it calls wake whenever a transaction
// that appended events to this store commits, on any engine node sharing
// the database, and once after every (re)connection, since notifications
// sent while it was not listening are lost. Notifications are only hints:
// wake should make readers look at the store again, never carry data.
// Listen holds one connection of its own (outside the pool) and reconnects
// with backoff after a failure, reporting it to onError. It returns when
// ctx ends.
func (s *Store) Listen(ctx context.Context, wake func(), onError func(error)) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		listening, err := s.listenOnce(ctx, wake)
		if ctx.Err() != nil {
			return
		}
		if listening {
			backoff = 100 * time.Millisecond
		}
		onError(err)
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
func (s *Store) listenOnce(ctx context.Context, wake func()) (listening bool, err error) {
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig)
	if err != nil {
		return false, fmt.Errorf("postgres: connect to listen for events: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{s.channel}.Sanitize()); err != nil {
		return false, fmt.Errorf("postgres: listen on %s: %w", s.channel, err)
	}
	wake() // anything committed while nobody listened
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return true, fmt.Errorf("postgres: wait for event notifications: %w", err)
		}
		wake()
	}
}
