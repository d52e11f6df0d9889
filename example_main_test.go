package runnel_test

import (
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/server"
)

// TestMain runs a real engine (SQLite in a temporary directory) for the
// examples and points RUNNEL_HOST and RUNNEL_TOKEN at it, so that the
// examples' runnel.NewClient() finds it the way a program finds `runnel
// dev`. Each example starts its own worker with startWorker.
func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.fuzzworker"); f != nil && f.Value.String() == "true" {
		// A fuzzing worker process runs no example: no engine needed.
		os.Exit(m.Run())
	}
	os.Exit(runWithEngine(m))
}

func runWithEngine(m *testing.M) int {
	dir, err := os.MkdirTemp("", "runnel-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv, err := server.Start(context.Background(), server.Config{
		DataDir: dir, Listener: ln, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Stop(ctx); err != nil {
			log.Printf("stop engine: %v", err)
		}
	}()
	// The examples' workers and clients log reconnects and the like; keep
	// the examples' output to what they print.
	slog.SetDefault(slog.New(slog.DiscardHandler))
	os.Setenv(runnel.EnvHost, srv.URL())
	os.Setenv(runnel.EnvToken, srv.AdminToken)
	return m.Run()
}

// startWorker runs a worker with the given workflows until ctx ends, and
// returns once the engine knows them (so runs of them can be triggered).
func startWorker(ctx context.Context, c *runnel.Client, workflows ...*runnel.Workflow) error {
	w, err := c.NewWorker("guide-worker")
	if err != nil {
		return err
	}
	if err := w.Register(workflows...); err != nil {
		return err
	}
	stopped := make(chan error, 1)
	go func() { stopped <- w.Run(ctx) }()
	select {
	case <-w.Ready():
		return nil
	case err := <-stopped:
		return fmt.Errorf("worker stopped before it registered: %w", err)
	}
}
