package engine

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"

	"github.com/runnel-dev/runnel/internal/store"
)

// groupWriter gives the engine's short per-request transactions — a run
// triggered, a worker's report that an attempt ended — group commit: a
// write that finds another one in progress waits, and the writer then
// applies everything that waited in one transaction. Under load a run then
// costs about one commit (its assignment, already batched per worker)
// instead of three: on PostgreSQL, where every appending transaction holds
// the log's counter row until its commit (a WAL flush), that is most of
// what a run costs. When nothing else is writing a request is written at once,
// alone, so an idle engine adds no delay.
//
// Writes in a batch run in key order (a run ID: the engine locks runs in
// ID order, so a batch never takes locks in an order another transaction
// could deadlock with). If any write of a batch fails, the transaction is
// rolled back and each write is applied again alone, so one bad request
// never fails the others; writes must therefore be safe to run again, as
// store.Write already asks of them.
type groupWriter struct {
	mu      sync.Mutex
	pending []*groupWrite
	writing bool
}

type groupWrite struct {
	key  string
	fn   func(store.Tx) error
	err  error
	done chan struct{}
}

// maxGroupWrite bounds the writes of one transaction.
const maxGroupWrite = 128

// errGroupMember marks a batch rolled back because one of its writes
// failed.
var errGroupMember = errors.New("a write of the batch failed")

// write applies fn in a transaction, possibly shared with other writes,
// and returns fn's error or the store's.
func (g *groupWriter) write(ctx context.Context, st store.Store, key string, fn func(store.Tx) error) error {
	w := &groupWrite{key: key, fn: fn, done: make(chan struct{})}
	g.mu.Lock()
	g.pending = append(g.pending, w)
	if g.writing {
		g.mu.Unlock()
		select {
		case <-w.done:
			return w.err
		case <-ctx.Done():
			// It may still be applied, as after any lost answer.
			return ctx.Err()
		}
	}
	g.writing = true
	for len(g.pending) > 0 {
		n := min(len(g.pending), maxGroupWrite)
		batch := g.pending[:n:n]
		g.pending = g.pending[n:]
		g.mu.Unlock()
		// The batch is written whatever happens to this caller: the
		// others wait for it.
		writeGroup(context.WithoutCancel(ctx), st, batch)
		g.mu.Lock()
	}
	g.pending = nil
	g.writing = false
	g.mu.Unlock()
	<-w.done
	return w.err
}

func writeGroup(ctx context.Context, st store.Store, batch []*groupWrite) {
	defer func() {
		for _, w := range batch {
			close(w.done)
		}
	}()
	if len(batch) == 1 {
		batch[0].err = st.Write(ctx, batch[0].fn)
		return
	}
	slices.SortStableFunc(batch, func(a, b *groupWrite) int { return cmp.Compare(a.key, b.key) })
	err := st.Write(ctx, func(tx store.Tx) error {
		dtx := &deferredAppendTx{Tx: tx}
		for _, w := range batch {
			if err := w.fn(dtx); err != nil {
				return errGroupMember
			}
		}
		return dtx.flush(ctx)
	})
	if !errors.Is(err, errGroupMember) {
		// Committed, or the store failed the whole transaction.
		for _, w := range batch {
			w.err = err
		}
		return
	}
	// Nothing of the batch was committed: each alone, for its own answer.
	for _, w := range batch {
		w.err = st.Write(ctx, w.fn)
	}
}

// deferredAppendTx holds a batch's event appends until every write of the
// batch has taken its row locks, then appends them at once. Appending
// takes the log's counter lock (PostgreSQL), last in the engine's lock
// order (runs, step runs, log): appending for the first write before the
// second locks its run would hold the counter while waiting for a run,
// which a transaction holding that run and waiting for the counter would
// deadlock with. The writes batched here only append as their last step,
// so nothing reads what they appended before it is flushed.
type deferredAppendTx struct {
	store.Tx
	appends [][]store.Event
}

func (t *deferredAppendTx) AppendEvents(_ context.Context, events []store.Event) error {
	if len(events) > 0 {
		t.appends = append(t.appends, events)
	}
	return nil
}

// flush appends everything in one call and gives each caller's events
// their positions and times, as an AppendEvents of their own would.
func (t *deferredAppendTx) flush(ctx context.Context) error {
	var all []store.Event
	for _, evs := range t.appends {
		all = append(all, evs...)
	}
	if len(all) == 0 {
		return nil
	}
	if err := t.Tx.AppendEvents(ctx, all); err != nil {
		return err
	}
	i := 0
	for _, evs := range t.appends {
		for j := range evs {
			evs[j].Position, evs[j].CreatedAt = all[i].Position, all[i].CreatedAt
			i++
		}
	}
	return nil
}
