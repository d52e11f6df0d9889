package cli

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/testengine"
)

// With no engine at the address, the error says which address was tried
// and where it came from, and how to start an engine.
func TestHintEngineNotReachable(t *testing.T) {
	t.Parallel()
	host := closedPortURL(t)
	for _, args := range [][]string{
		{"run", "demo-text", "--wait"}, {"runs", "list"}, {"runs", "get", "r1"}, {"runs", "cancel", "r1"},
		{"workflows", "list"}, {"token", "create"},
	} {
		code, out, errOut := runCLI(t, append(args, "--host", host, "--token", "t")...)
		require.Equal(t, 1, code, "%q", args)
		require.Empty(t, out)
		require.Contains(t, errOut, "unavailable", "%q", args)
		require.Contains(t, errOut, "\nhint: no engine answered at "+host+" (from --host). Start one with `runnel dev`", "%q", args)
		require.Contains(t, errOut, "`runnel server`", "%q", args)
	}
}

// Environment variables are not per test: these tests are not parallel.
func TestHintEngineNotReachableFromEnv(t *testing.T) {
	host := closedPortURL(t)
	t.Setenv(runnel.EnvHost, host)
	t.Setenv(runnel.EnvToken, "t")
	code, _, errOut := runCLI(t, "runs", "list")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "hint: no engine answered at "+host+" (from $RUNNEL_HOST)")
}

func TestHintToken(t *testing.T) {
	e := testengine.Start(t)
	t.Setenv(runnel.EnvToken, "")

	// No token anywhere: the hint names the file it looked for.
	dir := t.TempDir()
	code, _, errOut := runCLI(t, "runs", "list", "--host", e.URL, "--data-dir", dir)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "unauthenticated")
	require.Contains(t, errOut, "hint: no token was given (--token, $RUNNEL_TOKEN) and there is no "+filepath.Join(dir, "admin.token"))
	require.Contains(t, errOut, "<data dir>/admin.token")

	// A refused token: the hint says where it came from.
	code, _, errOut = runCLI(t, "runs", "list", "--host", e.URL, "--token", "rnl_wrong")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "hint: the engine at "+e.URL+" refused the token from --token.")
	require.Contains(t, errOut, "`runnel token create`")

	t.Setenv(runnel.EnvToken, "rnl_wrong")
	code, _, errOut = runCLI(t, "runs", "list", "--host", e.URL)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "refused the token from $RUNNEL_TOKEN.")
}

// An unknown workflow: the engine's error lists the registered ones and
// the hint suggests the closest; with none registered, the hint says how
// workflows get registered.
func TestHintUnknownWorkflow(t *testing.T) {
	t.Parallel()
	e := testengine.StartWithDemoWorker(t)
	code, out, errOut := runCLI(t, "run", "demo-txt", "--host", e.URL, "--token", e.Token)
	require.Equal(t, 1, code)
	require.Empty(t, out)
	require.Contains(t, errOut, `unknown workflow "demo-txt" (registered: demo-child, demo-file, demo-flaky, demo-parent, demo-slow, demo-text)`)
	require.Contains(t, errOut, "\nhint: did you mean \"demo-text\"? `runnel workflows list`")

	bare := testengine.Start(t)
	code, _, errOut = runCLI(t, "run", "demo-text", "--host", bare.URL, "--token", bare.Token)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "no workflows are registered yet")
	require.Contains(t, errOut, "\nhint: workflows are registered by the workers that run them")
	require.Contains(t, errOut, "`runnel worker`")
	require.Contains(t, errOut, "`runnel dev`")
}

func TestClosestName(t *testing.T) {
	t.Parallel()
	names := []string{"demo-child", "demo-file", "demo-flaky", "demo-parent", "demo-slow", "demo-text"}
	for name, want := range map[string]string{
		"demo-txt":   "demo-text",
		"demo-Text":  "demo-text",
		"text":       "demo-text",
		"demoflaky":  "demo-flaky",
		"demo":       "", // in every name: no one guess
		"summarise":  "",
		"":           "",
		"demo-files": "demo-file",
	} {
		require.Equal(t, want, closestName(name, names), "%q", name)
	}
}

// `runnel run` completes workflow names, and `runs get` run ids, from the
// engine; with no engine, it offers nothing rather than failing.
func TestDynamicCompletion(t *testing.T) {
	t.Parallel()
	e := testengine.StartWithDemoWorker(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	runID, err := e.Client.Admin().RunWorkflow(ctx, "demo-text", nil)
	require.NoError(t, err)

	code, out, errOut := runCLI(t, "__complete", "run", "--host", e.URL, "--token", e.Token, "demo-f")
	require.Equal(t, 0, code, errOut)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Equal(t, []string{"demo-file\tsteps: file", "demo-flaky\tsteps: flaky", ":4"}, lines)

	code, out, errOut = runCLI(t, "__complete", "runs", "get", "--host", e.URL, "--token", e.Token, "")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, runID+"\tdemo-text ")

	code, out, errOut = runCLI(t, "__complete", "run", "--host", closedPortURL(t), "--token", "t", "")
	require.Equal(t, 0, code, errOut)
	require.Equal(t, ":4", strings.TrimSpace(out))
}
