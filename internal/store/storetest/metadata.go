package storetest

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/store"
)

// testMetadataEvents checks ReadMetadataEvents and LastPosition, the reads
// behind metadata subscriptions. Its subtests run in parallel, each on a
// store of its own.
func testMetadataEvents(t *testing.T, open Opener) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, open Opener)
	}{
		{"Read", testReadMetadataEvents},
		{"MaxBytes", testReadMetadataEventsMaxBytes},
		{"ManyRunsAndLongRuns", testReadMetadataEventsManyRuns},
		{"LastPosition", testLastPosition},
		{"ConcurrentRunsAndReads", testConcurrentMetadataAppendAndRead},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open)
		})
	}
}

// metaRun returns a run of the tenant carrying the metadata.
func metaRun(tenantID string, meta map[string]string) store.Run {
	r := newRun(tenantID, "wf")
	r.Metadata = meta
	return r
}

func runEvent(r store.Run, typ string, payload []byte) store.Event {
	return store.Event{TenantID: r.TenantID, RunID: r.ID, Workflow: r.Workflow, Type: typ, Payload: payload}
}

// readMeta reads every matching event after a position, page by page.
func readMeta(t testing.TB, s store.Store, p store.ReadMetadataEventsParams) []store.Event {
	t.Helper()
	var out []store.Event
	for {
		page, err := s.ReadMetadataEvents(context.Background(), p)
		require.NoError(t, err)
		if len(page) == 0 {
			return out
		}
		out = append(out, page...)
		p.After = page[len(page)-1].Position
	}
}

// only keeps the events of the given runs.
func only(events []store.Event, runs ...store.Run) []store.Event {
	var out []store.Event
	for _, e := range events {
		if slices.ContainsFunc(runs, func(r store.Run) bool { return r.ID == e.RunID }) {
			out = append(out, e)
		}
	}
	return out
}

