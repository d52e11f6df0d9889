package api

import (
	"context"

	"connectrpc.com/connect"

	pb "github.com/runnel-dev/runnel/internal/gen/runnel/v1"
)

// Child runs (WorkerService.SpawnRun) and event triggers
// (RunService.PushEvent).

func (s *workerService) SpawnRun(ctx context.Context, req *connect.Request[pb.SpawnRunRequest]) (*connect.Response[pb.SpawnRunResponse], error) {
	p := mustPrincipal(ctx)
	if err := requireWriter(p); err != nil {
		return nil, err
	}
	m := req.Msg
	id, err := s.engine.SpawnRun(ctx, p.TenantID, m.ParentStepRunId, int(m.ParentAttempt), m.Workflow, m.Input, m.AdditionalMetadata, m.Key)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.SpawnRunResponse{RunId: id}), nil
}

func (s *runService) PushEvent(ctx context.Context, req *connect.Request[pb.PushEventRequest]) (*connect.Response[pb.PushEventResponse], error) {
	p := mustPrincipal(ctx)
	if err := requireWriter(p); err != nil {
		return nil, err
	}
	ids, err := s.engine.PushEvent(ctx, p.TenantID, req.Msg.Key, req.Msg.Payload, req.Msg.AdditionalMetadata)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.PushEventResponse{RunIds: ids}), nil
}
