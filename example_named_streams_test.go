package runnel_test

import (
	"context"
	"fmt"
	"log"

	"github.com/runnel-dev/runnel"
)

// ExampleToStream writes two streams of one run, a chat answer's tokens and
// its status, and closes the tokens stream before the step ends. One
// subscriber reads the tokens only; a late one starts at the newest status.
func ExampleToStream() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := runnel.NewClient()
	if err != nil {
		log.Fatal(err)
	}
	wf := runnel.NewWorkflow("guide-chat").
		Step("answer", func(ctx runnel.Context) (any, error) {
			if err := ctx.PutStream([]byte("thinking…"), runnel.ToStream("status")); err != nil {
				return nil, err
			}
			for _, tok := range []string{"Hel", "lo", "!"} {
				if err := ctx.PutStream([]byte(tok), runnel.ToStream("tokens")); err != nil {
					return nil, err
				}
			}
			if err := ctx.CloseStream("tokens"); err != nil {
				return nil, err
			}
			return nil, ctx.PutStream([]byte("done"), runnel.ToStream("status"))
		})
	if err := startWorker(ctx, c, wf); err != nil {
		log.Fatal(err)
	}
	runID, err := c.Admin().RunWorkflow(ctx, "guide-chat", nil)
	if err != nil {
		log.Fatal(err)
	}
	for ev, err := range c.Listener().Stream(ctx, runID, runnel.Streams("tokens")) {
		if err != nil {
			log.Fatal(err)
		}
		switch ev.Type {
		case runnel.EventStepStream:
			fmt.Printf("%s: %s\n", ev.Stream, ev.Payload)
		case runnel.EventStepStreamClosed:
			fmt.Printf("%s: closed\n", ev.Stream)
		}
	}
	for ev, err := range c.Listener().Stream(ctx, runID, runnel.Streams("status"), runnel.FromLatest()) {
		if err != nil {
			log.Fatal(err)
		}
		if ev.Type == runnel.EventStepStream {
			fmt.Printf("latest %s: %s\n", ev.Stream, ev.Payload)
		}
	}
	// Output:
	// tokens: Hel
	// tokens: lo
	// tokens: !
	// tokens: closed
	// latest status: done
}
