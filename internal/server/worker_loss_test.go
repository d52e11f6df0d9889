package server_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/engine"
	"github.com/runnel-dev/runnel/internal/server"
)

// A step that takes its worker down every time (here: the worker is
// stopped as soon as the step starts) is re-queued as a new attempt each
// time (once the worker was silent for the heartbeat timeout, shortened
// here), but not forever: after engine.MaxLostAttempts lost attempts the
// step run and its run fail with an error saying why.
func TestStepThatKeepsLosingItsWorkerFails(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, n *node) {
		started := make(chan int)
		wf := func() *runnel.Workflow {
			return runnel.NewWorkflow("crasher").Step("s", func(ctx runnel.Context) (any, error) {
				select {
				case started <- ctx.Attempt():
				case <-ctx.Done():
					return nil, ctx.Err()
				}
				<-ctx.Done() // the worker goes away under it
				return nil, ctx.Err()
			}, runnel.Retries(2))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		stop := startWorker(t, n, "crash-0", 1, wf())
		runID, err := n.client.Admin().RunWorkflow(ctx, "crasher", nil)
		require.NoError(t, err)

		ended := make(chan struct{})
		var run *runnel.Run
		go func() {
			defer close(ended)
			run, _ = waitRun(t, n, runID)
		}()
		for i := 1; ; i++ {
			select {
			case attempt := <-started:
				require.Equal(t, i, attempt)
				stop()
				stop = startWorker(t, n, fmt.Sprintf("crash-%d", i), 1, wf())
				continue
			case <-ended:
			case <-ctx.Done():
				t.Fatal("the run did not end")
			}
			break
		}
		require.Equal(t, runnel.RunFailed, run.Status)
		require.Contains(t, run.Error, fmt.Sprintf("%d attempts of this step lost their worker", engine.MaxLostAttempts))
		s := run.Steps[0]
		require.Equal(t, runnel.StepFailed, s.Status)
		require.Equal(t, engine.MaxLostAttempts, s.Attempt, "no attempt after the last lost one")
		require.Len(t, s.Attempts, engine.MaxLostAttempts)
		for _, a := range s.Attempts {
			require.Equal(t, runnel.StepFailed, a.Status)
			require.Contains(t, a.Error, "worker lost")
		}
	}, func(cfg *server.Config) { cfg.Engine.HeartbeatTimeout = 2 * time.Second })
}
