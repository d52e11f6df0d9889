package api

import (
	"context"
	"encoding/json"
	"math"
	"time"

	"connectrpc.com/connect"

	"github.com/runnel-dev/runnel/internal/apierr"
	"github.com/runnel-dev/runnel/internal/engine"
	"github.com/runnel-dev/runnel/internal/eventlog"
	pb "github.com/runnel-dev/runnel/internal/gen/runnel/v1"
	"github.com/runnel-dev/runnel/internal/gen/runnel/v1/runnelv1connect"
	"github.com/runnel-dev/runnel/internal/store"
)

// workerService adapts WorkerService calls to the engine. Handlers stay
// thin: decode, call the engine, encode; errors are mapped by the
// interceptor.
type workerService struct {
	// Refuses calls not implemented here (Unimplemented), e.g. from newer
	// clients.
	runnelv1connect.UnimplementedWorkerServiceHandler
	engine *engine.Engine
}

func (s *workerService) RegisterWorker(ctx context.Context, req *connect.Request[pb.RegisterWorkerRequest]) (*connect.Response[pb.RegisterWorkerResponse], error) {
	p := mustPrincipal(ctx)
	if err := requireWriter(p); err != nil {
		return nil, err
	}
	defs := make([]engine.WorkflowDef, 0, len(req.Msg.Workflows))
	for _, w := range req.Msg.Workflows {
		def := engine.WorkflowDef{Name: w.Name, OnEvents: w.OnEvents}
		for _, st := range w.Steps {
			def.Steps = append(def.Steps, engine.StepDef{
				Name: st.Name, Parents: st.Parents, Retries: int(st.Retries), BackoffMs: st.BackoffMs, TimeoutMs: st.TimeoutMs,
			})
		}
		defs = append(defs, def)
	}
	running := make([]engine.AttemptRef, 0, len(req.Msg.Running))
	for _, a := range req.Msg.Running {
		running = append(running, engine.AttemptRef{StepRunID: a.StepRunId, Attempt: int(a.Attempt)})
	}
	reg, err := s.engine.RegisterWorker(ctx, engine.RegisterWorkerParams{
		TenantID: p.TenantID, Name: req.Msg.Name, Slots: int(req.Msg.Slots), Workflows: defs,
		PreviousWorkerID: req.Msg.PreviousWorkerId, Running: running,
	})
	if err != nil {
		return nil, err
	}
	resp := &pb.RegisterWorkerResponse{
		WorkerId: reg.WorkerID, HeartbeatIntervalMs: s.engine.HeartbeatInterval().Milliseconds(),
	}
	for _, a := range reg.Resumed {
		resp.Resumed = append(resp.Resumed, &pb.RunningAttempt{StepRunId: a.StepRunID, Attempt: int32(a.Attempt)})
	}
	return connect.NewResponse(resp), nil
}

func (s *workerService) Listen(ctx context.Context, req *connect.Request[pb.ListenRequest], stream *connect.ServerStream[pb.ListenResponse]) error {
	p := mustPrincipal(ctx)
	if err := requireWriter(p); err != nil {
		return err
	}
	// Send the headers now, so the worker knows it is connected before the
	// first assignment.
	if err := stream.Send(nil); err != nil {
		return err
	}
	ctx = engine.WithUserAgent(ctx, req.Header().Get("User-Agent")) // for the workers page
	return s.engine.Listen(ctx, p.TenantID, req.Msg.WorkerId, func(m engine.Message) error {
		var out pb.ListenResponse
		switch {
		case m.Assignment != nil:
			a := m.Assignment
			out.Msg = &pb.ListenResponse_Assignment{Assignment: &pb.StepAssignment{
				RunId: a.RunID, StepRunId: a.StepRunID, Workflow: a.Workflow, Step: a.Step,
				Attempt: int32(a.Attempt), Input: a.Input, AdditionalMetadata: a.Metadata,
				ParentOutputs: a.ParentOutputs, TimeoutMs: a.TimeoutMs,
			}}
		case m.Cancellation != nil:
			c := m.Cancellation
			out.Msg = &pb.ListenResponse_Cancellation{Cancellation: &pb.StepCancellation{
				StepRunId: c.StepRunID, Attempt: int32(c.Attempt), Reason: c.Reason,
			}}
		}
		return stream.Send(&out)
	})
}

