// Package cli is the runnel command line. main only builds the command
// tree and sets the exit code; each command reads its flags into an options
// struct, validates it, and runs with an injectable output.
package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/spf13/cobra"
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

// NewRootCommand builds the command tree.
func NewRootCommand(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "runnel",
		Short:         "Runnel: a durable workflow engine that streams results to backends and browsers",
		SilenceUsage:  true,
		SilenceErrors: true,
		Long: "Runnel: a durable workflow engine that streams results to backends and browsers.\n\n" +
			"Client commands find the engine at --host, $RUNNEL_HOST or http://127.0.0.1:7077, and use the token\n" +
			"from --token, $RUNNEL_TOKEN or <data dir>/admin.token. Shell completion (workflow names and run ids\n" +
			"come from the engine): see `runnel completion bash --help` (or zsh, fish, powershell).",
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(newVersionCommand(), newWorkflowsCommand())
	root.AddCommand(
		newServerCommand(),
		newDevCommand(),
		newWorkerCommand(),
		newRunCommand(),
		newStreamCommand(),
		newRunsCommand(),
		newTokenCommand(),
		newStreamsCommand(),
		newBackupCommand(),
		newBenchCommand(),
		newBenchWorkerCommand(),
		newBenchSSEServerCommand(),
	)
	return root
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("invalid --log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}
