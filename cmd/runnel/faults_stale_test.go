package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel"
	runnelv1 "github.com/runnel-dev/runnel/internal/gen/runnel/v1"
	"github.com/runnel-dev/runnel/internal/gen/runnel/v1/runnelv1connect"
)

// Scenario 4: a worker paused with SIGSTOP past the engine's heartbeat
// timeout, then resumed with SIGCONT. The SDK's worker drops whatever a
// lost session still tries to send, so the paused worker here is a small
// one of the suite's own (the test binary re-executed, speaking the worker
// protocol directly): after SIGCONT it carries on with its attempt as if
// nothing happened, putting the rest of its stream and completing, so the
// engine itself must refuse those late results.

const (
	staleWorkerEnv = "RUNNEL_FAULT_STALE_WORKER" // the worker's name; set: run as the worker
	staleWorkflow  = "fault-stale"
	staleStep      = "work"
)

// staleInput is the input of a fault-stale run.
type staleInput struct {
	Chunks     int `json:"chunks"`
	IntervalMs int `json:"intervalMs"`
}

// staleChunk is chunk i of attempt a: every payload says which attempt
// put it.
func staleChunk(a, i int) string { return fmt.Sprintf("a%d-%d ", a, i) }

// staleWorkerMain is the worker process: it registers fault-stale, runs
// each assignment in its own goroutine (putting chunks one at a time, then
// completing), and prints the engine's answer to every call on stderr.
func staleWorkerMain() int {
	name := os.Getenv(staleWorkerEnv)
	httpClient := &http.Client{Transport: bearer{token: os.Getenv("RUNNEL_TOKEN")}}
	client := runnelv1connect.NewWorkerServiceClient(httpClient, os.Getenv("RUNNEL_HOST"))
	ctx := context.Background()
	reg, err := client.RegisterWorker(ctx, connect.NewRequest(&runnelv1.RegisterWorkerRequest{
		Name: name, Slots: 1,
		Workflows: []*runnelv1.WorkflowDefinition{{Name: staleWorkflow, Steps: []*runnelv1.StepDefinition{{Name: staleStep}}}},
	}))
	if err != nil {
		fmt.Fprintln(os.Stderr, "register:", err)
		return 1
	}
	id := reg.Msg.GetWorkerId()
	fmt.Fprintf(os.Stderr, "stale worker %s registered as %s\n", name, id)
	go func() {
		for range time.Tick(time.Duration(reg.Msg.GetHeartbeatIntervalMs()) * time.Millisecond) {
			if _, err := client.Heartbeat(ctx, connect.NewRequest(&runnelv1.HeartbeatRequest{WorkerId: id})); err != nil {
				fmt.Fprintf(os.Stderr, "heartbeat: %s\n", connect.CodeOf(err))
			}
		}
	}()
	stream, err := client.Listen(ctx, connect.NewRequest(&runnelv1.ListenRequest{WorkerId: id}))
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		return 1
	}
	var steps sync.WaitGroup
	for stream.Receive() {
		if a := stream.Msg().GetAssignment(); a != nil {
			steps.Go(func() { staleRunAttempt(ctx, client, a) })
		}
	}
	fmt.Fprintf(os.Stderr, "listen ended: %v\n", stream.Err())
	steps.Wait()
	select {} // stay up until killed, like a worker that never noticed
}

// bearer adds the token to every request, streaming ones included.
type bearer struct{ token string }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}

func staleRunAttempt(ctx context.Context, client runnelv1connect.WorkerServiceClient, a *runnelv1.StepAssignment) {
	in := staleInput{Chunks: 20, IntervalMs: 50}
	_ = json.Unmarshal(a.GetInput(), &in)
	attempt := int(a.GetAttempt())
	fmt.Fprintf(os.Stderr, "assigned attempt %d\n", attempt)
	answer := func(err error) string {
		if err != nil {
			return "refused " + connect.CodeOf(err).String() + ": " + err.Error()
		}
		return "ok"
	}
	for i := range in.Chunks {
		time.Sleep(time.Duration(in.IntervalMs) * time.Millisecond) // the step's work
		_, err := client.PutStream(ctx, connect.NewRequest(&runnelv1.PutStreamRequest{
			StepRunId: a.GetStepRunId(), Attempt: a.GetAttempt(), FirstSeq: int64(i + 1),
			Payloads: [][]byte{[]byte(staleChunk(attempt, i))},
		}))
		fmt.Fprintf(os.Stderr, "put %d attempt %d: %s\n", i, attempt, answer(err))
	}
	out, _ := json.Marshal(map[string]int{"attempt": attempt, "chunks": in.Chunks})
	_, err := client.CompleteStep(ctx, connect.NewRequest(&runnelv1.CompleteStepRequest{
		StepRunId: a.GetStepRunId(), Attempt: a.GetAttempt(), Output: out,
	}))
	fmt.Fprintf(os.Stderr, "complete attempt %d: %s\n", attempt, answer(err))
}

// startStaleWorker runs the test binary as a stale worker process.
func (c *faultCluster) startStaleWorker(t *testing.T, name string) *proc {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	p := startProgram(t, exe, []string{staleWorkerEnv + "=" + name, "RUNNEL_HOST=" + c.nodes[0].url, "RUNNEL_TOKEN=" + c.token})
	p.waitFor(t, "registered as")
	return p
}

var putLine = regexp.MustCompile(`^put (\d+) attempt (\d+): (ok|refused (\w+))`)

