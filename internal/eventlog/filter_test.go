package eventlog

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/store"
)

// A filter that keeps a whole batch hands it on as it is (no copy per
// subscriber); one that drops some builds a new slice and leaves the
// shared batch alone.
func TestEventFilterApply(t *testing.T) {
	t.Parallel()
	ev := func(pos int64, typ, stream string) store.Event {
		return store.Event{Position: pos, Type: typ, Stream: stream}
	}
	batch := []store.Event{
		ev(1, store.EventStepStream, ""), ev(2, store.EventStepStream, "b"), ev(3, store.EventStepCompleted, ""),
	}
	positions := func(events []store.Event) (out []int64) {
		for _, e := range events {
			out = append(out, e.Position)
		}
		return out
	}
	all := eventFilter{types: map[string]bool{store.EventStepStream: true, store.EventStepCompleted: true}}
	kept := all.apply(batch)
	require.Equal(t, []int64{1, 2, 3}, positions(kept))
	require.Same(t, &batch[0], &kept[0], "kept whole: the same slice")

	for _, tc := range []struct {
		filter eventFilter
		want   []int64
	}{
		{eventFilter{types: map[string]bool{store.EventStepStream: true}}, []int64{1, 2}},
		{eventFilter{types: map[string]bool{store.EventStepCompleted: true}}, []int64{3}},
		{eventFilter{streams: map[string]bool{"b": true}}, []int64{2, 3}},
		{eventFilter{types: map[string]bool{store.EventRunStarted: true}}, nil},
	} {
		got := tc.filter.apply(batch)
		require.Equal(t, tc.want, positions(got))
		require.Equal(t, []int64{1, 2, 3}, positions(batch), "the shared batch is left alone")
	}
}
