package main_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver, to read the store directly

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/demo"
)

// deliveryCheck counts how one subscriber's sequence differs from the
// stored log: events missing, delivered more than once, delivered after a
// later one, or delivered with other content than stored (or unknown).
type deliveryCheck struct {
	lost, duplicated, outOfOrder, mismatched int
	first                                    string // the first problem, for the report
}

func (d deliveryCheck) ok() bool {
	return d.lost == 0 && d.duplicated == 0 && d.outOfOrder == 0 && d.mismatched == 0
}

// compareDeliveries compares what a subscriber received with the stored
// log of the same run(s), event by event, by position.
func compareDeliveries(stored, got []evKey) deliveryCheck {
	var d deliveryCheck
	note := func(format string, args ...any) {
		if d.first == "" {
			d.first = fmt.Sprintf(format, args...)
		}
	}
	index := make(map[string]int, len(stored))
	for i, k := range stored {
		index[k.pos] = i
	}
	seen := make(map[string]bool, len(got))
	last := -1
	for n, k := range got {
		i, ok := index[k.pos]
		switch {
		case !ok:
			d.mismatched++
			note("delivery %d: position %s (%s) is not in the stored log", n, k.pos, k.typ)
			continue
		case seen[k.pos]:
			d.duplicated++
			note("delivery %d: position %s (%s) delivered again", n, k.pos, k.typ)
			continue
		}
		seen[k.pos] = true
		if k != stored[i] {
			d.mismatched++
			note("delivery %d: got %+v, stored %+v", n, k, stored[i])
		}
		if i < last {
			d.outOfOrder++
			note("delivery %d: position %s (stored #%d) after stored #%d", n, k.pos, i, last)
		}
		last = max(last, i)
	}
	for i, k := range stored {
		if !seen[k.pos] {
			d.lost++
			note("stored #%d, position %s (%s attempt %d), never delivered", i, k.pos, k.typ, k.attempt)
		}
	}
	return d
}

// check is the checker run after each cycle: every subscriber's sequence
// against the stored log (read afresh from the start through a random
// node, and directly from the database), and every run's final state.
func (c *faultCluster) check(b *faultBatch, results []subResult) {
	t := c.t
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, r := range results {
		if r.err != nil {
			t.Errorf("cycle %d: subscriber %s: %v", b.cycle, r.name, r.err)
		}
	}

	stored := make(map[string][]runnel.Event, len(b.runs))
	storedKeys := make(map[string][]evKey, len(b.runs))
	reader := c.clientOf(c.nodes[c.rng.IntN(len(c.nodes))])
	db := c.openStore(ctx)
	defer db.close()
	c.stats.cycleEvents, c.stats.cycleDeliveries = 0, 0
	for _, r := range b.runs {
		events, err := collect(ctx, reader, r.id)
		require.NoError(t, err, "read the stored log of run %s", r.id)
		stored[r.id] = events
		keys := make([]evKey, len(events))
		for i, ev := range events {
			keys[i] = sdkKey(ev)
		}
		storedKeys[r.id] = keys
		c.stats.cycleEvents += len(events)

		// The same log, read from the database without the engine.
		rows, err := db.events(ctx, r.id)
		require.NoError(t, err, "read run %s's events from the database", r.id)
		var fromAPI []string
		for _, ev := range events {
			fromAPI = append(fromAPI, fmt.Sprintf("%s#%d %s", ev.Type, ev.Attempt, payloadKey(ev.Payload)))
		}
		if !slices.Equal(rows, fromAPI) {
			t.Errorf("cycle %d run %s: the database holds %d events, the subscription from the start gave %d, or they differ:\ndb:  %q\napi: %q",
				b.cycle, r.id, len(rows), len(fromAPI), rows, fromAPI)
		}
	}

	for _, r := range results {
		var d deliveryCheck
		if r.runID != "" {
			d = compareDeliveries(storedKeys[r.runID], r.events)
		} else {
			// The metadata subscription: each run's events, in its order.
			byRun := map[string][]evKey{}
			for _, k := range r.events {
				byRun[k.runID] = append(byRun[k.runID], k)
			}
			for _, run := range b.runs {
				dr := compareDeliveries(storedKeys[run.id], byRun[run.id])
				d.lost, d.duplicated, d.outOfOrder, d.mismatched = d.lost+dr.lost, d.duplicated+dr.duplicated, d.outOfOrder+dr.outOfOrder, d.mismatched+dr.mismatched
				if d.first == "" && dr.first != "" {
					d.first = "run " + run.id + ": " + dr.first
				}
			}
		}
		c.stats.lost += d.lost
		c.stats.duplicated += d.duplicated
		c.stats.outOfOrder += d.outOfOrder
		c.stats.mism += d.mismatched
		c.stats.cycleDeliveries += len(r.events)
		c.stats.sseResumes += r.reconnects
		if !d.ok() {
			t.Errorf("cycle %d: subscriber %s: %d lost, %d duplicated, %d out of order, %d mismatched; first: %s",
				b.cycle, r.name, d.lost, d.duplicated, d.outOfOrder, d.mismatched, d.first)
		}
	}
	c.stats.events += c.stats.cycleEvents
	c.stats.deliveries += c.stats.cycleDeliveries

	for _, r := range b.runs {
		run, err := reader.Admin().GetRun(ctx, r.id)
		require.NoError(t, err)
		c.stats.runs++
		if run.Status == runnel.RunFailed {
			c.stats.failedRuns++
		}
		for _, s := range run.Steps {
			for _, a := range s.Attempts {
				if strings.Contains(a.Error, "worker lost") {
					c.stats.lostAttempts++
				}
			}
		}
		for _, problem := range checkRunState(r, run, stored[r.id]) {
			t.Errorf("cycle %d: run %s (%s %v): %s", b.cycle, r.id, r.workflow, r.input, problem)
		}
		for _, problem := range c.checkNoRerunWhileWorkerLived(run) {
			t.Errorf("cycle %d: run %s (%s %v): %s", b.cycle, r.id, r.workflow, r.input, problem)
		}
	}
}

