package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/redact"
)

// defaultDataDir is where `runnel dev` and `runnel server` keep their data
// unless told otherwise, and so where client commands look for the admin
// token.
const defaultDataDir = "runnel-data"

// clientFlags are the connection flags of every client command.
type clientFlags struct {
	host    string
	token   string
	dataDir string

	// Filled in by client, for hints: the engine address used and where it
	// and the token came from.
	hostUsed  string
	hostFrom  string
	tokenFrom string
}

// register adds the connection flags to cmd and makes the errors of its
// RunE (set before register is called) carry a hint that names the address
// tried and where the token came from.
func (f *clientFlags) register(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVar(&f.host, "host", "", "engine URL (default $RUNNEL_HOST or "+runnel.DefaultHost+")")
	cmd.PersistentFlags().StringVar(&f.token, "token", "", "API token (default $RUNNEL_TOKEN, else the admin token in the data directory)")
	cmd.PersistentFlags().StringVar(&f.dataDir, "data-dir", "", "data directory of a local engine, read for its admin token when no token is given (default ./"+defaultDataDir+")")
	if run := cmd.RunE; run != nil {
		cmd.RunE = func(cmd *cobra.Command, args []string) error { return f.explain(run(cmd, args)) }
	}
}

// client builds an SDK client. Flags override the environment; with no token
// at all, a local engine's admin token is read from its data directory, so
// `runnel run` works next to `runnel dev` without setup.
func (f *clientFlags) client(extra ...runnel.ClientOption) (*runnel.Client, error) {
	switch {
	case f.host != "":
		f.hostUsed, f.hostFrom = f.host, "from --host"
	case os.Getenv(runnel.EnvHost) != "":
		f.hostUsed, f.hostFrom = os.Getenv(runnel.EnvHost), "from $"+runnel.EnvHost
	default:
		f.hostUsed, f.hostFrom = runnel.DefaultHost, "the default"
	}
	opts := []runnel.ClientOption{runnel.WithHost(f.hostUsed)}
	token := f.token
	switch {
	case token != "":
		f.tokenFrom = "--token"
	case os.Getenv(runnel.EnvToken) != "":
		token, f.tokenFrom = os.Getenv(runnel.EnvToken), "$"+runnel.EnvToken
	default:
		path := f.tokenFile()
		if b, err := os.ReadFile(path); err == nil {
			token, f.tokenFrom = strings.TrimSpace(string(b)), path
		}
	}
	if token != "" {
		opts = append(opts, runnel.WithToken(token))
	}
	return runnel.NewClient(append(opts, extra...)...)
}

func (f *clientFlags) tokenFile() string {
	dir := f.dataDir
	if dir == "" {
		dir = defaultDataDir
	}
	return filepath.Join(dir, "admin.token")
}

// explain attaches a hint to the failures a user can fix from the command
// line: no engine at the address, or a missing or refused token.
func (f *clientFlags) explain(err error) error {
	if err == nil || hintFor(err) != "" {
		return err
	}
	switch connect.CodeOf(err) {
	case connect.CodeUnavailable:
		if f.hostUsed == "" {
			break
		}
		return withHint(err, fmt.Sprintf("no engine answered at %s (%s). Start one with `runnel dev` "+
			"(an engine plus the demo workflows) or `runnel server`, or point --host / $%s at a running engine",
			redact.Secrets(f.hostUsed), f.hostFrom, runnel.EnvHost))
	case connect.CodeUnauthenticated:
		const where = "An engine writes its admin token to <data dir>/admin.token on first start and prints it once"
		if f.tokenFrom == "" {
			return withHint(err, fmt.Sprintf("no token was given (--token, $%s) and there is no %s. %s: "+
				"run this command where `runnel dev` or `runnel server` keeps its data, or pass --data-dir DIR, --token or $%s",
				runnel.EnvToken, f.tokenFile(), where, runnel.EnvToken))
		}
		return withHint(err, fmt.Sprintf("the engine at %s refused the token from %s. %s, and `runnel token create` mints more: "+
			"pass a valid one with --token or $%s, or --data-dir DIR to read the engine's", f.hostUsed, f.tokenFrom, where, runnel.EnvToken))
	case connect.CodePermissionDenied:
		if f.tokenFrom == "" {
			break
		}
		return withHint(err, fmt.Sprintf("the token from %s may not do this; the admin token is in <data dir>/admin.token", f.tokenFrom))
	}
	return err
}

// hintedError is an error with a suggested next step, printed by Main on a
// line of its own.
type hintedError struct {
	err  error
	hint string
}

func (e *hintedError) Error() string { return e.err.Error() }
func (e *hintedError) Unwrap() error { return e.err }

func withHint(err error, hint string) error { return &hintedError{err: err, hint: hint} }

// hintFor returns the hint attached to err, if any.
func hintFor(err error) string {
	if h, ok := errors.AsType[*hintedError](err); ok {
		return h.hint
	}
	return ""
}
