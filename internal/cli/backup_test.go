package cli

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/store"
	"github.com/runnel-dev/runnel/internal/store/sqlite"
)

// runnel backup copies the data directory's store to a new file, and
// refuses what it cannot do with an error that says what to do instead.
func TestBackupCommand(t *testing.T) {
	t.Setenv("RUNNEL_DATABASE_URL", "")
	dataDir := t.TempDir()
	st, err := sqlite.Open(context.Background(), filepath.Join(dataDir, "runnel.db"), store.Options{})
	require.NoError(t, err)
	require.NoError(t, st.Close())
	out := filepath.Join(t.TempDir(), "copy.db")

	code, stdout, stderr := runCLI(t, "backup", "--data-dir", dataDir, out)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "Backed up "+filepath.Join(dataDir, "runnel.db")+" to "+out)
	_, err = os.Stat(out)
	require.NoError(t, err)

	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"existing output": {[]string{"--data-dir", dataDir, out}, "the file exists; choose a new name"},
		"postgres":        {[]string{"--db", "postgres://u:secret@db/x", out + "2"}, "pg_dump"},
		"missing store":   {[]string{"--data-dir", t.TempDir(), out + "3"}, "runnel.db: no such file"},
		"not a store":     {[]string{"--db", "sqlite://" + out + "-nope", out + "4"}, "no such file"},
		"bad url":         {[]string{"--db", "mysql://x", out + "5"}, "want sqlite://PATH"},
	} {
		code, _, stderr := runCLI(t, append([]string{"backup"}, tc.args...)...)
		require.Equal(t, 1, code, name)
		require.Contains(t, stderr, tc.want, name)
		require.NotContains(t, stderr, "secret", name)
	}
	plain := filepath.Join(t.TempDir(), "plain.db")
	require.NoError(t, os.WriteFile(plain, []byte("not sqlite at all, just some text that is long enough to be a header........................................................"), 0o600))
	code, _, stderr = runCLI(t, "backup", "--db", "sqlite://"+plain, out+"6")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "file is not a database")
}