func (s *workerService) DeregisterWorker(ctx context.Context, req *connect.Request[pb.DeregisterWorkerRequest]) (*connect.Response[pb.DeregisterWorkerResponse], error) {
	p := mustPrincipal(ctx)
	if err := requireWriter(p); err != nil {
		return nil, err
	}
	if err := s.engine.DeregisterWorker(ctx, p.TenantID, req.Msg.WorkerId); err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.DeregisterWorkerResponse{}), nil
}

func (s *workerService) Heartbeat(ctx context.Context, req *connect.Request[pb.HeartbeatRequest]) (*connect.Response[pb.HeartbeatResponse], error) {
	p := mustPrincipal(ctx)
	if err := requireWriter(p); err != nil {
		return nil, err
	}
	if err := s.engine.Heartbeat(ctx, p.TenantID, req.Msg.WorkerId); err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.HeartbeatResponse{}), nil
}

func (s *workerService) PutStream(ctx context.Context, req *connect.Request[pb.PutStreamRequest]) (*connect.Response[pb.PutStreamResponse], error) {
	p := mustPrincipal(ctx)
	if err := requireWriter(p); err != nil {
		return nil, err
	}
	err := s.engine.PutStream(ctx, eventlog.StreamPut{
		TenantID: p.TenantID, StepRunID: req.Msg.StepRunId, Attempt: int(req.Msg.Attempt),
		FirstSeq: req.Msg.FirstSeq, Payloads: req.Msg.Payloads,
		Stream: req.Msg.Stream, Close: req.Msg.CloseStream,
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.PutStreamResponse{}), nil
}

func (s *workerService) CompleteStep(ctx context.Context, req *connect.Request[pb.CompleteStepRequest]) (*connect.Response[pb.CompleteStepResponse], error) {
	p := mustPrincipal(ctx)
	if err := requireWriter(p); err != nil {
		return nil, err
	}
	if err := engine.CheckJSONText("step output", req.Msg.Output); err != nil {
		return nil, err
	}
	if err := s.engine.CompleteStep(ctx, p.TenantID, req.Msg.StepRunId, int(req.Msg.Attempt), req.Msg.Output); err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.CompleteStepResponse{}), nil
}

func (s *workerService) FailStep(ctx context.Context, req *connect.Request[pb.FailStepRequest]) (*connect.Response[pb.FailStepResponse], error) {
	p := mustPrincipal(ctx)
	if err := requireWriter(p); err != nil {
		return nil, err
	}
	if err := s.engine.FailStep(ctx, p.TenantID, req.Msg.StepRunId, int(req.Msg.Attempt), req.Msg.Error, req.Msg.NoRetry); err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.FailStepResponse{}), nil
}

// runService adapts RunService calls to the engine.
type runService struct {
	runnelv1connect.UnimplementedRunServiceHandler
	engine *engine.Engine
}

func (s *runService) TriggerRun(ctx context.Context, req *connect.Request[pb.TriggerRunRequest]) (*connect.Response[pb.TriggerRunResponse], error) {
	p := mustPrincipal(ctx)
	if err := requireWriter(p); err != nil {
		return nil, err
	}
	id, err := s.engine.TriggerRun(ctx, engine.TriggerParams{
		TenantID: p.TenantID, Workflow: req.Msg.Workflow, Input: req.Msg.Input, Metadata: req.Msg.AdditionalMetadata,
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.TriggerRunResponse{RunId: id}), nil
}

func (s *runService) GetRun(ctx context.Context, req *connect.Request[pb.GetRunRequest]) (*connect.Response[pb.GetRunResponse], error) {
	view, err := s.engine.ReadRun(ctx, mustPrincipal(ctx), req.Msg.RunId)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.GetRunResponse{Run: runToPB(view.Run, view.Steps)}), nil
}

