// Command text-stream triggers the demo-text workflow and prints the text
// its step streams, chunk by chunk, as the worker produces it: the Go
// version of the seed's "Listeners" example.
//
//	go run ./cmd/runnel dev                  # in one terminal
//	go run ./examples/text-stream            # in another
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"

	"github.com/runnel-dev/runnel"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	c, err := newClient()
	if err == nil {
		err = run(ctx, c, os.Stdout, 20)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "text-stream:", err)
		os.Exit(1)
	}
}

// run triggers demo-text and writes each stream chunk to out as it arrives.
func run(ctx context.Context, c *runnel.Client, out io.Writer, chunks int) error {
	runID, err := c.Admin().RunWorkflow(ctx, "demo-text", map[string]int{"chunks": chunks, "intervalMs": 50})
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "run %s\n", runID)
	// Only the data steps put on the stream; returns when the run ends.
	err = c.Subscribe().Stream(ctx, runID, func(ev runnel.StreamEvent) error {
		_, err := out.Write(ev.Message)
		return err
	})
	fmt.Fprintln(out)
	return err
}

// newClient connects to RUNNEL_HOST with RUNNEL_TOKEN, or, next to a
// `runnel dev` started in the repository root, with its admin token.
func newClient() (*runnel.Client, error) {
	if os.Getenv("RUNNEL_TOKEN") == "" {
		if b, err := os.ReadFile("runnel-data/admin.token"); err == nil {
			return runnel.NewClient(runnel.WithToken(strings.TrimSpace(string(b))))
		}
	}
	return runnel.NewClient()
}
