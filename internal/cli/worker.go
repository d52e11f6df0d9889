package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/demo"
)

func newWorkerCommand() *cobra.Command {
	var (
		flags    clientFlags
		slots    int
		name     string
		logLevel string
	)
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Run a worker with the demo workflows against $RUNNEL_HOST",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if slots < 1 {
				return fmt.Errorf("invalid --slots %d: want at least 1", slots)
			}
			logger, err := newLogger(cmd.ErrOrStderr(), logLevel)
			if err != nil {
				return err
			}
			c, err := flags.client(runnel.WithLogger(logger))
			if err != nil {
				return err
			}
			if name == "" {
				host, _ := os.Hostname()
				name = fmt.Sprintf("demo-worker@%s/%d", host, os.Getpid())
			}
			w, err := c.NewWorker(name, runnel.WithSlots(slots))
			if err != nil {
				return err
			}
			if err := w.Register(demo.Workflows()...); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "worker %s connecting to %s\n", name, c.Host())
			return w.Run(cmd.Context())
		},
	}
	flags.register(cmd)
	cmd.Flags().IntVar(&slots, "slots", 10, "steps run at once")
	cmd.Flags().StringVar(&name, "name", "", "worker name (default demo-worker@HOST/PID)")
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "log level: debug (every step attempt started and reported), info, warn or error")
	return cmd
}
