package main_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/demo"
	"github.com/runnel-dev/runnel/internal/testdb"
)

// Issue 8, with real processes: several `runnel server` nodes on one
// PostgreSQL schema, `runnel worker` processes given several engine
// addresses, and subscribers on a node other than the one runs are
// triggered through.

// engineNode is one `runnel server` process of a multi-node setup.
type engineNode struct {
	p    *proc
	url  string // http://host:port
	dir  string // its data directory
	name string
}

// cluster is two engine nodes, A and B, on one fresh PostgreSQL schema.
type cluster struct {
	dbURL string
	token string // admin token, written by node A on creating the tenant
	a, b  *engineNode
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	c := &cluster{dbURL: testdb.PostgresURL(t)}
	startNode := func(name string) *engineNode {
		n := &engineNode{dir: t.TempDir(), name: name}
		addr := freeAddr(t)
		n.url = "http://" + addr
		n.p = startEngine(t, n.url, "server", "--db", c.dbURL, "--addr", addr, "--data-dir", n.dir, "--log-level", "debug")
		return n
	}
	// A first: it migrates the schema and creates the default tenant; B
	// finds them.
	c.a = startNode("A")
	token, err := os.ReadFile(filepath.Join(c.a.dir, "admin.token"))
	require.NoError(t, err)
	c.token = strings.TrimSpace(string(token))
	c.b = startNode("B")
	return c
}

// client returns an SDK client for one node (or several, comma-separated).
func (c *cluster) client(t *testing.T, hosts ...string) *runnel.Client {
	t.Helper()
	cl, err := runnel.NewClient(runnel.WithHost(strings.Join(hosts, ",")), runnel.WithToken(c.token))
	require.NoError(t, err)
	return cl
}

// worker starts `runnel worker` with RUNNEL_HOST set to the given nodes,
// in that order, and waits until it registered.
func (c *cluster) worker(t *testing.T, name string, slots int, nodes ...*engineNode) *proc {
	t.Helper()
	return c.workerWith(t, name, slots, nil, nodes...)
}

// workerWith is worker with extra `runnel worker` flags.
func (c *cluster) workerWith(t *testing.T, name string, slots int, flags []string, nodes ...*engineNode) *proc {
	t.Helper()
	urls := make([]string, len(nodes))
	for i, n := range nodes {
		urls[i] = n.url
	}
	env := []string{"RUNNEL_HOST=" + strings.Join(urls, ","), "RUNNEL_TOKEN=" + c.token}
	w := start(t, env, append([]string{"worker", "--slots", fmt.Sprint(slots), "--name", name}, flags...)...)
	w.waitFor(t, "worker registered")
	return w
}

// sseFrame is one Server-Sent Events message.
type sseFrame struct {
	ID, Event string
	Data      map[string]any
}

// payload returns a step.stream frame's payload, decoding base64.
func (f sseFrame) payload() ([]byte, error) {
	s, _ := f.Data["payload"].(string)
	if f.Data["encoding"] == "base64" {
		return base64.StdEncoding.DecodeString(s)
	}
	return []byte(s), nil
}

// readSSE follows GET /api/v1/runs/{id}/stream on one node, from the start,
// and returns every frame up to and including `event: end`. It parses only
// what Runnel sends: id, event and one data line per frame, and comments.
func readSSE(ctx context.Context, nodeURL, token, runID string) ([]sseFrame, error) {
	u := nodeURL + "/api/v1/runs/" + url.PathEscape(runID) + "/stream?token=" + url.QueryEscape(token)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		return nil, fmt.Errorf("GET %s: %s (%s)", u, resp.Status, resp.Header.Get("Content-Type"))
	}
	var frames []sseFrame
	var cur sseFrame
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur.Event == "" && cur.Data == nil {
				continue // end of a comment
			}
			frames = append(frames, cur)
			if cur.Event == "end" {
				return frames, nil
			}
			cur = sseFrame{}
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "id: "):
			cur.ID = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "event: "):
			cur.Event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &cur.Data); err != nil {
				return frames, fmt.Errorf("frame %d: data: %w", len(frames), err)
			}
		default:
			return frames, fmt.Errorf("unexpected SSE line %q", line)
		}
	}
	if err := sc.Err(); err != nil {
		return frames, err
	}
	return frames, fmt.Errorf("SSE stream ended without `event: end` after %d frames", len(frames))
}

