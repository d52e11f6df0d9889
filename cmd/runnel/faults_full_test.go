//go:build faults

package main_test

import (
	"os"
	"strconv"
	"testing"
)

// TestFaults is the full fault suite (issue 10): every scenario for
// RUNNEL_FAULT_CYCLES cycles (default 5), PostgreSQL restarted under load
// every RUNNEL_FAULT_PG_RESTART_EVERY cycles (default 10; 0: never) in the
// PostgreSQL scenario. Run it alone, one scenario at a time if you like:
//
//	go test -race -tags faults -run 'TestFaults$/sqlite' -timeout 2h -v ./cmd/runnel/
//
// It restarts the PostgreSQL cluster that serves RUNNEL_TEST_DATABASE_URL:
// point that at a cluster no one else is using meanwhile.
func TestFaults(t *testing.T) {
	settings := func(t *testing.T) faultSettings {
		s := readFaultSettings(t, 5, false)
		s.pgRestartEvery = 10
		if v := os.Getenv("RUNNEL_FAULT_PG_RESTART_EVERY"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				t.Fatalf("invalid RUNNEL_FAULT_PG_RESTART_EVERY=%q: want a whole number, 0 for never", v)
			}
			s.pgRestartEvery = n
		}
		return s
	}
	// One scenario at a time: they are timing-sensitive, and the
	// PostgreSQL restart would hit the others.
	t.Run("sqlite", func(t *testing.T) { faultScenarioSingleNode(t, settings(t), false) })
	t.Run("postgres", func(t *testing.T) { faultScenarioSingleNode(t, settings(t), true) })
	t.Run("two-nodes", func(t *testing.T) { faultScenarioTwoNodes(t, settings(t)) })
	t.Run("paused-worker", func(t *testing.T) {
		s := settings(t)
		s.cycles = max(1, s.cycles/5) // each cycle waits out a heartbeat timeout
		faultScenarioPausedWorker(t, s)
	})
}
