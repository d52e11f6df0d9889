package metrics_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/metrics"
	"github.com/runnel-dev/runnel/internal/store"
)

// Parts built without metrics call the hooks on a nil *Metrics.
func TestNilMetricsAreNoOps(t *testing.T) {
	t.Parallel()
	var m *metrics.Metrics
	m.RunTriggered("wf")
	m.Committed([]store.Event{{Type: store.EventRunCompleted}})
	m.AppendCommitted(3, time.Millisecond)
	m.RegisterWorkerSlots(func() metrics.WorkerSlots { return metrics.WorkerSlots{} })
	sub := m.Subscribed(context.Background(), metrics.SourceRun)
	called := false
	deliver := sub.Deliver(func([]store.Event, int64) error { called = true; return nil })
	require.NoError(t, deliver(nil, 1))
	require.True(t, called)
	sub.Done()
	h := http.NotFoundHandler()
	require.NotNil(t, m.Middleware(h))
	rec := httptest.NewRecorder()
	m.Handler(nil).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	require.Equal(t, http.StatusNotFound, rec.Code)
}

// Lag is observed only for events created while the subscription was open:
// a replay of history is not lag.
func TestSubscriberLagIgnoresReplay(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	ctx := metrics.WithTransport(context.Background(), metrics.TransportSSE)
	sub := m.Subscribed(ctx, metrics.SourceRun)
	deliver := sub.Deliver(func([]store.Event, int64) error { return nil })
	old := store.Event{Type: store.EventStepStream, CreatedAt: time.Now().Add(-time.Hour)}
	require.NoError(t, deliver([]store.Event{old, old}, 2))
	samples := func() uint64 {
		fams, err := m.Registry().Gather()
		require.NoError(t, err)
		for _, f := range fams {
			if f.GetName() == "runnel_subscriber_lag_seconds" {
				return f.GetMetric()[0].GetHistogram().GetSampleCount()
			}
		}
		return 0
	}
	require.Equal(t, uint64(0), samples(), "a replay is not lag")
	live := store.Event{Type: store.EventStepStream, CreatedAt: time.Now()}
	require.NoError(t, deliver([]store.Event{old, live, live}, 5))
	require.Equal(t, uint64(1), samples(), "one observation per batch")
	sub.Done()
}
