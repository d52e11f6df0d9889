package main_test

import (
	crand "crypto/rand"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/testdb"
)

// The fault suite (issue 10): real `runnel server` and `runnel worker`
// processes are killed with SIGKILL and restarted at random moments, while
// runs stream to SDK listeners, a metadata subscription and raw SSE clients
// that drop their connections mid-response and resume with Last-Event-ID.
// After every cycle the checker (faults_check_test.go) compares what every
// subscriber received with the stored log and each run's final state.
//
// The schedule of faults (which process, when, which subscriber drops after
// how many frames) comes from one seed, printed first, so a failing run can
// be replayed with RUNNEL_FAULT_SEED; the processes' own timing still
// varies between runs. TestFaultsShort (below) runs a couple of cycles of
// every scenario with each `go test`; TestFaults (build tag faults) runs
// RUNNEL_FAULT_CYCLES of them and restarts PostgreSQL itself too. See
// docs/operations.md, "Fault suite".

// faultSettings are one suite run's knobs.
type faultSettings struct {
	cycles int
	seed   uint64
	// runsPerCycle is how many runs stream during each cycle.
	runsPerCycle int
	// pgRestartEvery restarts PostgreSQL every that many cycles (0: never).
	pgRestartEvery int
	// noWorkerKills kills engines only (RUNNEL_FAULT_WORKER_KILLS=0): every
	// step must then run exactly once, which measures issue 16.
	noWorkerKills bool
}

// readFaultSettings reads RUNNEL_FAULT_CYCLES, RUNNEL_FAULT_SEED and
// RUNNEL_FAULT_RUNS, and logs the seed before anything else happens.
// short fixes a short run's size (TestFaultsShort, in CI): the cycle count
// given, at most 6 runs a cycle.
func readFaultSettings(t *testing.T, defaultCycles int, short bool) faultSettings {
	t.Helper()
	s := faultSettings{cycles: defaultCycles, runsPerCycle: 8}
	envInt := func(name string, dst *int, minimum int) {
		if v := os.Getenv(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < minimum {
				t.Fatalf("invalid %s=%q: want a whole number of at least %d", name, v, minimum)
			}
			*dst = n
		}
	}
	envInt("RUNNEL_FAULT_CYCLES", &s.cycles, 1)
	envInt("RUNNEL_FAULT_RUNS", &s.runsPerCycle, 4)
	switch v := os.Getenv("RUNNEL_FAULT_WORKER_KILLS"); v {
	case "", "1":
	case "0":
		s.noWorkerKills = true
	default:
		t.Fatalf("invalid RUNNEL_FAULT_WORKER_KILLS=%q: want 0 (engines only) or 1 (default)", v)
	}
	if short {
		s.cycles, s.runsPerCycle = defaultCycles, min(s.runsPerCycle, 6)
	}
	if v := os.Getenv("RUNNEL_FAULT_SEED"); v != "" {
		seed, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("invalid RUNNEL_FAULT_SEED=%q: want an unsigned integer", v)
		}
		s.seed = seed
	} else {
		var b [8]byte
		_, _ = crand.Read(b[:])
		s.seed = binary.LittleEndian.Uint64(b[:]) >> 1 // fits an int64 too, for easy copying
	}
	t.Logf("fault suite %s: seed %d, %d cycles of %d runs (replay the schedule: RUNNEL_FAULT_SEED=%d RUNNEL_FAULT_CYCLES=%d)",
		t.Name(), s.seed, s.cycles, s.runsPerCycle, s.seed, s.cycles)
	return s
}

// faultNode is one `runnel server` process, restarted on the same address
// and data directory (and database) after each kill.
type faultNode struct {
	name string
	url  string
	dir  string
	args []string
	p    *proc
}

func (n *faultNode) start(t *testing.T) {
	t.Helper()
	n.p = startEngine(t, n.url, n.args...)
}

// faultWorker is one `runnel worker` process with the demo workflows. It
// logs every step invocation (debug), for the checker's "no step re-run
// while its worker lived".
type faultWorker struct {
	name string
	env  []string
	p    *proc
	// killed are the earlier processes of this worker, SIGKILLed.
	killed []*proc
}

