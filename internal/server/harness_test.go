package server_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/engine"
	"github.com/runnel-dev/runnel/internal/server"
	"github.com/runnel-dev/runnel/internal/testengine"
)

// stores are the dialects every engine behaviour is checked on.
var stores = []string{"sqlite", "postgres"}

type node struct {
	srv    *server.Server
	client *runnel.Client
	url    string
}

// startNode starts an in-process engine node (internal/testengine) on a
// fresh database of the given kind, with short timers so worker loss and
// timeouts are quick.
func startNode(t testing.TB, kind string, adjust ...func(*server.Config)) *node {
	t.Helper()
	opts := []testengine.Option{func(cfg *server.Config) {
		cfg.Engine = engine.Config{
			HeartbeatInterval:   200 * time.Millisecond,
			HeartbeatTimeout:    5 * time.Second, // generous: CI machines under -race are slow
			MaintenanceInterval: 50 * time.Millisecond,
			DispatchInterval:    50 * time.Millisecond,
		}
	}}
	for _, f := range adjust {
		opts = append(opts, f)
	}
	e := testengine.StartOn(t, kind, opts...)
	return &node{srv: e.Server, client: e.Client, url: e.URL}
}

// startWorker runs a worker with the workflows until the test ends; the
// returned stop function ends it early and waits for it.
func startWorker(t *testing.T, n *node, name string, slots int, wfs ...*runnel.Workflow) (stop func()) {
	t.Helper()
	w, err := n.client.NewWorker(name, runnel.WithSlots(slots))
	require.NoError(t, err)
	require.NoError(t, w.Register(wfs...))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	select {
	case <-w.Ready():
	case err := <-done:
		t.Fatalf("worker %s stopped before registering: %v", name, err)
	}
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		require.NoError(t, <-done)
	}
	t.Cleanup(stop)
	return stop
}

// waitRun follows a run until it ends and returns it with its events.
func waitRun(t *testing.T, n *node, runID string) (*runnel.Run, []runnel.Event) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var events []runnel.Event
	for ev, err := range n.client.Listener().Stream(ctx, runID) {
		require.NoError(t, err)
		events = append(events, ev)
	}
	require.NotEmpty(t, events)
	require.True(t, events[len(events)-1].Terminal(), "stream ended without a terminal event")
	run, err := n.client.Admin().GetRun(ctx, runID)
	require.NoError(t, err)
	return run, events
}

func testLogger(testing.TB) *slog.Logger { return testengine.Logger() }

func forEachStore(t *testing.T, fn func(t *testing.T, n *node), adjust ...func(*server.Config)) {
	for _, kind := range stores {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			fn(t, startNode(t, kind, adjust...))
		})
	}
}

// defaultWorkerTimers keeps the engine's production heartbeat timeout, for
// tests that load the machine enough to delay a 200 ms heartbeat by a second.
func defaultWorkerTimers(cfg *server.Config) {
	cfg.Engine.HeartbeatInterval, cfg.Engine.HeartbeatTimeout = 0, 0
}

// finalAttempt keeps the events of steps' last attempts (and the run's own
// events): on a machine loaded enough to delay a worker's heartbeats past
// the timeout, a step runs again as a new attempt and streams again, and
// what a user reads as the step's output is its final attempt's stream.
func finalAttempt(events []runnel.Event) []runnel.Event {
	last := map[string]int{}
	for _, ev := range events {
		if ev.StepRunID != "" {
			last[ev.StepRunID] = max(last[ev.StepRunID], ev.Attempt)
		}
	}
	var out []runnel.Event
	for _, ev := range events {
		if ev.StepRunID == "" || ev.Attempt == last[ev.StepRunID] {
			out = append(out, ev)
		}
	}
	return out
}
