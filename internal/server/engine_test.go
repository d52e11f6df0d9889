package server_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel"
)

// A diamond DAG: b and c run in parallel after a; d sees both outputs.
func TestDiamondRunsBranchesInParallel(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, n *node) {
		bStarted, cStarted := make(chan struct{}), make(chan struct{})
		// Each branch waits until the other has started: only possible if
		// they run at the same time.
		branch := func(mine, other chan struct{}, name string) runnel.StepFunc {
			return func(ctx runnel.Context) (any, error) {
				close(mine)
				select {
				case <-other:
				case <-time.After(30 * time.Second):
					return nil, fmt.Errorf("%s: sibling never started: branches do not run in parallel", name)
				}
				var a struct{ N int }
				if err := ctx.StepOutput("a", &a); err != nil {
					return nil, err
				}
				return map[string]int{"n": a.N + 1}, nil
			}
		}
		wf := runnel.NewWorkflow("diamond").
			Step("a", func(ctx runnel.Context) (any, error) { return map[string]int{"n": 1}, nil }).
			Step("b", branch(bStarted, cStarted, "b"), runnel.Parents("a")).
			Step("c", branch(cStarted, bStarted, "c"), runnel.Parents("a")).
			Step("d", func(ctx runnel.Context) (any, error) {
				var b, c struct{ N int }
				if err := ctx.StepOutput("b", &b); err != nil {
					return nil, err
				}
				if err := ctx.StepOutput("c", &c); err != nil {
					return nil, err
				}
				return map[string]int{"sum": b.N + c.N}, nil
			}, runnel.Parents("b", "c"))
		startWorker(t, n, "w", 4, wf)

		runID, err := n.client.Admin().RunWorkflow(context.Background(), "diamond", nil)
		require.NoError(t, err)
		run, events := waitRun(t, n, runID)
		require.Equal(t, runnel.RunCompleted, run.Status, run.Error)
		require.JSONEq(t, `{"a":{"n":1},"b":{"n":2},"c":{"n":2},"d":{"sum":4}}`, string(run.Output))
		require.Len(t, run.Steps, 4)
		for _, s := range run.Steps {
			require.Equal(t, runnel.StepCompleted, s.Status)
			require.Equal(t, 1, s.Attempt)
			require.Len(t, s.Attempts, 1)
		}
		// d starts only after both b and c completed.
		completed := map[string]int{}
		for i, ev := range events {
			if ev.Type == runnel.EventStepCompleted {
				completed[ev.Step] = i
			}
			if ev.Type == runnel.EventStepStarted && ev.Step == "d" {
				require.Contains(t, completed, "b")
				require.Contains(t, completed, "c")
			}
		}
		require.Equal(t, runnel.EventRunStarted, events[0].Type)
		require.Equal(t, runnel.EventRunCompleted, events[len(events)-1].Type)
	})
}

// Retries are visible as attempts, with each attempt's stream events
// carrying its attempt number.
func TestRetriesAreVisibleAsAttempts(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, n *node) {
		wf := runnel.NewWorkflow("flaky").Step("s", func(ctx runnel.Context) (any, error) {
			if err := ctx.PutStream(fmt.Appendf(nil, "attempt %d", ctx.Attempt())); err != nil {
				return nil, err
			}
			if ctx.Attempt() < 3 {
				return nil, fmt.Errorf("boom %d", ctx.Attempt())
			}
			return map[string]int{"attempt": ctx.Attempt()}, nil
		}, runnel.Retries(3), runnel.Backoff(10*time.Millisecond))
		startWorker(t, n, "w", 2, wf)

		runID, err := n.client.Admin().RunWorkflow(context.Background(), "flaky", nil)
		require.NoError(t, err)
		run, events := waitRun(t, n, runID)
		require.Equal(t, runnel.RunCompleted, run.Status, run.Error)
		s := run.Steps[0]
		require.Equal(t, 3, s.Attempt)
		require.Len(t, s.Attempts, 3)
		require.Equal(t, runnel.StepFailed, s.Attempts[0].Status)
		require.Equal(t, "boom 1", s.Attempts[0].Error)
		require.Equal(t, runnel.StepFailed, s.Attempts[1].Status)
		require.Equal(t, runnel.StepCompleted, s.Attempts[2].Status)

		var streams []string
		for _, ev := range events {
			if ev.Type == runnel.EventStepStream {
				streams = append(streams, fmt.Sprintf("%d:%s", ev.Attempt, ev.Payload))
			}
		}
		require.Equal(t, []string{"1:attempt 1", "2:attempt 2", "3:attempt 3"}, streams)
	})
}

