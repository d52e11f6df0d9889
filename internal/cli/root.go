// Package cli is the runnel command line. main only builds the command
// tree and sets the exit code; each command reads its flags into an options
// struct, validates it, and runs with an injectable output.
package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	"github.com/runnel-dev/runnel"
)

// Main runs the command line with args and returns the exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := NewRootCommand(stdout, stderr)
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintf(stderr, "runnel: %v\n", err)
		if hint := hintFor(err); hint != "" {
			fmt.Fprintf(stderr, "hint: %s\n", hint)
		}
		return 1
	}
	return 0
}

// clientFlags are the connection flags of every client command.
type clientFlags struct {
	host    string
	token   string
	dataDir string
}

func (f *clientFlags) register(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVar(&f.host, "host", "", "engine URL (default $RUNNEL_HOST or http://127.0.0.1:7077)")
	cmd.PersistentFlags().StringVar(&f.token, "token", "", "API token (default $RUNNEL_TOKEN, else the admin token in the data directory)")
	cmd.PersistentFlags().StringVar(&f.dataDir, "data-dir", "", "data directory of a local engine, read for its admin token when no token is given (default ./runnel-data)")
}

// client builds an SDK client. Flags override the environment; with no token
// at all, a local engine's admin token is read from its data directory, so
// `runnel run` works next to `runnel dev` without setup.
func (f *clientFlags) client() (*runnel.Client, error) {
	var opts []runnel.ClientOption
	if f.host != "" {
		opts = append(opts, runnel.WithHost(f.host))
	}
	token := f.token
	if token == "" && os.Getenv("RUNNEL_TOKEN") == "" {
		dir := f.dataDir
		if dir == "" {
			dir = "runnel-data"
		}
		if b, err := os.ReadFile(filepath.Join(dir, "admin.token")); err == nil {
			token = strings.TrimSpace(string(b))
		}
	}
	if token != "" {
		opts = append(opts, runnel.WithToken(token))
	}
	return runnel.NewClient(opts...)
}

// NewRootCommand builds the command tree.
func NewRootCommand(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "runnel",
		Short:         "Runnel: a durable workflow engine that streams results to backends and browsers",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(
		newServerCommand(),
		newDevCommand(),
		newWorkerCommand(),
		newRunCommand(),
		newStreamCommand(),
		newRunsCommand(),
		newTokenCommand(),
		newBenchCommand(),
		newBenchWorkerCommand(),
	)
	return root
}

// hintFor suggests a next step for common failures.
func hintFor(err error) string {
	switch connect.CodeOf(err) {
	case connect.CodeUnavailable:
		return "is the engine running? Start one with `go run ./cmd/runnel dev`, or point --host / RUNNEL_HOST at it"
	case connect.CodeUnauthenticated:
		return "pass --token or set RUNNEL_TOKEN (runnel dev prints a token and keeps it in runnel-data/admin.token)"
	}
	return ""
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("invalid --log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}
