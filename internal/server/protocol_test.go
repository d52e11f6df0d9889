package server_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel"
	pb "github.com/runnel-dev/runnel/internal/gen/runnel/v1"
	"github.com/runnel-dev/runnel/internal/gen/runnel/v1/runnelv1connect"
)

// rawClients talk the protocol directly, to send what the SDK would refuse.
type rawClients struct {
	worker runnelv1connect.WorkerServiceClient
	runs   runnelv1connect.RunServiceClient
}

func newRaw(n *node, token string) rawClients {
	opts := []connect.ClientOption{connect.WithInterceptors(bearer(token))}
	return rawClients{
		worker: runnelv1connect.NewWorkerServiceClient(http.DefaultClient, n.url, opts...),
		runs:   runnelv1connect.NewRunServiceClient(http.DefaultClient, n.url, opts...),
	}
}

type bearer string

func (b bearer) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if b != "" {
			req.Header().Set("Authorization", "Bearer "+string(b))
		}
		return next(ctx, req)
	}
}

func (b bearer) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		if b != "" {
			conn.RequestHeader().Set("Authorization", "Bearer "+string(b))
		}
		return conn
	}
}

func (b bearer) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

func requireCode(t *testing.T, want connect.Code, err error, contains string) {
	t.Helper()
	require.Error(t, err)
	require.Equal(t, want, connect.CodeOf(err), "%v", err)
	require.Contains(t, err.Error(), contains)
}

// Bad input gets a clear error and changes nothing.
func TestBadInputIsRefusedAndChangesNothing(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, n *node) {
		ctx := context.Background()
		raw := newRaw(n, n.srv.AdminToken)
		ok := &pb.WorkflowDefinition{Name: "ok", Steps: []*pb.StepDefinition{{Name: "a"}}}
		reg, err := raw.worker.RegisterWorker(ctx, connect.NewRequest(&pb.RegisterWorkerRequest{
			Name: "w", Slots: 1, Workflows: []*pb.WorkflowDefinition{ok},
		}))
		require.NoError(t, err)
		require.NotEmpty(t, reg.Msg.WorkerId)

		// Definitions: a cycle, an unknown parent. The whole registration is
		// refused, so "ok2" is not stored either.
		for _, tc := range []struct {
			def  *pb.WorkflowDefinition
			want string
		}{
			{&pb.WorkflowDefinition{Name: "cyclic", Steps: []*pb.StepDefinition{
				{Name: "a", Parents: []string{"b"}}, {Name: "b", Parents: []string{"a"}},
			}}, "cycle"},
			{&pb.WorkflowDefinition{Name: "orphan", Steps: []*pb.StepDefinition{
				{Name: "a", Parents: []string{"ghost"}},
			}}, `unknown parent "ghost"`},
		} {
			ok2 := &pb.WorkflowDefinition{Name: "ok2", Steps: []*pb.StepDefinition{{Name: "a"}}}
			_, err := raw.worker.RegisterWorker(ctx, connect.NewRequest(&pb.RegisterWorkerRequest{
				Name: "w", Slots: 1, Workflows: []*pb.WorkflowDefinition{ok2, tc.def},
			}))
			requireCode(t, connect.CodeInvalidArgument, err, tc.want)
		}
		wfs, err := n.client.Admin().ListWorkflows(ctx)
		require.NoError(t, err)
		require.Len(t, wfs, 1)
		require.Equal(t, "ok", wfs[0].Name)

		// The SDK refuses the same definitions before sending them.
		w, err := n.client.NewWorker("sdk", runnel.WithSlots(1))
		require.NoError(t, err)
		noop := func(runnel.Context) (any, error) { return nil, nil }
		err = w.Register(runnel.NewWorkflow("c").Step("a", noop, runnel.Parents("b")).Step("b", noop, runnel.Parents("a")))
		require.ErrorContains(t, err, "cycle")

		// Unknown workflow: the error lists the registered ones.
		_, err = n.client.Admin().RunWorkflow(ctx, "nope", nil)
		requireCode(t, connect.CodeNotFound, err, `unknown workflow "nope" (registered: ok)`)

		// Input that is not JSON.
		_, err = raw.runs.TriggerRun(ctx, connect.NewRequest(&pb.TriggerRunRequest{Workflow: "ok", Input: []byte("{not json")}))
		requireCode(t, connect.CodeInvalidArgument, err, "input is not valid JSON")

		// Unknown run id.
		_, err = n.client.Admin().GetRun(ctx, "0193a1b2-0000-7000-8000-000000000000")
		requireCode(t, connect.CodeNotFound, err, "unknown run")
		err = n.client.Admin().CancelRun(ctx, "not-a-run")
		requireCode(t, connect.CodeNotFound, err, "unknown run")

		// Missing and wrong tokens.
		_, err = newRaw(n, "").runs.ListRuns(ctx, connect.NewRequest(&pb.ListRunsRequest{}))
		requireCode(t, connect.CodeUnauthenticated, err, "missing token")
		_, err = newRaw(n, "rnl_wrong").runs.ListRuns(ctx, connect.NewRequest(&pb.ListRunsRequest{}))
		requireCode(t, connect.CodeUnauthenticated, err, "invalid token")
		_, err = newRaw(n, "rnl_wrong").worker.RegisterWorker(ctx, connect.NewRequest(&pb.RegisterWorkerRequest{
			Name: "w", Slots: 1, Workflows: []*pb.WorkflowDefinition{ok},
		}))
		requireCode(t, connect.CodeUnauthenticated, err, "invalid token")

		// Nothing was created by any of it.
		runs, err := n.client.Admin().ListRuns(ctx, runnel.ListRunsOptions{})
		require.NoError(t, err)
		require.Empty(t, runs)
	})
}

