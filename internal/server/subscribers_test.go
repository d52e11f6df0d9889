package server_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel"
)

// 200 subscribers of one run, started at moments spread over a step
// streaming 10,000 events, from the start, from now, or after a random
// position already delivered: each receives exactly the ordered sequence
// from its start point, checked event by event against the stored log.
func TestManyConcurrentSubscribers(t *testing.T) {
	t.Parallel()
	const (
		gates       = 100 // the step pauses after each slice of events
		perGate     = 100 // events per slice: 10,000 in all
		subscribers = 200
	)
	forEachStore(t, func(t *testing.T, n *node) {
		// The step streams a slice, then waits for the test to start a few
		// subscribers before the next: "random moments" without sleeps.
		proceed := make(chan struct{})
		sliceDone := make(chan int)
		wf := runnel.NewWorkflow("burst").Step("emit", func(ctx runnel.Context) (any, error) {
			for g := range gates {
				for i := range perGate {
					if err := ctx.PutStream(strconv.AppendInt(nil, int64(g*perGate+i), 10)); err != nil {
						return nil, err
					}
				}
				if err := ctx.Flush(); err != nil {
					return nil, err
				}
				select {
				case sliceDone <- g:
				case <-ctx.Done():
					return nil, ctx.Err()
				}
				select {
				case <-proceed:
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}
			return map[string]int{"events": gates * perGate}, nil
		})
		startWorker(t, n, "w", 1, wf)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		runID, err := n.client.Admin().RunWorkflow(ctx, "burst", nil)
		require.NoError(t, err)

		type sub struct {
			mode  string
			after runnel.Position
			got   []string
			err   error
		}
		// A reference subscriber from the start; the positions it has seen so
		// far are the pool for After(p).
		var (
			refMu  sync.Mutex
			refPos []runnel.Position
		)
		key := func(ev runnel.Event) string {
			return fmt.Sprintf("%s|%s|%d|%s", ev.Position, ev.Type, ev.Attempt, ev.Payload)
		}
		follow := func(s *sub, opts ...runnel.SubscribeOption) {
			next := 0
			for ev, err := range n.client.Listener().Stream(ctx, runID, opts...) {
				if err != nil {
					s.err = err
					return
				}
				if ev.Type == runnel.EventStepStream {
					// The step's own order, checked as events arrive.
					v, _ := strconv.Atoi(string(ev.Payload))
					if len(s.got) > 0 && v != next {
						s.err = fmt.Errorf("%s subscriber: got payload %d, want %d", s.mode, v, next)
						return
					}
					next = v + 1
				}
				s.got = append(s.got, key(ev))
			}
		}
		var wg sync.WaitGroup
		ref := &sub{mode: "reference"}
		wg.Go(func() {
			for ev, err := range n.client.Listener().Stream(ctx, runID) {
				if err != nil {
					ref.err = err
					return
				}
				refMu.Lock()
				refPos = append(refPos, ev.Position)
				refMu.Unlock()
				ref.got = append(ref.got, key(ev))
			}
		})

		rng := rand.New(rand.NewPCG(1, 2))
		subs := make([]*sub, 0, subscribers)
		for g := range gates {
			require.Equal(t, g, <-sliceDone)
			for range subscribers / gates {
				s := &sub{}
				var opts []runnel.SubscribeOption
				switch rng.IntN(3) {
				case 0:
					s.mode = "start"
				case 1:
					s.mode = "now"
					opts = append(opts, runnel.FromNow())
				default:
					refMu.Lock()
					if len(refPos) > 0 {
						s.mode, s.after = "after", refPos[rng.IntN(len(refPos))]
						opts = append(opts, runnel.After(s.after))
					} else {
						s.mode = "start"
					}
					refMu.Unlock()
				}
				subs = append(subs, s)
				wg.Go(func() { follow(s, opts...) })
			}
			proceed <- struct{}{}
		}
		wg.Wait()
		require.NoError(t, ref.err)

		// The stored log, read once more, is the truth.
		var full []string
		index := map[string]int{}
		for ev, err := range n.client.Listener().Stream(ctx, runID) {
			require.NoError(t, err)
			index[string(ev.Position)] = len(full)
			full = append(full, key(ev))
		}
		require.Len(t, full, gates*perGate+4) // run.started, step.started, …, step.completed, run.completed
		require.Equal(t, full, ref.got)
		for i, s := range subs {
			require.NoError(t, s.err, "subscriber %d (%s)", i, s.mode)
			var want []string
			switch s.mode {
			case "start":
				want = full
			case "after":
				want = full[index[string(s.after)]+1:]
			case "now":
				// From now: some suffix of the log, whole to the end; empty
				// if the subscription reached the engine after the run ended.
				if len(s.got) == 0 {
					continue
				}
				first := s.got[0]
				k := -1
				for j, f := range full {
					if f == first {
						k = j
						break
					}
				}
				require.GreaterOrEqual(t, k, 0, "subscriber %d (now): first event not in the log", i)
				want = full[k:]
			}
			require.Equal(t, want, s.got, "subscriber %d (%s)", i, s.mode)
		}
		run, err := n.client.Admin().GetRun(ctx, runID)
		require.NoError(t, err)
		require.Equal(t, 1, run.Steps[0].Attempt)
	}, defaultWorkerTimers)
}
