package metrics

import (
	"strings"
	"time"

	"github.com/runnel-dev/runnel/internal/store"
)

// RunTriggered counts a run created on this node.
func (m *Metrics) RunTriggered(workflow string) {
	if m == nil {
		return
	}
	m.runsTriggered.WithLabelValues(workflow).Inc()
}

// Committed counts the events of a committed transaction and the run and
// step transitions they record. It is (part of) the store's commit hook, so
// it sees every event this node commits, whichever path wrote it, and only
// once the transaction has committed (a rolled-back or retried transaction
// counts nothing).
func (m *Metrics) Committed(events []store.Event) {
	if m == nil || len(events) == 0 {
		return
	}
	// Stream events are most of the log: count them with one update.
	streamed := 0
	for _, ev := range events {
		if ev.Type == store.EventStepStream {
			streamed++
			continue
		}
		m.eventsAppended.WithLabelValues(ev.Type).Inc()
		switch {
		case ev.Terminal():
			m.runsFinished.WithLabelValues(ev.Workflow, strings.TrimPrefix(ev.Type, "run.")).Inc()
		case ev.Type == store.EventStepStarted:
			m.stepAttemptsStarted.WithLabelValues(ev.Workflow).Inc()
		case ev.Type == store.EventStepCompleted, ev.Type == store.EventStepFailed,
			ev.Type == store.EventStepTimedOut, ev.Type == store.EventStepCancelled:
			m.stepAttemptsFinished.WithLabelValues(ev.Workflow, strings.TrimPrefix(ev.Type, "step.")).Inc()
		}
	}
	if streamed > 0 {
		m.eventsAppended.WithLabelValues(store.EventStepStream).Add(float64(streamed))
	}
}

// AppendCommitted records one group commit of the stream appender: the
// stream events it wrote and how long its transaction took.
func (m *Metrics) AppendCommitted(events int, took time.Duration) {
	if m == nil {
		return
	}
	m.appendBatchEvents.Observe(float64(events))
	m.appendCommitSeconds.Observe(took.Seconds())
}

// StoreWrite counts one write transaction of the engine.
func (m *Metrics) StoreWrite() {
	if m == nil {
		return
	}
	m.storeWrites.Inc()
}
