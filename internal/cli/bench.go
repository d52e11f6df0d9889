package cli

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/bench"
)

func newBenchCommand() *cobra.Command {
	var (
		o      bench.Options
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "bench SCENARIO",
		Short: "Run a benchmark scenario: " + strings.Join(bench.Scenarios(), ", "),
		Long: `Run a benchmark scenario and print its figures beside the targets.

Each scenario starts its own engine(s) and bench worker processes on
loopback (this same binary), on a fresh SQLite file or a fresh schema of the
PostgreSQL database given by --db, warms up, then measures each case for
--duration. --host runs against engines already running instead (a bench
worker is still started; give --token).

  ingest      stream events/s durably stored and acknowledged (1 and 16 steps; 100 B and 4 KiB)
  latency     PutStream → Go SDK subscriber and → SSE client at 100, 1k, 10k events/s
  runs        one-step runs/s at saturation, and trigger→result latency at half that rate
  fanout      one run to 1k SSE subscribers × 100 ev/s and 10k × 10 ev/s (--scale to shrink)
  replay      a late subscriber reading a finished run of 1M events (--scale to shrink)
  cross-node  latency with the worker on node A and subscribers on node B (PostgreSQL)
  soak        steady runs and subscribers for --duration (10m for the documented soak):
              throughput, latency, engine RSS and open fds over time
  durable-append   appends/s to one standalone stream through the Durable Streams protocol,
                   one producer: one message per request (1 and 64 in flight), JSON-array batches
  durable-latency  a live SSE reader of a standalone stream at 1,000 appends/s`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Scenario = args[0]
			if o.DB == "" {
				o.DB = os.Getenv("RUNNEL_DATABASE_URL")
			}
			bin, err := os.Executable()
			if err != nil {
				return fmt.Errorf("find the runnel binary to start engines and workers: %w", err)
			}
			o.Binary = bin
			o.Progress = cmd.ErrOrStderr()
			if o.ProfileDir != "" {
				if err := os.MkdirAll(o.ProfileDir, 0o755); err != nil {
					return fmt.Errorf("--cpuprofile-dir: %w", err)
				}
			}
			report, err := bench.Run(cmd.Context(), o)
			if err != nil {
				return err
			}
			if asJSON {
				return report.WriteJSON(cmd.OutOrStdout())
			}
			return report.WriteTable(cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&o.DB, "db", "", "sqlite (default) or a postgres:// URL whose database gets a fresh schema (default $RUNNEL_DATABASE_URL)")
	cmd.Flags().DurationVar(&o.Duration, "duration", 10*time.Second, "how long each case measures, after a warm-up of up to 1s")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	cmd.Flags().StringVar(&o.Host, "host", "", "run against engines already running (comma-separated URLs) instead of starting them")
	cmd.Flags().StringVar(&o.Token, "token", "", "API token for --host (default $RUNNEL_TOKEN)")
	cmd.Flags().Float64Var(&o.Scale, "scale", 1, "factor on fanout's subscriber counts and replay's event count (e.g. 0.01 for a quick check)")
	cmd.Flags().StringVar(&o.ProfileDir, "cpuprofile-dir", "", "write a CPU profile of each engine process started to this directory (engine0.pprof, …)")
	cmd.Flags().IntVar(&o.Repeat, "repeat", 1, "run the scenario this many times and print the median of each figure")
	return cmd
}

// newBenchWorkerCommand is the worker process the bench starts: the bench
// workflows, and "ready" on stdout once registered.
func newBenchWorkerCommand() *cobra.Command {
	var (
		flags clientFlags
		slots int
	)
	cmd := &cobra.Command{
		Use:    "bench-worker",
		Short:  "Worker with the bench workflows (started by runnel bench)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := flags.client()
			if err != nil {
				return err
			}
			w, err := c.NewWorker(fmt.Sprintf("bench-worker/%d", os.Getpid()), runnel.WithSlots(slots))
			if err != nil {
				return err
			}
			if err := w.Register(bench.Workflows()...); err != nil {
				return err
			}
			errc := make(chan error, 1)
			go func() { errc <- w.Run(cmd.Context()) }()
			select {
			case <-w.Ready():
				fmt.Fprintln(cmd.OutOrStdout(), "ready")
			case err := <-errc:
				return err
			}
			return <-errc
		},
	}
	flags.register(cmd)
	cmd.Flags().IntVar(&slots, "slots", 32, "steps run at once")
	return cmd
}

// newBenchSSEServerCommand is the plain SSE server the fanout bench
// measures the engine against, in a process of its own.
func newBenchSSEServerCommand() *cobra.Command {
	var (
		addr      string
		rate      int
		startAtNs int64
		duration  time.Duration
	)
	cmd := &cobra.Command{
		Use:    "bench-sse-server",
		Short:  "Plain SSE server the fanout bench compares the engine with (started by runnel bench)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return bench.ServePlainSSE(cmd.Context(), addr, rate, time.Unix(0, startAtNs), duration, func() {
				fmt.Fprintln(cmd.OutOrStdout(), "ready")
			})
		},
	}
	cmd.Flags().StringVar(&addr, "addr", "127.0.0.1:0", "listen address")
	cmd.Flags().IntVar(&rate, "rate", 10, "events a second")
	cmd.Flags().Int64Var(&startAtNs, "start-at-ns", 0, "when to start emitting (Unix nanoseconds)")
	cmd.Flags().DurationVar(&duration, "duration", 10*time.Second, "how long to emit")
	return cmd
}