func testReadMetadataEvents(t *testing.T, open Opener) {
	s := open(t, nil)
	ctx := t.Context()
	tn := newTenant(t, s, "t")
	other := newTenant(t, s, "other")

	match1 := metaRun(tn.ID, map[string]string{"session": "s1"})
	match2 := metaRun(tn.ID, map[string]string{"session": "s1", "user": "u7"})
	otherValue := metaRun(tn.ID, map[string]string{"session": "s2"})
	otherKey := metaRun(tn.ID, map[string]string{"user": "s1"})
	none := newRun(tn.ID, "wf")
	otherTenant := metaRun(other.ID, map[string]string{"session": "s1"})
	empty := metaRun(tn.ID, map[string]string{"session": ""})
	insertRuns(t, s, match1, match2, otherValue, otherKey, none, otherTenant, empty)

	params := store.ReadMetadataEventsParams{TenantID: tn.ID, Key: "session", Value: "s1"}
	got, err := s.ReadMetadataEvents(ctx, params)
	require.NoError(t, err)
	require.Empty(t, got, "runs without events")

	// Events of every run, interleaved, over several transactions; the
	// matching runs' events have holes between them.
	all := []store.Run{match1, otherValue, match2, otherKey, none, otherTenant, empty}
	var appended []store.Event
	for i := range 4 {
		var batch []store.Event
		for j, r := range all {
			if (i+j)%3 == 0 {
				continue // not every run in every transaction
			}
			batch = append(batch, runEvent(r, store.EventStepStream, fmt.Appendf(nil, "%s %d", r.ID, i)))
		}
		appendEvents(t, s, batch)
		appended = append(appended, batch...)
	}
	want := only(appended, match1, match2)
	require.NotEmpty(t, want)

	got, err = s.ReadMetadataEvents(ctx, params)
	require.NoError(t, err)
	require.Equal(t, norm(want), norm(got), "every event of both runs, in position order")
	requireIncreasing(t, got)

	// After is exclusive, also when it is another run's position; Limit pages.
	got, err = s.ReadMetadataEvents(ctx, store.ReadMetadataEventsParams{TenantID: tn.ID, Key: "session", Value: "s1", After: want[1].Position, Limit: 2})
	require.NoError(t, err)
	require.Equal(t, positions(want[2:4]), positions(got))
	for _, e := range appended {
		var rest []store.Event
		for _, w := range want {
			if w.Position > e.Position {
				rest = append(rest, w)
			}
		}
		p := params
		p.After = e.Position
		require.Equal(t, positions(rest), positions(readMeta(t, s, p)), "after %d", e.Position)
	}
	p := params
	p.Limit = 1
	require.Equal(t, positions(want), positions(readMeta(t, s, p)), "pages of one")

	// The other pairs, the empty value, and another tenant's runs.
	for _, tc := range []struct {
		p    store.ReadMetadataEventsParams
		want []store.Event
	}{
		{store.ReadMetadataEventsParams{TenantID: tn.ID, Key: "session", Value: "s2"}, only(appended, otherValue)},
		{store.ReadMetadataEventsParams{TenantID: tn.ID, Key: "user", Value: "s1"}, only(appended, otherKey)},
		{store.ReadMetadataEventsParams{TenantID: tn.ID, Key: "user", Value: "u7"}, only(appended, match2)},
		{store.ReadMetadataEventsParams{TenantID: tn.ID, Key: "session", Value: ""}, only(appended, empty)},
		{store.ReadMetadataEventsParams{TenantID: other.ID, Key: "session", Value: "s1"}, only(appended, otherTenant)},
		{store.ReadMetadataEventsParams{TenantID: tn.ID, Key: "session", Value: "nobody"}, nil},
		{store.ReadMetadataEventsParams{TenantID: "no-such-tenant", Key: "session", Value: "s1"}, nil},
	} {
		require.Equal(t, positions(tc.want), positions(readMeta(t, s, tc.p)), "%+v", tc.p)
	}

	// A run created after the reads above: its events come after the
	// position reached, and nothing appears below it.
	last := want[len(want)-1].Position
	late := metaRun(tn.ID, map[string]string{"session": "s1"})
	insertRuns(t, s, late)
	lateEvents := []store.Event{runEvent(late, store.EventRunStarted, nil), runEvent(match1, store.EventRunCompleted, nil), runEvent(late, store.EventStepStream, []byte("late"))}
	appendEvents(t, s, lateEvents)
	p = params
	p.After = last
	got = readMeta(t, s, p)
	require.Equal(t, norm(lateEvents), norm(got))
	require.Equal(t, positions(append(slices.Clone(want), lateEvents...)), positions(readMeta(t, s, params)))

	// A run and its first events in one transaction.
	same := metaRun(tn.ID, map[string]string{"session": "s1"})
	sameEvents := []store.Event{runEvent(same, store.EventRunStarted, nil)}
	write(t, s, func(tx store.Tx) error {
		if err := tx.InsertRun(ctx, same); err != nil {
			return err
		}
		return tx.AppendEvents(ctx, sameEvents)
	})
	p.After = lateEvents[len(lateEvents)-1].Position
	require.Equal(t, norm(sameEvents), norm(readMeta(t, s, p)))
}