// faultScenarioPausedWorker is scenario 4, on one SQLite engine with a
// short heartbeat timeout. Each cycle, while a batch of demo runs streams
// (checked like the other scenarios), a fault-stale run starts on stale
// worker A, which is paused with SIGSTOP after a few chunks; the engine
// declares A dead and re-queues the step, worker B completes attempt 2;
// then A is resumed and sends its late chunks and result.
func faultScenarioPausedWorker(t *testing.T, set faultSettings) faultStats {
	const timeout = 1500 * time.Millisecond
	c := newFaultCluster(t, set, false, 1, 1, "--heartbeat-interval", "250ms", "--heartbeat-timeout", timeout.String())
	return c.runCycles(func(c *faultCluster, cycle int) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		a := c.startStaleWorker(t, fmt.Sprintf("stale-a%d", cycle))
		const chunks = 30
		runID, err := c.client.Admin().RunWorkflow(ctx, staleWorkflow, staleInput{Chunks: chunks, IntervalMs: 40})
		require.NoError(t, err)
		followed := make(chan subResult, 3)
		go func() { followed <- followSDK(ctx, c.client, runID) }()
		for j := range 2 {
			rng := rand.New(rand.NewPCG(c.set.seed, uint64(cycle)<<16|0xff00|uint64(j)))
			go func() { followed <- followSSE(ctx, c.nodeURLs(0), c.token, runID, rng) }()
		}

		pauseAfter := 1 + c.rng.IntN(8)
		a.waitFor(t, fmt.Sprintf("put %d attempt 1: ok", pauseAfter))
		pauseProcess(t, a)
		c.stats.pauses++
		pausedAt := time.Now()
		b := c.startStaleWorker(t, fmt.Sprintf("stale-b%d", cycle))
		b.waitFor(t, "complete attempt 2: ok")
		require.Greater(t, time.Since(pausedAt), timeout, "attempt 2 ran only after A's heartbeat timeout")
		resumeProcess(t, a)
		a.waitFor(t, "complete attempt 1: refused failed_precondition")

		var results []subResult
		for range 3 {
			results = append(results, <-followed)
		}
		checkStaleRun(t, c, runID, chunks, a.output(), results)
		a.kill(t)
		b.kill(t)
	})
}

// checkStaleRun checks the fault-stale run: attempt 1 lost (no heartbeat),
// attempt 2 completed and its output applied once; attempt 1's stream holds
// exactly the chunks the engine acknowledged to A, and every put A made
// after the engine gave up on it was refused.
func checkStaleRun(t *testing.T, c *faultCluster, runID string, chunks int, aLines []string, results []subResult) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	run, err := c.client.Admin().GetRun(ctx, runID)
	require.NoError(t, err)
	require.Equal(t, runnel.RunCompleted, run.Status, run.Error)
	require.JSONEq(t, fmt.Sprintf(`{"work": {"attempt": 2, "chunks": %d}}`, chunks), string(run.Output))
	step := run.Steps[0]
	require.Equal(t, 2, step.Attempt)
	require.Len(t, step.Attempts, 2)
	require.Equal(t, runnel.StepFailed, step.Attempts[0].Status)
	require.Contains(t, step.Attempts[0].Error, "worker lost: no heartbeat")
	require.Equal(t, runnel.StepCompleted, step.Attempts[1].Status)

	stored, err := collect(ctx, c.client, runID)
	require.NoError(t, err)
	var acked, refused, okAfterRefusal int
	var ackedText strings.Builder
	for _, line := range aLines {
		m := putLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		i, _ := strconv.Atoi(m[1])
		switch {
		case m[3] == "ok" && refused == 0:
			acked++
			ackedText.WriteString(staleChunk(1, i))
		case m[3] == "ok":
			okAfterRefusal++
		default:
			require.Equal(t, "failed_precondition", m[4], line)
			refused++
		}
	}
	require.Positive(t, refused, "A sent late chunks after SIGCONT, and they were refused")
	require.Zero(t, okAfterRefusal, "no put of A accepted after one was refused")
	var streams [3]strings.Builder
	completed := 0
	for _, ev := range stored {
		switch ev.Type {
		case runnel.EventStepStream:
			streams[ev.Attempt].Write(ev.Payload)
		case runnel.EventStepCompleted:
			completed++
			require.Equal(t, 2, ev.Attempt)
		}
	}
	require.Equal(t, 1, completed, "one step.completed: A's late result was not applied")
	require.Equal(t, ackedText.String(), streams[1].String(), "attempt 1's stream is exactly what the engine acknowledged to A")
	var want strings.Builder
	for i := range chunks {
		want.WriteString(staleChunk(2, i))
	}
	require.Equal(t, want.String(), streams[2].String())

	keys := make([]evKey, len(stored))
	for i, ev := range stored {
		keys[i] = sdkKey(ev)
	}
	for _, r := range results {
		require.NoError(t, r.err, r.name)
		d := compareDeliveries(keys, r.events)
		require.True(t, d.ok(), "%s: %+v", r.name, d)
		c.stats.deliveries += len(r.events)
		c.stats.sseResumes += r.reconnects
	}
	c.stats.events += len(stored)
	c.stats.runs++
	c.stats.lostAttempts++
	t.Logf("paused worker: %d chunks acknowledged to A before the engine gave up on it, %d late puts and its result refused", acked, refused)
}
