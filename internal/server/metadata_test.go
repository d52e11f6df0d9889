package server_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/engine"
	pb "github.com/runnel-dev/runnel/internal/gen/runnel/v1"
)

// metaWait bounds every wait in these tests, so a bug fails a test instead
// of hanging it.
const metaWait = 2 * time.Minute

// metaSteps is a two-step workflow: "a" streams input.chunks chunks, then
// "b" (after a) streams as many.
func metaSteps() *runnel.Workflow {
	emit := func(step string) func(ctx runnel.Context) (any, error) {
		return func(ctx runnel.Context) (any, error) {
			var in struct {
				Chunks int `json:"chunks"`
			}
			if err := ctx.WorkflowInput(&in); err != nil {
				return nil, err
			}
			for i := range in.Chunks {
				if err := ctx.PutStream(fmt.Appendf(nil, "%s %s %d", ctx.RunID(), step, i)); err != nil {
					return nil, err
				}
			}
			return map[string]int{step: in.Chunks}, nil
		}
	}
	return runnel.NewWorkflow("meta-steps").Step("a", emit("a")).Step("b", emit("b"), runnel.Parents("a"))
}

// trigger starts a meta-steps run with the metadata.
func trigger(t *testing.T, c *runnel.Client, chunks int, meta map[string]string) string {
	t.Helper()
	id, err := c.Admin().RunWorkflow(context.Background(), "meta-steps", map[string]int{"chunks": chunks}, runnel.WithAdditionalMetadata(meta))
	require.NoError(t, err)
	return id
}

// metaSub is one SDK metadata subscription running in the background,
// recording what it yields.
type metaSub struct {
	cancel context.CancelFunc
	done   chan error

	mu      sync.Mutex
	events  []runnel.Event
	changed chan struct{} // closed and replaced at every event
}

func subscribeMeta(c *runnel.Client, key, value string, opts ...runnel.SubscribeOption) *metaSub {
	ctx, cancel := context.WithCancel(context.Background())
	s := &metaSub{cancel: cancel, done: make(chan error, 1), changed: make(chan struct{})}
	go func() {
		for ev, err := range c.Listener().StreamByAdditionalMetadata(ctx, key, value, opts...) {
			if err != nil {
				s.done <- err
				return
			}
			s.mu.Lock()
			s.events = append(s.events, ev)
			close(s.changed)
			s.changed = make(chan struct{})
			s.mu.Unlock()
		}
		s.done <- errors.New("a metadata subscription ended by itself")
	}()
	return s
}

// wait returns the first n events, waiting for them.
func (s *metaSub) wait(t *testing.T, n int) []runnel.Event {
	t.Helper()
	deadline := time.After(metaWait)
	for {
		s.mu.Lock()
		have, ch := len(s.events), s.changed
		if have >= n {
			out := slices.Clone(s.events[:n])
			s.mu.Unlock()
			return out
		}
		s.mu.Unlock()
		select {
		case <-ch:
		case err := <-s.done:
			t.Fatalf("subscription ended after %d of %d events: %v", have, n, err)
		case <-deadline:
			t.Fatalf("timed out with %d of %d events", have, n)
		}
	}
}

// stop closes the subscription and requires that only that ended it.
func (s *metaSub) stop(t *testing.T) {
	t.Helper()
	s.cancel()
	select {
	case err := <-s.done:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(metaWait):
		t.Fatal("subscription did not stop")
	}
}

// offset decodes an event's position, to compare positions.
func offset(t *testing.T, n *node, p runnel.Position) int64 {
	t.Helper()
	pos, err := n.srv.Engine().Codec().Decode(string(p))
	require.NoError(t, err)
	return pos
}

// merge orders the events of several runs by position: the one order a
// metadata subscription must deliver them in.
func merge(t *testing.T, n *node, runs ...[]runnel.Event) []runnel.Event {
	var all []runnel.Event
	for _, evs := range runs {
		all = append(all, evs...)
	}
	slices.SortFunc(all, func(a, b runnel.Event) int { return cmp.Compare(offset(t, n, a.Position), offset(t, n, b.Position)) })
	return all
}

