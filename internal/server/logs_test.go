package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/demo"
	"github.com/runnel-dev/runnel/internal/server"
)

// lockedBuffer collects log output written from many goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) records(t *testing.T) []map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for line := range strings.Lines(b.buf.String()) {
		var rec map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &rec), "log line %q", line)
		out = append(out, rec)
	}
	return out
}

// Every engine log line about a run or a step carries the run's id, and a
// step's also the step run's id, its attempt and its worker.
func TestLogsCarryRunIDs(t *testing.T) {
	t.Parallel()
	for _, kind := range stores {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			logsCarryRunIDs(t, kind)
		})
	}
}

func logsCarryRunIDs(t *testing.T, kind string) {
	logs := &lockedBuffer{}
	n := startNode(t, kind, func(cfg *server.Config) {
		cfg.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	ctx := context.Background()
	startWorker(t, n, "demo", 2, demo.Workflows()...)
	run := func(wf string, input any) string {
		id, err := n.client.Admin().RunWorkflow(ctx, wf, input)
		require.NoError(t, err)
		return id
	}
	waitRun(t, n, run(demo.Text, map[string]int{"chunks": 2, "intervalMs": 0}))
	r, _ := waitRun(t, n, run(demo.Flaky, map[string]int{"failAttempts": 1}))
	require.Equal(t, runnel.RunCompleted, r.Status)
	r, _ = waitRun(t, n, run(demo.Text, "not an object"))
	require.Equal(t, runnel.RunFailed, r.Status)

	seen := map[string]int{}
	for _, rec := range logs.records(t) {
		msg, _ := rec["msg"].(string)
		aboutStep := rec["step_run_id"] != nil || strings.HasPrefix(msg, "step ")
		aboutRun := aboutStep || strings.HasPrefix(msg, "run ") || strings.Contains(msg, " run ")
		if !aboutRun {
			continue
		}
		seen[msg]++
		require.NotEmpty(t, rec["run_id"], "log line without run_id: %v", rec)
		if aboutStep {
			for _, attr := range []string{"step_run_id", "attempt", "worker_id"} {
				require.NotEmpty(t, rec[attr], "step log line without %s: %v", attr, rec)
			}
		}
		if msg == "run finished" && rec["status"] == "failed" {
			require.Equal(t, "INFO", rec["level"])
			require.Contains(t, rec["error"], "invalid input")
		}
	}
	for _, msg := range []string{"run triggered", "step attempt assigned", "step attempt ended", "run finished"} {
		require.Positive(t, seen[msg], "no %q log line among %v", msg, seen)
	}
}