// A failure that exhausts the retries fails the run.
func TestFailureAfterRetriesFailsRun(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, n *node) {
		wf := runnel.NewWorkflow("doomed").
			Step("s", func(ctx runnel.Context) (any, error) { return nil, errors.New("always") }, runnel.Retries(1)).
			Step("after", func(ctx runnel.Context) (any, error) { return nil, nil }, runnel.Parents("s"))
		startWorker(t, n, "w", 2, wf)
		runID, err := n.client.Admin().RunWorkflow(context.Background(), "doomed", nil)
		require.NoError(t, err)
		run, _ := waitRun(t, n, runID)
		require.Equal(t, runnel.RunFailed, run.Status)
		require.Contains(t, run.Error, "always")
		require.Equal(t, runnel.StepFailed, run.Steps[0].Status)
		require.Len(t, run.Steps[0].Attempts, 2)
		require.Equal(t, runnel.StepCancelled, run.Steps[1].Status)
	})
}

// Attempts that exceed their timeout are timed out, retried, and finally
// time the run out; the step's context is cancelled each time.
func TestStepTimeout(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, n *node) {
		cancelled := make(chan int, 4)
		wf := runnel.NewWorkflow("sleepy").Step("s", func(ctx runnel.Context) (any, error) {
			<-ctx.Done()
			cancelled <- ctx.Attempt()
			return nil, ctx.Err()
		}, runnel.Timeout(300*time.Millisecond), runnel.Retries(1))
		startWorker(t, n, "w", 2, wf)
		runID, err := n.client.Admin().RunWorkflow(context.Background(), "sleepy", nil)
		require.NoError(t, err)
		run, events := waitRun(t, n, runID)
		require.Equal(t, runnel.RunTimedOut, run.Status)
		s := run.Steps[0]
		require.Equal(t, runnel.StepTimedOut, s.Status)
		require.Len(t, s.Attempts, 2)
		for _, a := range s.Attempts {
			require.Equal(t, runnel.StepTimedOut, a.Status)
			require.Contains(t, a.Error, "timed out")
		}
		require.Equal(t, 1, <-cancelled)
		require.Equal(t, 2, <-cancelled)
		var timedOut int
		for _, ev := range events {
			if ev.Type == runnel.EventStepTimedOut {
				timedOut++
			}
		}
		require.Equal(t, 2, timedOut)
	})
}

// Cancelling a run cancels the context of its running step.
func TestCancelRun(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, n *node) {
		started, stopped := make(chan struct{}), make(chan struct{})
		wf := runnel.NewWorkflow("long").Step("s", func(ctx runnel.Context) (any, error) {
			close(started)
			<-ctx.Done()
			close(stopped)
			return nil, ctx.Err()
		})
		startWorker(t, n, "w", 1, wf)
		ctx := context.Background()
		runID, err := n.client.Admin().RunWorkflow(ctx, "long", nil)
		require.NoError(t, err)
		<-started
		require.NoError(t, n.client.Admin().CancelRun(ctx, runID))
		<-stopped
		run, events := waitRun(t, n, runID)
		require.Equal(t, runnel.RunCancelled, run.Status)
		require.Equal(t, runnel.StepCancelled, run.Steps[0].Status)
		require.Equal(t, runnel.EventStepCancelled, events[len(events)-2].Type)
		require.Equal(t, runnel.EventRunCancelled, events[len(events)-1].Type)

		// A finished run cannot be cancelled again, and nothing changes.
		err = n.client.Admin().CancelRun(ctx, runID)
		require.Equal(t, connect.CodeFailedPrecondition, connect.CodeOf(err), "%v", err)
	})
}

// A worker that goes away has its step re-queued as a new attempt, which
// another worker completes; the lost attempt does not use up retries.
func TestWorkerLossRequeuesAsNewAttempt(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, n *node) {
		started := make(chan struct{})
		first := runnel.NewWorkflow("handoff").Step("s", func(ctx runnel.Context) (any, error) {
			close(started)
			<-ctx.Done() // never finishes on the first worker
			return nil, ctx.Err()
		})
		stopFirst := startWorker(t, n, "first", 1, first)
		ctx := context.Background()
		runID, err := n.client.Admin().RunWorkflow(ctx, "handoff", nil)
		require.NoError(t, err)
		<-started
		stopFirst()

		second := runnel.NewWorkflow("handoff").Step("s", func(ctx runnel.Context) (any, error) {
			return map[string]int{"attempt": ctx.Attempt()}, nil
		})
		startWorker(t, n, "second", 1, second)
		run, _ := waitRun(t, n, runID)
		require.Equal(t, runnel.RunCompleted, run.Status, run.Error)
		s := run.Steps[0]
		require.Equal(t, 2, s.Attempt)
		require.Len(t, s.Attempts, 2)
		require.Equal(t, runnel.StepFailed, s.Attempts[0].Status)
		require.Contains(t, s.Attempts[0].Error, "worker")
		require.Equal(t, runnel.StepCompleted, s.Attempts[1].Status)
		require.NotEqual(t, s.Attempts[0].WorkerID, s.Attempts[1].WorkerID)
	})
}
