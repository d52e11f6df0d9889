package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/store"
)

func (f fixture) event(typ string, payload []byte) store.Event {
	return store.Event{TenantID: f.tenant.ID, RunID: f.run.ID, Workflow: f.run.Workflow, Type: typ, Payload: payload}
}

func appendEvents(t testing.TB, s store.Store, events []store.Event) {
	t.Helper()
	write(t, s, func(tx store.Tx) error { return tx.AppendEvents(context.Background(), events) })
}

// readAll reads a run's events after a position, page by page.
func readAll(t testing.TB, s store.Store, tenantID, runID string, after int64, limit int) []store.Event {
	t.Helper()
	var out []store.Event
	for {
		page, err := s.ReadEvents(context.Background(), store.ReadEventsParams{TenantID: tenantID, RunID: runID, After: after, Limit: limit})
		require.NoError(t, err)
		if len(page) == 0 {
			return out
		}
		out = append(out, page...)
		after = page[len(page)-1].Position
	}
}

func positions(events []store.Event) []int64 {
	out := make([]int64, 0, len(events))
	for _, e := range events {
		out = append(out, e.Position)
	}
	return out
}

func requireIncreasing(t testing.TB, events []store.Event) {
	t.Helper()
	for i := 1; i < len(events); i++ {
		require.Greater(t, events[i].Position, events[i-1].Position, "positions must increase")
	}
}

func testAppendAndReadEvents(t *testing.T, open Opener) {
	s := open(t, nil)
	ctx := t.Context()
	f := newFixture(t, s)
	g := fixture{tenant: f.tenant, run: newRun(f.tenant.ID, "other")}
	insertRuns(t, s, g.run)

	pos, err := s.LastRunPosition(ctx, f.tenant.ID, f.run.ID)
	require.NoError(t, err)
	require.Zero(t, pos)
	empty, err := s.ReadEvents(ctx, store.ReadEventsParams{TenantID: f.tenant.ID, RunID: f.run.ID})
	require.NoError(t, err)
	require.Empty(t, empty)

	stepRunID := newID()
	first := []store.Event{
		f.event(store.EventRunStarted, nil),
		{
			TenantID: f.tenant.ID, RunID: f.run.ID, Workflow: "wf", Type: store.EventStepStarted,
			StepRunID: stepRunID, Step: "fetch", Attempt: 1, Data: []byte(`{"worker":"w1"}`),
			CreatedAt: at(7),
		},
		g.event(store.EventRunStarted, nil),
		{
			TenantID: f.tenant.ID, RunID: f.run.ID, Workflow: "wf", Type: store.EventStepStream,
			StepRunID: stepRunID, Step: "fetch", Attempt: 1, Payload: []byte("chunk 1"),
		},
	}
	before := time.Now().Add(-time.Second)
	appendEvents(t, s, first)
	requireIncreasing(t, first)
	require.Equal(t, first[0].Position+1, first[1].Position, "consecutive in slice order")
	require.Equal(t, first[2].Position+1, first[3].Position)
	require.Equal(t, at(7), first[1].CreatedAt.UTC(), "a given CreatedAt is kept")
	for i, e := range first {
		if i != 1 {
			require.False(t, e.CreatedAt.IsZero(), "CreatedAt is set when zero")
			require.WithinDuration(t, time.Now(), e.CreatedAt, time.Hour)
			require.True(t, e.CreatedAt.After(before))
		}
	}

	// A later transaction continues after the earlier one.
	second := []store.Event{f.event(store.EventStepStream, []byte("chunk 2")), f.event(store.EventStepCompleted, nil)}
	appendEvents(t, s, second)
	require.Greater(t, second[0].Position, first[3].Position)
	requireIncreasing(t, second)

	// Appending nothing is fine.
	write(t, s, func(tx store.Tx) error { return tx.AppendEvents(ctx, nil) })

	var wantF []store.Event
	for _, e := range append(slices.Clone(first), second...) {
		if e.RunID == f.run.ID {
			wantF = append(wantF, e)
		}
	}
	got, err := s.ReadEvents(ctx, store.ReadEventsParams{TenantID: f.tenant.ID, RunID: f.run.ID})
	require.NoError(t, err)
	require.Equal(t, norm(wantF), norm(got))
	gotG, err := s.ReadEvents(ctx, store.ReadEventsParams{TenantID: f.tenant.ID, RunID: g.run.ID})
	require.NoError(t, err)
	require.Equal(t, norm([]store.Event{first[2]}), norm(gotG))

	pos, err = s.LastRunPosition(ctx, f.tenant.ID, f.run.ID)
	require.NoError(t, err)
	require.Equal(t, second[1].Position, pos)
	pos, err = s.LastRunPosition(ctx, f.tenant.ID, g.run.ID)
	require.NoError(t, err)
	require.Equal(t, first[2].Position, pos)

	// After is exclusive; Limit pages.
	got, err = s.ReadEvents(ctx, store.ReadEventsParams{TenantID: f.tenant.ID, RunID: f.run.ID, After: wantF[1].Position, Limit: 2})
	require.NoError(t, err)
	require.Equal(t, positions(wantF[2:4]), positions(got))
	got, err = s.ReadEvents(ctx, store.ReadEventsParams{TenantID: f.tenant.ID, RunID: f.run.ID, After: wantF[len(wantF)-1].Position})
	require.NoError(t, err)
	require.Empty(t, got)
	// An After that falls between the run's positions (another run's event).
	got, err = s.ReadEvents(ctx, store.ReadEventsParams{TenantID: f.tenant.ID, RunID: f.run.ID, After: first[2].Position})
	require.NoError(t, err)
	require.Equal(t, positions(wantF[2:]), positions(got))
	require.Equal(t, positions(wantF), positions(readAll(t, s, f.tenant.ID, f.run.ID, 0, 1)))

	// Many events in one call, and a page of 1000 in one read.
	many := make([]store.Event, 2500)
	for i := range many {
		many[i] = f.event(store.EventStepStream, fmt.Appendf(nil, "event %d", i))
	}
	appendEvents(t, s, many)
	for i := 1; i < len(many); i++ {
		require.Equal(t, many[i-1].Position+1, many[i].Position)
	}
	require.Greater(t, many[0].Position, second[1].Position)
	page, err := s.ReadEvents(ctx, store.ReadEventsParams{TenantID: f.tenant.ID, RunID: f.run.ID, After: second[1].Position, Limit: 1000})
	require.NoError(t, err)
	require.Len(t, page, 1000)
	require.Equal(t, norm(many[:1000]), norm(page))
	all := readAll(t, s, f.tenant.ID, f.run.ID, 0, 1000)
	require.Len(t, all, len(wantF)+len(many))
	requireIncreasing(t, all)
}

