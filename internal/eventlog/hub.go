// Package eventlog is the run event log above the store: the group-commit
// appender for stream events, the in-process notifier that wakes
// subscribers, the subscription reader, and the client position codec.
package eventlog

import (
	"sync"

	"github.com/runnel-dev/runnel/internal/store"
)

// Hub wakes subscribers when runs get new events. It carries no data: a
// woken subscriber reads the store from its own position, so a wake-up that
// is missed or coalesced can delay an event, never lose it.
//
// Each run being waited on has one channel, closed (a broadcast) on the next
// notification for that run and replaced by a fresh one for later waiters.
// A run nobody waits on costs nothing.
type Hub struct {
	mu   sync.Mutex
	runs map[string]chan struct{}
	any  chan struct{}
}

// NewHub returns an empty hub.
func NewHub() *Hub {
	return &Hub{runs: make(map[string]chan struct{}), any: make(chan struct{})}
}

// Wait returns a channel that is closed at the next notification for the
// run. Call it before reading the store, so an append that commits between
// the read and the wait is not missed.
func (h *Hub) Wait(runID string) <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	ch, ok := h.runs[runID]
	if !ok {
		ch = make(chan struct{})
		h.runs[runID] = ch
	}
	return ch
}

// WaitAny returns a channel closed at the next notification of any run.
func (h *Hub) WaitAny() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.any
}

// NotifyRuns wakes everyone waiting on the given runs, and WaitAny waiters.
func (h *Hub) NotifyRuns(runIDs ...string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, id := range runIDs {
		if ch, ok := h.runs[id]; ok {
			close(ch)
			delete(h.runs, id)
		}
	}
	close(h.any)
	h.any = make(chan struct{})
}

// NotifyAll wakes every waiter of every run: after a lost notification
// channel, assume everything changed.
func (h *Hub) NotifyAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, ch := range h.runs {
		close(ch)
		delete(h.runs, id)
	}
	close(h.any)
	h.any = make(chan struct{})
}

// CommitHook is the store commit hook that feeds the hub.
func (h *Hub) CommitHook(events []store.Event) {
	if len(events) == 0 {
		return
	}
	ids := make([]string, 0, 2)
	for _, ev := range events {
		if len(ids) == 0 || ids[len(ids)-1] != ev.RunID {
			ids = append(ids, ev.RunID)
		}
	}
	h.NotifyRuns(ids...)
}
