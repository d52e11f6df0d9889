package eventlog

import (
	"sync"

	"github.com/runnel-dev/runnel/internal/store"
)

// sharedPayloads lets every subscriber that reads a large payload from the
// store hold the same copy. A subscriber holds the events it is writing
// until its client takes them; without sharing, 80 subscribers replaying
// a run with a 4 MiB payload each held a copy of their own (and a client
// that stops reading holds it until the write deadline drops it). Only the
// most recent large payloads are kept, up to a byte budget; a payload
// evicted while subscribers still write it stays alive through them, and
// the next reader makes a new shared copy.
type sharedPayloads struct {
	mu     sync.Mutex
	byPos  map[int64][]byte
	order  []int64 // insertion order; order[head:] are kept
	head   int
	bytes  int
	budget int
}

// sharedPayloadMin is the smallest payload shared: below it, a copy costs
// less than the lookup.
const sharedPayloadMin = 64 << 10

func newSharedPayloads(budget int) *sharedPayloads {
	return &sharedPayloads{byPos: make(map[int64][]byte), budget: budget}
}

// share replaces, in events freshly read from the store (not a feed's
// tail, which other subscribers read concurrently), each large payload by
// the shared copy of its position, and keeps the ones not yet shared.
func (s *sharedPayloads) share(events []store.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range events {
		ev := &events[i]
		if len(ev.Payload) < sharedPayloadMin {
			continue
		}
		if p, ok := s.byPos[ev.Position]; ok && len(p) == len(ev.Payload) {
			ev.Payload = p
			continue
		}
		s.keep(ev.Position, ev.Payload)
	}
}

func (s *sharedPayloads) keep(pos int64, p []byte) {
	if len(p) > s.budget {
		return
	}
	if old, ok := s.byPos[pos]; ok {
		s.bytes -= len(old)
	} else {
		s.order = append(s.order, pos)
	}
	s.byPos[pos] = p
	s.bytes += len(p)
	for s.bytes > s.budget {
		old := s.order[s.head]
		s.head++
		s.bytes -= len(s.byPos[old])
		delete(s.byPos, old)
	}
	if s.head > len(s.order)/2 {
		s.order = append(s.order[:0:0], s.order[s.head:]...)
		s.head = 0
	}
}
