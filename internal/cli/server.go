package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/demo"
	"github.com/runnel-dev/runnel/internal/engine"
	"github.com/runnel-dev/runnel/internal/redact"
	"github.com/runnel-dev/runnel/internal/server"
)

type serverOptions struct {
	addr     string
	dataDir  string
	db       string
	sync     string
	logLevel string
	cors     []string
	// retention: how long finished runs are kept (engine.Config.Retention).
	retention time.Duration
	// debugAddr serves the Go profiler when set.
	debugAddr string
	// cpuProfile is written over the whole life of the process when set.
	cpuProfile string
	// Limits (engine.Config); 0 on a flag means no limit.
	maxSubscribers, maxSubscribersPerToken int
	tokenMintRate                          float64
	tokenMintBurst                         int
	// shutdownTimeout bounds the graceful drain on SIGINT/SIGTERM.
	shutdownTimeout time.Duration
	// heartbeatInterval and heartbeatTimeout: engine.Config's (how often
	// workers heartbeat, and how long a silent one lives).
	heartbeatInterval time.Duration
	heartbeatTimeout  time.Duration
	idleTimeout       time.Duration
	writeTimeout      time.Duration
}

// DefaultShutdownTimeout bounds a graceful shutdown: long enough for
// requests in flight to finish, short enough for a supervisor's stop.
const DefaultShutdownTimeout = 30 * time.Second

func (o *serverOptions) register(cmd *cobra.Command, withDB bool) {
	cmd.Flags().StringVar(&o.addr, "addr", server.DefaultAddr, "address to listen on")
	cmd.Flags().StringVar(&o.dataDir, "data-dir", "runnel-data", "directory for the embedded database and admin.token")
	if withDB {
		cmd.Flags().StringVar(&o.db, "db", "", "database URL: sqlite://PATH or postgres://... (default $RUNNEL_DATABASE_URL, else SQLite in the data directory)")
	}
	cmd.Flags().StringVar(&o.sync, "sync", "normal", "SQLite durability: normal (survives a crash of the engine) or full (also survives power loss, slower)")
	cmd.Flags().StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	cmd.Flags().StringArrayVar(&o.cors, "cors-origin", nil, "browser origin allowed to call the HTTP API, e.g. http://localhost:3000 (repeatable; none by default)")
	cmd.Flags().StringVar(&o.debugAddr, "debug-addr", "", "serve Go's profiler (/debug/pprof/) on this address, e.g. 127.0.0.1:6060 (off by default)")
	cmd.Flags().StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the process to this file when it exits (read it with go tool pprof)")
	cmd.Flags().IntVar(&o.maxSubscribers, "max-subscribers", engine.DefaultMaxSubscribers, "most live subscriptions (SDK and SSE, run and metadata) this node serves; more are refused with 429 / ResourceExhausted (0: no limit)")
	cmd.Flags().IntVar(&o.maxSubscribersPerToken, "max-subscribers-per-token", engine.DefaultMaxSubscribersPerToken, "most live subscriptions one API or browser token holds on this node; admin tokens only count toward --max-subscribers (0: no limit)")
	cmd.Flags().Float64Var(&o.tokenMintRate, "token-mint-rate", engine.DefaultTokenMintRate, "tokens one token may mint per second, after a burst of --token-mint-burst; faster is refused with 429 / ResourceExhausted (0: no limit)")
	cmd.Flags().IntVar(&o.tokenMintBurst, "token-mint-burst", engine.DefaultTokenMintBurst, "tokens one token may mint at once before --token-mint-rate applies")
	cmd.Flags().DurationVar(&o.shutdownTimeout, "shutdown-timeout", DefaultShutdownTimeout, "on SIGINT/SIGTERM, how long to let requests in flight finish before closing the connections still open")
	cmd.Flags().DurationVar(&o.heartbeatInterval, "heartbeat-interval", engine.DefaultHeartbeatInterval, "how often workers are asked to send a heartbeat")
	cmd.Flags().DurationVar(&o.heartbeatTimeout, "heartbeat-timeout", 0, "how long a worker may stay silent before it is declared dead and its running steps re-queued (default 5 × --heartbeat-interval)")
	cmd.Flags().DurationVar(&o.idleTimeout, "idle-timeout", server.DefaultIdleTimeout, "close a connection with no request open (HTTP/1.1 keep-alive, HTTP/2) after this long; streams in progress are not idle")
	cmd.Flags().DurationVar(&o.writeTimeout, "write-timeout", server.DefaultWriteTimeout, "drop a client that does not take a write of its response (each SSE frame, each RPC stream message) within this long; subscribers resume from their position")
	cmd.Flags().DurationVar(&o.retention, "retention", engine.DefaultRetention, "how long a finished run and its events are kept before they are deleted, 7 days by default; a negative duration such as -1s keeps them forever")
}

