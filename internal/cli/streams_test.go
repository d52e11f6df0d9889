package cli

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/testengine"
)

// runnel streams create, append (args and stdin), read, info, close and
// delete against a real engine, and their errors.
func TestStreamsCommands(t *testing.T) {
	e := testengine.Start(t)
	conn := []string{"--host", e.URL, "--token", e.Token}
	run := func(args ...string) (int, string, string) {
		t.Helper()
		return runCLI(t, append(args, conn...)...)
	}
	code, _, stderr := run("streams", "create", "notes")
	require.Equal(t, 0, code, stderr)
	code, _, stderr = run("streams", "append", "notes", "hello", "world;")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stderr, "offset ")
	code, _, stderr = runCLIWithStdin(t, "from stdin;", append([]string{"streams", "append", "notes"}, conn...)...)
	require.Equal(t, 0, code, stderr)
	code, stdout, stderr := run("streams", "read", "notes")
	require.Equal(t, 0, code, stderr)
	require.Equal(t, "hello world;from stdin;", stdout)
	code, _, stderr = run("streams", "append", "notes", "--close", "bye")
	require.Equal(t, 0, code, stderr)
	code, stdout, stderr = run("streams", "read", "notes", "--follow")
	require.Equal(t, 0, code, stderr)
	require.Equal(t, "hello world;from stdin;bye", stdout, "follow ends at the close")
	code, stdout, stderr = run("streams", "info", "notes")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "closed true")
	require.Contains(t, stdout, "content-type text/plain")

	code, stdout, stderr = run("streams", "list")
	require.Equal(t, 0, code, stderr)
	require.Equal(t, "notes\ttext/plain\tclosed\n", stdout)
	code, stdout, _ = run("streams", "list", "--prefix", "zzz")
	require.Equal(t, 0, code)
	require.Empty(t, stdout)

	code, _, stderr = run("streams", "append", "notes", "late")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, `append to stream "notes": 409 Conflict: the stream is closed`)
	code, _, stderr = run("streams", "delete", "notes")
	require.Equal(t, 0, code, stderr)
	code, _, stderr = run("streams", "read", "notes")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, `stream "notes": 404`)
	code, _, stderr = run("streams", "create", "x", "--ttl", "10ms")
	require.Equal(t, 1, code)
	require.True(t, strings.Contains(stderr, "invalid --ttl 10ms"), stderr)
}
