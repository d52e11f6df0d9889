package runnel_test

import (
	"context"
	"fmt"
	"log"
	"strings"

	"github.com/runnel-dev/runnel"
)

// ExampleNewClient creates a client. Without options it reads RUNNEL_HOST
// and RUNNEL_TOKEN; options override them. It does not connect yet.
func ExampleNewClient() {
	c, err := runnel.NewClient(
		runnel.WithHost("http://127.0.0.1:7077/"),
		runnel.WithToken("rnl_..."),
	)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(c.Host())

	_, err = runnel.NewClient(runnel.WithHost("ftp://example.com"))
	fmt.Println(err)
	// Output:
	// http://127.0.0.1:7077
	// runnel: new client: invalid host "ftp://example.com": scheme must be http or https
}

// ExampleClient_NewWorker runs a workflow of two steps, the second waiting
// for the first and reading its output, in a worker of this process.
func ExampleClient_NewWorker() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := runnel.NewClient()
	if err != nil {
		log.Fatal(err)
	}
	wf := runnel.NewWorkflow("summarise").
		Step("fetch", func(ctx runnel.Context) (any, error) {
			var in struct{ URL string }
			if err := ctx.WorkflowInput(&in); err != nil {
				return nil, err
			}
			return map[string]string{"doc": "the text at " + in.URL}, nil
		}).
		Step("summarise", func(ctx runnel.Context) (any, error) {
			var fetched struct{ Doc string }
			if err := ctx.StepOutput("fetch", &fetched); err != nil {
				return nil, err
			}
			return map[string]string{"summary": strings.ToUpper(fetched.Doc)}, nil
		}, runnel.Parents("fetch"), runnel.Retries(2))

	w, err := c.NewWorker("my-worker", runnel.WithSlots(10))
	if err != nil {
		log.Fatal(err)
	}
	if err := w.Register(wf); err != nil {
		log.Fatal(err)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- w.Run(ctx) }() // until ctx ends
	select {
	case <-w.Ready(): // the engine knows the workflow now
	case err := <-stopped:
		log.Fatal(err)
	}

	runID, err := c.Admin().RunWorkflow(ctx, "summarise", map[string]string{"url": "https://example.com"})
	if err != nil {
		log.Fatal(err)
	}
	// Wait for the end of the run (only its terminal event is of interest).
	terminal := []runnel.EventType{runnel.EventRunCompleted, runnel.EventRunFailed,
		runnel.EventRunCancelled, runnel.EventRunTimedOut}
	for _, err := range c.Listener().Stream(ctx, runID, runnel.WithTypes(terminal...)) {
		if err != nil {
			log.Fatal(err)
		}
	}
	run, err := c.Admin().GetRun(ctx, runID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(run.Status, string(run.Output))
	// Output:
	// completed {"fetch":{"doc":"the text at https://example.com"},"summarise":{"summary":"THE TEXT AT HTTPS://EXAMPLE.COM"}}
}

// ExampleEvents_Push triggers every workflow that listens to an event key.
func ExampleEvents_Push() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := runnel.NewClient()
	if err != nil {
		log.Fatal(err)
	}
	welcome := runnel.NewWorkflow("welcome-user").
		OnEvents("user:create").
		Step("greet", func(ctx runnel.Context) (any, error) {
			var user struct{ Name string }
			if err := ctx.WorkflowInput(&user); err != nil {
				return nil, err
			}
			return nil, ctx.PutStream([]byte("welcome, " + user.Name))
		})
	if err := startWorker(ctx, c, welcome); err != nil {
		log.Fatal(err)
	}

	runIDs, err := c.Event().Push(ctx, "user:create", map[string]string{"name": "Ada"})
	if err != nil {
		log.Fatal(err)
	}
	for _, runID := range runIDs {
		err := c.Subscribe().Stream(ctx, runID, func(ev runnel.StreamEvent) error {
			fmt.Println(string(ev.Message))
			return nil
		})
		if err != nil {
			log.Fatal(err)
		}
	}
	// Output:
	// welcome, Ada
}