// collect reads a run's events with an SDK listener until the run ends.
func collect(ctx context.Context, c *runnel.Client, runID string) ([]runnel.Event, error) {
	var out []runnel.Event
	for ev, err := range c.Listener().Stream(ctx, runID) {
		if err != nil {
			return out, err
		}
		out = append(out, ev)
	}
	return out, nil
}

// requireSSEMatches checks that the SSE frames are the SDK events, same ids
// (positions), types, attempts and payloads, followed by `event: end`.
func requireSSEMatches(t *testing.T, events []runnel.Event, frames []sseFrame) {
	t.Helper()
	require.Len(t, frames, len(events)+1, "one frame per event, then end")
	require.Equal(t, "end", frames[len(frames)-1].Event)
	for i, ev := range events {
		f := frames[i]
		require.Equal(t, string(ev.Position), f.ID, "frame %d id", i)
		require.Equal(t, string(ev.Type), f.Event, "frame %d event", i)
		require.Equal(t, ev.RunID, f.Data["runId"], "frame %d runId", i)
		if ev.StepRunID != "" {
			require.EqualValues(t, ev.Attempt, f.Data["attempt"], "frame %d attempt", i)
		}
		if ev.Type == runnel.EventStepStream {
			p, err := f.payload()
			require.NoError(t, err)
			require.Equal(t, ev.Payload, p, "frame %d payload", i)
		}
	}
}

func streamed(events []runnel.Event) []byte {
	var b []byte
	for _, ev := range events {
		if ev.Type == runnel.EventStepStream {
			b = append(b, ev.Payload...)
		}
	}
	return b
}

