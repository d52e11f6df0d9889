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

// frame returns the SSE frame of ev: id (its position), event (its type)
// and data.
func (c *frameCache) frame(codec eventlog.Codec, ev store.Event) ([]byte, error) {
	c.mu.Lock()
	f, ok := c.frames[ev.Position]
	c.mu.Unlock()
	if ok {
		return f, nil
	}
	var b bytes.Buffer
	err := ssewire.Write(&b, wireEvent(codec, ev))
	if err != nil {
		return nil, err
	}
	f = b.Bytes()
	if len(f) <= frameCacheMaxFrame {
		c.put(ev.Position, f)
	}
	return f, nil
}

func (c *frameCache) put(pos int64, f []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
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

// wireEvent is a stored event in the fields SSE carries.
func wireEvent(codec eventlog.Codec, ev store.Event) ssewire.Event {
	return ssewire.Event{
		Position: codec.Encode(ev.Position), RunID: ev.RunID, Workflow: ev.Workflow, Type: ev.Type,
		StepRunID: ev.StepRunID, Step: ev.Step, Attempt: ev.Attempt, Stream: ev.Stream, Payload: ev.Payload, Data: ev.Data,
		Time: ev.CreatedAt,
	}
}