func testReadMetadataEventsMaxBytes(t *testing.T, open Opener) {
	s := open(t, nil)
	ctx := t.Context()
	tn := newTenant(t, s, "t")
	a := metaRun(tn.ID, map[string]string{"k": "v"})
	b := metaRun(tn.ID, map[string]string{"k": "v"})
	noise := metaRun(tn.ID, map[string]string{"k": "w"})
	insertRuns(t, s, a, b, noise)
	// Matching payload sizes 10, 10, 0 (none), 10, 100, 10, alternating
	// between the two runs, with big non-matching payloads in between that
	// must not count.
	sizes := []int{10, 10, 0, 10, 100, 10}
	var events, matching []store.Event
	for i, n := range sizes {
		var p []byte
		if n > 0 {
			p = bytes.Repeat([]byte{byte('a' + i)}, n)
		}
		r := a
		if i%2 == 1 {
			r = b
		}
		events = append(events, runEvent(r, store.EventStepStream, p), runEvent(noise, store.EventStepStream, bytes.Repeat([]byte{'n'}, 1000)))
	}
	appendEvents(t, s, events)
	for _, e := range events {
		if e.RunID != noise.ID {
			matching = append(matching, e)
		}
	}
	read := func(after int64, limit, maxBytes int) []int64 {
		t.Helper()
		got, err := s.ReadMetadataEvents(ctx, store.ReadMetadataEventsParams{TenantID: tn.ID, Key: "k", Value: "v", After: after, Limit: limit, MaxBytes: maxBytes})
		require.NoError(t, err)
		return positions(got)
	}
	p := positions(matching)
	// As ReadEvents: an event is included while the payloads before it in
	// the page are below MaxBytes.
	require.Equal(t, p[:1], read(0, 100, 1), "always at least one event")
	require.Equal(t, p[:1], read(0, 100, 10))
	require.Equal(t, p[:2], read(0, 100, 11))
	require.Equal(t, p[:4], read(0, 100, 21), "an event without payload adds nothing")
	require.Equal(t, p[:5], read(0, 100, 31))
	require.Equal(t, p[:6], read(0, 100, 131))
	require.Equal(t, p, read(0, 100, 0), "0: no byte limit")
	require.Equal(t, p[:3], read(0, 3, 1000), "Limit still applies")
	require.Equal(t, p[4:5], read(p[3], 100, 50), "counting starts at the page")
	require.Equal(t, p[5:], read(p[4], 100, 1))
}

// testReadMetadataEventsManyRuns: many matching runs, some with more events
// than a page, interleaved, read in pages smaller than a run.
func testReadMetadataEventsManyRuns(t *testing.T, open Opener) {
	s := open(t, nil)
	tn := newTenant(t, s, "t")
	runs := make([]store.Run, 60)
	for i := range runs {
		meta := map[string]string{"k": "v"}
		if i%3 == 2 {
			meta = map[string]string{"k": "other"}
		}
		runs[i] = metaRun(tn.ID, meta)
	}
	insertRuns(t, s, runs...)
	var appended []store.Event
	for round := range 6 {
		var batch []store.Event
		for i, r := range runs {
			n := 1
			if i < 3 {
				n = 50 // three long runs: 300 events each, more than a page
			}
			for j := range n {
				batch = append(batch, runEvent(r, store.EventStepStream, fmt.Appendf(nil, "%d/%d/%d", round, i, j)))
			}
		}
		appendEvents(t, s, batch)
		appended = append(appended, batch...)
	}
	var matching []store.Run
	for i, r := range runs {
		if i%3 != 2 {
			matching = append(matching, r)
		}
	}
	want := only(appended, matching...)
	for _, limit := range []int{7, 256, 1000} {
		got := readMeta(t, s, store.ReadMetadataEventsParams{TenantID: tn.ID, Key: "k", Value: "v", Limit: limit})
		require.Equal(t, positions(want), positions(got), "limit %d", limit)
	}
	got := readMeta(t, s, store.ReadMetadataEventsParams{TenantID: tn.ID, Key: "k", Value: "v", Limit: 256, After: want[len(want)/2].Position})
	require.Equal(t, positions(want[len(want)/2+1:]), positions(got))
	got = readMeta(t, s, store.ReadMetadataEventsParams{TenantID: tn.ID, Key: "k", Value: "v", Limit: 100, MaxBytes: 60})
	require.Equal(t, positions(want), positions(got), "byte-limited pages")
}

