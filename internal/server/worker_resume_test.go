package server_test

import (
	"context"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel"
	pb "github.com/runnel-dev/runnel/internal/gen/runnel/v1"
)

// Issue 16, at the protocol level: a worker's Listen stream breaks; nothing
// is re-queued. It registers again with its previous id and the one attempt
// it still runs: that attempt is resumed on the new worker id (same
// attempt, its stream continues at the next seq, its result accepted), the
// attempt it did not bring back is re-queued at once, and that attempt's
// late result is refused.
func TestReconnectingWorkerResumesItsAttempts(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, n *node) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		raw := newRaw(n, n.srv.AdminToken)
		def := &pb.WorkflowDefinition{Name: "resume", Steps: []*pb.StepDefinition{{Name: "a"}}}
		reg1, err := raw.worker.RegisterWorker(ctx, connect.NewRequest(&pb.RegisterWorkerRequest{
			Name: "w", Slots: 2, Workflows: []*pb.WorkflowDefinition{def},
		}))
		require.NoError(t, err)
		w1 := reg1.Msg.WorkerId
		listenCtx, closeListen := context.WithCancel(ctx)
		listen1, err := raw.worker.Listen(listenCtx, connect.NewRequest(&pb.ListenRequest{WorkerId: w1}))
		require.NoError(t, err)
		var runs []string
		for range 2 {
			r, err := raw.runs.TriggerRun(ctx, connect.NewRequest(&pb.TriggerRunRequest{Workflow: "resume"}))
			require.NoError(t, err)
			runs = append(runs, r.Msg.RunId)
		}
		got := map[string]*pb.StepAssignment{}
		for range 2 {
			require.True(t, listen1.Receive(), "%v", listen1.Err())
			a := listen1.Msg().GetAssignment()
			got[a.RunId] = a
		}
		kept, dropped := got[runs[0]], got[runs[1]]
		put := func(seq int64, payload string) error {
			_, err := raw.worker.PutStream(ctx, connect.NewRequest(&pb.PutStreamRequest{
				StepRunId: kept.StepRunId, Attempt: kept.Attempt, FirstSeq: seq, Payloads: [][]byte{[]byte(payload)},
			}))
			return err
		}
		require.NoError(t, put(1, "one"))

		// The stream breaks. While the worker is away its attempt is still
		// running: a put is accepted.
		closeListen()
		require.False(t, listen1.Receive())
		listen1.Close()
		require.NoError(t, put(2, "two"))

		reg2, err := raw.worker.RegisterWorker(ctx, connect.NewRequest(&pb.RegisterWorkerRequest{
			Name: "w", Slots: 2, Workflows: []*pb.WorkflowDefinition{def}, PreviousWorkerId: w1,
			Running: []*pb.RunningAttempt{{StepRunId: kept.StepRunId, Attempt: kept.Attempt}},
		}))
		require.NoError(t, err)
		w2 := reg2.Msg.WorkerId
		require.NotEqual(t, w1, w2)
		require.Len(t, reg2.Msg.Resumed, 1)
		require.Equal(t, kept.StepRunId, reg2.Msg.Resumed[0].StepRunId)
		require.Equal(t, kept.Attempt, reg2.Msg.Resumed[0].Attempt)

		// The attempt it did not bring back was re-queued; the new session
		// gets it as attempt 2 (one slot is free: the resumed attempt holds
		// the other).
		listen2, err := raw.worker.Listen(ctx, connect.NewRequest(&pb.ListenRequest{WorkerId: w2}))
		require.NoError(t, err)
		defer listen2.Close()
		require.True(t, listen2.Receive(), "%v", listen2.Err())
		again := listen2.Msg().GetAssignment()
		require.Equal(t, dropped.StepRunId, again.StepRunId)
		require.Equal(t, int32(2), again.Attempt)
		_, err = raw.worker.CompleteStep(ctx, connect.NewRequest(&pb.CompleteStepRequest{
			StepRunId: dropped.StepRunId, Attempt: dropped.Attempt, Output: []byte(`"late"`),
		}))
		requireCode(t, connect.CodeFailedPrecondition, err, "no longer running")
		_, err = raw.worker.CompleteStep(ctx, connect.NewRequest(&pb.CompleteStepRequest{
			StepRunId: again.StepRunId, Attempt: again.Attempt, Output: []byte(`"second"`),
		}))
		require.NoError(t, err)

		// The resumed attempt's stream continues (a resent batch is stored
		// once) and its result is accepted.
		require.NoError(t, put(2, "two"))
		require.NoError(t, put(3, "three"))
		_, err = raw.worker.CompleteStep(ctx, connect.NewRequest(&pb.CompleteStepRequest{
			StepRunId: kept.StepRunId, Attempt: kept.Attempt, Output: []byte(`"kept"`),
		}))
		require.NoError(t, err)
		run, events := waitRun(t, n, runs[0])
		require.Equal(t, runnel.RunCompleted, run.Status)
		require.Equal(t, 1, run.Steps[0].Attempt)
		require.Len(t, run.Steps[0].Attempts, 1)
		require.Equal(t, w2, run.Steps[0].Attempts[0].WorkerID)
		var stream []string
		for _, ev := range events {
			if ev.Type == runnel.EventStepStream {
				stream = append(stream, string(ev.Payload))
			}
		}
		require.Equal(t, []string{"one", "two", "three"}, stream)

		// The previous worker id is dead: it cannot heartbeat or listen.
		_, err = raw.worker.Heartbeat(ctx, connect.NewRequest(&pb.HeartbeatRequest{WorkerId: w1}))
		requireCode(t, connect.CodeNotFound, err, "register again")
	}, defaultWorkerTimers) // the raw worker sends no heartbeats
}