func (w *faultWorker) start(t *testing.T) {
	t.Helper()
	w.p = start(t, w.env, "worker", "--slots", "16", "--name", w.name, "--log-level", "debug")
	w.p.waitFor(t, "worker registered")
}

// faultCluster is the engines, workers and clients of one scenario.
type faultCluster struct {
	t     *testing.T
	set   faultSettings
	rng   *rand.Rand // the fault schedule; used by the test goroutine only
	dbURL string     // "" for SQLite in the first node's data directory
	token string
	nodes []*faultNode
	// workers run the demo workflows against every node.
	workers []*faultWorker
	// client knows every node (comma-separated hosts) and fails over.
	client *runnel.Client
	stats  faultStats
	// extraServerFlags are added to every `runnel server`.
	extraServerFlags []string
}

// newFaultCluster starts nodes engine processes (more than one needs
// PostgreSQL) and workers worker processes.
func newFaultCluster(t *testing.T, set faultSettings, postgres bool, nodes, workers int, serverFlags ...string) *faultCluster {
	t.Helper()
	c := &faultCluster{t: t, set: set, rng: rand.New(rand.NewPCG(set.seed, 0x5eed)), extraServerFlags: serverFlags}
	if postgres {
		c.dbURL = testdb.PostgresURL(t)
	}
	for i := range nodes {
		n := &faultNode{name: string(rune('A' + i)), dir: t.TempDir()}
		addr := freeAddr(t)
		n.url = "http://" + addr
		n.args = append([]string{"server", "--addr", addr, "--data-dir", n.dir, "--log-level", "info"}, serverFlags...)
		if postgres {
			n.args = append(n.args, "--db", c.dbURL)
		}
		n.start(t)
		if i == 0 {
			// The first node creates the tenant and writes its admin token.
			token, err := os.ReadFile(filepath.Join(n.dir, "admin.token"))
			require.NoError(t, err)
			c.token = strings.TrimSpace(string(token))
		}
		c.nodes = append(c.nodes, n)
	}
	var err error
	c.client, err = runnel.NewClient(runnel.WithHost(c.hosts(0)), runnel.WithToken(c.token))
	require.NoError(t, err)
	for i := range workers {
		// Each worker lists the nodes starting from a different one, so
		// workers spread over the nodes.
		w := &faultWorker{
			name: fmt.Sprintf("fault-w%d", i),
			env:  []string{"RUNNEL_HOST=" + c.hosts(i), "RUNNEL_TOKEN=" + c.token},
		}
		w.start(t)
		c.workers = append(c.workers, w)
	}
	return c
}

// hosts lists every node's URL, comma-separated, starting at node first.
func (c *faultCluster) hosts(first int) string {
	urls := make([]string, len(c.nodes))
	for i := range c.nodes {
		urls[i] = c.nodes[(first+i)%len(c.nodes)].url
	}
	return strings.Join(urls, ",")
}

// sqlitePath is the SQLite database of a single-node cluster.
func (c *faultCluster) sqlitePath() string { return filepath.Join(c.nodes[0].dir, "runnel.db") }

// randomDelay is a moment within the next max, from the schedule.
func (c *faultCluster) randomDelay(max time.Duration) time.Duration {
	return time.Duration(c.rng.Int64N(int64(max) + 1))
}

// killNode SIGKILLs a node and starts it again on the same address and data.
func (c *faultCluster) killNode(n *faultNode) {
	c.t.Helper()
	n.p.kill(c.t)
	c.stats.engineKills++
	n.start(c.t)
}

// killWorker SIGKILLs a worker process and starts it again.
func (c *faultCluster) killWorker(w *faultWorker) {
	c.t.Helper()
	w.p.kill(c.t)
	w.killed = append(w.killed, w.p)
	c.stats.workerKills++
	w.start(c.t)
}

// faultPlan is what a scenario does to the processes during one cycle,
// while its runs stream.
type faultPlan func(c *faultCluster, cycle int)

