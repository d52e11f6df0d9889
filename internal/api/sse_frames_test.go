package api

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/eventlog"
	"github.com/runnel-dev/runnel/internal/ssewire"
	"github.com/runnel-dev/runnel/internal/store"
)

// A cached frame is byte for byte the frame ssewire writes, in a batch
// whatever else is cached, and the cache stays within its entry and byte
// bounds however many events pass.
func TestFrameCache(t *testing.T) {
	c := newFrameCache()
	codec := eventlog.NewCodec("0123456789abcdef")
	ev := func(pos int64, size int) store.Event {
		return store.Event{Position: pos, RunID: "r", Workflow: "wf", Type: "step.stream", StepRunID: "s", Step: "st",
			Attempt: 1, Payload: []byte(strings.Repeat("x", size)), CreatedAt: time.Unix(1, 0)}
	}
	for pos := int64(1); pos <= 3*frameCacheEntries; pos++ {
		size := 100
		if pos%1000 == 0 {
			size = frameCacheMaxFrame // too large to keep
		}
		e := ev(pos, size)
		frames, err := c.batch(codec, []store.Event{e}, nil)
		require.NoError(t, err)
		got := frames[0]
		// Again, in a batch with the event before it (cached, or not).
		frames, err = c.batch(codec, []store.Event{ev(pos-1, 100), e}, nil)
		require.NoError(t, err)
		again := frames[1]
		var want bytes.Buffer
		require.NoError(t, ssewire.Write(&want, ssewire.Event{Position: codec.Encode(pos), RunID: "r", Workflow: "wf",
			Type: "step.stream", StepRunID: "s", Step: "st", Attempt: 1, Payload: e.Payload, Time: e.CreatedAt}))
		require.Equal(t, want.Bytes(), got)
		require.Equal(t, got, again)
		c.mu.Lock()
		require.LessOrEqual(t, len(c.frames), frameCacheEntries)
		require.LessOrEqual(t, c.bytes, frameCacheBytes)
		require.Len(t, c.frames, len(c.order)-c.head)
		c.mu.Unlock()
	}
}
