package runnel_test

import (
	"context"
	"fmt"
	"log"

	"github.com/runnel-dev/runnel"
)

// ExampleClient_Streams keeps a chat session in a standalone durable stream
// that outlives the runs writing to it: each run's step appends its answer,
// a reader follows the session live until it is closed.
func ExampleClient_Streams() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := runnel.NewClient()
	if err != nil {
		log.Fatal(err)
	}
	streams := c.Streams()
	if err := streams.Create(ctx, "chat-42", runnel.WithContentType("application/json")); err != nil {
		log.Fatal(err)
	}
	wf := runnel.NewWorkflow("guide-chat-session").
		Step("answer", func(ctx runnel.Context) (any, error) {
			var in struct{ Question string }
			if err := ctx.WorkflowInput(&in); err != nil {
				return nil, err
			}
			msg := fmt.Sprintf(`{"q":%q,"a":"answer to %s"}`, in.Question, in.Question)
			_, err := c.Streams().Append(ctx, "chat-42", []byte(msg))
			return nil, err
		})
	if err := startWorker(ctx, c, wf); err != nil {
		log.Fatal(err)
	}
	for _, q := range []string{"one", "two"} {
		runID, err := c.Admin().RunWorkflow(ctx, "guide-chat-session", map[string]string{"question": q})
		if err != nil {
			log.Fatal(err)
		}
		for _, err := range c.Listener().Stream(ctx, runID) { // wait for the run
			if err != nil {
				log.Fatal(err)
			}
		}
	}
	if err := streams.Close(ctx, "chat-42"); err != nil {
		log.Fatal(err)
	}
	for chunk, err := range streams.Follow(ctx, "chat-42", runnel.FromBeginning) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s\n", chunk.Data)
	}
	// Output:
	// [{"q":"one","a":"answer to one"},{"q":"two","a":"answer to two"}]
}
