package server_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/server"
)

// A worker that stops on purpose says so: the step it was running is
// re-queued at once as a new attempt, on another worker, instead of after
// the heartbeat timeout (ten minutes here, longer than the test waits).
func TestStoppedWorkerStepsAreRequeuedAtOnce(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, n *node) {
		started := make(chan struct{}, 1)
		wf := runnel.NewWorkflow("leaving").Step("work", func(sc runnel.Context) (any, error) {
			if sc.RetryCount() == 0 && sc.Attempt() == 1 {
				started <- struct{}{}
				<-sc.Done() // the worker stops: the step ends without a result
				return nil, sc.Err()
			}
			return map[string]int{"attempt": sc.Attempt()}, nil
		})
		stopA := startWorker(t, n, "worker-a", 1, wf)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		runID, err := n.client.Admin().RunWorkflow(ctx, "leaving", nil)
		require.NoError(t, err)
		select {
		case <-started:
		case <-ctx.Done():
			t.Fatal("the step never started")
		}
		startWorker(t, n, "worker-b", 1, wf)
		stopA()

		run, _ := waitRun(t, n, runID)
		require.Equal(t, runnel.RunCompleted, run.Status)
		step := run.Steps[0]
		require.Equal(t, 2, step.Attempt)
		require.Len(t, step.Attempts, 2)
		require.Contains(t, step.Attempts[0].Error, "worker stopped")
	}, func(cfg *server.Config) { cfg.Engine.HeartbeatTimeout = 10 * time.Minute })
}