func testReadEventsMaxBytes(t *testing.T, open Opener) {
	s := open(t, nil)
	ctx := t.Context()
	f := newFixture(t, s)
	// Payload sizes 10, 10, 0 (none), 10, 100, 10.
	sizes := []int{10, 10, 0, 10, 100, 10}
	events := make([]store.Event, len(sizes))
	for i, n := range sizes {
		var p []byte
		if n > 0 {
			p = bytes.Repeat([]byte{byte('a' + i)}, n)
		}
		events[i] = f.event(store.EventStepStream, p)
	}
	appendEvents(t, s, events)

	read := func(after int64, limit, maxBytes int) []int64 {
		t.Helper()
		got, err := s.ReadEvents(ctx, store.ReadEventsParams{TenantID: f.tenant.ID, RunID: f.run.ID, After: after, Limit: limit, MaxBytes: maxBytes})
		require.NoError(t, err)
		return positions(got)
	}
	p := positions(events)
	// An event is included while the payloads before it in the page are
	// below MaxBytes: the page stops at the first event that reaches it.
	require.Equal(t, p[:1], read(0, 100, 1), "always at least one event")
	require.Equal(t, p[:1], read(0, 100, 10))
	require.Equal(t, p[:2], read(0, 100, 11))
	require.Equal(t, p[:4], read(0, 100, 21), "an event without payload adds nothing")
	require.Equal(t, p[:5], read(0, 100, 31))
	require.Equal(t, p[:6], read(0, 100, 131))
	require.Equal(t, p, read(0, 100, 0), "0: no byte limit")
	require.Equal(t, p[:3], read(0, 3, 1000), "Limit still applies")
	// Counting starts at the page, not the run.
	require.Equal(t, p[4:5], read(p[3], 100, 50))
	require.Equal(t, p[4:5], read(p[3], 100, 1))
	require.Equal(t, p[5:], read(p[4], 100, 1))
}

// testLargeAndBinaryPayloads: payloads are bytes, not text.
func testLargeAndBinaryPayloads(t *testing.T, open Opener) {
	s := open(t, nil)
	ctx := t.Context()
	f := newFixture(t, s)

	rng := rand.New(rand.NewPCG(1, 2))
	big := make([]byte, 4<<20)
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	invalidUTF8 := []byte{0xff, 0xfe, 0x00, 0xc3, 0x28, 0xa0, 0xa1, 0x00, 0xe2, 0x82}
	nul := []byte{0, 0, 0}
	text := []byte("ünïcödé ✓ \u2028 line\r\nbreaks")
	events := []store.Event{
		f.event(store.EventStepStream, big),
		f.event(store.EventStepStream, invalidUTF8),
		f.event(store.EventStepStream, nul),
		f.event(store.EventStepStream, text),
	}
	events[3].Data = []byte(`{"output":{"k":"✓"}}`)
	appendEvents(t, s, events)

	got := readAll(t, s, f.tenant.ID, f.run.ID, 0, 1000)
	require.Len(t, got, 4)
	require.True(t, bytes.Equal(big, got[0].Payload), "4 MiB payload changed (len %d)", len(got[0].Payload))
	require.Equal(t, invalidUTF8, got[1].Payload)
	require.Equal(t, nul, got[2].Payload)
	require.Equal(t, text, got[3].Payload)
	require.JSONEq(t, string(events[3].Data), string(got[3].Data))

	// A byte limit smaller than the first payload still returns it, alone.
	page, err := s.ReadEvents(ctx, store.ReadEventsParams{TenantID: f.tenant.ID, RunID: f.run.ID, MaxBytes: 1 << 20})
	require.NoError(t, err)
	require.Len(t, page, 1)
	require.True(t, bytes.Equal(big, page[0].Payload))
}

