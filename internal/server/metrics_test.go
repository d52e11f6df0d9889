package server_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/demo"
)

// scrape is one parsed GET /metrics.
type scrape map[string]*dto.MetricFamily

func scrapeMetrics(t *testing.T, n *node) scrape {
	t.Helper()
	resp, err := http.Get(n.url + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	require.NoError(t, err, "parse /metrics")
	return fams
}

// series finds the series of a family with exactly these labels.
func (s scrape) series(name string, labels ...string) (*dto.Metric, bool) {
	fam, ok := s[name]
	if !ok {
		return nil, false
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
next:
	for _, m := range fam.GetMetric() {
		if len(m.GetLabel()) != len(want) {
			continue
		}
		for _, l := range m.GetLabel() {
			if v, ok := want[l.GetName()]; !ok || v != l.GetValue() {
				continue next
			}
		}
		return m, true
	}
	return nil, false
}

// value is a counter's or gauge's value; 0 when the series is absent (a
// labelled series appears at its first increment).
func (s scrape) value(name string, labels ...string) float64 {
	m, ok := s.series(name, labels...)
	switch {
	case !ok:
		return 0
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Untyped != nil:
		return m.GetUntyped().GetValue()
	}
	return 0
}

// histogram returns a histogram series' count and sum (zero when absent).
func (s scrape) histogram(name string, labels ...string) (count uint64, sum float64) {
	m, ok := s.series(name, labels...)
	if !ok || m.Histogram == nil {
		return 0, 0
	}
	return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
}

// sum adds every series of a counter or gauge family.
func (s scrape) sum(name string) float64 {
	total := 0.0
	for _, m := range s[name].GetMetric() {
		total += m.GetCounter().GetValue() + m.GetGauge().GetValue()
	}
	return total
}

// waitMetrics scrapes until cond holds, failing with the last scrape's
// explanation at the deadline.
func waitMetrics(t *testing.T, n *node, what string, cond func(s scrape) string) scrape {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s := scrapeMetrics(t, n)
		why := cond(s)
		if why == "" {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics never showed %s: %s", what, why)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not a synchronisation
	}
}

// wantValues is a condition for waitMetrics: each series has its value.
type wantValue struct {
	name   string
	labels []string
	value  float64
}

func allValues(wants ...wantValue) func(s scrape) string {
	return func(s scrape) string {
		var diffs []string
		for _, w := range wants {
			if got := s.value(w.name, w.labels...); got != w.value {
				diffs = append(diffs, fmt.Sprintf("%s%v = %v, want %v", w.name, w.labels, got, w.value))
			}
		}
		return strings.Join(diffs, "; ")
	}
}

// /metrics, scraped over HTTP while a real workload runs: runs triggered
// and finished, step attempts, events appended and the appender's batches,
// subscribers of every kind connected mid-stream (SDK run and metadata
// subscriptions, SSE), their lag, SSE connections, worker slots and active
// runs, each checked against what the test did.
func TestMetrics(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, n *node) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()

		// gated streams a first slice, then waits for the test to connect
		// its subscribers before streaming the rest.
		streamedFirst := make(chan struct{})
		release := make(chan struct{})
		const slice = 10
		gated := runnel.NewWorkflow("gated").Step("emit", func(sc runnel.Context) (any, error) {
			put := func(from int) error {
				for i := from; i < from+slice; i++ {
					if err := sc.PutStream([]byte(strconv.Itoa(i))); err != nil {
						return err
					}
				}
				return sc.Flush()
			}
			if err := put(0); err != nil {
				return nil, err
			}
			close(streamedFirst)
			select {
			case <-release:
			case <-sc.Done():
				return nil, sc.Err()
			}
			return map[string]int{"events": 2 * slice}, put(slice)
		})
		doomed := runnel.NewWorkflow("doomed").Step("fail", func(sc runnel.Context) (any, error) {
			return nil, runnel.NonRetryable(errors.New("doomed to fail"))
		})
		wfs := append(demo.Workflows(), gated, doomed)
		startWorker(t, n, "metrics", 4, wfs...)

		// The workload: demo text runs followed to the end by the SDK, and a
		// run that fails.
		totalEvents := 0
		for range 3 {
			runID, err := n.client.Admin().RunWorkflow(ctx, demo.Text, map[string]int{"chunks": 40, "intervalMs": 0})
			require.NoError(t, err)
			run, events := waitRun(t, n, runID)
			require.Equal(t, runnel.RunCompleted, run.Status)
			totalEvents += len(events)
		}
		doomedID, err := n.client.Admin().RunWorkflow(ctx, "doomed", nil)
		require.NoError(t, err)
		run, events := waitRun(t, n, doomedID)
		require.Equal(t, runnel.RunFailed, run.Status)
		totalEvents += len(events)

		// Mid-stream: the gated run holds a slot while subscribers of every
		// kind are connected.
		batch := "metrics-" + strconv.FormatInt(time.Now().UnixNano(), 36)
		gatedID, err := n.client.Admin().RunWorkflow(ctx, "gated", nil, runnel.WithAdditionalMetadata(map[string]string{"batch": batch}))
		require.NoError(t, err)
		<-streamedFirst

		var wg sync.WaitGroup
		connected := make(chan string, 8)
		gatedEvents := make([]int, 2) // per SDK run subscriber
		for i := range gatedEvents {
			wg.Go(func() {
				first := true
				for ev, err := range n.client.Listener().Stream(ctx, gatedID) {
					if err != nil {
						t.Errorf("SDK subscriber %d: %v", i, err)
						return
					}
					gatedEvents[i]++
					if first && ev.Type == runnel.EventStepStream {
						first = false
						connected <- "sdk run"
					}
				}
			})
		}
		metaCtx, stopMeta := context.WithCancel(ctx)
		defer stopMeta()
		wg.Go(func() {
			first := true
			for ev, err := range n.client.Listener().StreamByAdditionalMetadata(metaCtx, "batch", batch) {
				if err != nil {
					if metaCtx.Err() == nil {
						t.Errorf("SDK metadata subscriber: %v", err)
					}
					return
				}
				if first && ev.Type == runnel.EventStepStream {
					first = false
					connected <- "sdk metadata"
				}
				if ev.Terminal() {
					return // the subscription ends when we stop reading
				}
			}
		})
		sseFrames := make([]int, 2)
		for i := range sseFrames {
			resp := openSSE(t, n.url+"/api/v1/runs/"+gatedID+"/stream", n.srv.AdminToken)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			wg.Go(func() {
				defer resp.Body.Close()
				sc := bufio.NewScanner(resp.Body)
				first := true
				for sc.Scan() {
					line := sc.Text()
					if strings.HasPrefix(line, "event: ") {
						sseFrames[i]++
					}
					if first && line == "event: step.stream" {
						first = false
						connected <- "sse"
					}
				}
			})
		}
		for range 5 {
			select {
			case <-connected:
			case <-ctx.Done():
				t.Fatal("subscribers did not receive the first slice")
			}
		}

		// Gauges while they are connected. Subscriptions of the finished
		// runs close as their streams end, so wait for the exact figures.
		mid := waitMetrics(t, n, "the connected subscribers", allValues(
			wantValue{"runnel_subscribers", []string{"transport", "rpc", "source", "run"}, 2},
			wantValue{"runnel_subscribers", []string{"transport", "rpc", "source", "metadata"}, 1},
			wantValue{"runnel_subscribers", []string{"transport", "sse", "source", "run"}, 2},
			wantValue{"runnel_subscribers", []string{"transport", "sse", "source", "metadata"}, 0},
			wantValue{"runnel_sse_connections", nil, 2},
		))
		require.Equal(t, 1.0, mid.value("runnel_workers_connected"))
		require.Equal(t, 4.0, mid.value("runnel_worker_slots"))
		require.Equal(t, 1.0, mid.value("runnel_worker_slots_in_use"), "the gated step holds one slot")
		require.Equal(t, 1.0, mid.value("runnel_runs_active", "status", "running"))
		require.Equal(t, 0.0, mid.value("runnel_runs_active", "status", "queued"))

		close(release)
		run, events = waitRun(t, n, gatedID)
		require.Equal(t, runnel.RunCompleted, run.Status)
		totalEvents += len(events)
		// The metadata subscriber ends by itself on the run's terminal
		// event; cancelling it now could cut it off before the second
		// slice reached it (its feed may trail the run's own).
		wg.Wait()
		stopMeta()
		require.Equal(t, []int{len(events), len(events)}, gatedEvents)
		require.Equal(t, []int{len(events) + 1, len(events) + 1}, sseFrames, "each SSE client got every event and the end")

		// Everyone disconnected: the gauges drop back to 0.
		end := waitMetrics(t, n, "every subscriber gone", allValues(
			wantValue{"runnel_subscribers", []string{"transport", "rpc", "source", "run"}, 0},
			wantValue{"runnel_subscribers", []string{"transport", "rpc", "source", "metadata"}, 0},
			wantValue{"runnel_subscribers", []string{"transport", "sse", "source", "run"}, 0},
			wantValue{"runnel_sse_connections", nil, 0},
			wantValue{"runnel_worker_slots_in_use", nil, 0},
			wantValue{"runnel_runs_active", []string{"status", "running"}, 0},
		))

		// Runs and step attempts, by workflow and status.
		for _, w := range []wantValue{
			{"runnel_runs_triggered_total", []string{"workflow", demo.Text}, 3},
			{"runnel_runs_triggered_total", []string{"workflow", "doomed"}, 1},
			{"runnel_runs_triggered_total", []string{"workflow", "gated"}, 1},
			{"runnel_runs_finished_total", []string{"workflow", demo.Text, "status", "completed"}, 3},
			{"runnel_runs_finished_total", []string{"workflow", "doomed", "status", "failed"}, 1},
			{"runnel_runs_finished_total", []string{"workflow", "gated", "status", "completed"}, 1},
			{"runnel_step_attempts_started_total", []string{"workflow", demo.Text}, 3},
			{"runnel_step_attempts_started_total", []string{"workflow", "doomed"}, 1},
			{"runnel_step_attempts_finished_total", []string{"workflow", demo.Text, "status", "completed"}, 3},
			{"runnel_step_attempts_finished_total", []string{"workflow", "doomed", "status", "failed"}, 1},
			{"runnel_step_attempts_finished_total", []string{"workflow", "gated", "status", "completed"}, 1},
		} {
			require.Equal(t, w.value, end.value(w.name, w.labels...), "%s%v", w.name, w.labels)
		}
		require.Equal(t, 5.0, end.sum("runnel_runs_finished_total"))

		// Events: this node appended the whole log the subscribers read,
		// and every stream event went through a group commit.
		require.Equal(t, float64(totalEvents), end.sum("runnel_events_appended_total"))
		streamed := end.value("runnel_events_appended_total", "type", "step.stream")
		require.Equal(t, float64(3*40+2*slice), streamed)
		require.Equal(t, 5.0, end.value("runnel_events_appended_total", "type", "run.started"))
		batches, batchSum := end.histogram("runnel_append_batch_events")
		require.Positive(t, batches)
		require.Equal(t, streamed, batchSum, "the batches add up to the stream events")
		commits, commitSeconds := end.histogram("runnel_append_commit_duration_seconds")
		require.Equal(t, batches, commits)
		require.Positive(t, commitSeconds)

		// Lag was observed for the live events each kind of subscriber got
		// (the second slice arrived while they were connected).
		for _, kind := range [][]string{{"transport", "rpc", "source", "run"}, {"transport", "rpc", "source", "metadata"}, {"transport", "sse", "source", "run"}} {
			count, sum := end.histogram("runnel_subscriber_lag_seconds", kind...)
			require.Positive(t, count, "lag of %v", kind)
			require.GreaterOrEqual(t, sum, 0.0)
		}

		// HTTP requests by route pattern; runtime and process collectors.
		require.Equal(t, 2.0, end.value("runnel_http_requests_total", "route", "GET /api/v1/runs/{runId}/stream", "code", "200"))
		require.Positive(t, end.value("runnel_http_requests_total", "route", "/runnel.v1.RunService/Subscribe", "code", "200"))
		require.Positive(t, end.value("runnel_http_requests_total", "route", "/runnel.v1.RunService/TriggerRun", "code", "200"))
		require.Positive(t, end.value("runnel_http_requests_total", "route", "GET /metrics", "code", "200"))
		require.Positive(t, end.value("go_goroutines"))
		require.Positive(t, end.value("process_resident_memory_bytes"))
	})
}

// Two nodes in one process keep their own registries.
func TestMetricsPerNode(t *testing.T) {
	t.Parallel()
	a, b := startNode(t, "sqlite"), startNode(t, "sqlite")
	startWorker(t, a, "demo", 2, demo.Workflows()...)
	runID, err := a.client.Admin().RunWorkflow(context.Background(), demo.Text, map[string]int{"chunks": 3, "intervalMs": 0})
	require.NoError(t, err)
	waitRun(t, a, runID)
	require.Equal(t, 1.0, scrapeMetrics(t, a).value("runnel_runs_triggered_total", "workflow", demo.Text))
	sb := scrapeMetrics(t, b)
	require.Equal(t, 0.0, sb.value("runnel_runs_triggered_total", "workflow", demo.Text))
	require.Equal(t, 0.0, sb.value("runnel_workers_connected"))
}