// invocationLine is the SDK's debug log of a step function starting.
var invocationLine = regexp.MustCompile(`msg="step started".* step_run_id=(\S+) attempt=(\d+)`)

// checkNoRerunWhileWorkerLived is issue 16's check: a step attempt that
// started on a worker process and was then lost (re-queued as a new
// attempt) is allowed only if that process was killed. A worker that
// lived kept running its attempt across engine kills and failovers, so the
// step must not have run again.
func (c *faultCluster) checkNoRerunWhileWorkerLived(run *runnel.Run) []string {
	type invocation struct {
		worker string
		killed bool
	}
	ran := map[string][]invocation{} // "stepRunID#attempt" → where it started
	for _, w := range c.workers {
		procs := append(append([]*proc(nil), w.killed...), w.p)
		for i, p := range procs {
			for _, line := range p.output() {
				if m := invocationLine.FindStringSubmatch(line); m != nil {
					key := m[1] + "#" + m[2]
					ran[key] = append(ran[key], invocation{worker: w.name, killed: i < len(w.killed)})
				}
			}
		}
	}
	var problems []string
	for _, s := range run.Steps {
		rerun := false
		for _, a := range s.Attempts {
			if !strings.Contains(a.Error, "worker lost") || a.Attempt == s.Attempt {
				continue
			}
			for _, inv := range ran[fmt.Sprintf("%s#%d", s.ID, a.Attempt)] {
				rerun = true
				if !inv.killed {
					c.stats.rerunWhileLived++
					problems = append(problems, fmt.Sprintf("step run %s attempt %d ran on worker %s, which lived, yet was lost (%s) and the step ran again",
						s.ID, a.Attempt, inv.worker, a.Error))
				}
			}
		}
		if rerun {
			c.stats.rerunSteps++
		}
	}
	return problems
}

func (c *faultCluster) clientOf(n *faultNode) *runnel.Client {
	cl, err := runnel.NewClient(runnel.WithHost(n.url), runnel.WithToken(c.token))
	require.NoError(c.t, err)
	return cl
}

