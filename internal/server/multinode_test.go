package server_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/demo"
	"github.com/runnel-dev/runnel/internal/server"
)

// Two engine nodes on one PostgreSQL schema: a worker on node A runs what is
// triggered through node B, and a subscriber on node B, whose safety poll is
// made too slow to matter, follows it live: node B learns of node A's
// appends through PostgreSQL notifications.
func TestSecondNodeFollowsThroughNotifications(t *testing.T) {
	t.Parallel()
	a := startNode(t, "postgres")
	b := startNode(t, "postgres", func(cfg *server.Config) {
		cfg.DatabaseURL = a.srv.Config().DatabaseURL
		cfg.Engine.SubscriptionPoll = 10 * time.Minute
	})
	// The nodes share the admin token of the database's first start.
	b.client = clientFor(t, b, a.srv.AdminToken)
	startWorker(t, a, "on-a", 4, demo.Workflows()...)

	ctx := context.Background()
	runID, err := b.client.Admin().RunWorkflow(ctx, "demo-text", map[string]int{"chunks": 20, "intervalMs": 20})
	require.NoError(t, err)
	run, events := waitRun(t, b, runID)
	require.Equal(t, runnel.RunCompleted, run.Status, run.Error)
	var text string
	for _, ev := range events {
		if ev.Type == runnel.EventStepStream {
			text += string(ev.Payload)
		}
	}
	require.Equal(t, demo.TextOutput(20), text)
}

func clientFor(t *testing.T, n *node, token string) *runnel.Client {
	t.Helper()
	c, err := runnel.NewClient(runnel.WithHost(n.url), runnel.WithToken(token), runnel.WithLogger(testLogger(t)))
	require.NoError(t, err)
	return c
}

// A worker given both nodes' addresses runs on node A; node A goes away
// mid-run (a graceful stop); the worker keeps running its step, reconnects
// to node B by itself and resumes the attempt there: the step completes as
// attempt 1, its stream holds each tick once, and a subscriber on node B
// ends with exactly the stored sequence.
func TestWorkerFailsOverToSecondNode(t *testing.T) {
	t.Parallel()
	a := startNode(t, "postgres")
	b := startNode(t, "postgres", func(cfg *server.Config) { cfg.DatabaseURL = a.srv.Config().DatabaseURL })
	b.client = clientFor(t, b, a.srv.AdminToken)
	both, err := runnel.NewClient(runnel.WithHost(a.url+","+b.url), runnel.WithToken(a.srv.AdminToken), runnel.WithLogger(testLogger(t)))
	require.NoError(t, err)
	startWorker(t, &node{srv: a.srv, client: both, url: a.url}, "both", 2, demo.Workflows()...)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	runID, err := b.client.Admin().RunWorkflow(ctx, "demo-slow", map[string]int{"seconds": 3})
	require.NoError(t, err)
	var seen []runnel.Event
	stopped := false
	for ev, err := range b.client.Listener().Stream(ctx, runID) {
		require.NoError(t, err)
		seen = append(seen, ev)
		if !stopped && ev.Type == runnel.EventStepStream {
			stopped = true
			require.NoError(t, a.srv.Stop(ctx))
		}
	}
	require.True(t, stopped)
	require.Equal(t, runnel.EventRunCompleted, seen[len(seen)-1].Type)
	_, stored := waitRun(t, b, runID)
	require.Equal(t, stored, seen)
	run, err := b.client.Admin().GetRun(ctx, runID)
	require.NoError(t, err)
	require.Equal(t, 1, run.Steps[0].Attempt, "the step interrupted with node A went on through node B")
	require.Len(t, run.Steps[0].Attempts, 1)
	var text string
	for _, ev := range stored {
		if ev.Type == runnel.EventStepStream {
			text += string(ev.Payload)
		}
	}
	require.Equal(t, "tick 0tick 1tick 2", text)
}

// A run cancelled through node B stops its step on a worker connected to
// node A: node A finds the attempt ended when it reconciles its sessions
// with the store.
func TestCancelThroughOtherNodeStopsStep(t *testing.T) {
	t.Parallel()
	a := startNode(t, "postgres")
	b := startNode(t, "postgres", func(cfg *server.Config) { cfg.DatabaseURL = a.srv.Config().DatabaseURL })
	b.client = clientFor(t, b, a.srv.AdminToken)
	started, stopped := make(chan struct{}), make(chan struct{})
	wf := runnel.NewWorkflow("long").Step("s", func(ctx runnel.Context) (any, error) {
		close(started)
		<-ctx.Done()
		close(stopped)
		return nil, ctx.Err()
	})
	startWorker(t, a, "on-a", 1, wf)
	ctx := context.Background()
	runID, err := b.client.Admin().RunWorkflow(ctx, "long", nil)
	require.NoError(t, err)
	<-started
	require.NoError(t, b.client.Admin().CancelRun(ctx, runID))
	select {
	case <-stopped:
	case <-time.After(30 * time.Second):
		t.Fatal("the step on node A's worker was not stopped")
	}
	run, _ := waitRun(t, b, runID)
	require.Equal(t, runnel.RunCancelled, run.Status)
}