// requireLog checks that got is exactly want: every event once, in want's
// order, positions strictly increasing.
//
// One comparison of the whole slices, not one per event: these tests
// compare thousands of events, and under -race a require call per event
// costs more than the rest of the test.
func requireLog(t *testing.T, n *node, want, got []runnel.Event, msg string) {
	t.Helper()
	codec := n.srv.Engine().Codec()
	prev := int64(-1)
	for i, ev := range got {
		pos, err := codec.Decode(string(ev.Position))
		if err != nil || pos <= prev {
			t.Fatalf("%s: event %d at position %s (after %d): positions must increase (%v)", msg, i, ev.Position, prev, err)
		}
		prev = pos
	}
	if len(want) == 0 && len(got) == 0 {
		return // nil and empty both mean no events
	}
	require.Equal(t, want, got, msg)
}

// A subscription opened before, during and after several runs carrying the
// pair (with runs carrying other pairs in between) gets every event of
// every matching run exactly once, in the one order of the log; resuming
// after any delivered position gives exactly the rest; "now" gives only
// what follows.
func TestMetadataSubscriptionAcrossRuns(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, n *node) {
		startWorker(t, n, "w", 4, metaSteps())
		c := n.client
		const k, v = "session", "s-42"
		match := map[string]string{k: v, "extra": "x"}
		noise := []map[string]string{{k: "s-43"}, {"other": v}, {}}

		before := subscribeMeta(c, k, v)
		// A raw subscription "from now", so that its start point is known
		// to be resolved (its first message) before any run starts.
		ctx, cancel := context.WithTimeout(context.Background(), metaWait)
		defer cancel()
		now, err := newRaw(n, n.srv.AdminToken).runs.SubscribeMetadata(ctx, connect.NewRequest(&pb.SubscribeMetadataRequest{Key: k, Value: v, From: "now"}))
		require.NoError(t, err)
		defer now.Close()
		require.True(t, now.Receive(), "%v", now.Err())
		require.Empty(t, now.Msg().Events)
		nowStart := now.Msg().Position
		require.NotEmpty(t, nowStart)

		var matching, others []string
		wave := func(runs int) {
			for i := range runs {
				matching = append(matching, trigger(t, c, 3+i, match))
				others = append(others, trigger(t, c, 2, noise[i%len(noise)]))
			}
		}
		wave(3)
		// Opened while the first wave runs.
		during := subscribeMeta(c, k, v)
		wave(3)
		var perRun [][]runnel.Event
		for _, id := range matching {
			run, events := waitRun(t, n, id)
			require.Equal(t, runnel.RunCompleted, run.Status, run.Error)
			perRun = append(perRun, events)
		}
		for _, id := range others {
			run, _ := waitRun(t, n, id)
			require.Equal(t, runnel.RunCompleted, run.Status, run.Error)
		}
		after := subscribeMeta(c, k, v)
		// A last matching run: once a subscription has its events, anything
		// it received that it should not have would be among the first
		// len(want) events, which are compared exactly.
		last := trigger(t, c, 1, match)
		_, lastEvents := waitRun(t, n, last)
		perRun = append(perRun, lastEvents)
		want := merge(t, n, perRun...)

		for name, s := range map[string]*metaSub{"before": before, "during": during, "after": after} {
			got := s.wait(t, len(want))
			requireLog(t, n, want, got, name)
			for i, id := range append(slices.Clone(matching), last) {
				var ofRun []runnel.Event
				for _, ev := range got {
					if ev.RunID == id {
						ofRun = append(ofRun, ev)
					}
				}
				require.Equal(t, perRun[i], ofRun, "%s: run %s in its own order", name, id)
			}
		}

		// From now: every event, since every run started after its start
		// point, in the same order; the messages carry positions.
		var fromNow []runnel.Event
		for len(fromNow) < len(want) && now.Receive() {
			for _, pe := range now.Msg().Events {
				fromNow = append(fromNow, runnel.Event{Position: runnel.Position(pe.Position), RunID: pe.RunId, Type: runnel.EventType(pe.Type)})
			}
			require.NotEmpty(t, now.Msg().Position)
		}
		require.NoError(t, now.Err())
		require.Len(t, fromNow, len(want))
		require.Less(t, offset(t, n, runnel.Position(nowStart)), offset(t, n, fromNow[0].Position))
		for i := range want {
			require.Equal(t, want[i].Position, fromNow[i].Position)
		}

		// Resuming after any delivered position gives exactly the rest,
		// also with a type filter.
		for _, cut := range []int{0, 1, len(want) / 3, len(want) / 2, len(want) - 2} {
			s := subscribeMeta(c, k, v, runnel.After(want[cut].Position))
			requireLog(t, n, want[cut+1:], s.wait(t, len(want)-cut-1), fmt.Sprintf("after event %d", cut))
			s.stop(t)
		}
		var streams []runnel.Event
		for _, ev := range want[5:] {
			if ev.Type == runnel.EventStepStream {
				streams = append(streams, ev)
			}
		}
		s := subscribeMeta(c, k, v, runnel.After(want[4].Position), runnel.WithTypes(runnel.EventStepStream))
		requireLog(t, n, streams, s.wait(t, len(streams)), "stream events only")
		s.stop(t)

		for _, s := range []*metaSub{before, during, after} {
			s.stop(t)
		}
	})
}