// Tokens of one tenant see nothing of another's.
func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, n *node) {
		ctx := context.Background()
		tok, err := n.client.Admin().CreateToken(ctx, "acme", "test")
		require.NoError(t, err)
		acme := newRaw(n, tok)
		_, err = acme.worker.RegisterWorker(ctx, connect.NewRequest(&pb.RegisterWorkerRequest{
			Name: "w", Slots: 1, Workflows: []*pb.WorkflowDefinition{{Name: "mine", Steps: []*pb.StepDefinition{{Name: "a"}}}},
		}))
		require.NoError(t, err)
		res, err := acme.runs.TriggerRun(ctx, connect.NewRequest(&pb.TriggerRunRequest{Workflow: "mine"}))
		require.NoError(t, err)

		_, err = n.client.Admin().GetRun(ctx, res.Msg.RunId)
		requireCode(t, connect.CodeNotFound, err, "unknown run")
		_, err = n.client.Admin().RunWorkflow(ctx, "mine", nil)
		requireCode(t, connect.CodeNotFound, err, "unknown workflow")
		// A tenant token cannot mint tokens.
		_, err = acme.runs.CreateToken(ctx, connect.NewRequest(&pb.CreateTokenRequest{Tenant: "default"}))
		requireCode(t, connect.CodePermissionDenied, err, "admin")
	})
}