func testLastPosition(t *testing.T, open Opener) {
	s := open(t, nil)
	ctx := t.Context()
	pos, err := s.LastPosition(ctx)
	require.NoError(t, err)
	require.Zero(t, pos, "empty log")

	f := newFixture(t, s)
	events := []store.Event{f.event(store.EventRunStarted, nil), f.event(store.EventStepStream, []byte("x"))}
	appendEvents(t, s, events)
	pos, err = s.LastPosition(ctx)
	require.NoError(t, err)
	require.Equal(t, events[1].Position, pos)

	// Writes without events and rolled-back appends leave it alone.
	write(t, s, func(tx store.Tx) error { return tx.InsertRun(ctx, newRun(f.tenant.ID, "wf")) })
	err = s.Write(ctx, func(tx store.Tx) error {
		if err := tx.AppendEvents(ctx, []store.Event{f.event(store.EventStepStream, nil)}); err != nil {
			return err
		}
		return fmt.Errorf("roll back")
	})
	require.Error(t, err)
	pos, err = s.LastPosition(ctx)
	require.NoError(t, err)
	require.Equal(t, events[1].Position, pos)

	// Reading after it gives exactly what is appended later.
	r := metaRun(f.tenant.ID, map[string]string{"k": "v"})
	insertRuns(t, s, r)
	later := []store.Event{runEvent(r, store.EventRunStarted, nil)}
	appendEvents(t, s, later)
	got := readMeta(t, s, store.ReadMetadataEventsParams{TenantID: f.tenant.ID, Key: "k", Value: "v", After: pos})
	require.Equal(t, positions(later), positions(got))
	pos, err = s.LastPosition(ctx)
	require.NoError(t, err)
	require.Equal(t, later[0].Position, pos)
}

// testConcurrentMetadataAppendAndRead: writers create runs carrying the
// pair and append to them (and to non-matching runs) concurrently while a
// reader follows the pair, each time reading after the last position it
// saw. Positions follow commit order and a run's metadata commits with it,
// so the reader can never miss an event, even of a run created after it
// started: what it collects must be exactly the final log of the pair.
func testConcurrentMetadataAppendAndRead(t *testing.T, open Opener) {
	s := open(t, nil)
	ctx := t.Context()
	tn := newTenant(t, s, "t")
	const writers, runsPerWriter, batches = 4, 5, 8
	var done atomic.Bool
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range runsPerWriter {
				r := metaRun(tn.ID, map[string]string{"k": "v"})
				noise := metaRun(tn.ID, map[string]string{"k": "noise"})
				// Each run is created together with its first events,
				// then gets more in later transactions.
				err := s.Write(ctx, func(tx store.Tx) error {
					for _, run := range []store.Run{r, noise} {
						if err := tx.InsertRun(ctx, run); err != nil {
							return err
						}
					}
					return tx.AppendEvents(ctx, []store.Event{runEvent(r, store.EventRunStarted, nil), runEvent(noise, store.EventRunStarted, nil)})
				})
				if !assertNoError(t, err) {
					return
				}
				for b := range batches {
					n := 1 + (w+i+b)%4
					events := make([]store.Event, 0, n+1)
					for j := range n {
						events = append(events, runEvent(r, store.EventStepStream, fmt.Appendf(nil, "w%d r%d b%d e%d", w, i, b, j)))
					}
					events = append(events, runEvent(noise, store.EventStepStream, nil))
					err := s.Write(ctx, func(tx store.Tx) error { return tx.AppendEvents(ctx, events) })
					if !assertNoError(t, err) {
						return
					}
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
	follow := func() int {
		page, err := s.ReadMetadataEvents(ctx, store.ReadMetadataEventsParams{TenantID: tn.ID, Key: "k", Value: "v", After: last, Limit: 9})
		require.NoError(t, err)
		for _, e := range page {
			require.Greater(t, e.Position, last, "a read after P returned P or lower")
			last = e.Position
		}
		seen = append(seen, page...)
		return len(page)
	}
	for !done.Load() {
		follow()
	}
	for follow() > 0 {
	}
	wg.Wait()

	final := readMeta(t, s, store.ReadMetadataEventsParams{TenantID: tn.ID, Key: "k", Value: "v", Limit: 1000})
	total := 0
	for w := range writers {
		for i := range runsPerWriter {
			total++ // run.started
			for b := range batches {
				total += 1 + (w+i+b)%4
			}
		}
	}
	require.Len(t, final, total)
	requireIncreasing(t, final)
	require.Equal(t, positions(final), positions(seen), "nothing appeared later below a position the reader had passed")
}
