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

// Issue 15, finding 4, and its siblings: every WorkerService call refuses
// a read-only browser token (403), and names of another tenant's workers
// and step runs are unknown to a tenant (404): a heartbeat cannot keep
// another tenant's worker alive, nor can a tenant listen as it, stream
// into its attempt, end it or spawn from it.
func TestWorkerServiceIsTenantScoped(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, n *node) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		a := startTenantAWorker(t, ctx, n)
		stepRun, attempt := a.attempt.StepRunId, a.attempt.Attempt

		status, body := call(t, "POST", n.url+"/api/v1/tokens", n.srv.AdminToken, `{"runId": "`+a.runID+`", "ttl": "5m"}`)
		require.Equal(t, 201, status, "%v", body)
		browser := newRaw(n, body["token"].(string))
		tokB, err := n.client.Admin().CreateToken(ctx, "tenant-b", "")
		require.NoError(t, err)
		b := newRaw(n, tokB)

		type rpc struct {
			name string
			call func(c rawClients) error
		}
		rpcs := []rpc{
			{"Heartbeat", func(c rawClients) error {
				_, err := c.worker.Heartbeat(ctx, connect.NewRequest(&pb.HeartbeatRequest{WorkerId: a.workerID}))
				return err
			}},
			{"Listen", func(c rawClients) error {
				s, err := c.worker.Listen(ctx, connect.NewRequest(&pb.ListenRequest{WorkerId: a.workerID}))
				if err != nil {
					return err
				}
				defer s.Close()
				for s.Receive() {
				}
				return s.Err()
			}},
			{"PutStream", func(c rawClients) error {
				_, err := c.worker.PutStream(ctx, connect.NewRequest(&pb.PutStreamRequest{
					StepRunId: stepRun, Attempt: attempt, FirstSeq: 1, Payloads: [][]byte{[]byte("intruder")},
				}))
				return err
			}},
			{"SpawnRun", func(c rawClients) error {
				_, err := c.worker.SpawnRun(ctx, connect.NewRequest(&pb.SpawnRunRequest{
					ParentStepRunId: stepRun, ParentAttempt: attempt, Workflow: "iso", Key: "0",
				}))
				return err
			}},
			{"FailStep", func(c rawClients) error {
				_, err := c.worker.FailStep(ctx, connect.NewRequest(&pb.FailStepRequest{
					StepRunId: stepRun, Attempt: attempt, Error: "intruder", NoRetry: true,
				}))
				return err
			}},
			{"CompleteStep", func(c rawClients) error {
				_, err := c.worker.CompleteStep(ctx, connect.NewRequest(&pb.CompleteStepRequest{
					StepRunId: stepRun, Attempt: attempt, Output: []byte(`"intruder"`),
				}))
				return err
			}},
			{"RegisterWorker", func(c rawClients) error {
				_, err := c.worker.RegisterWorker(ctx, connect.NewRequest(&pb.RegisterWorkerRequest{
					Name: "intruder", Slots: 1, PreviousWorkerId: a.workerID,
				}))
				return err
			}},
		}
		for _, r := range rpcs {
			err := r.call(browser)
			require.Equal(t, connect.CodePermissionDenied, connect.CodeOf(err), "%s with a browser token: %v", r.name, err)
			if r.name == "RegisterWorker" {
				continue // another tenant may register; TestForeignPreviousWorkerIDChangesNothing
			}
			err = r.call(b)
			require.Equal(t, connect.CodeNotFound, connect.CodeOf(err), "%s with another tenant's token: %v", r.name, err)
		}
		status, body = call(t, "GET", n.url+"/api/v1/runs/"+a.runID, n.srv.AdminToken, "")
		require.Equal(t, 200, status, "%v", body)
		require.Empty(t, body["children"], "another tenant spawned a child of tenant A's step")
		a.requireUntouched(t, ctx, n)
	}, defaultWorkerTimers)
}