// killEngineAndMaybeWorker is scenarios 1 and 2's plan (and 3's, with a
// random node): at a random moment one engine node is killed and
// restarted; on about half the cycles a random worker is killed too, at
// another random moment.
func killEngineAndMaybeWorker(c *faultCluster, cycle int) {
	time.Sleep(c.randomDelay(700 * time.Millisecond)) // the fault's moment, from the seed
	n := c.nodes[c.rng.IntN(len(c.nodes))]
	c.killNode(n)
	if c.rng.IntN(2) == 0 && !c.set.noWorkerKills {
		time.Sleep(c.randomDelay(500 * time.Millisecond))
		c.killWorker(c.workers[c.rng.IntN(len(c.workers))])
	}
}

// runCycles runs the scenario: each cycle triggers a batch of runs,
// follows them with every kind of subscriber, applies plan while they
// stream, waits until every run ended and every subscriber finished, and
// checks. It returns the totals.
func (c *faultCluster) runCycles(plan faultPlan) faultStats {
	t := c.t
	began := time.Now()
	for cycle := range c.set.cycles {
		cycleBegan := time.Now()
		batch := c.startBatch(cycle)
		plan(c, cycle)
		results := batch.wait(t, 3*time.Minute)
		c.check(batch, results)
		if t.Failed() {
			t.Fatalf("cycle %d failed (seed %d); stopping", cycle, c.set.seed)
		}
		c.stats.cycles++
		t.Logf("cycle %d: %d runs, %d events stored, %d delivered and checked, %v",
			cycle, len(batch.runs), c.stats.cycleEvents, c.stats.cycleDeliveries, time.Since(cycleBegan).Round(time.Millisecond))
	}
	c.stats.duration = time.Since(began)
	t.Logf("fault suite %s done: seed %d; %s", t.Name(), c.set.seed, c.stats.summary())
	return c.stats
}

// restartPostgres restarts the PostgreSQL cluster serving the test
// database, under load. It reports false, with the reason, when that is not
// possible here (no pg_ctlcluster, not root, database elsewhere).
type pgRestarter struct {
	version, cluster string
}

// findPostgresCluster finds the local cluster (pg_lsclusters) listening on
// the test database's port; restarting it affects only that cluster.
func findPostgresCluster(dbURL string) (*pgRestarter, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("not running as root, cannot run pg_ctlcluster")
	}
	port := "5432"
	if i := strings.LastIndex(hostOf(dbURL), ":"); i >= 0 {
		port = hostOf(dbURL)[i+1:]
	}
	out, err := execOutput("pg_lsclusters", "--no-header")
	if err != nil {
		return nil, fmt.Errorf("pg_lsclusters: %w", err)
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 4 && f[2] == port && f[3] == "online" {
			return &pgRestarter{version: f[0], cluster: f[1]}, nil
		}
	}
	return nil, fmt.Errorf("no online PostgreSQL cluster on port %s in pg_lsclusters:\n%s", port, out)
}

func (r *pgRestarter) restart() error {
	_, err := execOutput("pg_ctlcluster", r.version, r.cluster, "restart", "-m", "fast")
	return err
}

// pauseProcess and resumeProcess send SIGSTOP and SIGCONT.
func pauseProcess(t *testing.T, p *proc) {
	t.Helper()
	require.NoError(t, p.Pause())
}

func resumeProcess(t *testing.T, p *proc) {
	t.Helper()
	require.NoError(t, p.Resume())
}

// faultStats are a scenario's totals.
type faultStats struct {
	cycles, runs                       int
	failedRuns                         int // failed as expected (demo-flaky beyond its retries)
	events                             int // stored events of the runs checked
	deliveries                         int // events received by subscribers, each compared with the store
	lost, duplicated, outOfOrder, mism int
	engineKills, workerKills           int
	pgRestarts, pauses                 int
	lostAttempts                       int // attempts re-queued because their worker or engine went away
	// rerunSteps ran their step function again after an attempt that had
	// started was lost; rerunWhileLived are those whose lost attempt's
	// worker process was never killed (issue 16: must be 0).
	rerunSteps, rerunWhileLived int
	sseResumes                  int // SSE reconnections with Last-Event-ID (dropped on purpose or cut)
	duration                    time.Duration

	cycleEvents, cycleDeliveries int
}