// hookRecorder records commit hook calls.
type hookRecorder struct {
	mu    sync.Mutex
	calls [][]store.Event
}

func (h *hookRecorder) hook(events []store.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, slices.Clone(events))
}

func (h *hookRecorder) take() [][]store.Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.calls
	h.calls = nil
	return c
}

func testCommitHook(t *testing.T, open Opener) {
	var h hookRecorder
	s := open(t, h.hook)
	ctx := t.Context()
	f := newFixture(t, s)
	require.Empty(t, h.take(), "no events, no call")

	// One call per transaction, with all its events, positions set.
	a := []store.Event{f.event(store.EventRunStarted, nil)}
	b := []store.Event{f.event(store.EventStepStarted, nil), f.event(store.EventStepStream, []byte("x"))}
	write(t, s, func(tx store.Tx) error {
		if err := tx.AppendEvents(ctx, a); err != nil {
			return err
		}
		return tx.AppendEvents(ctx, b)
	})
	calls := h.take()
	require.Len(t, calls, 1)
	want := append(slices.Clone(a), b...)
	require.Equal(t, norm(want), norm(calls[0]))
	for _, e := range calls[0] {
		require.Positive(t, e.Position)
	}
	stored := readAll(t, s, f.tenant.ID, f.run.ID, 0, 100)
	require.Equal(t, norm(stored), norm(calls[0]))

	// Rolled back: no call.
	fail := errors.New("changed my mind")
	err := s.Write(ctx, func(tx store.Tx) error {
		if err := tx.AppendEvents(ctx, []store.Event{f.event(store.EventRunCompleted, nil)}); err != nil {
			return err
		}
		return fail
	})
	require.ErrorIs(t, err, fail)
	require.Empty(t, h.take())

	// Writes without events: no call.
	w := store.Worker{ID: newID(), TenantID: f.tenant.ID, Name: "w", NodeID: "n", Slots: 1, Alive: true, HeartbeatAt: at(1), CreatedAt: at(1)}
	write(t, s, func(tx store.Tx) error {
		if err := tx.InsertRun(ctx, newRun(f.tenant.ID, "wf")); err != nil {
			return err
		}
		return tx.InsertWorker(ctx, w)
	})
	require.NoError(t, s.TouchWorker(ctx, w.TenantID, w.ID, at(2)))
	require.Empty(t, h.take())

	// Hooks see transactions in commit order: positions only go up.
	for range 5 {
		appendEvents(t, s, []store.Event{f.event(store.EventStepStream, nil)})
	}
	calls = h.take()
	require.Len(t, calls, 5)
	for i := 1; i < len(calls); i++ {
		require.Greater(t, calls[i][0].Position, calls[i-1][0].Position)
	}
}