func (o *serverOptions) config(stderr io.Writer) (server.Config, error) {
	if o.sync != "normal" && o.sync != "full" {
		return server.Config{}, fmt.Errorf("invalid --sync %q: want normal or full", o.sync)
	}
	if o.retention == 0 {
		// The engine reads 0 as "the default"; refusing it here spares an
		// operator who meant "delete at once" from silently keeping 7 days.
		return server.Config{}, fmt.Errorf("invalid --retention 0: want a positive duration, or a negative one to keep finished runs forever")
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"--max-subscribers", float64(o.maxSubscribers)}, {"--max-subscribers-per-token", float64(o.maxSubscribersPerToken)}, {"--token-mint-rate", o.tokenMintRate}} {
		if f.v < 0 {
			return server.Config{}, fmt.Errorf("invalid %s %g: want a positive number, or 0 for no limit", f.name, f.v)
		}
	}
	if o.tokenMintBurst < 1 {
		return server.Config{}, fmt.Errorf("invalid --token-mint-burst %d: want at least 1", o.tokenMintBurst)
	}
	if o.shutdownTimeout <= 0 {
		return server.Config{}, fmt.Errorf("invalid --shutdown-timeout %s: want a positive duration such as 30s", o.shutdownTimeout)
	}
	if o.heartbeatInterval <= 0 {
		return server.Config{}, fmt.Errorf("invalid --heartbeat-interval %s: want a positive duration", o.heartbeatInterval)
	}
	if o.heartbeatTimeout < 0 || (o.heartbeatTimeout > 0 && o.heartbeatTimeout <= o.heartbeatInterval) {
		return server.Config{}, fmt.Errorf("invalid --heartbeat-timeout %s: want more than --heartbeat-interval (%s)", o.heartbeatTimeout, o.heartbeatInterval)
	}
	for _, f := range []struct {
		name string
		v    time.Duration
	}{{"--idle-timeout", o.idleTimeout}, {"--write-timeout", o.writeTimeout}} {
		if f.v <= 0 {
			return server.Config{}, fmt.Errorf("invalid %s %s: want a positive duration", f.name, f.v)
		}
	}
	logger, err := newLogger(stderr, o.logLevel)
	if err != nil {
		return server.Config{}, err
	}
	db := o.db
	if db == "" {
		db = os.Getenv("RUNNEL_DATABASE_URL")
	}
	cfg := server.Config{
		Addr: o.addr, DataDir: o.dataDir, DatabaseURL: db, SQLiteSyncFull: o.sync == "full", CORSOrigins: o.cors,
		Timeouts: server.Timeouts{Idle: o.idleTimeout, Write: o.writeTimeout},
		Logger:   logger, Engine: engine.Config{
			Logger: logger, Retention: o.retention,
			MaxSubscribers: noLimit(o.maxSubscribers), MaxSubscribersPerToken: noLimit(o.maxSubscribersPerToken),
			TokenMintRate: noLimit(o.tokenMintRate), TokenMintBurst: o.tokenMintBurst,
			HeartbeatInterval: o.heartbeatInterval, HeartbeatTimeout: o.heartbeatTimeout,
		},
	}
	return cfg, cfg.Validate()
}

// noLimit turns a flag's 0 ("no limit") into the engine's negative one (its
// 0 means "the default").
func noLimit[T int | float64](v T) T {
	if v == 0 {
		return -1
	}
	return v
}