// A worker that stops heartbeating (but keeps its connection) is declared
// dead; its step is re-queued, and its late result is refused as stale.
func TestSilentWorkerIsDeclaredDeadAndItsLateResultRefused(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, n *node) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		raw := newRaw(n, n.srv.AdminToken)
		def := &pb.WorkflowDefinition{Name: "silent", Steps: []*pb.StepDefinition{{Name: "a"}}}
		reg, err := raw.worker.RegisterWorker(ctx, connect.NewRequest(&pb.RegisterWorkerRequest{
			Name: "silent", Slots: 1, Workflows: []*pb.WorkflowDefinition{def},
		}))
		require.NoError(t, err)
		stream, err := raw.worker.Listen(ctx, connect.NewRequest(&pb.ListenRequest{WorkerId: reg.Msg.WorkerId}))
		require.NoError(t, err)
		defer stream.Close()

		run, err := raw.runs.TriggerRun(ctx, connect.NewRequest(&pb.TriggerRunRequest{Workflow: "silent"}))
		require.NoError(t, err)
		require.True(t, stream.Receive(), "%v", stream.Err())
		a := stream.Msg().GetAssignment()
		require.NotNil(t, a)
		require.Equal(t, int32(1), a.Attempt)

		// No heartbeats: within the timeout the engine gives the step to a
		// healthy worker.
		startWorker(t, n, "healthy", 1, runnel.NewWorkflow("silent").Step("a", func(ctx runnel.Context) (any, error) {
			return map[string]int{"attempt": ctx.Attempt()}, nil
		}))
		final, _ := waitRun(t, n, run.Msg.RunId)
		require.Equal(t, runnel.RunCompleted, final.Status)
		require.Equal(t, 2, final.Steps[0].Attempt)

		// The silent worker's late report and stream data are refused.
		_, err = raw.worker.CompleteStep(ctx, connect.NewRequest(&pb.CompleteStepRequest{
			StepRunId: a.StepRunId, Attempt: a.Attempt, Output: []byte(`{"late":true}`),
		}))
		requireCode(t, connect.CodeFailedPrecondition, err, "no longer running")
		_, err = raw.worker.PutStream(ctx, connect.NewRequest(&pb.PutStreamRequest{
			StepRunId: a.StepRunId, Attempt: a.Attempt, FirstSeq: 1, Payloads: [][]byte{[]byte("late")},
		}))
		requireCode(t, connect.CodeFailedPrecondition, err, "no longer running")
		_, err = raw.worker.Heartbeat(ctx, connect.NewRequest(&pb.HeartbeatRequest{WorkerId: reg.Msg.WorkerId}))
		requireCode(t, connect.CodeNotFound, err, "register again")

		again, err := n.client.Admin().GetRun(ctx, run.Msg.RunId)
		require.NoError(t, err)
		require.JSONEq(t, `{"a":{"attempt":2}}`, string(again.Output))
	})
}

// Stream puts are idempotent by sequence number: a request sent again after
// a lost reply is stored once.
func TestStreamPutIsIdempotent(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, n *node) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		raw := newRaw(n, n.srv.AdminToken)
		def := &pb.WorkflowDefinition{Name: "put", Steps: []*pb.StepDefinition{{Name: "a"}}}
		reg, err := raw.worker.RegisterWorker(ctx, connect.NewRequest(&pb.RegisterWorkerRequest{
			Name: "w", Slots: 1, Workflows: []*pb.WorkflowDefinition{def},
		}))
		require.NoError(t, err)
		stream, err := raw.worker.Listen(ctx, connect.NewRequest(&pb.ListenRequest{WorkerId: reg.Msg.WorkerId}))
		require.NoError(t, err)
		defer stream.Close()
		run, err := raw.runs.TriggerRun(ctx, connect.NewRequest(&pb.TriggerRunRequest{Workflow: "put"}))
		require.NoError(t, err)
		require.True(t, stream.Receive(), "%v", stream.Err())
		a := stream.Msg().GetAssignment()

		put := func(first int64, payloads ...string) error {
			req := &pb.PutStreamRequest{StepRunId: a.StepRunId, Attempt: a.Attempt, FirstSeq: first}
			for _, p := range payloads {
				req.Payloads = append(req.Payloads, []byte(p))
			}
			_, err := raw.worker.PutStream(ctx, connect.NewRequest(req))
			return err
		}
		require.NoError(t, put(1, "a", "b"))
		require.NoError(t, put(1, "a", "b"))      // resent whole
		require.NoError(t, put(2, "b", "c", "d")) // overlapping
		requireCode(t, connect.CodeFailedPrecondition, put(9, "gap"), "seq gap")
		requireCode(t, connect.CodeResourceExhausted, put(5, string(make([]byte, runnel.MaxPayloadSize+1))), "4 MiB")
		_, err = raw.worker.CompleteStep(ctx, connect.NewRequest(&pb.CompleteStepRequest{StepRunId: a.StepRunId, Attempt: a.Attempt}))
		require.NoError(t, err)

		_, events := waitRun(t, n, run.Msg.RunId)
		var got []string
		for _, ev := range events {
			if ev.Type == runnel.EventStepStream {
				got = append(got, string(ev.Payload))
			}
		}
		require.Equal(t, []string{"a", "b", "c", "d"}, got)
	}, defaultWorkerTimers) // this raw worker sends no heartbeats: keep the 10 s timeout
}