func testRollback(t *testing.T, open Opener) {
	var h hookRecorder
	s := open(t, h.hook)
	ctx := t.Context()
	f := newFixture(t, s)
	appendEvents(t, s, []store.Event{f.event(store.EventRunStarted, nil)})
	h.take()
	lastBefore, err := s.LastRunPosition(ctx, f.tenant.ID, f.run.ID)
	require.NoError(t, err)

	fail := errors.New("rollback please")
	r := newRun(f.tenant.ID, "wf")
	st := f.newStep("rolled-back")
	err = s.Write(ctx, func(tx store.Tx) error {
		if err := tx.InsertRun(ctx, r); err != nil {
			return err
		}
		if err := tx.InsertStepRuns(ctx, []store.StepRun{st}); err != nil {
			return err
		}
		run := f.run
		run.Status = store.RunFailed
		if err := tx.UpdateRun(ctx, run); err != nil {
			return err
		}
		if err := tx.AppendEvents(ctx, []store.Event{f.event(store.EventRunFailed, nil), f.event(store.EventRunFailed, nil)}); err != nil {
			return err
		}
		return fail
	})
	require.ErrorIs(t, err, fail)
	require.Empty(t, h.take())

	_, err = s.GetRun(ctx, f.tenant.ID, r.ID)
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = s.GetStepRun(ctx, st.ID)
	require.ErrorIs(t, err, store.ErrNotFound)
	got, err := s.GetRun(ctx, f.tenant.ID, f.run.ID)
	require.NoError(t, err)
	require.Equal(t, store.RunQueued, got.Status)
	last, err := s.LastRunPosition(ctx, f.tenant.ID, f.run.ID)
	require.NoError(t, err)
	require.Equal(t, lastBefore, last)
	require.Len(t, readAll(t, s, f.tenant.ID, f.run.ID, 0, 100), 1)

	// A panic in fn rolls back too, and the store stays usable.
	require.Panics(t, func() {
		_ = s.Write(ctx, func(tx store.Tx) error {
			if err := tx.InsertRun(ctx, r); err != nil {
				return err
			}
			panic("boom")
		})
	})
	_, err = s.GetRun(ctx, f.tenant.ID, r.ID)
	require.ErrorIs(t, err, store.ErrNotFound)

	// Later appends still get positions above everything seen.
	next := []store.Event{f.event(store.EventRunCompleted, nil)}
	appendEvents(t, s, next)
	require.Greater(t, next[0].Position, lastBefore)
	require.Len(t, h.take(), 1)
	require.Len(t, readAll(t, s, f.tenant.ID, f.run.ID, 0, 100), 2)
}

func testLogID(t *testing.T, open Opener) {
	s := open(t, nil)
	ctx := t.Context()
	id, err := s.LogID(ctx)
	require.NoError(t, err)
	require.NotEmpty(t, id)
	f := newFixture(t, s)
	appendEvents(t, s, []store.Event{f.event(store.EventRunStarted, nil)})
	again, err := s.LogID(ctx)
	require.NoError(t, err)
	require.Equal(t, id, again)

	other := open(t, nil)
	otherID, err := other.LogID(ctx)
	require.NoError(t, err)
	require.NotEqual(t, id, otherID, "each database has its own log")
}

// testConcurrentAppendAndRead: writers append to one run concurrently while
// a reader follows it, each time reading after the last position it saw.
// Because positions follow commit order as readers see them, the reader can
// never miss an event: what it collects must be exactly the run's final
// log. Some transactions append twice, with other work between, so that
// they hold positions for a while before committing.
func testConcurrentAppendAndRead(t *testing.T, open Opener) {
	s := open(t, nil)
	ctx := t.Context()
	f := newFixture(t, s)
	noise := fixture{tenant: f.tenant, run: newRun(f.tenant.ID, "noise")}
	insertRuns(t, s, noise.run)

	const writers, batches = 8, 30
	var done atomic.Bool
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range batches {
				n := 1 + (w+i)%5
				events := make([]store.Event, 0, n+1)
				for j := range n {
					events = append(events, f.event(store.EventStepStream, fmt.Appendf(nil, "w%d b%d e%d", w, i, j)))
				}
				// Interleave another run's events, so the run's
				// positions have holes.
				events = append(events, noise.event(store.EventStepStream, nil))
				err := s.Write(ctx, func(tx store.Tx) error {
					if i%2 == 0 {
						return tx.AppendEvents(ctx, events)
					}
					// Positions first, then more work, then the rest.
					if err := tx.AppendEvents(ctx, events[:1]); err != nil {
						return err
					}
					if _, err := tx.GetRunForUpdate(ctx, noise.tenant.ID, noise.run.ID); err != nil {
						return err
					}
					return tx.AppendEvents(ctx, events[1:])
				})
				if !assertNoError(t, err) {
					return
				}
			}
		})
	}
	go func() {
		wg.Wait()
		done.Store(true)
	}()

	var seen []store.Event
	var last int64
	reads := 0
	follow := func() int {
		page, err := s.ReadEvents(ctx, store.ReadEventsParams{TenantID: f.tenant.ID, RunID: f.run.ID, After: last, Limit: 7})
		require.NoError(t, err)
		for _, e := range page {
			require.Greater(t, e.Position, last, "a read after P returned P or lower")
			require.Equal(t, f.run.ID, e.RunID)
			last = e.Position
		}
		seen = append(seen, page...)
		reads++
		return len(page)
	}
	for !done.Load() {
		follow()
	}
	for follow() > 0 {
	}
	wg.Wait()

	final := readAll(t, s, f.tenant.ID, f.run.ID, 0, 1000)
	total := 0
	for w := range writers {
		for i := range batches {
			total += 1 + (w+i)%5
		}
	}
	require.Len(t, final, total)
	requireIncreasing(t, final)
	// Nothing appeared later below a position the reader had passed.
	require.Equal(t, positions(final), positions(seen))
	t.Logf("%d reads followed %d events", reads, len(seen))
}