func newServerCommand() *cobra.Command {
	var o serverOptions
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the engine alone (workers connect to it)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := o.config(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			stopDebug, err := startDebugServer(o.debugAddr)
			if err != nil {
				return err
			}
			defer stopDebug()
			stopProfile, err := startCPUProfile(o.cpuProfile)
			if err != nil {
				return err
			}
			defer stopProfile()
			srv, err := server.Start(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			printAdminToken(cmd.OutOrStdout(), srv, cfg.DataDir)
			return serveUntilDone(cmd.Context(), srv, o.shutdownTimeout)
		},
	}
	o.register(cmd, true)
	return cmd
}

func newDevCommand() *cobra.Command {
	var o serverOptions
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run the engine on the embedded store plus a worker with the demo workflows, in one process",
		Long: "Run the engine on the embedded store plus a worker with the demo workflows, in one process.\n\n" +
			"Engine and worker live and die together, so a step running when `runnel dev` is stopped or killed\n" +
			"runs again as a new attempt after the restart. Run `runnel server` and `runnel worker` as separate\n" +
			"processes for steps that survive engine restarts (docs/operations.md, \"Workers\").",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := o.config(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			stopDebug, err := startDebugServer(o.debugAddr)
			if err != nil {
				return err
			}
			defer stopDebug()
			stopProfile, err := startCPUProfile(o.cpuProfile)
			if err != nil {
				return err
			}
			defer stopProfile()
			srv, err := server.Start(ctx, cfg)
			if err != nil {
				return err
			}
			token := srv.AdminToken
			if token == "" {
				// The store exists but its admin token file is gone: mint a
				// token for the built-in worker and the user.
				admin := engine.Principal{Kind: "admin"}
				created, err := srv.Engine().CreateToken(ctx, admin, engine.APITokenParams{Tenant: engine.DefaultTenant, Name: "dev"})
				if err != nil {
					_ = srv.Stop(context.Background())
					return err
				}
				token = created.Secret
			}
			client, err := runnel.NewClient(runnel.WithHost(srv.URL()), runnel.WithToken(token), runnel.WithLogger(cfg.Logger))
			if err != nil {
				_ = srv.Stop(context.Background())
				return err
			}
			w, err := client.NewWorker("dev-worker", runnel.WithSlots(32))
			if err == nil {
				err = w.Register(demo.Workflows()...)
			}
			if err != nil {
				_ = srv.Stop(context.Background())
				return err
			}
			workerCtx, stopWorker := context.WithCancel(ctx)
			workerDone := make(chan error, 1)
			go func() { workerDone <- w.Run(workerCtx) }()

			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "Runnel dev engine on %s (store: %s)\n", srv.URL(), describeStore(cfg))
			fmt.Fprintf(out, "Dashboard: %s/#token=%s\n", srv.URL(), token)
			fmt.Fprintf(out, "API token: %s\n", token)
			if srv.AdminToken != "" {
				fmt.Fprintf(out, "           (kept in %s; the CLI reads it from there)\n", filepath.Join(cfg.DataDir, "admin.token"))
			}
			fmt.Fprintf(out, "Demo workflows: demo-text, demo-file, demo-parent, demo-child, demo-flaky, demo-slow\n")
			fmt.Fprintf(out, "Try: go run ./cmd/runnel run demo-text --wait\n")

			err = serveUntilDone(ctx, srv, o.shutdownTimeout)
			stopWorker()
			<-workerDone
			return err
		},
	}
	o.register(cmd, false)
	return cmd
}

func describeStore(cfg server.Config) string {
	if cfg.DatabaseURL != "" {
		return redact.Secrets(cfg.DatabaseURL)
	}
	return "SQLite at " + filepath.Join(cfg.DataDir, "runnel.db")
}

func printAdminToken(out io.Writer, srv *server.Server, dataDir string) {
	if srv.NewAdminToken {
		fmt.Fprintf(out, "Created the default tenant. Admin token (shown once, kept in %s):\n%s\n",
			filepath.Join(dataDir, "admin.token"), srv.AdminToken)
	}
}

// serveUntilDone serves until ctx ends (SIGINT/SIGTERM), then shuts down
// gracefully, waiting at most timeout for requests in flight.
func serveUntilDone(ctx context.Context, srv *server.Server, timeout time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Wait() }()
	select {
	case err := <-errc:
		_ = srv.Stop(context.Background())
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return srv.Stop(shutdownCtx)
}