// Many runs carrying the pair stream at once while subscribers keep
// dropping their subscription and resuming after the last event they got,
// or jump to a random position another subscriber delivered: no event is
// ever missed or repeated, checked against the stored log read at the end
// by a fresh subscription from the start.
func TestMetadataSubscriptionConcurrentWriters(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, n *node) {
		const (
			runs      = 20
			chunks    = 30
			resumers  = 3
			jumpers   = 2
			maxJumps  = 30 // per jumper: enough to land all over the log, cheap under -race
			k, v      = "batch", "b-7"
			maxPerHop = 100
		)
		startWorker(t, n, "w", runs, metaSteps())
		c := n.client
		ctx, cancel := context.WithTimeout(context.Background(), metaWait)
		defer cancel()

		// The reference subscriber, from the start; the positions it has
		// delivered are the pool the jumpers pick from.
		ref := subscribeMeta(c, k, v)

		// A segment is what one subscription call delivered after a start
		// point ("" for the start).
		type segment struct {
			after  runnel.Position
			events []runnel.Event
		}
		var (
			mu       sync.Mutex
			segments = make([][]*segment, resumers) // per resumer, in order
			jumps    []*segment
			progress = make(chan struct{}, 1) // a token after each event a resumer records
			stop     = make(chan struct{})
		)
		// hop runs one subscription call until it has delivered max events
		// or the test stops, recording each event in seg as it arrives.
		hop := func(seg *segment, max int, opts ...runnel.SubscribeOption) {
			hctx, hcancel := context.WithCancel(ctx)
			defer hcancel()
			go func() {
				// Unblock a call still waiting for events at the end.
				select {
				case <-stop:
					hcancel()
				case <-hctx.Done():
				}
			}()
			for ev, err := range c.Listener().StreamByAdditionalMetadata(hctx, k, v, opts...) {
				if err != nil {
					return // stopped
				}
				mu.Lock()
				seg.events = append(seg.events, ev)
				got := len(seg.events)
				mu.Unlock()
				select {
				case progress <- struct{}{}:
				default:
				}
				if got == max {
					return // drop the subscription
				}
			}
		}
		var wg sync.WaitGroup
		for r := range resumers {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(r), 1))
				var from runnel.Position
				for {
					select {
					case <-stop:
						return
					default:
					}
					seg := &segment{after: from}
					mu.Lock()
					segments[r] = append(segments[r], seg)
					mu.Unlock()
					if from == "" {
						hop(seg, 1+rng.IntN(maxPerHop), runnel.FromStart())
					} else {
						hop(seg, 1+rng.IntN(maxPerHop), runnel.After(from))
					}
					mu.Lock()
					if len(seg.events) > 0 {
						from = seg.events[len(seg.events)-1].Position
					}
					mu.Unlock()
				}
			})
		}
		for j := range jumpers {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(j), 2))
				for range maxJumps {
					ref.mu.Lock()
					pool, changed := len(ref.events), ref.changed
					var after runnel.Position
					if pool > 0 {
						after = ref.events[rng.IntN(pool)].Position
					}
					ref.mu.Unlock()
					if pool > 0 {
						seg := &segment{after: after}
						mu.Lock()
						jumps = append(jumps, seg)
						mu.Unlock()
						hop(seg, 1+rng.IntN(maxPerHop), runnel.After(after))
					}
					// The next jump once more has been delivered, so jumps
					// spread over the whole stream.
					select {
					case <-stop:
						return
					case <-changed:
					}
				}
			})
		}

		ids := make([]string, runs)
		for i := range ids {
			ids[i] = trigger(t, c, chunks, map[string]string{k: v})
		}
		// Noise with another value, streaming at the same time.
		for range 3 {
			trigger(t, c, chunks, map[string]string{k: "b-8"})
		}
		total := 0
		for _, id := range ids {
			run, events := waitRun(t, n, id)
			require.Equal(t, runnel.RunCompleted, run.Status, run.Error)
			total += len(events)
		}
		ref.wait(t, total)
		// Let the resumers catch up with the end before stopping them.
		deadline := time.After(metaWait)
		for r := 0; r < resumers; {
			mu.Lock()
			got := 0
			for _, s := range segments[r] {
				got += len(s.events)
			}
			mu.Unlock()
			if got >= total {
				r++
				continue
			}
			select {
			case <-progress:
			case <-deadline:
				t.Fatalf("resumer %d has %d of %d events", r, got, total)
			}
		}
		close(stop)
		wg.Wait()

		fresh := subscribeMeta(c, k, v, runnel.FromStart())
		log := fresh.wait(t, total)
		fresh.stop(t)
		requireLog(t, n, log, ref.wait(t, total), "reference")
		index := make(map[runnel.Position]int, len(log))
		for i, ev := range log {
			index[ev.Position] = i
		}
		check := func(seg *segment, what string) {
			start := 0
			if seg.after != "" {
				i, ok := index[seg.after]
				require.True(t, ok, "%s: resumed after a position not in the log", what)
				start = i + 1
			}
			require.LessOrEqual(t, start+len(seg.events), len(log), what)
			requireLog(t, n, log[start:start+len(seg.events)], seg.events, what)
		}
		for r, segs := range segments {
			// Each hop resumed after the last event of the one before, so
			// the hops together must be the log, exactly.
			var all []runnel.Event
			for _, seg := range segs {
				all = append(all, seg.events...)
			}
			requireLog(t, n, log, all, fmt.Sprintf("resumer %d over %d hops", r, len(segs)))
		}
		for i, seg := range jumps {
			check(seg, fmt.Sprintf("jump %d", i))
		}
		t.Logf("%d events; %d resumed hops, %d random jumps", total, len(segments[0]), len(jumps))
		ref.stop(t)
	}, defaultWorkerTimers) // 20 busy slots under -race can delay a heartbeat past a short timeout
}

