// Package testengine starts a real in-process engine node for tests outside
// the server package (examples, guides): SQLite in a temporary directory,
// loopback port, and optionally a worker with the demo workflows.
package testengine

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/demo"
	"github.com/runnel-dev/runnel/internal/server"
)

// Engine is a running test node.
type Engine struct {
	URL    string
	Token  string
	Client *runnel.Client
}

// Option adjusts the engine's configuration.
type Option func(*server.Config)

// WithCORSOrigins lets pages on these origins call the engine's HTTP API
// (as --cors-origin does).
func WithCORSOrigins(origins ...string) Option {
	return func(c *server.Config) { c.CORSOrigins = append(c.CORSOrigins, origins...) }
}

// Start runs an engine until the test ends.
func Start(t testing.TB, opts ...Option) *Engine {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := server.Config{DataDir: t.TempDir(), Listener: ln, Logger: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(&cfg)
	}
	srv, err := server.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Stop(ctx); err != nil {
			t.Errorf("stop engine: %v", err)
		}
	})
	c, err := runnel.NewClient(runnel.WithHost(srv.URL()), runnel.WithToken(srv.AdminToken))
	if err != nil {
		t.Fatal(err)
	}
	return &Engine{URL: srv.URL(), Token: srv.AdminToken, Client: c}
}

// StartWithDemoWorker runs an engine and a worker with the demo workflows,
// as `runnel dev` does, and returns once the worker is registered.
func StartWithDemoWorker(t testing.TB, opts ...Option) *Engine {
	t.Helper()
	e := Start(t, opts...)
	w, err := e.Client.NewWorker("demo", runnel.WithSlots(8))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Register(demo.Workflows()...); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("demo worker: %v", err)
		}
	})
	select {
	case <-w.Ready():
	case err := <-done:
		t.Fatalf("demo worker stopped before registering: %v", err)
	}
	return e
}
