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
