package main_test

import (
	"bytes"
	"encoding/json"
	"math"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/bench"
	"github.com/runnel-dev/runnel/internal/testdb"
	"github.com/runnel-dev/runnel/internal/testflag"
)

// Every bench scenario runs briefly and prints a report with its figures,
// so none rots. (Speed itself is measured by `runnel bench`, not asserted:
// in CI this binary is built with -race.) Seven engines measuring for a
// while: a long test, run with RUNNEL_TEST_LONG=1 (CI sets it).
func TestBenchScenariosRun(t *testing.T) {
	testflag.SkipUnlessLong(t)
	t.Parallel()
	for _, scenario := range bench.Scenarios() {
		t.Run(scenario, func(t *testing.T) {
			t.Parallel()
			db := "sqlite"
			if scenario == "cross-node" {
				db = testdb.PostgresURL(t)
			}
			cmd := exec.Command(runnelBin, "bench", scenario, "--db", db, "--duration", "500ms", "--scale", "0.002", "--json")
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			require.NoError(t, cmd.Run(), "stderr:\n%s", stderr.String())
			var report bench.Report
			require.NoError(t, json.Unmarshal(stdout.Bytes(), &report), stdout.String())
			require.Equal(t, scenario, report.Scenario)
			require.NotEmpty(t, report.Measurements)
			limits := 0
			for _, m := range report.Measurements {
				if m.Limit != nil {
					// Each figure beside the limit of its resource,
					// measured in the same run.
					require.Positive(t, m.Limit.Value, "%s %s: limit %s", m.Case, m.Metric, m.Limit.What)
					require.InDelta(t, m.Value/m.Limit.Value, m.Ratio, 1e-9, "%s %s", m.Case, m.Metric)
					limits++
				}
				require.False(t, math.IsNaN(m.Value) || math.IsInf(m.Value, 0), "%s %s has no value", m.Case, m.Metric)
				if m.Metric == "subscribers missing events" {
					require.Zero(t, m.Value, "fanout subscribers lost events")
				}
			}
			if scenario != "soak" {
				require.Positive(t, limits, "no figure of %s is compared with a limit", scenario)
			}
		})
	}
}

// A wrong scenario or flag gets an error naming it.
func TestBenchBadInput(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"bench", "nope"}, `unknown bench scenario "nope": want one of cross-node, durable-append, durable-latency, fanout, ingest, latency, replay, runs, soak`},
		{[]string{"bench", "ingest", "--db", "mysql://x"}, `invalid --db "mysql://x"`},
		{[]string{"bench", "ingest", "--duration", "0s"}, "invalid --duration 0s"},
		{[]string{"bench", "fanout", "--scale", "0"}, "invalid --scale 0"},
		{[]string{"bench", "cross-node"}, "cross-node runs two engines on one PostgreSQL database"},
	} {
		out, err := exec.Command(runnelBin, tc.args...).CombinedOutput()
		require.Error(t, err, "%v", tc.args)
		require.Contains(t, string(out), tc.want)
	}
}
