package main_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/demo"
)

// runSpec is one run of a cycle and what it must end as.
type runSpec struct {
	id       string
	workflow string
	input    map[string]int
	expect   runnel.RunStatus
}

// evKey is what the checker compares of an event: its position (the SSE
// id), type, run, attempt and payload (hashed when long).
type evKey struct {
	runID   string
	pos     string
	typ     string
	attempt int
	payload string
}

func payloadKey(p []byte) string {
	if len(p) <= 64 {
		return string(p)
	}
	sum := sha256.Sum256(p)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func sdkKey(ev runnel.Event) evKey {
	return evKey{runID: ev.RunID, pos: string(ev.Position), typ: string(ev.Type), attempt: ev.Attempt, payload: payloadKey(ev.Payload)}
}

// subResult is what one subscriber received.
type subResult struct {
	name   string
	runID  string // "" for the metadata subscription, which follows every run
	events []evKey
	// reconnects counts SSE disconnections (chosen or not) and resumes.
	reconnects int
	err        error
}

// faultBatch is one cycle's runs and the subscribers following them.
type faultBatch struct {
	cycle   int
	tag     string // the runs' additional metadata value
	runs    []*runSpec
	results chan subResult
	pending int
	cancel  context.CancelFunc
}

// startBatch triggers the cycle's runs (while every process is up, so a
// trigger never has an ambiguous outcome) and starts their subscribers:
// per run an SDK listener and two SSE clients that drop and resume at
// random, and one metadata subscription over the whole batch.
func (c *faultCluster) startBatch(cycle int) *faultBatch {
	t := c.t
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	b := &faultBatch{cycle: cycle, tag: fmt.Sprintf("%d-%d", c.set.seed, cycle), cancel: cancel}
	t.Cleanup(cancel)
	for i := range c.set.runsPerCycle {
		r := &runSpec{expect: runnel.RunCompleted}
		switch i % 4 {
		case 0, 1:
			r.workflow = demo.Text
			r.input = map[string]int{"chunks": 20 + c.rng.IntN(60), "intervalMs": 5 + c.rng.IntN(20)}
		case 2:
			r.workflow = demo.File
			r.input = map[string]int{"bytes": 1 + c.rng.IntN(512<<10)}
		case 3:
			r.workflow = demo.Flaky
			r.input = map[string]int{"failAttempts": 1}
			if c.rng.IntN(2) == 0 {
				// Beyond its retries: fails after FlakyRetries+1 counted
				// failures, however many attempts are lost on the way.
				r.input["failAttempts"] = demo.MaxFailAttempts
				r.expect = runnel.RunFailed
			}
		}
		id, err := c.client.Admin().RunWorkflow(ctx, r.workflow, r.input,
			runnel.WithAdditionalMetadata(map[string]string{"faultcycle": b.tag}))
		require.NoError(t, err, "trigger %s", r.workflow)
		r.id = id
		b.runs = append(b.runs, r)
	}
	b.results = make(chan subResult, 3*len(b.runs)+1)
	start := func(f func() subResult) {
		b.pending++
		go func() { b.results <- f() }()
	}
	for i, r := range b.runs {
		start(func() subResult { return followSDK(ctx, c.client, r.id) })
		for j := range 2 {
			rng := rand.New(rand.NewPCG(c.set.seed, uint64(cycle)<<16|uint64(i)<<2|uint64(j)))
			first := (i + j) % len(c.nodes)
			start(func() subResult {
				return followSSE(ctx, c.nodeURLs(first), c.token, r.id, rng)
			})
		}
	}
	ids := make(map[string]bool, len(b.runs))
	for _, r := range b.runs {
		ids[r.id] = true
	}
	start(func() subResult { return followMetadata(ctx, c.client, "faultcycle", b.tag, ids) })
	return b
}

func (c *faultCluster) nodeURLs(first int) []string {
	urls := make([]string, len(c.nodes))
	for i := range c.nodes {
		urls[i] = c.nodes[(first+i)%len(c.nodes)].url
	}
	return urls
}

// wait collects every subscriber's result; a subscriber still going after
// timeout fails the test, naming the runs not yet ended.
func (b *faultBatch) wait(t *testing.T, timeout time.Duration) []subResult {
	t.Helper()
	defer b.cancel()
	deadline := time.After(timeout)
	var out []subResult
	for len(out) < b.pending {
		select {
		case r := <-b.results:
			out = append(out, r)
		case <-deadline:
			ended := map[string]bool{}
			for _, r := range out {
				ended[r.name] = true
			}
			var waiting []string
			for _, r := range b.runs {
				waiting = append(waiting, r.workflow+" "+r.id)
			}
			t.Fatalf("cycle %d: %d of %d subscribers still following after %v; runs: %v", b.cycle, b.pending-len(out), b.pending, timeout, waiting)
		}
	}
	return out
}

// followSDK follows a run with the SDK listener, which resumes by itself
// across engine restarts and node failures.
func followSDK(ctx context.Context, c *runnel.Client, runID string) subResult {
	r := subResult{name: "sdk " + runID, runID: runID}
	for ev, err := range c.Listener().Stream(ctx, runID) {
		if err != nil {
			r.err = err
			return r
		}
		r.events = append(r.events, sdkKey(ev))
	}
	return r
}

// followMetadata follows every run with additional metadata key=value
// until each of the runs in ids has ended.
func followMetadata(ctx context.Context, c *runnel.Client, key, value string, ids map[string]bool) subResult {
	r := subResult{name: "metadata " + key + "=" + value}
	ended := 0
	for ev, err := range c.Listener().StreamByAdditionalMetadata(ctx, key, value) {
		if err != nil {
			r.err = err
			return r
		}
		r.events = append(r.events, sdkKey(ev))
		if !ids[ev.RunID] {
			r.err = fmt.Errorf("event %s of run %s, which is not in the batch", ev.Type, ev.RunID)
			return r
		}
		if ev.Terminal() {
			if ended++; ended == len(ids) {
				return r
			}
		}
	}
	r.err = fmt.Errorf("metadata subscription ended after %d of %d runs ended: %w", ended, len(ids), ctx.Err())
	return r
}

func hostOf(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return ""
	}
	return u.Host
}

func execOutput(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %v: %w: %s", name, args, err, out)
	}
	return string(out), nil
}
