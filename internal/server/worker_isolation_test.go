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

// tenantAWorker is a raw worker of the admin token's tenant holding one
// running attempt, for the isolation tests to aim other tenants' requests
// at.
type tenantAWorker struct {
	raw      rawClients
	workerID string
	listen   *connect.ServerStreamForClient[pb.ListenResponse]
	runID    string
	attempt  *pb.StepAssignment
}

func startTenantAWorker(t *testing.T, ctx context.Context, n *node) tenantAWorker {
	t.Helper()
	raw := newRaw(n, n.srv.AdminToken)
	def := &pb.WorkflowDefinition{Name: "iso", Steps: []*pb.StepDefinition{{Name: "a"}}}
	reg, err := raw.worker.RegisterWorker(ctx, connect.NewRequest(&pb.RegisterWorkerRequest{
		Name: "a-worker", Slots: 2, Workflows: []*pb.WorkflowDefinition{def},
	}))
	require.NoError(t, err)
	listen, err := raw.worker.Listen(ctx, connect.NewRequest(&pb.ListenRequest{WorkerId: reg.Msg.WorkerId}))
	require.NoError(t, err)
	t.Cleanup(func() { listen.Close() })
	run, err := raw.runs.TriggerRun(ctx, connect.NewRequest(&pb.TriggerRunRequest{Workflow: "iso"}))
	require.NoError(t, err)
	require.True(t, listen.Receive(), "%v", listen.Err())
	a := listen.Msg().GetAssignment()
	require.NotNil(t, a)
	require.Equal(t, int32(1), a.Attempt)
	return tenantAWorker{raw: raw, workerID: reg.Msg.WorkerId, listen: listen, runID: run.Msg.RunId, attempt: a}
}

// requireUntouched checks that tenant A's worker still holds its session
// and its attempt: the attempt is still running as attempt 1 on it, the
// worker is alive (heartbeats work), its Listen stream still delivers
// assignments, and its result is accepted.
func (a tenantAWorker) requireUntouched(t *testing.T, ctx context.Context, n *node) {
	t.Helper()
	run, err := n.client.Admin().GetRun(ctx, a.runID)
	require.NoError(t, err)
	require.Equal(t, runnel.StepRunning, run.Steps[0].Status)
	require.Equal(t, 1, run.Steps[0].Attempt)
	require.Len(t, run.Steps[0].Attempts, 1)
	require.Equal(t, a.workerID, run.Steps[0].Attempts[0].WorkerID)

	_, err = a.raw.worker.Heartbeat(ctx, connect.NewRequest(&pb.HeartbeatRequest{WorkerId: a.workerID}))
	require.NoError(t, err, "tenant A's worker was declared dead")

	second, err := a.raw.runs.TriggerRun(ctx, connect.NewRequest(&pb.TriggerRunRequest{Workflow: "iso"}))
	require.NoError(t, err)
	require.True(t, a.listen.Receive(), "tenant A's session was closed: %v", a.listen.Err())
	got := a.listen.Msg().GetAssignment()
	require.NotNil(t, got)
	require.Equal(t, second.Msg.RunId, got.RunId)

	_, err = a.raw.worker.CompleteStep(ctx, connect.NewRequest(&pb.CompleteStepRequest{
		StepRunId: a.attempt.StepRunId, Attempt: a.attempt.Attempt, Output: []byte(`"done"`),
	}))
	require.NoError(t, err)
	final, _ := waitRun(t, n, a.runID)
	require.Equal(t, runnel.RunCompleted, final.Status)
	require.Len(t, final.Steps[0].Attempts, 1)
}

// Issue 15, finding 1: registering with another tenant's worker id as the
// previous id (worker ids are visible to browser tokens) changes nothing:
// the other tenant's session stays open, its attempt stays running, and its
// worker stays alive. An unknown previous id is accepted and changes
// nothing either.
func TestForeignPreviousWorkerIDChangesNothing(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, n *node) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		a := startTenantAWorker(t, ctx, n)

		tokB, err := n.client.Admin().CreateToken(ctx, "tenant-b", "")
		require.NoError(t, err)
		b := newRaw(n, tokB)
		def := &pb.WorkflowDefinition{Name: "iso", Steps: []*pb.StepDefinition{{Name: "a"}}}
		for _, prev := range []string{a.workerID, "0193a1b2-0000-7000-8000-000000000000", "not-an-id"} {
			reg, err := b.worker.RegisterWorker(ctx, connect.NewRequest(&pb.RegisterWorkerRequest{
				Name: "b-worker", Slots: 1, Workflows: []*pb.WorkflowDefinition{def}, PreviousWorkerId: prev,
				Running: []*pb.RunningAttempt{{StepRunId: a.attempt.StepRunId, Attempt: a.attempt.Attempt}},
			}))
			require.NoError(t, err, "previous id %q", prev)
			require.Empty(t, reg.Msg.Resumed, "another tenant's attempt was handed to tenant B")
		}
		a.requireUntouched(t, ctx, n)
	}, defaultWorkerTimers) // the raw worker heartbeats only when the test says
}
