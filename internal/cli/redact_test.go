package cli

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// A URL the command refuses or cannot reach is named in the error without
// its password, whatever its scheme (a mistyped one is when it is printed).
func TestErrorsNeverShowPasswords(t *testing.T) {
	t.Setenv("RUNNEL_DATABASE_URL", "")
	t.Setenv("RUNNEL_HOST", "")
	const pw = "hunter2pw"
	for name, args := range map[string][]string{
		"server, mistyped scheme": {"server", "--data-dir", t.TempDir(), "--db", "postgress://u:" + pw + "@h/db"},
		"server, unparseable":     {"server", "--data-dir", t.TempDir(), "--db", "postgres://u:" + pw + "@h:port/db"},
		"server, unreachable":     {"server", "--data-dir", t.TempDir(), "--db", "postgres://u:" + pw + "@127.0.0.1:1/db?connect_timeout=5"},
		"backup":                  {"backup", "--db", "postgress://u:" + pw + "@h/db", t.TempDir() + "/out.db"},
		"bench":                   {"bench", "ingest", "--db", "postgress://u:" + pw + "@h/db"},
		"client host":             {"runs", "list", "--token", "rnl_x", "--host", "ftp://u:" + pw + "@h"},
		"client host unparseable": {"runs", "list", "--token", "rnl_x", "--host", "http://u:" + pw + "@h:port"},
	} {
		code, stdout, stderr := runCLI(t, args...)
		require.NotEqual(t, 0, code, name)
		require.NotContains(t, stdout+stderr, pw, name)
		require.True(t, strings.Contains(stderr, "xxxxx") || strings.Contains(stderr, "u@") || strings.Contains(stderr, "invalid"), "%s: %s", name, stderr)
	}
}
