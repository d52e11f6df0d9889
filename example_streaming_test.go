package runnel_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"slices"

	"github.com/runnel-dev/runnel"
)

// The examples in this file are the snippets of docs/streaming.md (see
// docs_test.go): change one and the guide with it.

// Example triggers a run and follows, live, what its step streams: the
// whole round trip of a streaming workflow.
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// RUNNEL_HOST and RUNNEL_TOKEN say where the engine is.
	c, err := runnel.NewClient()
	if err != nil {
		log.Fatal(err)
	}

	// A worker runs the steps; here it lives in the same process.
	wf := runnel.NewWorkflow("stream-event-workflow").
		Step("step1", func(ctx runnel.Context) (any, error) {
			for _, word := range []string{"hello", "from", "step1"} {
				if err := ctx.PutStream([]byte(word)); err != nil {
					return nil, err
				}
			}
			return map[string]string{"step1": "results"}, nil
		})
	if err := startWorker(ctx, c, wf); err != nil {
		log.Fatal(err)
	}

	// The backend triggers a run and keeps its id...
	runID, err := c.Admin().RunWorkflow(ctx, "stream-event-workflow", map[string]int{"index": 0})
	if err != nil {
		log.Fatal(err)
	}
	// ...and follows what the step streams until the run ends.
	err = c.Subscribe().Stream(ctx, runID, func(ev runnel.StreamEvent) error {
		fmt.Println(string(ev.Message))
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	// Output:
	// hello
	// from
	// step1
}

// ExampleListener_Stream follows every event of a run: run and step
// status, and the data the step streams.
func ExampleListener_Stream() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := runnel.NewClient()
	if err != nil {
		log.Fatal(err)
	}
	wf := runnel.NewWorkflow("guide-listener").
		Step("greet", func(ctx runnel.Context) (any, error) {
			if err := ctx.PutStream([]byte("hello")); err != nil {
				return nil, err
			}
			return map[string]string{"greeting": "hello"}, nil
		})
	if err := startWorker(ctx, c, wf); err != nil {
		log.Fatal(err)
	}

	runID, err := c.Admin().RunWorkflow(ctx, "guide-listener", nil)
	if err != nil {
		log.Fatal(err)
	}
	// The loop ends after the run's terminal event.
	for ev, err := range c.Listener().Stream(ctx, runID) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Print(ev.Type)
		if ev.Step != "" {
			fmt.Print(" ", ev.Step)
		}
		if ev.Type == runnel.EventStepStream {
			fmt.Printf(" %q", ev.Payload)
		}
		if ev.Terminal() {
			fmt.Print(" ", string(ev.Data))
		}
		fmt.Println()
	}
	// Output:
	// run.started
	// step.started greet
	// step.stream greet "hello"
	// step.completed greet
	// run.completed {"output":{"greet":{"greeting":"hello"}}}
}

// ExampleListener_Stream_filterAndTransform keeps only some events (the
// engine filters by type, your code by anything else) and turns each into
// the message a frontend wants.
func ExampleListener_Stream_filterAndTransform() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := runnel.NewClient()
	if err != nil {
		log.Fatal(err)
	}
	wf := runnel.NewWorkflow("guide-filter").
		Step("write", func(ctx runnel.Context) (any, error) {
			for _, tok := range []string{"Once", " ", "upon", " ", "a", " ", "time"} {
				if err := ctx.PutStream([]byte(tok)); err != nil {
					return nil, err
				}
			}
			return nil, nil
		})
	if err := startWorker(ctx, c, wf); err != nil {
		log.Fatal(err)
	}
	runID, err := c.Admin().RunWorkflow(ctx, "guide-filter", nil)
	if err != nil {
		log.Fatal(err)
	}

	type message struct {
		Type string `json:"type"`
		Text string `json:"text,omitempty"`
	}
	events := c.Listener().Stream(ctx, runID,
		runnel.WithTypes(runnel.EventStepStream, runnel.EventRunCompleted))
	for ev, err := range events {
		if err != nil {
			log.Fatal(err)
		}
		if ev.Type == runnel.EventStepStream && len(bytes.TrimSpace(ev.Payload)) == 0 {
			continue // filter: skip the blanks
		}
		data, err := json.Marshal(message{Type: string(ev.Type), Text: string(ev.Payload)})
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("data: %s\n\n", data)
	}
	// Output:
	// data: {"type":"step.stream","text":"Once"}
	//
	// data: {"type":"step.stream","text":"upon"}
	//
	// data: {"type":"step.stream","text":"a"}
	//
	// data: {"type":"step.stream","text":"time"}
	//
	// data: {"type":"run.completed"}
}

