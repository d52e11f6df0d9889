// Package server assembles an engine node: it opens the store named by the
// configuration, starts the engine, and serves every protocol on one port
// (Connect RPC over HTTP/1.1 and h2c, the JSON API and SSE, the dashboard,
// metrics and health checks).
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/runnel-dev/runnel/internal/api"
	"github.com/runnel-dev/runnel/internal/browsersdk"
	"github.com/runnel-dev/runnel/internal/dashboard"
	"github.com/runnel-dev/runnel/internal/engine"
	"github.com/runnel-dev/runnel/internal/eventlog"
	"github.com/runnel-dev/runnel/internal/gen/runnel/v1/runnelv1connect"
	"github.com/runnel-dev/runnel/internal/metrics"
	"github.com/runnel-dev/runnel/internal/redact"
	"github.com/runnel-dev/runnel/internal/store"
	"github.com/runnel-dev/runnel/internal/store/postgres"
	"github.com/runnel-dev/runnel/internal/store/sqlite"
)

// DefaultAddr is the engine's default listen address. 7077 is not the
// well-known port of another common server.
const DefaultAddr = "127.0.0.1:7077"

// Config configures a node. Zero values are the defaults.
type Config struct {
	// Addr to listen on (default DefaultAddr). Ignored when Listener is set.
	Addr     string
	Listener net.Listener
	// DataDir holds the embedded database and admin.token (default
	// ./runnel-data).
	DataDir string
	// DatabaseURL selects the store: "" or sqlite://PATH for SQLite
	// (default <DataDir>/runnel.db), postgres://... for PostgreSQL.
	DatabaseURL string
	// SQLiteSyncFull makes SQLite commits survive power loss (synchronous=FULL).
	SQLiteSyncFull bool
	// CORSOrigins are the browser origins allowed to call the HTTP API.
	CORSOrigins []string
	Logger      *slog.Logger
	// Timeouts of connections and stream writes (zero fields: defaults).
	Timeouts Timeouts
	Engine   engine.Config
}

// Validate checks the configuration and reports the first bad field.
func (c *Config) Validate() error {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.DataDir == "" {
		c.DataDir = "runnel-data"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.Timeouts.applyDefaults()
	if c.Engine.Logger == nil {
		c.Engine.Logger = c.Logger
	}
	switch {
	case c.DatabaseURL == "", strings.HasPrefix(c.DatabaseURL, "sqlite://"),
		strings.HasPrefix(c.DatabaseURL, "postgres://"), strings.HasPrefix(c.DatabaseURL, "postgresql://"):
	default:
		return fmt.Errorf("invalid database URL %q: want sqlite://PATH or postgres://...", redact.Secrets(c.DatabaseURL))
	}
	return nil
}

// Server is a running engine node.
type Server struct {
	cfg      Config
	store    store.Store
	engine   *engine.Engine
	metrics  *metrics.Metrics
	api      *api.HTTP
	http     *http.Server
	listener net.Listener
	// AdminToken is the admin secret when this start created it, or when it
	// can be read from <DataDir>/admin.token; "" otherwise.
	AdminToken string
	// NewAdminToken reports that this start created the admin token.
	NewAdminToken bool

	baseCancel context.CancelFunc
	serveErr   chan error
	stopOnce   sync.Once
}

// Start opens the store (applying migrations), bootstraps the default
// tenant on an empty store, starts the engine and begins serving.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// Each node has its own registry, so nodes sharing a process (tests)
	// keep their own figures.
	m := metrics.New()
	cfg.Engine.Metrics = m
	s := &Server{cfg: cfg, serveErr: make(chan error, 1), metrics: m}
	hub := eventlog.NewHub()
	commitHook := func(events []store.Event) {
		hub.CommitHook(events)
		m.Committed(events)
	}
	st, err := openStore(ctx, cfg, store.Options{CommitHook: commitHook})
	if err != nil {
		return nil, err
	}
	s.store = st
	fail := func(err error) (*Server, error) {
		if s.baseCancel != nil {
			s.baseCancel()
		}
		if s.engine != nil {
			s.engine.Stop()
		}
		st.Close()
		return nil, err
	}
	if s.engine, err = engine.New(ctx, st, hub, cfg.Engine); err != nil {
		return fail(err)
	}
	if err := s.bootstrap(ctx); err != nil {
		return fail(err)
	}
	if err := secureDataDir(cfg.DataDir, cfg.Logger); err != nil {
		return fail(err)
	}
	if err := s.engine.Start(context.WithoutCancel(ctx)); err != nil {
		return fail(err)
	}
	baseCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.baseCancel = cancel

	mux := http.NewServeMux()
	api.NewRPC(s.engine, cfg.Logger).Mount(mux)
	s.api = api.NewHTTP(s.engine, cfg.Logger, api.HTTPConfig{CORSOrigins: cfg.CORSOrigins, WriteTimeout: cfg.Timeouts.Write})
	s.api.Mount(mux)
	dashboard.Mount(mux)
	browsersdk.Mount(mux)
	// /healthz: the process serves HTTP. /readyz: it can also reach its
	// store, so it can do useful work.
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	m.RegisterWorkerSlots(s.engine.WorkerSlots)
	m.RegisterActiveRuns(st.CountActiveRuns, storeCheckTimeout)
	mux.Handle("GET /metrics", m.Handler(cfg.Logger))

	ln := cfg.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", cfg.Addr); err != nil {
			return fail(fmt.Errorf("listen on %s: %w", cfg.Addr, err))
		}
	}
	s.listener = ln
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	s.http = &http.Server{
		Handler: withDeadlines(m.Middleware(withSecurityHeaders(mux),
			"/"+runnelv1connect.RunServiceName+"/", "/"+runnelv1connect.WorkerServiceName+"/"), cfg.Timeouts),
		Protocols: protocols,
		// No ReadTimeout or WriteTimeout: they count from the start of a
		// request and would cut streams; withDeadlines bounds bodies and
		// every write instead.
		ReadHeaderTimeout: cfg.Timeouts.ReadHeader,
		IdleTimeout:       cfg.Timeouts.Idle,
		BaseContext:       func(net.Listener) context.Context { return baseCtx },
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
	}
	go func() { s.serveErr <- s.http.Serve(ln) }()
	cfg.Logger.Info("engine listening", "addr", ln.Addr().String(), "store", storeKind(cfg.DatabaseURL))
	return s, nil
}

