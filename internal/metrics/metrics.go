// Package metrics defines the Prometheus metrics of an engine node and the
// hooks that feed them. Each node owns its registry (never the global
// default one), so several nodes in one process keep separate figures.
//
// Every method is safe on a nil *Metrics and then does nothing, so parts
// built without metrics (unit tests, tools) need no special case.
//
// Labels are bounded: workflow names, statuses, event types, transports and
// route patterns; never run, step run or worker ids.
package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/runnel-dev/runnel/internal/store"
)

const namespace = "runnel"

// Metrics holds a node's collectors.
type Metrics struct {
	registry *prometheus.Registry

	runsTriggered        *prometheus.CounterVec
	runsFinished         *prometheus.CounterVec
	stepAttemptsStarted  *prometheus.CounterVec
	stepAttemptsFinished *prometheus.CounterVec
	eventsAppended       *prometheus.CounterVec
	appendBatchEvents    prometheus.Histogram
	appendCommitSeconds  prometheus.Histogram
	subscribers          *prometheus.GaugeVec
	subscriberLagSeconds *prometheus.HistogramVec
	sseConnections       prometheus.Gauge
	httpRequests         *prometheus.CounterVec
	storeWrites          prometheus.Counter
}

// latencyBuckets cover a commit or a delivery from half a millisecond (a
// local SQLite commit) to half a minute (a stuck store or subscriber).
var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// New returns a node's metrics, registered with a registry of their own
// that also carries the Go runtime and process collectors.
func New() *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		runsTriggered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "runs_triggered_total",
			Help: "Runs created on this node (triggered, spawned as children, or started by a pushed event), by workflow.",
		}, []string{"workflow"}),
		runsFinished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "runs_finished_total",
			Help: "Runs that reached a terminal status in a transaction committed by this node, by workflow and status.",
		}, []string{"workflow", "status"}),
		stepAttemptsStarted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "step_attempts_started_total",
			Help: "Step run attempts assigned to workers by this node, by workflow (each retry is an attempt).",
		}, []string{"workflow"}),
		stepAttemptsFinished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "step_attempts_finished_total",
			Help: "Step run attempts ended in a transaction committed by this node, by workflow and status (completed, failed, timed_out, cancelled).",
		}, []string{"workflow", "status"}),
		eventsAppended: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "events_appended_total",
			Help: "Events committed to the run event log by this node, by event type.",
		}, []string{"type"}),
		appendBatchEvents: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "append_batch_events",
			Help:    "Stream events written per group commit of the stream appender.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 13), // 1 … 4096, the default batch cap
		}),
		appendCommitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "append_commit_duration_seconds",
			Help:    "Duration of one group commit of the stream appender (its whole transaction), in seconds.",
			Buckets: latencyBuckets,
		}),
		subscribers: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "subscribers",
			Help: "Open subscriptions on this node, by transport (rpc, sse) and source (run, metadata).",
		}, []string{"transport", "source"}),
		subscriberLagSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "subscriber_lag_seconds",
			Help: "Time from an event's creation to its delivery to a subscriber's connection, in seconds; " +
				"observed once per delivered batch (its oldest event) and only for events created while the subscription was open, so replays of history do not count.",
			Buckets: latencyBuckets,
		}, []string{"transport", "source"}),
		sseConnections: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "sse_connections",
			Help: "Server-Sent Events responses being streamed by this node.",
		}),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "http_requests_total",
			Help: "HTTP requests served, by route pattern and status code (counted when the response ends).",
		}, []string{"route", "code"}),
		storeWrites: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "store_write_transactions_total",
			Help: "Write transactions this node's engine ran on the store (each Store.Write call; retries inside it not counted again).",
		}),
	}
	m.registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.runsTriggered, m.runsFinished, m.stepAttemptsStarted, m.stepAttemptsFinished,
		m.eventsAppended, m.appendBatchEvents, m.appendCommitSeconds,
		m.subscribers, m.subscriberLagSeconds, m.sseConnections, m.httpRequests,
		m.storeWrites,
	)
	return m
}

// Registry returns the node's registry.
func (m *Metrics) Registry() *prometheus.Registry {
	if m == nil {
		return nil
	}
	return m.registry
}

// Handler serves the metrics in the Prometheus exposition formats. A
// collector that fails (the store unreachable for the active-runs count) is
// logged and left out; the other metrics are still served.
func (m *Metrics) Handler(log *slog.Logger) http.Handler {
	if m == nil {
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{
		ErrorLog:      slogErrorLog{log},
		ErrorHandling: promhttp.ContinueOnError,
	})
}

type slogErrorLog struct{ log *slog.Logger }

func (l slogErrorLog) Println(v ...any) {
	l.log.Warn("collect metrics", "err", slogArgs(v))
}

func slogArgs(v []any) any {
	if len(v) == 1 {
		return v[0]
	}
	return v
}

// WorkerSlots is a snapshot of the workers connected to a node.
type WorkerSlots struct {
	Workers int // sessions open on this node
	Slots   int // their slots in total
	InUse   int // slots running a step attempt
}

// RegisterWorkerSlots adds gauges read from stats at every scrape.
func (m *Metrics) RegisterWorkerSlots(stats func() WorkerSlots) {
	if m == nil {
		return
	}
	gauge := func(name, help string, pick func(WorkerSlots) int) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help},
			func() float64 { return float64(pick(stats())) })
	}
	m.registry.MustRegister(
		gauge("workers_connected", "Workers connected to this node.", func(s WorkerSlots) int { return s.Workers }),
		gauge("worker_slots", "Slots of the workers connected to this node.", func(s WorkerSlots) int { return s.Slots }),
		gauge("worker_slots_in_use", "Slots of the workers connected to this node that run a step attempt.", func(s WorkerSlots) int { return s.InUse }),
	)
}

// RegisterActiveRuns adds the runs_active gauge, counted in the store at
// every scrape (all nodes' runs, as the store is shared), each count bounded
// by timeout.
func (m *Metrics) RegisterActiveRuns(count func(context.Context) (map[store.RunStatus]int, error), timeout time.Duration) {
	if m == nil {
		return
	}
	m.registry.MustRegister(&activeRuns{
		count: count, timeout: timeout,
		desc: prometheus.NewDesc(namespace+"_runs_active",
			"Runs not finished, in the whole store (every node), by status (queued, running).",
			[]string{"status"}, nil),
	})
}

type activeRuns struct {
	count   func(context.Context) (map[store.RunStatus]int, error)
	timeout time.Duration
	desc    *prometheus.Desc
}

func (a *activeRuns) Describe(ch chan<- *prometheus.Desc) { ch <- a.desc }

func (a *activeRuns) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), a.timeout)
	defer cancel()
	counts, err := a.count(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(a.desc, err)
		return
	}
	for _, st := range []store.RunStatus{store.RunQueued, store.RunRunning} {
		ch <- prometheus.MustNewConstMetric(a.desc, prometheus.GaugeValue, float64(counts[st]), string(st))
	}
}
