package cli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/testengine"
)

// --output json prints the API objects (they parse back into the SDK's
// types); table, the default, prints headed columns.
func TestOutputFormats(t *testing.T) {
	t.Parallel()
	e := testengine.StartWithDemoWorker(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	runID, err := e.Client.Admin().RunWorkflow(ctx, "demo-text", map[string]int{"chunks": 2, "intervalMs": 0})
	require.NoError(t, err)
	for _, err := range e.Client.Listener().Stream(ctx, runID) {
		require.NoError(t, err)
	}
	conn := []string{"--host", e.URL, "--token", e.Token}
	cli := func(args ...string) string {
		t.Helper()
		code, out, errOut := runCLI(t, append(args, conn...)...)
		require.Equal(t, 0, code, "runnel %s: %s", strings.Join(args, " "), errOut)
		return out
	}

	for _, args := range [][]string{{"runs", "list", "--output", "json"}, {"runs", "list", "-o", "json"}, {"runs", "list", "--json"}} {
		var runs []runnel.Run
		require.NoError(t, json.Unmarshal([]byte(cli(args...)), &runs), "%q", args)
		require.Len(t, runs, 1, "%q", args)
		require.Equal(t, runID, runs[0].ID)
		require.Equal(t, runnel.RunCompleted, runs[0].Status)
	}
	for _, args := range [][]string{{"runs", "list"}, {"runs", "list", "-o", "table"}} {
		table := cli(args...)
		require.Regexp(t, `(?m)^RUN ID\s+WORKFLOW\s+STATUS\s+CREATED\s+DURATION\s+METADATA$`, table, "%q", args)
		require.Regexp(t, `(?m)^`+runID+`\s+demo-text\s+completed\s`, table, "%q", args)
	}

	for _, args := range [][]string{{"runs", "get", runID, "-o", "json"}, {"runs", "get", runID, "--json"}} {
		var run runnel.Run
		require.NoError(t, json.Unmarshal([]byte(cli(args...)), &run), "%q", args)
		require.Equal(t, runID, run.ID)
		require.Len(t, run.Steps, 1)
		require.Equal(t, "generate", run.Steps[0].Step)
	}
	got := cli("runs", "get", runID, "--output", "table")
	require.Contains(t, got, "Status:    completed")
	require.Regexp(t, `(?m)^\s+STEP\s+STATUS\s+ATTEMPT\s+PARENTS\s+STARTED\s+DURATION\s+OUTPUT / ERROR$`, got)

	var wfs []struct {
		Name  string `json:"name"`
		Steps []struct {
			Name    string `json:"name"`
			Retries int    `json:"retries"`
		} `json:"steps"`
	}
	require.NoError(t, json.Unmarshal([]byte(cli("workflows", "list", "-o", "json")), &wfs))
	byName := map[string][]string{}
	for _, wf := range wfs {
		for _, s := range wf.Steps {
			byName[wf.Name] = append(byName[wf.Name], s.Name)
			if wf.Name == "demo-flaky" {
				require.Equal(t, 3, s.Retries)
			}
		}
	}
	require.Equal(t, []string{"generate"}, byName["demo-text"])
	require.Len(t, byName, 6)
	table := cli("workflows", "list")
	require.Regexp(t, `(?m)^WORKFLOW\s+STEPS\s+ON EVENTS$`, table)
	require.Regexp(t, `(?m)^demo-flaky\s+flaky \(retries 3\)`, table)
}

// A bad --output value is refused, naming the allowed values, before any
// call to the engine (there is none at the address given).
func TestBadOutputValue(t *testing.T) {
	t.Parallel()
	host := closedPortURL(t)
	for _, args := range [][]string{
		{"runs", "list", "--host", host}, {"runs", "get", "r1", "--host", host}, {"workflows", "list", "--host", host}, {"version"},
	} {
		code, out, errOut := runCLI(t, append(args, "--output", "yaml")...)
		require.Equal(t, 1, code, "%q", args)
		require.Empty(t, out)
		require.Equal(t, "runnel: invalid --output \"yaml\": want table or json\n", errOut, "%q", args)
	}
	code, _, errOut := runCLI(t, "runs", "list", "--json", "--output", "table", "--host", host)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "--json contradicts --output table")
}
