package engine

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/runnel-dev/runnel/internal/store"
)

// durableBatcher gives standalone durable stream appends group commit, as
// the stream appender gives steps' puts: an append that finds another one
// writing waits, and the writer then applies everything that waited in one
// transaction, in arrival order (each append sees the ones before it, as
// if alone), so a burst of appends costs one commit, not one each. There is
// no goroutine of its own: the first caller writes, and keeps writing while
// appends wait; the others wait for their answer.
//
// Pipelined requests of one idempotent producer may arrive out of order.
// Those waiting together are applied in producer sequence order, and one
// that arrives before its predecessor is parked (for up to producerHold)
// and applied again with the next batch that brings new requests, instead
// of being refused with a sequence gap at once, which would cost the
// client a resend.
type durableBatcher struct {
	mu      sync.Mutex
	pending []*durableReq
	writing bool
	arrived chan struct{} // signalled when a request queues behind a writer
}

type durableReq struct {
	p        Principal
	a        DurableAppend
	deadline time.Time // parked until then at most
	res      DurableResult
	err      error
	done     chan struct{}
}

const (
	// maxDurableBatch bounds the appends of one transaction.
	maxDurableBatch = 256
	// producerHold is how long a producer's request that overtook its
	// predecessor waits for it.
	producerHold = 250 * time.Millisecond
)

func (b *durableBatcher) submit(ctx context.Context, e *Engine, p Principal, a DurableAppend) (DurableResult, error) {
	req := &durableReq{p: p, a: a, deadline: time.Now().Add(producerHold), done: make(chan struct{})}
	b.mu.Lock()
	if b.arrived == nil {
		b.arrived = make(chan struct{}, 1)
	}
	b.pending = append(b.pending, req)
	if b.writing {
		b.mu.Unlock()
		select {
		case b.arrived <- struct{}{}:
		default:
		}
		select {
		case <-req.done:
			return req.res, req.err
		case <-ctx.Done():
			// It may still be applied; a producer's retry is then a
			// duplicate, as after any lost answer.
			return DurableResult{}, ctx.Err()
		}
	}
	b.writing = true
	var parked []*durableReq
	for {
		n := min(len(b.pending), maxDurableBatch)
		fresh := b.pending[:n:n]
		b.pending = b.pending[n:]
		if len(fresh) == 0 && len(parked) == 0 {
			b.pending = nil
			b.writing = false
			b.mu.Unlock()
			break
		}
		if len(fresh) == 0 {
			// Only parked requests: applying them again changes nothing
			// until a new request (their predecessor) comes, or they time
			// out and get their refusal.
			b.mu.Unlock()
			wait := time.Until(earliest(parked))
			if wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-b.arrived:
				case <-t.C:
				}
				t.Stop()
			}
			b.mu.Lock()
			if len(b.pending) == 0 && time.Now().Before(earliest(parked)) {
				continue
			}
			n = min(len(b.pending), maxDurableBatch)
			fresh = b.pending[:n:n]
			b.pending = b.pending[n:]
		}
		b.mu.Unlock()
		// The batch is written whatever happens to the caller that writes
		// it: the others wait for it.
		parked = e.writeDurableBatch(context.WithoutCancel(ctx), append(parked, fresh...), time.Now())
		b.mu.Lock()
	}
	<-req.done
	return req.res, req.err
}

func earliest(reqs []*durableReq) time.Time {
	t := reqs[0].deadline
	for _, r := range reqs[1:] {
		if r.deadline.Before(t) {
			t = r.deadline
		}
	}
	return t
}

// writeDurableBatch applies a batch in one transaction and answers every
// request, but for those that overtook their producer's predecessor and
// may still wait (returned, to be applied again). A store error fails them
// all: nothing of the batch committed.
func (e *Engine) writeDurableBatch(ctx context.Context, batch []*durableReq, now time.Time) (parked []*durableReq) {
	orderProducers(batch)
	err := e.store.Write(ctx, func(tx store.Tx) error {
		for _, r := range batch {
			r.res, r.err = e.applyDurable(ctx, tx, r.p, r.a)
			if r.err != nil {
				return r.err
			}
		}
		return nil
	})
	for _, r := range batch {
		if err == nil && r.res.Outcome == DurableSeqGap && r.res.ExpectedSeq < r.res.ProducerSeq && now.Before(r.deadline) {
			parked = append(parked, r) // a gap refusal wrote nothing: safe to apply again
			continue
		}
		if err != nil {
			r.res, r.err = DurableResult{}, err
		}
		close(r.done)
	}
	return parked
}

// orderProducers sorts, in place, the requests of each (tenant, stream,
// producer, epoch) by producer sequence, keeping them in the slots that
// group's requests occupy: everything else keeps its arrival order.
func orderProducers(batch []*durableReq) {
	type key struct {
		tenant, stream, producer string
		epoch                    int64
	}
	groups := make(map[key][]int)
	for i, r := range batch {
		if pr := r.a.Producer; pr != nil {
			k := key{r.p.TenantID, r.a.Name, pr.ID, pr.Epoch}
			groups[k] = append(groups[k], i)
		}
	}
	for _, slots := range groups {
		if len(slots) < 2 {
			continue
		}
		reqs := make([]*durableReq, len(slots))
		for j, i := range slots {
			reqs[j] = batch[i]
		}
		slices.SortStableFunc(reqs, func(x, y *durableReq) int { return cmp.Compare(x.a.Producer.Seq, y.a.Producer.Seq) })
		for j, i := range slots {
			batch[i] = reqs[j]
		}
	}
}
