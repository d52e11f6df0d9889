package sqlite

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/runnel-dev/runnel/internal/store"
)

const (
	// maxWriteAttempts bounds how often Write runs fn when it keeps losing
	// to another process holding the lock beyond the busy timeout.
	maxWriteAttempts = 5
	retryBackoff     = 10 * time.Millisecond
)

// Write runs fn in one IMMEDIATE transaction on the writer connection, and
// then the commit hook, both while holding the store's single write slot:
// neither may call Write (it would wait for itself).
func (s *Store) Write(ctx context.Context, fn func(store.Tx) error) error {
	for attempt := 1; ; attempt++ {
		err := s.writeOnce(ctx, fn)
		if err == nil || !errors.Is(err, store.ErrRetry) || attempt == maxWriteAttempts {
			return err
		}
		// Locks here are held by other processes (this one has a single
		// writer), so give them a moment rather than spinning.
		t := time.NewTimer(time.Duration(attempt) * retryBackoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("write: %w (after %v)", ctx.Err(), err)
		case <-t.C:
		}
	}
}

// Writes are group-committed. SQLite has one writer, so concurrent Write
// calls queue for it anyway; rather than commit each on its own (every
// commit appends its pages to the WAL: a write system call each, and the
// bulk of a small transaction's cost), whoever takes the writer runs every
// write queued at that moment in one transaction, each inside a savepoint
// of its own. A write whose function fails is rolled back to its savepoint
// and fails alone; the others commit together, and the commit hook sees
// their events in position order, as it would have one commit at a time.
// A lone write runs without savepoints, as a plain transaction.
//
// Statements inside a transaction ignore their caller's cancellation
// (tx.ctx): SQLite answers an interrupt inside a transaction by rolling
// the whole transaction back, which would undo the other writes of the
// batch. A caller that gives up while its write waits in the queue
// abandons it; once taken, the write runs to its end and the caller waits
// for its result.

// maxBatch bounds the writes committed together, so one batch's
// transaction stays short.
const maxBatch = 128

// writeReq is one Write call waiting for, or in, a batch.
type writeReq struct {
	fn func(store.Tx) error
	// state: reqWaiting, then reqTaken by a batch or reqAbandoned by its
	// caller, whichever comes first.
	state    atomic.Int32
	err      error
	panicked any // a panic of fn, raised again in the caller
	done     chan struct{}
}

const (
	reqWaiting int32 = iota
	reqTaken
	reqAbandoned
)

// errWriteAborted fails the writes of a batch whose transaction could not
// go on after another write's failure.
var errWriteAborted = errors.New("write aborted with its batch")

func (s *Store) writeOnce(ctx context.Context, fn func(store.Tx) error) error {
	r := &writeReq{fn: fn, done: make(chan struct{})}
	s.pendingMu.Lock()
	s.pending = append(s.pending, r)
	s.pendingMu.Unlock()
	for {
		select {
		case <-r.done:
			return r.result()
		case s.writeSem <- struct{}{}:
			s.writeBatch()
			<-s.writeSem
		case <-ctx.Done():
			if r.state.CompareAndSwap(reqWaiting, reqAbandoned) {
				return fmt.Errorf("write: %w", ctx.Err())
			}
			<-r.done
			return r.result()
		}
	}
}

func (r *writeReq) result() error {
	if r.panicked != nil {
		panic(r.panicked)
	}
	return r.err
}

// writeBatch runs the queued writes (up to maxBatch) in one transaction.
// The caller holds writeSem.
func (s *Store) writeBatch() {
	s.pendingMu.Lock()
	n := min(len(s.pending), maxBatch)
	queued := s.pending[:n:n]
	s.pending = s.pending[n:]
	s.pendingMu.Unlock()
	var batch []*writeReq
	for _, r := range queued {
		if r.state.CompareAndSwap(reqWaiting, reqTaken) {
			batch = append(batch, r)
		}
	}
	if len(batch) == 0 {
		return
	}
	defer func() {
		for _, r := range batch {
			close(r.done)
		}
	}()
	fail := func(err error) {
		for _, r := range batch {
			if r.err == nil && r.panicked == nil {
				r.err = err
			}
		}
	}
	// The transaction outlives any one caller's context (see above).
	sqlTx, err := s.writer.BeginTx(context.Background(), nil)
	if err != nil {
		fail(mapErr(err, "begin write"))
		return
	}
	t := newTx(s.prepared, sqlTx)
	savepoints := len(batch) > 1
	exec := func(stmt string) error {
		_, err := sqlTx.ExecContext(context.Background(), stmt)
		return err
	}
	committed := 0
	for _, r := range batch {
		if savepoints {
			if err := exec("SAVEPOINT write"); err != nil {
				_ = sqlTx.Rollback()
				fail(fmt.Errorf("%w: savepoint: %w", errWriteAborted, mapErr(err, "write")))
				return
			}
		}
		mark := len(t.events)
		r.err, r.panicked = run(r.fn, t)
		if r.err == nil && r.panicked == nil {
			if savepoints {
				if err := exec("RELEASE write"); err != nil {
					_ = sqlTx.Rollback()
					fail(fmt.Errorf("%w: release savepoint: %w", errWriteAborted, mapErr(err, "write")))
					return
				}
			}
			committed++
			continue
		}
		t.events = t.events[:mark]
		if !savepoints {
			_ = sqlTx.Rollback()
			return
		}
		if err := exec("ROLLBACK TO write"); err != nil {
			_ = sqlTx.Rollback()
			fail(fmt.Errorf("%w: roll back to savepoint: %w", errWriteAborted, mapErr(err, "write")))
			return
		}
		if err := exec("RELEASE write"); err != nil {
			_ = sqlTx.Rollback()
			fail(fmt.Errorf("%w: release savepoint: %w", errWriteAborted, mapErr(err, "write")))
			return
		}
	}
	if committed == 0 {
		_ = sqlTx.Rollback()
		return
	}
	if err := sqlTx.Commit(); err != nil {
		fail(mapErr(err, "commit"))
		return
	}
	if s.hook != nil && len(t.events) > 0 {
		s.hook(t.events)
	}
}

// run calls fn, turning a panic into a value the caller raises again.
func run(fn func(store.Tx) error, t *tx) (err error, panicked any) {
	defer func() {
		if p := recover(); p != nil {
			panicked = p
		}
	}()
	return fn(t), nil
}
