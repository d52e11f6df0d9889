// Package runnel is the Go SDK of Runnel, a durable workflow engine that
// streams results from background workers to backends and browsers.
//
// A [Client] talks to the engine (RUNNEL_HOST, RUNNEL_TOKEN). Define
// workflows with [NewWorkflow], run their steps in a [Worker], trigger runs
// with [Admin.RunWorkflow], and follow them live with [Listener.Stream]
// (every event) or [Subscriber.Stream] (only the data steps put on the
// stream):
//
//	c, err := runnel.NewClient()
//	if err != nil { … }
//	wf := runnel.NewWorkflow("stream-event-workflow").
//		Step("step1", func(ctx runnel.Context) (any, error) {
//			if err := ctx.PutStream([]byte("hello from step1")); err != nil {
//				return nil, err
//			}
//			return map[string]string{"step1": "results"}, nil
//		})
//	w, err := c.NewWorker("my-worker", runnel.WithSlots(10))
//	if err != nil { … }
//	if err := w.Register(wf); err != nil { … }
//	go w.Run(ctx)
//
//	runID, err := c.Admin().RunWorkflow(ctx, "stream-event-workflow", input)
//	err = c.Subscribe().Stream(ctx, runID, func(ev runnel.StreamEvent) error {
//		fmt.Println(string(ev.Message))
//		return nil
//	})
//
// # Streaming
//
// [Context.PutStream] queues data and returns; a sender per step attempt
// delivers it to the engine in order, in batches, and the engine stores it
// durably before acknowledging. The worker flushes a step's stream before
// it reports the step's result, so a subscriber sees every stream event of
// an attempt before that attempt's step.completed or step.failed. Payloads
// are bytes, up to [MaxPayloadSize] (4 MiB) each.
//
// Every event has a [Position]: opaque, unique in the engine's database,
// and increasing in commit order. Subscriptions start at the beginning of
// the run ([FromStart], the default), at [FromNow], or [After] a position
// seen before, and resume by themselves after a dropped connection or an
// engine restart without gaps or duplicates. [WithTypes] has the engine
// send only some event types.
//
// [Listener.StreamByAdditionalMetadata] follows every run carrying a
// metadata pair (see [WithAdditionalMetadata]), such as a parent run and
// the child runs its steps spawn with [Context.SpawnWorkflow], which
// inherit it.
//
// A retried step runs again as a new attempt: each event carries its
// [Event.Attempt], and a failed attempt's stream events stay in the log.
//
// To serve a run to a browser from your own backend, use the sse
// subpackage. The streaming guide, docs/streaming.md in the repository,
// covers all of this with runnable examples, and the engine's JSON and SSE
// API for other languages and browsers is in docs/http-api.md.
//
// # Errors
//
// Errors from the engine wrap a *connect.Error: use connect.CodeOf(err) to
// tell connect.CodeNotFound, connect.CodeInvalidArgument,
// connect.CodeUnauthenticated and the like apart.
package runnel

// buf generate writes the Go code (internal/gen) and the TypeScript SDK's
// (sdk/typescript/packages/sdk/src/gen), both committed. The TypeScript
// plugin is the npm-pinned protoc-gen-es: run `npm ci` in sdk/typescript
// first. Only regenerating needs Node; building and testing do not.
//go:generate go tool buf generate
