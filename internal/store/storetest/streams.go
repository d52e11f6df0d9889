package storetest

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/store"
)

// testNamedStreams: events keep their stream name; the newest stream event
// of chosen streams is found; a closed stream is reported per attempt.
func testNamedStreams(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, nil)
	f := newFixture(t, s)
	stepRunID := newID()
	ev := func(typ, stream, payload string, attempt int) store.Event {
		e := f.event(typ, []byte(payload))
		e.StepRunID, e.Step, e.Attempt, e.Stream = stepRunID, "step", attempt, stream
		return e
	}

	last, err := s.LastStreamPosition(ctx, f.tenant.ID, f.run.ID, nil)
	require.NoError(t, err)
	require.Zero(t, last, "a run without stream events has no latest one")

	events := []store.Event{
		ev(store.EventStepStarted, "", "", 1),
		ev(store.EventStepStream, "", "d1", 1),
		ev(store.EventStepStream, "tokens", "t1", 1),
		ev(store.EventStepStream, "status", "s1", 1),
		ev(store.EventStepStream, "tokens", "t2", 1),
		ev(store.EventStepStreamClosed, "tokens", "", 1),
		ev(store.EventStepStream, "status", "s2", 1),
		ev(store.EventStepCompleted, "", "", 1),
	}
	appendEvents(t, s, events)
	got := readAll(t, s, f.tenant.ID, f.run.ID, 0, 3)
	require.Len(t, got, len(events))
	for i := range events {
		require.Equal(t, events[i].Stream, got[i].Stream, "event %d", i)
		require.Equal(t, events[i].Type, got[i].Type)
	}

	latest := func(streams ...string) int64 {
		t.Helper()
		pos, err := s.LastStreamPosition(ctx, f.tenant.ID, f.run.ID, streams)
		require.NoError(t, err)
		return pos
	}
	require.Equal(t, events[6].Position, latest(), "any stream")
	require.Equal(t, events[4].Position, latest("tokens"), "the close event is not a stream event")
	require.Equal(t, events[1].Position, latest(""), "the default stream")
	require.Equal(t, events[6].Position, latest("tokens", "status"))
	require.Zero(t, latest("nope"))
	other, err := s.LastStreamPosition(ctx, newID(), f.run.ID, nil)
	require.NoError(t, err)
	require.Zero(t, other, "another tenant sees nothing")

	closed := func(attempt int, stream string) bool {
		t.Helper()
		var c bool
		write(t, s, func(tx store.Tx) error {
			var err error
			c, err = tx.StreamClosed(ctx, stepRunID, attempt, stream)
			return err
		})
		return c
	}
	require.True(t, closed(1, "tokens"))
	require.False(t, closed(1, "status"))
	require.False(t, closed(1, ""))
	require.False(t, closed(2, "tokens"), "a new attempt starts with open streams")
}