// A bad key, value, position or type is refused with InvalidArgument; a
// browser token may follow only the pair it was minted for; and another
// tenant's runs never appear, even with the same pair.
func TestMetadataSubscriptionValidationAndIsolation(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, n *node) {
		ctx, cancel := context.WithTimeout(context.Background(), metaWait)
		defer cancel()
		raw := newRaw(n, n.srv.AdminToken)
		open := func(r rawClients, req *pb.SubscribeMetadataRequest) error {
			s, err := r.runs.SubscribeMetadata(ctx, connect.NewRequest(req))
			if err != nil {
				return err
			}
			defer s.Close()
			if s.Receive() {
				return nil
			}
			return s.Err()
		}
		for _, tc := range []struct {
			req  *pb.SubscribeMetadataRequest
			want string
		}{
			{&pb.SubscribeMetadataRequest{Value: "v"}, "needs a key"},
			{&pb.SubscribeMetadataRequest{Key: strings.Repeat("k", 129), Value: "v"}, "metadata key"},
			{&pb.SubscribeMetadataRequest{Key: "k", Value: strings.Repeat("v", 1025)}, "metadata value"},
			{&pb.SubscribeMetadataRequest{Key: "k", Value: "v", From: "garbage"}, "invalid position"},
			{&pb.SubscribeMetadataRequest{Key: "k", Value: "v", Types: []string{"step.nope"}}, `unknown event type "step.nope"`},
		} {
			requireCode(t, connect.CodeInvalidArgument, open(raw, tc.req), tc.want)
		}
		// The SDK yields the error once and ends.
		var errs []error
		for _, err := range n.client.Listener().StreamByAdditionalMetadata(ctx, "", "v") {
			errs = append(errs, err)
		}
		require.Len(t, errs, 1)
		requireCode(t, connect.CodeInvalidArgument, errs[0], "needs a key")

		// Browser tokens.
		admin, err := n.srv.Engine().Authenticate(ctx, n.srv.AdminToken)
		require.NoError(t, err)
		pairToken, _, err := n.srv.Engine().CreateBrowserToken(ctx, admin, engine.BrowserTokenParams{MetaKey: "k", MetaValue: "v"})
		require.NoError(t, err)
		browser := newRaw(n, pairToken)
		require.NoError(t, open(browser, &pb.SubscribeMetadataRequest{Key: "k", Value: "v"}))
		requireCode(t, connect.CodePermissionDenied, open(browser, &pb.SubscribeMetadataRequest{Key: "k", Value: "w"}), "minted for")
		requireCode(t, connect.CodePermissionDenied, open(browser, &pb.SubscribeMetadataRequest{Key: "other", Value: "v"}), "minted for")

		// Tenants: acme runs the same workflow with the same pair.
		startWorker(t, n, "w", 4, metaSteps())
		acmeToken, err := n.client.Admin().CreateToken(ctx, "acme", "test")
		require.NoError(t, err)
		acme, err := runnel.NewClient(runnel.WithHost(n.url), runnel.WithToken(acmeToken), runnel.WithLogger(testLogger(t)))
		require.NoError(t, err)
		acmeNode := &node{srv: n.srv, client: acme, url: n.url}
		startWorker(t, acmeNode, "acme-w", 4, metaSteps())

		mine := subscribeMeta(n.client, "k", "v")
		theirs := subscribeMeta(acme, "k", "v")
		acmeRun := trigger(t, acme, 3, map[string]string{"k": "v"})
		_, acmeEvents := waitRun(t, acmeNode, acmeRun)
		// The default tenant's run comes after acme's: had acme's events
		// leaked, they would be among the first events compared here.
		myRun := trigger(t, n.client, 2, map[string]string{"k": "v"})
		_, myEvents := waitRun(t, n, myRun)
		requireLog(t, n, myEvents, mine.wait(t, len(myEvents)), "default tenant")
		requireLog(t, n, acmeEvents, theirs.wait(t, len(acmeEvents)), "acme")
		mine.stop(t)
		theirs.stop(t)
	})
}

