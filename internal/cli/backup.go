package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/runnel-dev/runnel/internal/redact"
	"github.com/runnel-dev/runnel/internal/store/sqlite"
)

func newBackupCommand() *cobra.Command {
	var dataDir, db string
	cmd := &cobra.Command{
		Use:   "backup OUT",
		Short: "Copy the embedded SQLite store to a new file, safely while the engine runs",
		Long: "Copy the embedded SQLite store to OUT with SQLite's VACUUM INTO: a consistent snapshot as of one\n" +
			"commit, taken without stopping the engine or blocking its writes. OUT must not exist. Restore by\n" +
			"starting an engine on the copy: runnel server --db sqlite://OUT (or move it to <data dir>/runnel.db).\n" +
			"For PostgreSQL use pg_dump.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			src, err := backupSource(dataDir, db)
			if err != nil {
				return err
			}
			out := args[0]
			if err := sqlite.Backup(cmd.Context(), src, out); err != nil {
				return err
			}
			fi, err := os.Stat(out)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Backed up %s to %s (%d bytes)\n", src, out, fi.Size())
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "runnel-data", "data directory whose runnel.db to back up")
	cmd.Flags().StringVar(&db, "db", "", "database URL to back up instead: sqlite://PATH (default $RUNNEL_DATABASE_URL, else <data dir>/runnel.db)")
	return cmd
}

// backupSource resolves the SQLite file to back up, as `runnel server` would
// open it; PostgreSQL is refused with a pointer to pg_dump.
func backupSource(dataDir, db string) (string, error) {
	if db == "" {
		db = os.Getenv("RUNNEL_DATABASE_URL")
	}
	switch {
	case db == "":
		return filepath.Join(dataDir, "runnel.db"), nil
	case strings.HasPrefix(db, "postgres://"), strings.HasPrefix(db, "postgresql://"):
		return "", fmt.Errorf("runnel backup copies the embedded SQLite store; back up PostgreSQL with its own tools, e.g. pg_dump --format=custom --file=runnel.dump \"$DATABASE_URL\"")
	case strings.HasPrefix(db, "sqlite://") && len(db) > len("sqlite://"):
		return strings.TrimPrefix(db, "sqlite://"), nil
	}
	return "", fmt.Errorf("invalid --db %q: want sqlite://PATH", redact.Secrets(db))
}
