// Command parent-children triggers demo-parent, which spawns demo-child
// runs, and follows the whole family with one metadata subscription: the Go
// version of the seed's "Streaming by Additional Metadata" example. The
// parent run carries streamKey=sk-<random>; its children inherit it, so
// every chunk any child streams arrives on the one subscription, printed
// with the id of the child run that streamed it.
//
//	go run ./cmd/runnel dev                    # in one terminal
//	go run ./examples/parent-children          # in another
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"

	"github.com/runnel-dev/runnel"
)

func main() {
	n := flag.Int("n", 3, "number of children demo-parent spawns")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	c, err := newClient()
	if err == nil {
		_, err = run(ctx, c, os.Stdout, *n)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "parent-children:", err)
		os.Exit(1)
	}
}

// run triggers demo-parent with n children and writes one line per chunk a
// child streams, "<child run id> <chunk>", as they arrive. It returns the
// parent's run id once the parent has completed and every chunk of its
// children was printed.
func run(ctx context.Context, c *runnel.Client, out io.Writer, n int) (string, error) {
	var b [6]byte
	_, _ = rand.Read(b[:]) // never fails
	streamKey := "sk-" + hex.EncodeToString(b[:])
	parentID, err := c.Admin().RunWorkflow(ctx, "demo-parent", map[string]int{"n": n},
		runnel.WithAdditionalMetadata(map[string]string{"streamKey": streamKey}))
	if err != nil {
		return "", err
	}
	fmt.Fprintf(os.Stderr, "parent run %s, streamKey=%s\n", parentID, streamKey)

	// A metadata subscription never ends by itself: break out of the loop
	// (which closes it) once the parent has ended and so has every child
	// seen. Each run's events come in order, so a run's terminal event
	// follows all its chunks; and the parent completes only after waiting
	// for its children, so every child has appeared by then.
	var parentEnd *runnel.Event
	open := map[string]bool{} // children seen, until their terminal event
	for ev, err := range c.Listener().StreamByAdditionalMetadata(ctx, "streamKey", streamKey) {
		if err != nil {
			return parentID, err
		}
		switch {
		case ev.RunID == parentID:
			if ev.Terminal() {
				parentEnd = &ev
			}
		case ev.Terminal():
			open[ev.RunID] = false
		default:
			if _, seen := open[ev.RunID]; !seen {
				open[ev.RunID] = true
			}
			if ev.Type == runnel.EventStepStream {
				if _, err := fmt.Fprintf(out, "%s %s\n", ev.RunID, ev.Payload); err != nil {
					return parentID, err
				}
			}
		}
		if parentEnd != nil && !anyOpen(open) {
			break
		}
	}
	if parentEnd == nil {
		return parentID, ctx.Err()
	}
	if parentEnd.Type != runnel.EventRunCompleted {
		return parentID, fmt.Errorf("parent run %s ended with %s: %s", parentID, parentEnd.Type, parentEnd.Data)
	}
	return parentID, nil
}

func anyOpen(open map[string]bool) bool {
	for _, o := range open {
		if o {
			return true
		}
	}
	return false
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