// Requirement 1: a worker on node A (RUNNEL_HOST=A,B), runs triggered
// through node A, followed on node B by an SDK listener and a raw SSE
// client: each sees the whole run, in order, exactly the stored log; a
// metadata subscription on node B sees the parent run and all its children.
func TestMultiNodeSubscribersOnSecondNode(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	c.worker(t, "w-ab", 8, c.a, c.b)
	onA, onB := c.client(t, c.a.url), c.client(t, c.b.url)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()

	const fileBytes = 64 << 10
	const textChunks = 30
	metaValue := fmt.Sprintf("mn-%d", time.Now().UnixNano())

	// The metadata subscription on B opens before anything is triggered.
	type metaResult struct {
		events []runnel.Event
		err    error
	}
	metaCtx, stopMeta := context.WithCancel(ctx)
	defer stopMeta()
	parentIDc := make(chan string, 1)
	metaDone := make(chan metaResult, 1)
	go func() {
		var r metaResult
		defer func() { metaDone <- r }()
		completed := map[string]bool{}
		for ev, err := range onB.Listener().StreamByAdditionalMetadata(metaCtx, "multinode", metaValue) {
			if err != nil {
				r.err = err
				return
			}
			r.events = append(r.events, ev)
			if ev.Terminal() {
				completed[ev.RunID] = true
			}
			// The parent ends after its 3 children: stop at 4 ended runs.
			if len(completed) == 4 {
				return
			}
		}
	}()

	for _, tc := range []struct {
		workflow string
		input    any
		meta     map[string]string
		check    func(t *testing.T, events []runnel.Event)
	}{
		{demo.Text, map[string]int{"chunks": textChunks, "intervalMs": 5}, nil, func(t *testing.T, events []runnel.Event) {
			require.Equal(t, demo.TextOutput(textChunks), string(streamed(events)))
		}},
		{demo.File, map[string]int{"bytes": fileBytes}, nil, func(t *testing.T, events []runnel.Event) {
			require.Equal(t, demo.FilePayload(fileBytes), streamed(events))
		}},
		{demo.Parent, map[string]int{"n": 3}, map[string]string{"multinode": metaValue}, func(t *testing.T, events []runnel.Event) {
			var out struct {
				Output struct {
					Spawn demo.ParentOutput `json:"spawn"`
				} `json:"output"`
			}
			require.NoError(t, json.Unmarshal(events[len(events)-1].Data, &out), "%s", events[len(events)-1].Data)
			require.Equal(t, []demo.ChildOutput{{Index: 0}, {Index: 1}, {Index: 2}}, out.Output.Spawn.Children, "%s", events[len(events)-1].Data)
		}},
	} {
		t.Run(tc.workflow, func(t *testing.T) {
			var opts []runnel.RunOption
			if tc.meta != nil {
				opts = append(opts, runnel.WithAdditionalMetadata(tc.meta))
			}
			runID, err := onA.Admin().RunWorkflow(ctx, tc.workflow, tc.input, opts...)
			require.NoError(t, err)
			if tc.meta != nil {
				parentIDc <- runID
			}
			type sseResult struct {
				frames []sseFrame
				err    error
			}
			sseDone := make(chan sseResult, 1)
			go func() {
				f, err := readSSE(ctx, c.b.url, c.token, runID)
				sseDone <- sseResult{f, err}
			}()
			events, err := collect(ctx, onB, runID)
			require.NoError(t, err)
			require.NotEmpty(t, events)
			require.Equal(t, runnel.EventRunStarted, events[0].Type)
			last := events[len(events)-1]
			require.Equal(t, runnel.EventRunCompleted, last.Type, "%s", last.Data)

			// Exactly the stored log, read afresh from the start, on both
			// nodes.
			for _, node := range []*runnel.Client{onB, onA} {
				stored, err := collect(ctx, node, runID)
				require.NoError(t, err)
				require.Equal(t, positions(stored), positions(events), "read through %s", node.Host())
			}
			tc.check(t, events)

			sse := <-sseDone
			require.NoError(t, sse.err)
			requireSSEMatches(t, events, sse.frames)
		})
	}

	// The metadata subscription saw the parent and its three children,
	// each run's events exactly its stored log, each ending completed.
	var parentID string
	select {
	case parentID = <-parentIDc:
	default:
		t.Fatal("demo-parent was not triggered")
	}
	var meta metaResult
	select {
	case meta = <-metaDone:
	case <-ctx.Done():
		t.Fatal("the metadata subscription on node B did not see four runs end")
	}
	require.NoError(t, meta.err)
	byRun := map[string][]runnel.Event{}
	var order []string
	for _, ev := range meta.events {
		if _, ok := byRun[ev.RunID]; !ok {
			order = append(order, ev.RunID)
		}
		byRun[ev.RunID] = append(byRun[ev.RunID], ev)
	}
	require.Len(t, byRun, 4, "the parent and 3 children")
	require.Equal(t, parentID, order[0], "the parent's first event comes before its children's")
	children := 0
	for runID, events := range byRun {
		require.Equal(t, runnel.EventRunCompleted, events[len(events)-1].Type, "run %s", runID)
		stored, err := collect(ctx, onB, runID)
		require.NoError(t, err)
		require.Equal(t, positions(stored), positions(events), "run %s through the metadata subscription", runID)
		run, err := onB.Admin().GetRun(ctx, runID)
		require.NoError(t, err)
		require.Equal(t, metaValue, run.AdditionalMetadata["multinode"])
		if runID != parentID {
			children++
			require.Equal(t, demo.Child, run.Workflow)
			require.Equal(t, parentID, run.ParentRunID)
		}
	}
	require.Equal(t, 3, children)
	// Nothing delivered twice across runs (positions are opaque: each
	// run's order is checked above against its stored log).
	delivered := map[runnel.Position]bool{}
	for _, ev := range meta.events {
		require.False(t, delivered[ev.Position], "position %s delivered twice", ev.Position)
		delivered[ev.Position] = true
	}
}