// TestMetadataSubscriptionMemoryIsConstant leaves one metadata subscription
// open across 100 runs that stream 50 MiB in all: the engine keeps one
// feed for it whose tail stays within its bounds, and the engine's heap does
// not grow with the number of runs.
//
// Not parallel, so the process heap it measures is the engine's (and the
// in-process worker's and subscriber's, which keep nothing per run).
func TestMetadataSubscriptionMemoryIsConstant(t *testing.T) {
	const (
		runs    = 100
		batch   = 10
		payload = 512 << 10
	)
	for _, kind := range stores {
		t.Run(kind, func(t *testing.T) {
			n := startNode(t, kind, defaultWorkerTimers)
			chunk := make([]byte, payload)
			wf := runnel.NewWorkflow("blob").Step("put", func(ctx runnel.Context) (any, error) {
				return nil, ctx.PutStream(chunk)
			})
			startWorker(t, n, "w", batch, wf)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()

			// The subscriber keeps a count and the last position only.
			var (
				mu       sync.Mutex
				received int
				last     runnel.Position
				changed  = make(chan struct{})
			)
			sctx, scancel := context.WithCancel(ctx)
			subDone := make(chan error, 1)
			go func() {
				for ev, err := range n.client.Listener().StreamByAdditionalMetadata(sctx, "tenant-job", "j1") {
					if err != nil {
						subDone <- err
						return
					}
					mu.Lock()
					received++
					last = ev.Position
					close(changed)
					changed = make(chan struct{})
					mu.Unlock()
				}
				subDone <- errors.New("a metadata subscription ended by itself")
			}()
			waitReceived := func(want int) {
				deadline := time.After(metaWait)
				for {
					mu.Lock()
					got, ch := received, changed
					mu.Unlock()
					if got >= want {
						return
					}
					select {
					case <-ch:
					case err := <-subDone:
						t.Fatalf("subscription ended: %v", err)
					case <-deadline:
						t.Fatalf("received %d of %d events", got, want)
					}
				}
			}

			var heap []uint64
			maxTailBytes, expected := 0, 0
			for done := 0; done < runs; done += batch {
				ids := make([]string, batch)
				for i := range ids {
					id, err := n.client.Admin().RunWorkflow(ctx, "blob", nil, runnel.WithAdditionalMetadata(map[string]string{"tenant-job": "j1"}))
					require.NoError(t, err)
					ids[i] = id
				}
				for _, id := range ids {
					run, events := waitRun(t, n, id)
					require.Equal(t, runnel.RunCompleted, run.Status, run.Error)
					expected += len(events)
				}
				waitReceived(expected)
				st := n.srv.Engine().SubscriptionStats()
				require.Equal(t, 1, st.MetadataFeeds)
				require.LessOrEqual(t, st.TailEvents, 4096)
				require.LessOrEqual(t, st.TailBytes, 8<<20)
				maxTailBytes = max(maxTailBytes, st.TailBytes)
				heap = append(heap, liveHeap())
			}
			mu.Lock()
			require.Equal(t, expected, received)
			require.NotEmpty(t, last)
			mu.Unlock()
			// The tail filled up to its bound (so the runs did stream past
			// it) and no further; from then on the heap stays flat.
			require.Greater(t, maxTailBytes, 6<<20)
			t.Logf("heap after each %d runs (MiB): %v", batch, mib(heap))
			settled := heap[len(heap)/2]
			grown := int64(heap[len(heap)-1]) - int64(settled)
			// Keeping what went through would grow it by 25 MiB here.
			require.Less(t, grown, int64(8<<20), "heap grew %d KiB over the last %d runs", grown>>10, runs/2)

			scancel()
			require.ErrorIs(t, <-subDone, context.Canceled)
		})
	}
}

// liveHeap returns the bytes of live heap objects. Two collections, so
// that buffers parked in sync.Pools (kept for one more cycle) are gone.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func mib(v []uint64) []uint64 {
	out := make([]uint64, len(v))
	for i, x := range v {
		out[i] = x >> 20
	}
	return out
}