// A registration whose answer is lost: the worker registers again naming
// the same previous id and attempts, and gets them, though the lost
// registration had already moved them. The lost registration's id is then
// dead. Another tenant naming the same ids gets nothing.
func TestRegistrationWithLostAnswerStillResumes(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, n *node) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		a := startTenantAWorker(t, ctx, n)
		running := []*pb.RunningAttempt{{StepRunId: a.attempt.StepRunId, Attempt: a.attempt.Attempt}}
		def := &pb.WorkflowDefinition{Name: "iso", Steps: []*pb.StepDefinition{{Name: "a"}}}
		register := func(c rawClients) *pb.RegisterWorkerResponse {
			t.Helper()
			reg, err := c.worker.RegisterWorker(ctx, connect.NewRequest(&pb.RegisterWorkerRequest{
				Name: "a-worker", Slots: 2, Workflows: []*pb.WorkflowDefinition{def}, PreviousWorkerId: a.workerID, Running: running,
			}))
			require.NoError(t, err)
			return reg.Msg
		}
		lost := register(a.raw) // the worker never sees this answer
		require.Len(t, lost.Resumed, 1)

		tokB, err := n.client.Admin().CreateToken(ctx, "tenant-b", "")
		require.NoError(t, err)
		require.Empty(t, register(newRaw(n, tokB)).Resumed, "another tenant took the attempt")

		again := register(a.raw)
		require.Len(t, again.Resumed, 1, "the attempt moved by the lost registration was not resumed")
		_, err = a.raw.worker.Heartbeat(ctx, connect.NewRequest(&pb.HeartbeatRequest{WorkerId: lost.WorkerId}))
		requireCode(t, connect.CodeNotFound, err, "register again")

		_, err = a.raw.worker.CompleteStep(ctx, connect.NewRequest(&pb.CompleteStepRequest{
			StepRunId: a.attempt.StepRunId, Attempt: a.attempt.Attempt, Output: []byte(`"once"`),
		}))
		require.NoError(t, err)
		run, _ := waitRun(t, n, a.runID)
		require.Equal(t, runnel.RunCompleted, run.Status)
		require.Len(t, run.Steps[0].Attempts, 1)
		require.Equal(t, again.WorkerId, run.Steps[0].Attempts[0].WorkerID)
	}, defaultWorkerTimers)
}