// Requirement 2 (and issue 16): node A, which the worker is connected to
// and the run was triggered through, is killed with SIGKILL mid-run. The
// worker keeps running its step, moves to node B by itself and registers
// there naming the attempt; node B resumes it, and the step completes as
// attempt 1, its function run once. Node B's subscribers (SDK and SSE),
// connected throughout, end with exactly the stored sequence.
func TestMultiNodeKilledNodeWorkerFailsOver(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	worker := c.workerWith(t, "w-ab", 4, []string{"--log-level", "debug"}, c.a, c.b)
	c.a.p.waitFor(t, "name=w-ab") // registered with node A, the first address
	onA, onB := c.client(t, c.a.url), c.client(t, c.b.url)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()

	runID, err := onA.Admin().RunWorkflow(ctx, demo.Slow, map[string]int{"seconds": 4})
	require.NoError(t, err)
	type sseResult struct {
		frames []sseFrame
		err    error
	}
	sseDone := make(chan sseResult, 1)
	go func() {
		f, err := readSSE(ctx, c.b.url, c.token, runID)
		sseDone <- sseResult{f, err}
	}()

	var seen []runnel.Event
	killed := false
	for ev, err := range onB.Listener().Stream(ctx, runID) {
		require.NoError(t, err)
		seen = append(seen, ev)
		if !killed && ev.Type == runnel.EventStepStream {
			require.Equal(t, "tick 0", string(ev.Payload))
			require.Equal(t, 1, ev.Attempt)
			killed = true
			c.a.p.kill(t)
		}
	}
	require.True(t, killed, "the run ended before node A was killed")
	worker.waitFor(t, "registering again") // it noticed, and moved on
	c.b.p.waitFor(t, "resumed=1")          // node B resumed its attempt
	last := seen[len(seen)-1]
	require.Equal(t, runnel.EventRunCompleted, last.Type, "%s", last.Data)

	stored, err := collect(ctx, onB, runID)
	require.NoError(t, err)
	require.Equal(t, positions(stored), positions(seen), "node B's subscriber saw exactly the stored log")

	run, err := onB.Admin().GetRun(ctx, runID)
	require.NoError(t, err)
	require.Equal(t, runnel.RunCompleted, run.Status)
	step := run.Steps[0]
	require.Equal(t, 1, step.Attempt, "the step interrupted with node A completed through node B as attempt 1")
	require.Len(t, step.Attempts, 1)
	require.Equal(t, runnel.StepCompleted, step.Attempts[0].Status)
	var text strings.Builder
	for _, ev := range stored {
		if ev.StepRunID != "" {
			require.Equal(t, 1, ev.Attempt, "%s", ev.Type)
		}
		if ev.Type == runnel.EventStepStream {
			text.Write(ev.Payload)
		}
	}
	require.Equal(t, "tick 0tick 1tick 2tick 3", text.String())
	require.Equal(t, 1, stepInvocations(worker, step.ID), "the step function ran once")

	sse := <-sseDone
	require.NoError(t, sse.err)
	requireSSEMatches(t, seen, sse.frames)
}