// ExampleContext_PutStream streams progress from inside a step, before the
// step's result exists.
func ExampleContext_PutStream() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := runnel.NewClient()
	if err != nil {
		log.Fatal(err)
	}
	wf := runnel.NewWorkflow("guide-progress").
		Step("step1", func(ctx runnel.Context) (any, error) {
			for i := 1; i <= 3; i++ {
				// ... a third of the work ...
				msg := fmt.Sprintf("%s of %s: %d/3 done", ctx.StepName(), ctx.WorkflowName(), i)
				if err := ctx.PutStream([]byte(msg)); err != nil {
					return nil, err
				}
			}
			return map[string]string{"step1": "results"}, nil
		})
	if err := startWorker(ctx, c, wf); err != nil {
		log.Fatal(err)
	}
	runID, err := c.Admin().RunWorkflow(ctx, "guide-progress", nil)
	if err != nil {
		log.Fatal(err)
	}
	err = c.Subscribe().Stream(ctx, runID, func(ev runnel.StreamEvent) error {
		fmt.Printf("%s (attempt %d): %s\n", ev.Step, ev.Attempt, ev.Message)
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	// Output:
	// step1 (attempt 1): step1 of guide-progress: 1/3 done
	// step1 (attempt 1): step1 of guide-progress: 2/3 done
	// step1 (attempt 1): step1 of guide-progress: 3/3 done
}

// ExampleContext_PutStream_file streams a file's bytes as one payload, and
// writes them back to a file on the listening side.
func ExampleContext_PutStream_file() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := runnel.NewClient()
	if err != nil {
		log.Fatal(err)
	}
	wf := runnel.NewWorkflow("guide-file").
		Step("render", func(ctx runnel.Context) (any, error) {
			var in struct{ Path string }
			if err := ctx.WorkflowInput(&in); err != nil {
				return nil, err
			}
			image, err := os.ReadFile(in.Path)
			if err != nil {
				return nil, err
			}
			// Payloads are bytes: no base64 needed.
			if err := ctx.PutStream(image); err != nil {
				return nil, err
			}
			return map[string]int{"bytes": len(image)}, nil
		})
	if err := startWorker(ctx, c, wf); err != nil {
		log.Fatal(err)
	}
	runID, err := c.Admin().RunWorkflow(ctx, "guide-file", map[string]string{"Path": "testdata/image.png"})
	if err != nil {
		log.Fatal(err)
	}

	outDir, err := os.MkdirTemp("", "out")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(outDir)
	outPath := filepath.Join(outDir, "payload.png")
	err = c.Subscribe().Stream(ctx, runID, func(ev runnel.StreamEvent) error {
		return os.WriteFile(outPath, ev.Message, 0o644)
	})
	if err != nil {
		log.Fatal(err)
	}

	got, err := os.ReadFile(outPath)
	if err != nil {
		log.Fatal(err)
	}
	want, err := os.ReadFile("testdata/image.png")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("wrote %d bytes; same as the original: %t\n", len(got), bytes.Equal(got, want))
	// Output:
	// wrote 489 bytes; same as the original: true
}

// ExampleListener_StreamByAdditionalMetadata follows a parent run and the
// child runs it spawns with one subscription: they all carry the same
// metadata pair.
func ExampleListener_StreamByAdditionalMetadata() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := runnel.NewClient()
	if err != nil {
		log.Fatal(err)
	}
	parent := runnel.NewWorkflow("Parent").
		Step("spawn", func(ctx runnel.Context) (any, error) {
			var in struct{ N int }
			if err := ctx.WorkflowInput(&in); err != nil {
				return nil, err
			}
			// Children inherit this run's additional metadata.
			var children []*runnel.ChildRun
			for i := range in.N {
				child, err := ctx.SpawnWorkflow("Child", map[string]int{"Index": i})
				if err != nil {
					return nil, err
				}
				children = append(children, child)
			}
			for _, child := range children {
				if err := child.Result(ctx, nil); err != nil {
					return nil, err
				}
			}
			return map[string]int{"children": len(children)}, nil
		})
	child := runnel.NewWorkflow("Child").
		Step("work", func(ctx runnel.Context) (any, error) {
			var in struct{ Index int }
			if err := ctx.WorkflowInput(&in); err != nil {
				return nil, err
			}
			return nil, ctx.PutStream(fmt.Appendf(nil, "hello from child %d", in.Index))
		})
	if err := startWorker(ctx, c, parent, child); err != nil {
		log.Fatal(err)
	}

	// A stream key of your own, different for every parent run.
	streamKey, streamVal := "streamKey", "sk-"+rand.Text()
	parentID, err := c.Admin().RunWorkflow(ctx, "Parent", map[string]int{"N": 2},
		runnel.WithAdditionalMetadata(map[string]string{streamKey: streamVal}))
	if err != nil {
		log.Fatal(err)
	}

	// Every event of every run with streamKey=streamVal, children included.
	// The subscription never ends by itself: break out once the parent has
	// ended. Its children ended before it, so their events came earlier.
	var lines []string
	for ev, err := range c.Listener().StreamByAdditionalMetadata(ctx, streamKey, streamVal) {
		if err != nil {
			log.Fatal(err)
		}
		if ev.Type == runnel.EventStepStream {
			lines = append(lines, ev.Workflow+": "+string(ev.Payload))
		}
		if ev.RunID == parentID && ev.Terminal() {
			lines = append(lines, ev.Workflow+": "+string(ev.Type))
			break
		}
	}
	// The children run side by side, so their events interleave in any
	// order; sort them for a stable printout.
	slices.Sort(lines)
	for _, l := range lines {
		fmt.Println(l)
	}
	// Output:
	// Child: hello from child 0
	// Child: hello from child 1
	// Parent: run.completed
}