// checkRunState checks a finished run against its stored events: terminal
// as expected, one terminal event and last, each attempt started once and
// ended at most once with its stream in between, and the output made of
// the final attempt's stream.
func checkRunState(spec *runSpec, run *runnel.Run, events []runnel.Event) []string {
	var problems []string
	fail := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if !run.Status.Terminal() {
		fail("status %s is not terminal", run.Status)
		return problems
	}
	if run.Status != spec.expect {
		fail("status %s, want %s (error %q)", run.Status, spec.expect, run.Error)
	}
	if len(events) == 0 {
		fail("no events stored")
		return problems
	}
	if events[0].Type != runnel.EventRunStarted {
		fail("first event %s, want run.started", events[0].Type)
	}
	terminal := 0
	for _, ev := range events {
		if ev.Terminal() {
			terminal++
		}
	}
	if last := events[len(events)-1]; terminal != 1 || last.Type != runnel.EventType("run."+string(run.Status)) {
		fail("%d terminal events, the last event is %s; want exactly one, run.%s, last", terminal, last.Type, run.Status)
	}
	if len(run.Steps) != 1 {
		fail("%d step runs, want 1", len(run.Steps))
		return problems
	}
	step := run.Steps[0]

	// Per attempt: started once, stream between start and end, ended once.
	started, ended := map[int]int{}, map[int]int{}
	streams := map[int][]byte{}
	for i, ev := range events {
		if ev.StepRunID == "" {
			continue
		}
		a := ev.Attempt
		switch ev.Type {
		case runnel.EventStepStarted:
			started[a]++
		case runnel.EventStepStream:
			if started[a] != 1 || ended[a] != 0 {
				fail("event %d: stream of attempt %d outside its start and end", i, a)
			}
			streams[a] = append(streams[a], ev.Payload...)
		default:
			ended[a]++
		}
	}
	for a := 1; a <= step.Attempt; a++ {
		if started[a] != 1 || ended[a] > 1 {
			fail("attempt %d: started %d times, ended %d times", a, started[a], ended[a])
		}
	}
	if len(started) != step.Attempt || len(step.Attempts) != step.Attempt {
		fail("events show %d attempts, the step run says %d with %d recorded", len(started), step.Attempt, len(step.Attempts))
	}
	completed := 0
	for _, a := range step.Attempts {
		if a.Status == runnel.StepCompleted {
			completed++
		}
	}
	if want := map[bool]int{true: 1, false: 0}[run.Status == runnel.RunCompleted]; completed != want {
		fail("%d completed attempts, want %d", completed, want)
	}

	final := streams[step.Attempt]
	var out map[string]json.RawMessage
	if run.Status == runnel.RunCompleted {
		if err := json.Unmarshal(run.Output, &out); err != nil {
			fail("output %s: %v", run.Output, err)
			return problems
		}
	}
	switch spec.workflow {
	case demo.Text:
		want := demo.TextOutput(spec.input["chunks"])
		for a, s := range streams {
			if !strings.HasPrefix(want, string(s)) {
				fail("attempt %d streamed %q, not a prefix of the text", a, s)
			}
		}
		if run.Status == runnel.RunCompleted {
			var o struct{ Text string }
			_ = json.Unmarshal(out["generate"], &o)
			if o.Text != string(final) || o.Text != want {
				fail("output text %q; the final attempt streamed %q; want %q", o.Text, final, want)
			}
		}
	case demo.File:
		if run.Status == runnel.RunCompleted {
			var o demo.FileOutput
			_ = json.Unmarshal(out["file"], &o)
			sum := sha256.Sum256(final)
			want := sha256.Sum256(demo.FilePayload(spec.input["bytes"]))
			if o.Bytes != len(final) || o.SHA256 != hex.EncodeToString(sum[:]) || sum != want {
				fail("output %+v does not match the final attempt's %d streamed bytes, or they are not the file", o, len(final))
			}
		}
	case demo.Flaky:
		for a, s := range streams {
			if string(s) != fmt.Sprintf("attempt %d", a) {
				fail("attempt %d streamed %q", a, s)
			}
		}
		switch run.Status {
		case runnel.RunCompleted:
			var o struct{ Attempts int }
			_ = json.Unmarshal(out["flaky"], &o)
			if o.Attempts != step.Attempt {
				fail("output says attempt %d, the final attempt is %d", o.Attempts, step.Attempt)
			}
		case runnel.RunFailed:
			onPurpose := 0
			for _, a := range step.Attempts {
				if strings.Contains(a.Error, "failed on purpose") {
					onPurpose++
				}
			}
			if onPurpose != demo.FlakyRetries+1 || !strings.Contains(run.Error, "failed on purpose") {
				fail("%d attempts failed on purpose, want %d; run error %q", onPurpose, demo.FlakyRetries+1, run.Error)
			}
		}
	}
	return problems
}

// storeReader reads a run's events straight from the database.
type storeReader struct {
	sqlite *sql.DB
	pg     *pgx.Conn
}

func (c *faultCluster) openStore(ctx context.Context) *storeReader {
	if c.dbURL != "" {
		conn, err := pgx.Connect(ctx, c.dbURL)
		require.NoError(c.t, err)
		return &storeReader{pg: conn}
	}
	db, err := sql.Open("sqlite", "file:"+c.sqlitePath()+"?mode=ro")
	require.NoError(c.t, err)
	return &storeReader{sqlite: db}
}

const eventsOfRun = `SELECT type, attempt, payload FROM events WHERE run_id = $1 ORDER BY position`

// events returns "type#attempt payload" per stored event of the run.
func (s *storeReader) events(ctx context.Context, runID string) ([]string, error) {
	var out []string
	add := func(typ string, attempt int64, payload []byte) {
		out = append(out, fmt.Sprintf("%s#%d %s", typ, attempt, payloadKey(payload)))
	}
	if s.pg != nil {
		rows, err := s.pg.Query(ctx, eventsOfRun, runID)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		for rows.Next() {
			var typ string
			var attempt int64
			var payload []byte
			if err := rows.Scan(&typ, &attempt, &payload); err != nil {
				return nil, err
			}
			add(typ, attempt, payload)
		}
		return out, rows.Err()
	}
	rows, err := s.sqlite.QueryContext(ctx, eventsOfRun, runID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var typ string
		var attempt int64
		var payload []byte
		if err := rows.Scan(&typ, &attempt, &payload); err != nil {
			return nil, err
		}
		add(typ, attempt, payload)
	}
	return out, rows.Err()
}

func (s *storeReader) close() {
	if s.pg != nil {
		_ = s.pg.Close(context.Background())
	}
	if s.sqlite != nil {
		_ = s.sqlite.Close()
	}
}