func (s *faultStats) summary() string {
	return fmt.Sprintf("%d cycles, %d runs (%d failed as expected), %d events stored, %d deliveries checked: "+
		"%d lost, %d duplicated, %d out of order, %d mismatched; %d engine kills, %d worker kills, %d PostgreSQL restarts, "+
		"%d worker pauses, %d attempts lost and re-queued, %d steps ran again after a lost attempt (%d while its worker lived), %d SSE resumes; %v",
		s.cycles, s.runs, s.failedRuns, s.events, s.deliveries, s.lost, s.duplicated, s.outOfOrder, s.mism,
		s.engineKills, s.workerKills, s.pgRestarts, s.pauses, s.lostAttempts, s.rerunSteps, s.rerunWhileLived,
		s.sseResumes, s.duration.Round(time.Second))
}

// TestFaultsShort runs two cycles of each scenario on every `go test`, so
// CI exercises the suite on each submission (PostgreSQL is not restarted:
// other packages' tests share it). The full suite: TestFaults, build tag
// faults.
func TestFaultsShort(t *testing.T) {
	if testing.Short() {
		t.Skip("fault suite skipped in -short mode")
	}
	t.Parallel()
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		faultScenarioSingleNode(t, readFaultSettingsFixed(t, 2), false)
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		faultScenarioSingleNode(t, readFaultSettingsFixed(t, 2), true)
	})
	t.Run("two-nodes", func(t *testing.T) {
		t.Parallel()
		faultScenarioTwoNodes(t, readFaultSettingsFixed(t, 2))
	})
	t.Run("paused-worker", func(t *testing.T) {
		t.Parallel()
		faultScenarioPausedWorker(t, readFaultSettingsFixed(t, 1))
	})
}

// readFaultSettingsFixed: the short suite ignores RUNNEL_FAULT_CYCLES, so
// CI stays short.
func readFaultSettingsFixed(t *testing.T, cycles int) faultSettings {
	return readFaultSettings(t, cycles, true)
}

// faultScenarioSingleNode is scenarios 1 (SQLite) and 2 (PostgreSQL): one
// engine and two workers, the engine killed every cycle and a worker on
// about half of them; with set.pgRestartEvery, PostgreSQL is restarted
// under load every that many cycles.
func faultScenarioSingleNode(t *testing.T, set faultSettings, postgres bool) faultStats {
	c := newFaultCluster(t, set, postgres, 1, 2)
	var pg *pgRestarter
	if postgres && set.pgRestartEvery > 0 {
		var err error
		if pg, err = findPostgresCluster(c.dbURL); err != nil {
			if os.Getenv("RUNNEL_TEST_REQUIRE_POSTGRES") == "1" {
				t.Fatalf("restarting PostgreSQL is required (RUNNEL_TEST_REQUIRE_POSTGRES=1) but impossible: %v", err)
			}
			t.Logf("NOT restarting PostgreSQL in this run (the rest of the scenario runs): %v", err)
		}
	}
	return c.runCycles(func(c *faultCluster, cycle int) {
		if pg != nil && cycle%set.pgRestartEvery == set.pgRestartEvery-1 {
			time.Sleep(c.randomDelay(500 * time.Millisecond))
			require.NoError(t, pg.restart(), "restart PostgreSQL %s/%s", pg.version, pg.cluster)
			c.stats.pgRestarts++
			return
		}
		killEngineAndMaybeWorker(c, cycle)
	})
}

// faultScenarioTwoNodes is scenario 3: two engine nodes on one PostgreSQL
// schema; each cycle kills one of them at random (and on about half the
// cycles a worker). Workers and clients know both addresses.
func faultScenarioTwoNodes(t *testing.T, set faultSettings) faultStats {
	c := newFaultCluster(t, set, true, 2, 2)
	return c.runCycles(killEngineAndMaybeWorker)
}