// ExampleAfter stops listening part way, keeping the position of the last
// event it handled, and resumes there later: nothing is skipped or
// delivered twice.
func ExampleAfter() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := runnel.NewClient()
	if err != nil {
		log.Fatal(err)
	}
	wf := runnel.NewWorkflow("guide-count").
		Step("count", func(ctx runnel.Context) (any, error) {
			for i := 1; i <= 5; i++ {
				if err := ctx.PutStream(fmt.Append(nil, i)); err != nil {
					return nil, err
				}
			}
			return nil, nil
		})
	if err := startWorker(ctx, c, wf); err != nil {
		log.Fatal(err)
	}
	runID, err := c.Admin().RunWorkflow(ctx, "guide-count", nil)
	if err != nil {
		log.Fatal(err)
	}

	var last runnel.Position // keep it where you keep your state
	for ev, err := range c.Listener().Stream(ctx, runID, runnel.WithTypes(runnel.EventStepStream)) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("first:", string(ev.Payload))
		last = ev.Position
		if string(ev.Payload) == "2" {
			break // hang up: the subscription closes, the run goes on
		}
	}

	// Later, perhaps in another process: resume right after the last event.
	err = c.Subscribe().Stream(ctx, runID, func(ev runnel.StreamEvent) error {
		fmt.Println("resumed:", string(ev.Message))
		return nil
	}, runnel.After(last))
	if err != nil {
		log.Fatal(err)
	}
	// Output:
	// first: 1
	// first: 2
	// resumed: 3
	// resumed: 4
	// resumed: 5
}

// Example_retries shows what a retried step streams: each attempt's events
// carry its number, and a failed attempt's events stay in the run's log.
func Example_retries() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := runnel.NewClient()
	if err != nil {
		log.Fatal(err)
	}
	wf := runnel.NewWorkflow("guide-flaky").
		Step("answer", func(ctx runnel.Context) (any, error) {
			if err := ctx.PutStream(fmt.Appendf(nil, "draft %d", ctx.Attempt())); err != nil {
				return nil, err
			}
			if ctx.Attempt() == 1 {
				return nil, errors.New("upstream timed out")
			}
			return nil, nil
		}, runnel.Retries(2))
	if err := startWorker(ctx, c, wf); err != nil {
		log.Fatal(err)
	}
	runID, err := c.Admin().RunWorkflow(ctx, "guide-flaky", nil)
	if err != nil {
		log.Fatal(err)
	}

	events := c.Listener().Stream(ctx, runID,
		runnel.WithTypes(runnel.EventStepStream, runnel.EventStepFailed, runnel.EventStepCompleted))
	text, attempt := "", 0
	for ev, err := range events {
		if err != nil {
			log.Fatal(err)
		}
		switch ev.Type {
		case runnel.EventStepStream:
			fmt.Printf("attempt %d streamed %q\n", ev.Attempt, ev.Payload)
			if ev.Attempt != attempt {
				text, attempt = "", ev.Attempt // a new attempt starts over
			}
			text += string(ev.Payload)
		case runnel.EventStepFailed:
			var failure struct {
				Error    string
				Retrying bool
			}
			if err := json.Unmarshal(ev.Data, &failure); err != nil {
				log.Fatal(err)
			}
			fmt.Printf("attempt %d failed: %s (retrying: %t)\n", ev.Attempt, failure.Error, failure.Retrying)
		case runnel.EventStepCompleted:
			fmt.Printf("attempt %d completed\n", ev.Attempt)
		}
	}
	fmt.Println("shown:", text)
	// Output:
	// attempt 1 streamed "draft 1"
	// attempt 1 failed: upstream timed out (retrying: true)
	// attempt 2 streamed "draft 2"
	// attempt 2 completed
	// shown: draft 2
}

// ExampleErrPayloadTooLarge handles a payload over the 4 MiB limit: the
// put is refused, nothing is sent, and the step goes on.
func ExampleErrPayloadTooLarge() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := runnel.NewClient()
	if err != nil {
		log.Fatal(err)
	}
	wf := runnel.NewWorkflow("guide-big").
		Step("export", func(ctx runnel.Context) (any, error) {
			video := make([]byte, runnel.MaxPayloadSize+1)
			err := ctx.PutStream(video)
			if errors.Is(err, runnel.ErrPayloadTooLarge) {
				// Store it elsewhere and stream where to find it.
				err = ctx.PutStream([]byte("https://files.example.com/video.mp4"))
			}
			if err != nil {
				return nil, err
			}
			return nil, nil
		})
	if err := startWorker(ctx, c, wf); err != nil {
		log.Fatal(err)
	}
	runID, err := c.Admin().RunWorkflow(ctx, "guide-big", nil)
	if err != nil {
		log.Fatal(err)
	}
	err = c.Subscribe().Stream(ctx, runID, func(ev runnel.StreamEvent) error {
		fmt.Println(string(ev.Message))
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	// Output:
	// https://files.example.com/video.mp4
}
