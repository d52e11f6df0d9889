package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/runnel-dev/runnel/internal/store"
	"github.com/runnel-dev/runnel/internal/store/postgres/internal/dbsqlc"
)

const (
	// maxWriteAttempts bounds how often Write runs fn when the transaction
	// keeps losing races (deadlocks).
	maxWriteAttempts = 5
	// rollbackTimeout bounds the rollback after a failed fn, which runs even
	// when the caller's context is done.
	rollbackTimeout = 5 * time.Second
)

// NotifyChannel prefixes the channel every transaction that appended events
// notifies (pg_notify) as it commits, once, with the highest position it
// appended as payload: engine nodes LISTEN on it (Store.Listen) to learn of
// events appended by other nodes. The full channel is
// "runnel_events:<schema>", since channels are database-wide.
const NotifyChannel = "runnel_events"

// RevokedPayloadPrefix starts the payload of the notification a token
// revocation sends on the same channel at commit, followed by the revoked
// token's id: every node then forgets that token and the browser tokens it
// minted (see Handlers.TokenRevoked).
const RevokedPayloadPrefix = "revoked:"

// Write runs fn in a READ COMMITTED transaction and commits it. Deadlocks
// (and serialisation failures) come back from the statements as
// store.ErrRetry; the whole transaction is then run again, up to
// maxWriteAttempts times, after a short jittered pause.
func (s *Store) Write(ctx context.Context, fn func(store.Tx) error) error {
	for attempt := 1; ; attempt++ {
		appended, err := s.writeOnce(ctx, fn)
		if err == nil {
			if len(appended) > 0 && s.hook != nil {
				s.hook(appended)
			}
			return nil
		}
		if !errors.Is(err, store.ErrRetry) {
			return err
		}
		if attempt == maxWriteAttempts {
			return fmt.Errorf("write: gave up after %d attempts: %w", attempt, err)
		}
		t := time.NewTimer(retryDelay(attempt))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("write: waiting to retry (%w): %w", err, ctx.Err())
		}
	}
}

// retryDelay is the pause before attempt+1: 1ms plus a random part of up to
// 2^attempt ms (capped at 64ms), so transactions that deadlocked each other
// do not collide again.
func retryDelay(attempt int) time.Duration {
	ceiling := time.Millisecond << min(attempt, 6)
	return time.Duration(rand.Int64N(int64(ceiling))) + time.Millisecond
}

// writeOnce runs one attempt of a Write, returning the events it appended.
func (s *Store) writeOnce(ctx context.Context, fn func(store.Tx) error) ([]store.Event, error) {
	pgtx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return nil, mapErr(err, "write: begin")
	}
	committed := false
	defer func() {
		// Also when fn panics: the connection must go back to the pool
		// (pool.Close waits for it) without the transaction.
		if !committed {
			// Even if ctx is done: otherwise pgx drops the connection
			// instead of returning it to the pool.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
			defer cancel()
			_ = pgtx.Rollback(rctx)
		}
	}()
	t := &tx{q: dbsqlc.New(pgtx), channel: s.channel}
	if err := fn(t); err != nil {
		return nil, err
	}
	if len(t.appended) > 0 {
		// One notification per transaction however many events it appended
		// (the server queues it and sends it at commit).
		last := t.appended[len(t.appended)-1].Position
		err := t.q.NotifyEvents(ctx, t.channel, strconv.FormatInt(last, 10))
		if err != nil {
			return nil, mapErr(err, "write: notify %s", t.channel)
		}
	}
	committed = true // whatever Commit returns, the transaction is over
	if err := pgtx.Commit(ctx); err != nil {
		return nil, mapErr(err, "write: commit")
	}
	return t.appended, nil
}

// tx implements store.Tx on one PostgreSQL transaction.
type tx struct {
	q       *dbsqlc.Queries
	channel string
	// appended collects the events of every AppendEvents call, in position
	// order, for the notification and the commit hook.
	appended []store.Event
}

var _ store.Tx = (*tx)(nil)

// copyThreshold is the largest append sent as INSERT statements (one
// pipelined batch); bigger ones use COPY, whose fixed cost is repaid after a
// few rows.
const copyThreshold = 8

// AppendEvents takes len(events) positions from log_head and inserts the
// events. The UPDATE of log_head locks its row until this transaction ends,
// so a concurrent appender waits here and gets the positions after ours,
// and commits after us: positions follow commit order.
func (t *tx) AppendEvents(ctx context.Context, events []store.Event) error {
	n := len(events)
	if n == 0 {
		return nil
	}
	last, err := t.q.BumpLogHead(ctx, int64(n))
	if err != nil {
		return mapErr(err, "append %d events: take positions", n)
	}
	first := last - int64(n) + 1
	// At the precision stored, so the caller's copy equals what is read back.
	stamp := now()
	for i := range events {
		events[i].Position = first + int64(i)
		if events[i].CreatedAt.IsZero() {
			events[i].CreatedAt = stamp
		}
	}
	if n <= copyThreshold {
		err = t.insertEvents(ctx, events)
	} else {
		err = t.copyEvents(ctx, events)
	}
	if err != nil {
		return mapErr(err, "append %d events at %d", n, first)
	}
	t.appended = append(t.appended, events...)
	return nil
}

func (t *tx) insertEvents(ctx context.Context, events []store.Event) error {
	params := make([]dbsqlc.AppendEventParams, len(events))
	for i, e := range events {
		params[i] = dbsqlc.AppendEventParams{
			Position:  e.Position,
			TenantID:  e.TenantID,
			RunID:     e.RunID,
			Workflow:  e.Workflow,
			Type:      e.Type,
			StepRunID: e.StepRunID,
			Step:      e.Step,
			Attempt:   int64(e.Attempt),
			Payload:   e.Payload,
			Data:      e.Data,
			CreatedAt: toMicros(e.CreatedAt),
			Stream:    e.Stream,
		}
	}
	var firstErr error
	t.q.AppendEvent(ctx, params).Exec(func(_ int, err error) {
		if err != nil && firstErr == nil {
			firstErr = err
		}
	})
	return firstErr
}

func (t *tx) copyEvents(ctx context.Context, events []store.Event) error {
	params := make([]dbsqlc.CopyEventsParams, len(events))
	for i, e := range events {
		params[i] = dbsqlc.CopyEventsParams{
			Position:  e.Position,
			TenantID:  e.TenantID,
			RunID:     e.RunID,
			Workflow:  e.Workflow,
			Type:      e.Type,
			StepRunID: e.StepRunID,
			Step:      e.Step,
			Attempt:   int64(e.Attempt),
			Payload:   e.Payload,
			Data:      e.Data,
			CreatedAt: toMicros(e.CreatedAt),
			Stream:    e.Stream,
		}
	}
	copied, err := t.q.CopyEvents(ctx, params)
	if err != nil {
		return err
	}
	if copied != int64(len(events)) {
		return fmt.Errorf("copy wrote %d rows of %d", copied, len(events))
	}
	return nil
}

func (t *tx) StreamClosed(ctx context.Context, stepRunID string, attempt int, stream string) (bool, error) {
	closed, err := t.q.StreamClosed(ctx, dbsqlc.StreamClosedParams{StepRunID: stepRunID, Attempt: int64(attempt), Stream: stream})
	if err != nil {
		return false, mapErr(err, "is stream %q of step run %s attempt %d closed", stream, stepRunID, attempt)
	}
	return closed, nil
}