// Addr is the address the node listens on.
func (s *Server) Addr() string { return s.listener.Addr().String() }

// URL is the node's base URL.
func (s *Server) URL() string { return "http://" + s.Addr() }

// Config returns the node's configuration (with defaults applied).
func (s *Server) Config() Config { return s.cfg }

// Engine returns the node's engine.
func (s *Server) Engine() *engine.Engine { return s.engine }

// Store returns the node's store (for tests and tools that inspect it).
func (s *Server) Store() store.Store { return s.store }

// Wait blocks until the HTTP server stops serving.
func (s *Server) Wait() error {
	err := <-s.serveErr
	s.serveErr <- err
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Stop shuts the node down gracefully, within ctx:
//
//  1. it stops accepting connections (HTTP/2 clients get a GOAWAY, idle
//     HTTP/1.1 connections are closed);
//  2. live subscriptions end with Unavailable and SSE streams close without
//     an end event, so the SDK and EventSource resume from their last
//     position; worker sessions end, so workers register again elsewhere or
//     after the restart;
//  3. requests in flight (stream appends, step results) finish, commit and
//     are answered;
//  4. the engine stops (queued appends commit) and the store closes.
//
// When ctx ends first, the connections still open are closed and the
// requests still running are cancelled: nothing acknowledged is lost, but
// their clients see an error and retry.
func (s *Server) Stop(ctx context.Context) error {
	var err error
	s.stopOnce.Do(func() {
		log := s.cfg.Logger
		started := time.Now()
		log.Info("draining: refusing new connections, ending subscriptions and worker sessions")
		shutdown := make(chan error, 1)
		go func() { shutdown <- s.http.Shutdown(ctx) }()
		s.engine.Drain()
		if serr := <-shutdown; serr != nil {
			log.Warn("drain timed out; closing the connections still open", "err", serr)
			_ = s.http.Close()
		}
		// SSE streams taken over from net/http end with their
		// subscriptions, which the drain ended.
		if serr := s.api.CloseStreams(ctx); serr != nil {
			log.Warn("drain timed out", "err", serr)
		}
		s.baseCancel()
		s.engine.Stop()
		if cerr := s.store.Close(); cerr != nil {
			err = fmt.Errorf("close store: %w", cerr)
		}
		log.Info("drained and stopped", "took", time.Since(started).Round(time.Millisecond))
	})
	return err
}

// bootstrap creates the default tenant and admin token on an empty store
// and keeps the admin secret in <DataDir>/admin.token (mode 0600).
func (s *Server) bootstrap(ctx context.Context) error {
	secret, err := s.engine.Bootstrap(ctx)
	if err != nil {
		return err
	}
	path := filepath.Join(s.cfg.DataDir, "admin.token")
	if secret == "" {
		if b, err := os.ReadFile(path); err == nil {
			s.AdminToken = strings.TrimSpace(string(b))
		}
		return nil
	}
	if err := os.MkdirAll(s.cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data directory %s: %w", s.cfg.DataDir, err)
	}
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		return fmt.Errorf("write admin token: %w", err)
	}
	s.AdminToken, s.NewAdminToken = secret, true
	return nil
}

func openStore(ctx context.Context, cfg Config, opts store.Options) (store.Store, error) {
	switch url := cfg.DatabaseURL; {
	case strings.HasPrefix(url, "postgres://"), strings.HasPrefix(url, "postgresql://"):
		st, err := postgres.Open(ctx, url, opts)
		if err != nil {
			return nil, fmt.Errorf("open PostgreSQL store: %w", err)
		}
		return st, nil
	default:
		path := strings.TrimPrefix(url, "sqlite://")
		if path == "" {
			if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
				return nil, fmt.Errorf("create data directory %s: %w", cfg.DataDir, err)
			}
			path = filepath.Join(cfg.DataDir, "runnel.db")
		}
		if err := prepareSQLiteFile(path, cfg.Logger); err != nil {
			return nil, fmt.Errorf("open SQLite store %s: %w", path, err)
		}
		st, err := sqlite.OpenConfig(ctx, sqlite.Config{Path: path, SyncFull: cfg.SQLiteSyncFull}, opts)
		if err != nil {
			return nil, fmt.Errorf("open SQLite store %s: %w", path, err)
		}
		return st, nil
	}
}

func storeKind(url string) string {
	if strings.HasPrefix(url, "postgres") {
		return "postgres"
	}
	return "sqlite"
}
