package metrics

import (
	"context"
	"time"

	"github.com/runnel-dev/runnel/internal/store"
)

// Transports and sources of subscriptions (label values).
const (
	TransportRPC = "rpc"
	TransportSSE = "sse"

	SourceRun      = "run"
	SourceMetadata = "metadata"
)

type transportKey struct{}

// WithTransport records in ctx the transport of the request it serves, for
// the subscription metrics (the engine is transport-agnostic).
func WithTransport(ctx context.Context, transport string) context.Context {
	return context.WithValue(ctx, transportKey{}, transport)
}

func transportOf(ctx context.Context) string {
	if t, ok := ctx.Value(transportKey{}).(string); ok {
		return t
	}
	return "other" // an in-process caller
}

// Subscription tracks one open subscription.
type Subscription struct {
	m         *Metrics
	transport string
	source    string
	opened    time.Time
}

// Subscribed counts a subscription as open until Done. The transport comes
// from ctx (WithTransport).
func (m *Metrics) Subscribed(ctx context.Context, source string) *Subscription {
	if m == nil {
		return nil
	}
	s := &Subscription{m: m, transport: transportOf(ctx), source: source, opened: time.Now()}
	m.subscribers.WithLabelValues(s.transport, s.source).Inc()
	return s
}

// Done counts the subscription as closed.
func (s *Subscription) Done() {
	if s == nil {
		return
	}
	s.m.subscribers.WithLabelValues(s.transport, s.source).Dec()
}

// Deliver wraps a subscription's delivery function to observe the lag of
// the batches it delivers: the time from the creation of the batch's oldest
// event created since the subscription opened to the moment the batch was
// handed to the connection. Events created before are a replay of history,
// whose age says nothing about how far behind the subscriber is.
func (s *Subscription) Deliver(next func([]store.Event, int64) error) func([]store.Event, int64) error {
	if s == nil {
		return next
	}
	lag := s.m.subscriberLagSeconds.WithLabelValues(s.transport, s.source)
	return func(events []store.Event, pos int64) error {
		if err := next(events, pos); err != nil {
			return err
		}
		for _, ev := range events {
			if !ev.CreatedAt.Before(s.opened) {
				lag.Observe(max(time.Since(ev.CreatedAt), 0).Seconds())
				break
			}
		}
		return nil
	}
}