func (s *runService) ListRuns(ctx context.Context, req *connect.Request[pb.ListRunsRequest]) (*connect.Response[pb.ListRunsResponse], error) {
	p := mustPrincipal(ctx)
	if err := requireWriter(p); err != nil {
		return nil, err
	}
	runs, err := s.engine.ListRuns(ctx, store.ListRunsParams{
		TenantID: p.TenantID, Workflow: req.Msg.Workflow, Status: store.RunStatus(req.Msg.Status),
		MetaKey: req.Msg.MetaKey, MetaValue: req.Msg.MetaValue, Before: req.Msg.Before, Limit: int(req.Msg.Limit),
	})
	if err != nil {
		return nil, err
	}
	out := &pb.ListRunsResponse{Runs: make([]*pb.Run, 0, len(runs))}
	for _, r := range runs {
		out.Runs = append(out.Runs, runToPB(r, nil))
	}
	return connect.NewResponse(out), nil
}

func (s *runService) CancelRun(ctx context.Context, req *connect.Request[pb.CancelRunRequest]) (*connect.Response[pb.CancelRunResponse], error) {
	p := mustPrincipal(ctx)
	if err := requireWriter(p); err != nil {
		return nil, err
	}
	status, err := s.engine.CancelRun(ctx, p.TenantID, req.Msg.RunId)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.CancelRunResponse{Status: string(status)}), nil
}

func (s *runService) ListWorkflows(ctx context.Context, req *connect.Request[pb.ListWorkflowsRequest]) (*connect.Response[pb.ListWorkflowsResponse], error) {
	p := mustPrincipal(ctx)
	if err := requireWriter(p); err != nil {
		return nil, err
	}
	wfs, err := s.engine.ListWorkflows(ctx, p.TenantID)
	if err != nil {
		return nil, err
	}
	out := &pb.ListWorkflowsResponse{}
	for _, w := range wfs {
		var def engine.WorkflowDef
		if err := json.Unmarshal(w.Definition, &def); err != nil {
			return nil, err
		}
		wd := &pb.WorkflowDefinition{Name: def.Name, OnEvents: def.OnEvents}
		for _, st := range def.Steps {
			wd.Steps = append(wd.Steps, &pb.StepDefinition{
				Name: st.Name, Parents: st.Parents, Retries: int32(st.Retries), BackoffMs: st.BackoffMs, TimeoutMs: st.TimeoutMs,
			})
		}
		out.Workflows = append(out.Workflows, wd)
	}
	return connect.NewResponse(out), nil
}

func (s *runService) Subscribe(ctx context.Context, req *connect.Request[pb.SubscribeRequest], stream *connect.ServerStream[pb.SubscribeResponse]) error {
	p := mustPrincipal(ctx)
	codec := s.engine.Codec()
	var last string
	err := s.engine.Subscribe(ctx, engine.SubscribeParams{
		TenantID: p.TenantID, RunID: req.Msg.RunId, From: req.Msg.From, Types: req.Msg.Types, Streams: req.Msg.Streams, Principal: p,
	}, func(events []store.Event, pos int64) error {
		last = codec.Encode(pos)
		out := &pb.SubscribeResponse{Events: make([]*pb.Event, len(events)), Position: last}
		for i, ev := range events {
			out.Events[i] = eventToPB(codec, ev)
		}
		return stream.Send(out)
	})
	switch {
	case err == nil:
		// The run ended and the subscriber has every event: say so, so a
		// client that resumed after the terminal event also stops.
		return stream.Send(&pb.SubscribeResponse{Position: last, RunEnded: true})
	case ctx.Err() != nil:
		// The client went away (nobody hears this) or the engine is
		// shutting down: tell the client to resume elsewhere or later.
		return apierr.New(apierr.Unavailable, "subscription interrupted by engine shutdown; resume after your last position")
	}
	return err
}

