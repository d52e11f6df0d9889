package api

import (
	"context"

	"connectrpc.com/connect"

	"github.com/runnel-dev/runnel/internal/apierr"
	"github.com/runnel-dev/runnel/internal/engine"
	pb "github.com/runnel-dev/runnel/internal/gen/runnel/v1"
	"github.com/runnel-dev/runnel/internal/store"
)

// SubscribeMetadata streams every event of every run of the caller's tenant
// whose additional metadata has key = value, like Subscribe: one message
// per batch carrying the position after it, an empty first message with the
// resolved start point, empty heartbeats. It never ends by itself: the
// client closes it, or the engine shutting down ends it with Unavailable
// (resume after the last position).
func (s *runService) SubscribeMetadata(ctx context.Context, req *connect.Request[pb.SubscribeMetadataRequest], stream *connect.ServerStream[pb.SubscribeResponse]) error {
	p := mustPrincipal(ctx)
	codec := s.engine.Codec()
	err := s.engine.SubscribeMetadata(ctx, engine.SubscribeMetadataParams{
		TenantID: p.TenantID, Key: req.Msg.Key, Value: req.Msg.Value, From: req.Msg.From, Types: req.Msg.Types, Principal: p,
	}, func(events []store.Event, pos int64) error {
		out := &pb.SubscribeResponse{Events: make([]*pb.Event, len(events)), Position: codec.Encode(pos)}
		for i, ev := range events {
			out.Events[i] = eventToPB(codec, ev)
		}
		return stream.Send(out)
	})
	if err != nil && ctx.Err() != nil {
		// The client went away (nobody hears this) or the engine is
		// shutting down: tell the client to resume elsewhere or later.
		return apierr.New(apierr.Unavailable, "subscription interrupted by engine shutdown; resume after your last position")
	}
	return err
}
