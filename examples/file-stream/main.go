// Command file-stream triggers the demo-file workflow, whose step streams a
// file (binary, not UTF-8) as one stream event, and writes what it receives
// to out/: the Go version of the seed's "Streaming Files" example. It then
// checks the file against the SHA-256 the step reported.
//
//	go run ./cmd/runnel dev                  # in one terminal
//	go run ./examples/file-stream            # in another
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"

	"github.com/runnel-dev/runnel"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	c, err := newClient()
	if err == nil {
		var path string
		path, err = run(ctx, c, "out", 1<<20, os.Stdout)
		if err == nil {
			fmt.Println("wrote", path)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "file-stream:", err)
		os.Exit(1)
	}
}

// run triggers demo-file for a payload of size bytes, writes the streamed
// payload to dir/payload.bin and verifies it against the run's output.
func run(ctx context.Context, c *runnel.Client, dir string, size int, log io.Writer) (string, error) {
	runID, err := c.Admin().RunWorkflow(ctx, "demo-file", map[string]int{"bytes": size})
	if err != nil {
		return "", err
	}
	fmt.Fprintf(log, "run %s\n", runID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "payload.bin")
	var output struct {
		Bytes  int    `json:"bytes"`
		SHA256 string `json:"sha256"`
	}
	for ev, err := range c.Listener().Stream(ctx, runID) {
		if err != nil {
			return "", err
		}
		switch ev.Type {
		case runnel.EventStepStream:
			// The payload arrives as bytes, exactly as the step put them.
			if err := os.WriteFile(path, ev.Payload, 0o644); err != nil {
				return "", err
			}
			fmt.Fprintf(log, "received %d bytes\n", len(ev.Payload))
		case runnel.EventStepCompleted:
			var data struct{ Output json.RawMessage }
			if err := json.Unmarshal(ev.Data, &data); err != nil {
				return "", fmt.Errorf("decode step output: %w", err)
			}
			if err := json.Unmarshal(data.Output, &output); err != nil {
				return "", fmt.Errorf("decode step output: %w", err)
			}
		case runnel.EventRunFailed:
			return "", fmt.Errorf("run failed: %s", ev.Data)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(got)
	if len(got) != output.Bytes || hex.EncodeToString(sum[:]) != output.SHA256 {
		return "", fmt.Errorf("%s: %d bytes, sha256 %x; the step sent %d bytes, sha256 %s",
			path, len(got), sum, output.Bytes, output.SHA256)
	}
	return path, nil
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