func (s *runService) CreateToken(ctx context.Context, req *connect.Request[pb.CreateTokenRequest]) (*connect.Response[pb.CreateTokenResponse], error) {
	if ms := req.Msg.ExpiresInMs; ms < 0 || ms > maxTokenLifetimeMs {
		return nil, apierr.New(apierr.InvalidArgument, "expires_in_ms %d out of range 0..%d", ms, int64(maxTokenLifetimeMs))
	}
	created, err := s.engine.CreateToken(ctx, mustPrincipal(ctx), engine.APITokenParams{
		Tenant: req.Msg.Tenant, Name: req.Msg.Name, Admin: req.Msg.Admin,
		ExpiresIn: time.Duration(req.Msg.ExpiresInMs) * time.Millisecond,
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.CreateTokenResponse{
		Token: created.Secret, TenantId: created.TenantID, TokenId: created.ID, ExpiresAtUs: micros(created.ExpiresAt),
	}), nil
}

// maxTokenLifetimeMs keeps a lifetime in milliseconds from overflowing a
// time.Duration (about 292 years).
const maxTokenLifetimeMs = int64(math.MaxInt64 / int64(time.Millisecond))

func (s *runService) ListTokens(ctx context.Context, req *connect.Request[pb.ListTokensRequest]) (*connect.Response[pb.ListTokensResponse], error) {
	toks, err := s.engine.ListTokens(ctx, mustPrincipal(ctx))
	if err != nil {
		return nil, err
	}
	out := &pb.ListTokensResponse{Tokens: make([]*pb.TokenInfo, len(toks))}
	for i, t := range toks {
		out.Tokens[i] = &pb.TokenInfo{
			Id: t.ID, Tenant: t.TenantName, Kind: t.Kind, Name: t.Name, CreatedAtUs: micros(t.CreatedAt),
			ExpiresAtUs: micros(t.ExpiresAt), RevokedAtUs: micros(t.RevokedAt),
		}
	}
	return connect.NewResponse(out), nil
}

func (s *runService) RevokeToken(ctx context.Context, req *connect.Request[pb.RevokeTokenRequest]) (*connect.Response[pb.RevokeTokenResponse], error) {
	ids, err := s.engine.RevokeToken(ctx, mustPrincipal(ctx), req.Msg.TokenId)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.RevokeTokenResponse{RevokedIds: ids}), nil
}

func eventToPB(codec eventlog.Codec, ev store.Event) *pb.Event {
	return &pb.Event{
		Position: codec.Encode(ev.Position), RunId: ev.RunID, Workflow: ev.Workflow, Type: ev.Type,
		StepRunId: ev.StepRunID, Step: ev.Step, Attempt: int32(ev.Attempt), Payload: ev.Payload,
		Data: ev.Data, TimeUs: micros(ev.CreatedAt), Stream: ev.Stream,
	}
}

func runToPB(r store.Run, steps []engine.StepView) *pb.Run {
	out := &pb.Run{
		Id: r.ID, Workflow: r.Workflow, Status: string(r.Status), Input: r.Input, Output: r.Output,
		Error: r.Error, AdditionalMetadata: r.Metadata, ParentRunId: r.ParentRunID,
		ParentStepRunId: r.ParentStepRunID, CreatedAtUs: micros(r.CreatedAt),
		StartedAtUs: micros(r.StartedAt), FinishedAtUs: micros(r.FinishedAt),
	}
	for _, s := range steps {
		ps := &pb.StepRun{
			Id: s.ID, Step: s.Step, Parents: s.Parents, Status: string(s.Status), Attempt: int32(s.Attempt),
			Output: s.Output, Error: s.Error, StartedAtUs: micros(s.StartedAt), FinishedAtUs: micros(s.FinishedAt),
		}
		for _, a := range s.Attempts {
			ps.Attempts = append(ps.Attempts, &pb.StepAttempt{
				Attempt: int32(a.Attempt), Status: string(a.Status), WorkerId: a.WorkerID, Error: a.Error,
				StartedAtUs: micros(a.StartedAt), FinishedAtUs: micros(a.FinishedAt),
			})
		}
		out.Steps = append(out.Steps, ps)
	}
	return out
}
