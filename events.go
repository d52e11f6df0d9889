package runnel

import (
	"context"
	"fmt"

	"connectrpc.com/connect"

	runnelv1 "github.com/runnel-dev/runnel/internal/gen/runnel/v1"
)

// Events pushes events that trigger workflows registered with
// [Workflow.OnEvents]. Get one from [Client.Event].
type Events struct {
	c *Client
}

// Event returns the client's event API.
func (c *Client) Event() *Events { return &Events{c: c} }

// Push pushes an event with the given key (e.g. "user:create"): every
// workflow of the token's tenant registered OnEvents with that key gets a
// run, with the payload (marshalled as a run input; nil becomes {}) as its
// input and the metadata of a [WithAdditionalMetadata] option as its
// additional metadata. It returns the ids of the runs it started, in
// workflow name order; none when no workflow listens to the key, which is
// not an error.
//
// Errors: the payload cannot be marshalled or is not valid JSON, or the
// engine refused the call (connect.CodeInvalidArgument for a bad key,
// payload or metadata).
func (e *Events) Push(ctx context.Context, key string, payload any, opts ...RunOption) ([]string, error) {
	var cfg runConfig
	for _, opt := range opts {
		opt.applyToRun(&cfg)
	}
	data, err := marshalInput(payload)
	if err != nil {
		return nil, fmt.Errorf("push event %q: payload: %w", key, err)
	}
	resp, err := e.c.run.PushEvent(ctx, connect.NewRequest(&runnelv1.PushEventRequest{
		Key:                key,
		Payload:            data,
		AdditionalMetadata: cfg.metadata,
	}))
	if err != nil {
		return nil, fmt.Errorf("push event %q: %w", key, err)
	}
	ids := resp.Msg.GetRunIds()
	if ids == nil {
		ids = []string{}
	}
	return ids, nil
}
