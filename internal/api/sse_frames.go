package api

import (
	"bytes"
	"sync"

	"github.com/runnel-dev/runnel/internal/eventlog"
	"github.com/runnel-dev/runnel/internal/ssewire"
	"github.com/runnel-dev/runnel/internal/store"
)

// frameCache keeps the SSE frames of recent events. A frame depends only on
// the stored event (its position, type and data), not on the subscriber, so
// one run followed by 10,000 browsers encodes each event once, not 10,000
// times. It is bounded in entries and bytes; large frames are not kept.
type frameCache struct {
	mu     sync.Mutex
	frames map[int64][]byte
	order  []int64 // positions in insertion order; order[head:] are cached
	head   int
	bytes  int
}

const (
	frameCacheEntries  = 8192
	frameCacheBytes    = 16 << 20
	frameCacheMaxFrame = 64 << 10
)

func newFrameCache() *frameCache {
	return &frameCache{frames: make(map[int64][]byte, frameCacheEntries)}
}

// putLocked keeps a frame, dropping the oldest beyond the bounds.
func (c *frameCache) putLocked(pos int64, f []byte) {
	if _, ok := c.frames[pos]; ok {
		return
	}
	c.order = append(c.order, pos)
	c.frames[pos] = f
	c.bytes += len(f)
	for len(c.frames) > frameCacheEntries || c.bytes > frameCacheBytes {
		old := c.order[c.head]
		c.head++
		c.bytes -= len(c.frames[old])
		delete(c.frames, old)
	}
	if c.head > frameCacheEntries {
		c.order = append(c.order[:0:0], c.order[c.head:]...)
		c.head = 0
	}
}

// batch returns the frames of a batch of events (none larger than
// ssewire.ChunkSize): cached ones are looked up and new ones kept under one
// lock each, not one per event, which matters when a subscriber replays a
// run (a batch of hundreds of events, none cached).
func (c *frameCache) batch(codec eventlog.Codec, events []store.Event, out [][]byte) ([][]byte, error) {
	out = out[:0]
	missing := false
	c.mu.Lock()
	for _, ev := range events {
		f := c.frames[ev.Position]
		missing = missing || f == nil
		out = append(out, f)
	}
	c.mu.Unlock()
	if !missing {
		return out, nil
	}
	var fresh []int
	for i, f := range out {
		if f != nil {
			continue
		}
		var b bytes.Buffer
		if err := ssewire.Write(&b, wireEvent(codec, events[i])); err != nil {
			return nil, err
		}
		out[i] = b.Bytes()
		if len(out[i]) <= frameCacheMaxFrame {
			fresh = append(fresh, i)
		}
	}
	c.mu.Lock()
	for _, i := range fresh {
		c.putLocked(events[i].Position, out[i])
	}
	c.mu.Unlock()
	return out, nil
}

// wireEvent is a stored event in the fields SSE carries.
func wireEvent(codec eventlog.Codec, ev store.Event) ssewire.Event {
	return ssewire.Event{
		Position: codec.Encode(ev.Position), RunID: ev.RunID, Workflow: ev.Workflow, Type: ev.Type,
		StepRunID: ev.StepRunID, Step: ev.Step, Attempt: ev.Attempt, Stream: ev.Stream, Payload: ev.Payload, Data: ev.Data,
		Time: ev.CreatedAt,
	}
}