// Requirement 3: 1,000 one-step runs, triggered half through each node,
// run by 4 worker processes spread over both nodes. Every run completes,
// and the store shows every step ran exactly once: one attempt each, one
// step.started and one step.completed event each.
func TestMultiNodeThousandRunsOnFourWorkers(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	for i, nodes := range [][]*engineNode{{c.a, c.b}, {c.a, c.b}, {c.b, c.a}, {c.b, c.a}} {
		c.worker(t, fmt.Sprintf("w%d-%s%s", i, nodes[0].name, nodes[1].name), 8, nodes...)
	}
	clients := []*runnel.Client{c.client(t, c.a.url), c.client(t, c.b.url)}
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()

	const runs = 1000
	const triggerers = 8
	batch := fmt.Sprintf("b-%d", time.Now().UnixNano())
	begin := time.Now()

	// One metadata subscription (on node B) tells when every run ended.
	ended := make(chan map[string]runnel.EventType, 1)
	subErr := make(chan error, 1)
	go func() {
		got := map[string]runnel.EventType{}
		for ev, err := range clients[1].Listener().StreamByAdditionalMetadata(ctx, "batch", batch,
			runnel.WithTypes(runnel.EventRunCompleted, runnel.EventRunFailed, runnel.EventRunCancelled, runnel.EventRunTimedOut)) {
			if err != nil {
				subErr <- err
				return
			}
			if _, dup := got[ev.RunID]; dup {
				subErr <- fmt.Errorf("run %s ended twice (%s)", ev.RunID, ev.Type)
				return
			}
			got[ev.RunID] = ev.Type
			if len(got) == runs {
				ended <- got
				return
			}
		}
	}()

	ids := make([]string, runs)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, triggerers)
	for range triggerers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= runs {
					return
				}
				id, err := clients[i%2].Admin().RunWorkflow(ctx, demo.Text, map[string]int{"chunks": 1, "intervalMs": 0},
					runnel.WithAdditionalMetadata(map[string]string{"batch": batch}))
				if err != nil {
					errs <- fmt.Errorf("run %d: %w", i, err)
					return
				}
				ids[i] = id
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	triggered := time.Since(begin)

	var got map[string]runnel.EventType
	select {
	case got = <-ended:
	case err := <-subErr:
		t.Fatalf("metadata subscription: %v", err)
	}
	t.Logf("%d runs triggered in %v, all ended after %v", runs, triggered, time.Since(begin))
	for _, id := range ids {
		require.Equal(t, runnel.EventRunCompleted, got[id], "run %s", id)
	}

	// The store, read directly.
	conn, err := pgx.Connect(ctx, c.dbURL)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	count := func(query string) int {
		t.Helper()
		var n int
		require.NoError(t, conn.QueryRow(ctx, query).Scan(&n), query)
		return n
	}
	require.Equal(t, runs, count(`SELECT count(*) FROM runs WHERE status = 'completed'`))
	require.Equal(t, runs, count(`SELECT count(*) FROM runs`))
	require.Equal(t, runs, count(`SELECT count(*) FROM step_runs WHERE status = 'completed' AND attempt = 1`))
	require.Equal(t, runs, count(`SELECT count(*) FROM step_runs`))
	// No step run has more attempts recorded than its attempt number, and
	// no (step_run_id, attempt) is recorded twice.
	require.Zero(t, count(`SELECT count(*) FROM step_runs s
		WHERE (SELECT count(*) FROM step_attempts a WHERE a.step_run_id = s.id) > s.attempt`))
	require.Zero(t, count(`SELECT count(*) FROM (SELECT step_run_id, attempt FROM step_attempts
		GROUP BY step_run_id, attempt HAVING count(*) > 1) d`))
	require.Equal(t, runs, count(`SELECT count(*) FROM step_attempts WHERE attempt = 1 AND status = 'completed'`))
	require.Equal(t, runs, count(`SELECT count(*) FROM step_attempts`))
	// The event log agrees: each step run started once and completed once,
	// as attempt 1, and each run has exactly one terminal event.
	for _, typ := range []string{"step.started", "step.completed", "step.stream"} {
		require.Equal(t, runs, count(`SELECT count(*) FROM events WHERE type = '`+typ+`' AND attempt = 1`), typ)
		require.Equal(t, runs, count(`SELECT count(DISTINCT step_run_id) FROM events WHERE type = '`+typ+`'`), typ)
		require.Equal(t, runs, count(`SELECT count(*) FROM events WHERE type = '`+typ+`'`), typ)
	}
	require.Zero(t, count(`SELECT count(*) FROM events WHERE type IN ('step.failed', 'step.timed_out', 'step.cancelled')`))
	require.Equal(t, runs, count(`SELECT count(*) FROM events WHERE type = 'run.completed'`))
	require.Equal(t, runs, count(`SELECT count(DISTINCT run_id) FROM events WHERE type = 'run.completed'`))

	t.Logf("in the store: %v from the first run created to the last finished",
		time.Duration(count(`SELECT max(finished_at) - min(created_at) FROM runs`))*time.Microsecond)

	// Where the steps ran: both nodes' workers took part.
	rows, err := conn.Query(ctx, `SELECT w.name, count(*) FROM step_attempts a JOIN workers w ON w.id = a.worker_id
		GROUP BY w.name ORDER BY w.name`)
	require.NoError(t, err)
	perWorker := map[string]int{}
	for rows.Next() {
		var name string
		var n int
		require.NoError(t, rows.Scan(&name, &n))
		perWorker[name] = n
	}
	require.NoError(t, rows.Err())
	t.Logf("steps per worker: %v", perWorker)
	total := 0
	for _, n := range perWorker {
		total += n
	}
	require.Equal(t, runs, total, "every attempt names a registered worker")
	require.Len(t, perWorker, 4, "all four workers, two on each node, ran steps")
}
