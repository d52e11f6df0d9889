// Package testengine starts a real in-process engine node for tests (the
// server's, the examples', the CLI's): SQLite in a temporary directory or
// a PostgreSQL schema of its own, loopback port, and optionally a worker
// with the demo workflows. Engines as processes (kill, pause, restart) are
// started with package process.
package testengine

import (
	"context"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/demo"
	"github.com/runnel-dev/runnel/internal/server"
	"github.com/runnel-dev/runnel/internal/testdb"
)

// Engine is a running test node.
type Engine struct {
	URL    string
	Token  string
	Client *runnel.Client
	Server *server.Server
}

// Option adjusts the engine's configuration. Options apply in order, after
// the store and the listener are set.
type Option func(*server.Config)

// WithCORSOrigins lets pages on these origins call the engine's HTTP API
// (as --cors-origin does).
func WithCORSOrigins(origins ...string) Option {
	return func(c *server.Config) { c.CORSOrigins = append(c.CORSOrigins, origins...) }
}

// Start runs an engine on SQLite until the test ends.
func Start(t testing.TB, opts ...Option) *Engine {
	t.Helper()
	return StartOn(t, "sqlite", opts...)
}

// StartOn runs an engine on a fresh database of the kind ("sqlite", or
// "postgres": a schema of its own, see testdb.PostgresURL) until the test
// ends. RUNNEL_TEST_LOG=1 prints the engine's and the client's debug logs.
func StartOn(t testing.TB, kind string, opts ...Option) *Engine {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := server.Config{DataDir: t.TempDir(), Listener: ln, Logger: Logger()}
	switch kind {
	case "sqlite":
	case "postgres":
		cfg.DatabaseURL = testdb.PostgresURL(t)
	default:
		t.Fatalf("unknown store kind %q", kind)
	}
	e, stop, err := start(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("stop engine: %v", err)
		}
	})
	return e
}

// StartMain runs an engine on SQLite in a temporary directory for a whole
// test binary, from TestMain, where there is no testing.TB: tests that
// can share one engine (each with runs of its own) skip starting one each.
// stop ends it and removes the directory.
//
//	func TestMain(m *testing.M) {
//		e, stop, err := testengine.StartMain()
//		...
//		code := m.Run()
//		stop()
//		os.Exit(code)
//	}
func StartMain(opts ...Option) (e *Engine, stop func() error, err error) {
	dir, err := os.MkdirTemp("", "runnel-testengine-")
	if err != nil {
		return nil, nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	e, stopEngine, err := start(server.Config{DataDir: dir, Listener: ln, Logger: Logger()}, opts)
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	return e, func() error {
		err := stopEngine()
		os.RemoveAll(dir)
		return err
	}, nil
}

// start applies the options to cfg, starts the node and a client of it.
func start(cfg server.Config, opts []Option) (*Engine, func() error, error) {
	for _, opt := range opts {
		opt(&cfg)
	}
	srv, err := server.Start(context.Background(), cfg)
	if err != nil {
		return nil, nil, err
	}
	stop := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return srv.Stop(ctx)
	}
	// A node joining an existing database has no admin token of its own.
	c, err := runnel.NewClient(runnel.WithHost(srv.URL()), runnel.WithToken(srv.AdminToken), runnel.WithLogger(Logger()))
	if err != nil {
		_ = stop()
		return nil, nil, err
	}
	return &Engine{URL: srv.URL(), Token: srv.AdminToken, Client: c, Server: srv}, stop, nil
}

// Logger is the tests' logger: discarded, unless RUNNEL_TEST_LOG is set
// (then debug lines on stderr).
func Logger() *slog.Logger {
	if os.Getenv("RUNNEL_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// StartWithDemoWorker runs an engine on SQLite and a worker with the demo
// workflows and 8 slots, as `runnel dev` does, and returns once the worker
// is registered.
func StartWithDemoWorker(t testing.TB, opts ...Option) *Engine {
	t.Helper()
	return StartOnWithDemoWorker(t, "sqlite", 8, opts...)
}

// StartOnWithDemoWorker runs an engine on a fresh database of the kind (as
// StartOn) and a demo worker with the given slots, and returns once the
// worker is registered.
func StartOnWithDemoWorker(t testing.TB, kind string, slots int, opts ...Option) *Engine {
	t.Helper()
	e := StartOn(t, kind, opts...)
	w, err := e.Client.NewWorker("demo", runnel.WithSlots(slots))
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
