package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/demo"
	pb "github.com/runnel-dev/runnel/internal/gen/runnel/v1"
	"github.com/runnel-dev/runnel/internal/store"
)

// childrenOf lists the runs whose parent is runID, oldest first.
func childrenOf(t *testing.T, n *node, runID string) []*runnel.Run {
	t.Helper()
	runs, err := n.client.Admin().ListRuns(context.Background(), runnel.ListRunsOptions{Limit: 1000})
	require.NoError(t, err)
	var out []*runnel.Run
	for _, r := range runs {
		if r.ParentRunID == runID {
			out = append(out, r)
		}
	}
	slices.Reverse(out) // ListRuns is newest first
	return out
}

// streamText returns the payloads of a run's step.stream events, in order.
func streamText(events []runnel.Event) []string {
	var out []string
	for _, ev := range events {
		if ev.Type == runnel.EventStepStream {
			out = append(out, string(ev.Payload))
		}
	}
	return out
}

// receive waits for a value from ch, failing the test after a while.
func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(30 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// demo-parent with n = 10 completes with its children's outputs in order;
// every child records its parent and inherits the parent's metadata.
func TestDemoParentSpawnsChildren(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, n *node) {
		ctx := context.Background()
		// One slot for the waiting parent, ten for its children.
		startWorker(t, n, "demo", 11, demo.Workflows()...)
		meta := map[string]string{"streamKey": "sk-10", "tier": "gold"}
		runID, err := n.client.Admin().RunWorkflow(ctx, demo.Parent, map[string]int{"n": 10},
			runnel.WithAdditionalMetadata(meta))
		require.NoError(t, err)
		run, _ := waitRun(t, n, runID)
		require.Equal(t, runnel.RunCompleted, run.Status, run.Error)

		var out map[string]demo.ParentOutput
		require.NoError(t, json.Unmarshal(run.Output, &out))
		want := make([]demo.ChildOutput, 10)
		for i := range want {
			want[i].Index = i
		}
		require.Equal(t, want, out[demo.ParentStep].Children)

		children := childrenOf(t, n, runID)
		require.Len(t, children, 10)
		seen := map[int]bool{}
		for _, c := range children {
			require.Equal(t, demo.Child, c.Workflow)
			require.Equal(t, runID, c.ParentRunID)
			require.Equal(t, run.Steps[0].ID, c.ParentStepRunID)
			require.Equal(t, meta, c.AdditionalMetadata, "a child inherits its parent's metadata")
			var in struct{ Index int }
			require.NoError(t, json.Unmarshal(c.Input, &in))
			require.JSONEq(t, fmt.Sprintf(`{"index":%d}`, in.Index), string(c.Input))
			seen[in.Index] = true

			got, events := waitRun(t, n, c.ID)
			require.Equal(t, runnel.RunCompleted, got.Status, got.Error)
			require.JSONEq(t, fmt.Sprintf(`{%q:{"index":%d}}`, demo.ChildStep, in.Index), string(got.Output))
			var chunks []string
			for k := range demo.ChildChunks {
				chunks = append(chunks, demo.ChildChunk(in.Index, k))
			}
			require.Equal(t, chunks, streamText(events))
		}
		require.Len(t, seen, 10)
	})
}

// A child that spawns: demo-parent's children each spawn grandchildren,
// which record the child as their parent and inherit the metadata too.
func TestGrandchildren(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, n *node) {
		ctx := context.Background()
		// 1 parent + 2 children wait; 4 grandchildren run.
		startWorker(t, n, "demo", 7, demo.Workflows()...)
		runID, err := n.client.Admin().RunWorkflow(ctx, demo.Parent, map[string]int{"n": 2, "spawn": 2, "intervalMs": 0},
			runnel.WithAdditionalMetadata(map[string]string{"streamKey": "sk-tree"}))
		require.NoError(t, err)
		run, _ := waitRun(t, n, runID)
		require.Equal(t, runnel.RunCompleted, run.Status, run.Error)
		require.JSONEq(t, `{"spawn":{"children":[
			{"index":0,"children":[{"index":0},{"index":1}]},
			{"index":1,"children":[{"index":0},{"index":1}]}]}}`, string(run.Output))

		children := childrenOf(t, n, runID)
		require.Len(t, children, 2)
		for _, c := range children {
			grand := childrenOf(t, n, c.ID)
			require.Len(t, grand, 2)
			for _, g := range grand {
				require.Equal(t, c.ID, g.ParentRunID)
				require.Equal(t, runnel.RunCompleted, g.Status)
				require.Equal(t, map[string]string{"streamKey": "sk-tree"}, g.AdditionalMetadata)
			}
		}
	})
}

// A child's own metadata is merged over the parent's; Result hands back the
// child's output, or an error naming how it ended.
func TestSpawnMetadataAndResult(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, n *node) {
		ctx := context.Background()
		type result struct {
			ChildID string `json:"childId"`
			Output  any    `json:"output"`
			Err     string `json:"err"`
		}
		parent := runnel.NewWorkflow("meta-parent").Step("spawn", func(ctx runnel.Context) (any, error) {
			var in struct{ Fail bool }
			if err := ctx.WorkflowInput(&in); err != nil {
				return nil, err
			}
			child, err := ctx.SpawnWorkflow("meta-child", map[string]bool{"fail": in.Fail},
				runnel.WithAdditionalMetadata(map[string]string{"tier": "child", "extra": "x"}))
			if err != nil {
				return nil, err
			}
			var out any
			err = child.Result(ctx, &out)
			res := result{ChildID: child.RunID(), Output: out}
			var cre *runnel.ChildRunError
			if errors.As(err, &cre) {
				res.Err = fmt.Sprintf("%s %s %s", cre.RunID, cre.Status, err)
			} else if err != nil {
				return nil, err
			}
			return res, nil
		})
		child := runnel.NewWorkflow("meta-child").Step("echo", func(ctx runnel.Context) (any, error) {
			var in struct{ Fail bool }
			if err := ctx.WorkflowInput(&in); err != nil {
				return nil, err
			}
			if in.Fail {
				return nil, errors.New("child failed on purpose")
			}
			return ctx.AdditionalMetadata(), nil
		})
		startWorker(t, n, "w", 2, parent, child)

		parentMeta := map[string]string{"tier": "parent", "keep": "1"}
		merged := map[string]string{"tier": "child", "keep": "1", "extra": "x"}
		runID, err := n.client.Admin().RunWorkflow(ctx, "meta-parent", nil, runnel.WithAdditionalMetadata(parentMeta))
		require.NoError(t, err)
		run, _ := waitRun(t, n, runID)
		require.Equal(t, runnel.RunCompleted, run.Status, run.Error)
		require.Equal(t, parentMeta, run.AdditionalMetadata, "the parent keeps its own metadata")
		var out struct{ Spawn result }
		require.NoError(t, json.Unmarshal(run.Output, &out))
		require.Empty(t, out.Spawn.Err)
		require.Equal(t, map[string]any{"echo": map[string]any{"tier": "child", "keep": "1", "extra": "x"}}, out.Spawn.Output,
			"the child step saw the merged metadata")
		c, err := n.client.Admin().GetRun(ctx, out.Spawn.ChildID)
		require.NoError(t, err)
		require.Equal(t, merged, c.AdditionalMetadata)
		require.Equal(t, runID, c.ParentRunID)
		require.Equal(t, run.Steps[0].ID, c.ParentStepRunID)

		// A child that fails: Result says so, naming the child and status.
		runID, err = n.client.Admin().RunWorkflow(ctx, "meta-parent", map[string]bool{"fail": true})
		require.NoError(t, err)
		run, _ = waitRun(t, n, runID)
		require.Equal(t, runnel.RunCompleted, run.Status, run.Error)
		require.NoError(t, json.Unmarshal(run.Output, &out))
		require.Contains(t, out.Spawn.Err, out.Spawn.ChildID+" failed")
		require.Contains(t, out.Spawn.Err, "child failed on purpose")
		c, err = n.client.Admin().GetRun(ctx, out.Spawn.ChildID)
		require.NoError(t, err)
		require.Equal(t, map[string]string{"tier": "child", "extra": "x"}, c.AdditionalMetadata)
	})
}

// treeWorkflows: tree-parent spawns two tree-child runs and waits; each
// tree-child spawns one tree-leaf and waits; tree-leaf waits for its
// context. Every step reports its run id on started once running, and
// the cause of its context's end on stopped.
func treeWorkflows(started chan<- string, stopped chan<- error) []*runnel.Workflow {
	wait := func(ctx runnel.Context, children ...*runnel.ChildRun) (any, error) {
		started <- ctx.RunID()
		for _, c := range children {
			if err := c.Result(ctx, nil); err != nil {
				break // cancelled, or the child was (our cancellation follows)
			}
		}
		<-ctx.Done()
		stopped <- context.Cause(ctx)
		return nil, ctx.Err()
	}
	spawn := func(workflow string, k int) runnel.StepFunc {
		return func(ctx runnel.Context) (any, error) {
			var children []*runnel.ChildRun
			for range k {
				c, err := ctx.SpawnWorkflow(workflow, nil)
				if err != nil {
					return nil, err
				}
				children = append(children, c)
			}
			return wait(ctx, children...)
		}
	}
	return []*runnel.Workflow{
		runnel.NewWorkflow("tree-parent").Step("spawn", spawn("tree-child", 2)),
		runnel.NewWorkflow("tree-child").Step("spawn", spawn("tree-leaf", 1)),
		runnel.NewWorkflow("tree-leaf").Step("wait", spawn("", 0)),
	}
}

// Cancelling a parent cancels its running children and grandchildren before
// CancelRun returns, and their steps are told to stop.
func TestCancelParentCancelsDescendants(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, n *node) {
		ctx := context.Background()
		started, stopped := make(chan string, 8), make(chan error, 8)
		startWorker(t, n, "w", 8, treeWorkflows(started, stopped)...)
		runID, err := n.client.Admin().RunWorkflow(ctx, "tree-parent", nil)
		require.NoError(t, err)
		var runs []string
		for range 5 { // parent, 2 children, 2 leaves
			runs = append(runs, receive(t, started, "a step of the tree to start"))
		}
		require.Contains(t, runs, runID)

		require.NoError(t, n.client.Admin().CancelRun(ctx, runID))
		// Already cancelled when CancelRun returned: no waiting.
		for _, id := range runs {
			r, err := n.client.Admin().GetRun(ctx, id)
			require.NoError(t, err)
			require.Equal(t, runnel.RunCancelled, r.Status, "run %s (%s)", id, r.Workflow)
			if id != runID {
				require.Contains(t, r.Error, "parent run "+r.ParentRunID+" cancelled")
			}
		}
		for range 5 {
			cause := receive(t, stopped, "a step to be cancelled")
			require.ErrorIs(t, cause, runnel.ErrStepCancelled)
		}
		for _, id := range runs {
			_, events := waitRun(t, n, id)
			require.Equal(t, runnel.EventRunCancelled, events[len(events)-1].Type)
		}
	})
}

// A parent that fails (or times out) cancels its unfinished children too.
func TestFailedParentCancelsChildren(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, n *node) {
		ctx := context.Background()
		started, stopped := make(chan string, 8), make(chan error, 8)
		wfs := treeWorkflows(started, stopped)
		childID := make(chan string, 1)
		// awaitStarts waits, inside a step, until k descendants run.
		awaitStarts := func(ctx runnel.Context, k int) error {
			for range k {
				select {
				case <-started:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return nil
		}
		failing := runnel.NewWorkflow("failing-parent").Step("spawn", func(ctx runnel.Context) (any, error) {
			c, err := ctx.SpawnWorkflow("tree-child", nil)
			if err != nil {
				return nil, err
			}
			childID <- c.RunID()
			if err := awaitStarts(ctx, 2); err != nil { // the child and its leaf
				return nil, err
			}
			return nil, errors.New("parent gives up")
		})
		timingOut := runnel.NewWorkflow("slow-parent").Step("spawn", func(ctx runnel.Context) (any, error) {
			c, err := ctx.SpawnWorkflow("tree-leaf", nil)
			if err != nil {
				return nil, err
			}
			childID <- c.RunID()
			if err := awaitStarts(ctx, 1); err != nil {
				return nil, err
			}
			return nil, c.Result(ctx, nil) // the leaf never ends by itself
		}, runnel.Timeout(2*time.Second))
		startWorker(t, n, "w", 8, append(wfs, failing, timingOut)...)

		for _, tc := range []struct {
			workflow string
			status   runnel.RunStatus
			stops    int
		}{
			{"failing-parent", runnel.RunFailed, 2},
			{"slow-parent", runnel.RunTimedOut, 1},
		} {
			runID, err := n.client.Admin().RunWorkflow(ctx, tc.workflow, nil)
			require.NoError(t, err)
			cid := receive(t, childID, "the child's id")
			run, _ := waitRun(t, n, runID)
			require.Equal(t, tc.status, run.Status, run.Error)
			child, _ := waitRun(t, n, cid)
			require.Equal(t, runnel.RunCancelled, child.Status)
			require.Equal(t, "parent run "+runID+" "+string(tc.status), child.Error)
			for range tc.stops {
				require.ErrorIs(t, receive(t, stopped, "a descendant to be cancelled"), runnel.ErrStepCancelled)
			}
			for _, g := range childrenOf(t, n, cid) {
				got, _ := waitRun(t, n, g.ID)
				require.Equal(t, runnel.RunCancelled, got.Status)
				require.Equal(t, "parent run "+cid+" cancelled", got.Error)
			}
		}
	})
}

// SpawnRun is refused unless the named attempt is running; a repeated key
// returns the same child; a new attempt's keys are fresh.
func TestSpawnRunAttemptsAndKeys(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, n *node) {
		ctx := context.Background()
		type attempt struct {
			stepRunID string
			attempt   int32
		}
		running := make(chan attempt, 2)
		release := make(chan struct{})
		holder := runnel.NewWorkflow("holder").Step("hold", func(ctx runnel.Context) (any, error) {
			running <- attempt{ctx.StepRunID(), int32(ctx.Attempt())}
			select {
			case <-release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			if ctx.Attempt() == 1 {
				return nil, errors.New("retry me")
			}
			return "done", nil
		}, runnel.Retries(1))
		leaf := runnel.NewWorkflow("leaf").Step("noop", func(ctx runnel.Context) (any, error) { return nil, nil })
		startWorker(t, n, "w", 4, holder, leaf)
		raw := newRaw(n, n.srv.AdminToken)
		spawn := func(a attempt, workflow, key string) (string, error) {
			resp, err := raw.worker.SpawnRun(ctx, connect.NewRequest(&pb.SpawnRunRequest{
				ParentStepRunId: a.stepRunID, ParentAttempt: a.attempt, Workflow: workflow, Key: key,
				Input: []byte(`{"k":"` + key + `"}`),
			}))
			if err != nil {
				return "", err
			}
			return resp.Msg.RunId, nil
		}

		runID, err := n.client.Admin().RunWorkflow(ctx, "holder", nil)
		require.NoError(t, err)
		a1 := receive(t, running, "attempt 1")
		require.EqualValues(t, 1, a1.attempt)

		first, err := spawn(a1, "leaf", "0")
		require.NoError(t, err)
		again, err := spawn(a1, "leaf", "0")
		require.NoError(t, err)
		require.Equal(t, first, again, "a repeated key returns the same child")
		other, err := spawn(a1, "leaf", "1")
		require.NoError(t, err)
		require.NotEqual(t, first, other)
		noKey1, err := spawn(a1, "leaf", "")
		require.NoError(t, err)
		noKey2, err := spawn(a1, "leaf", "")
		require.NoError(t, err)
		require.NotEqual(t, noKey1, noKey2, "spawns without a key are never merged")

		_, err = spawn(a1, "holder", "0")
		requireCode(t, connect.CodeInvalidArgument, err, `already started a run of "leaf"`)
		_, err = spawn(attempt{a1.stepRunID, 2}, "leaf", "0")
		requireCode(t, connect.CodeFailedPrecondition, err, "is no longer running")
		_, err = spawn(attempt{"0193a1b2-0000-7000-8000-000000000000", 1}, "leaf", "0")
		requireCode(t, connect.CodeNotFound, err, "unknown step run")
		_, err = spawn(a1, "no-such-workflow", "9")
		requireCode(t, connect.CodeNotFound, err, `unknown workflow "no-such-workflow"`)
		_, err = raw.worker.SpawnRun(ctx, connect.NewRequest(&pb.SpawnRunRequest{
			ParentStepRunId: a1.stepRunID, ParentAttempt: a1.attempt, Workflow: "leaf", Input: []byte("{nope"),
		}))
		requireCode(t, connect.CodeInvalidArgument, err, "not valid JSON")

		// Another tenant cannot spawn from this tenant's step run.
		tok, err := n.client.Admin().CreateToken(ctx, "acme", "test")
		require.NoError(t, err)
		_, err = newRaw(n, tok).worker.SpawnRun(ctx, connect.NewRequest(&pb.SpawnRunRequest{
			ParentStepRunId: a1.stepRunID, ParentAttempt: a1.attempt, Workflow: "leaf", Key: "acme",
		}))
		requireCode(t, connect.CodeNotFound, err, "unknown step run")

		// Attempt 1 fails; from now on it is stale, and attempt 2's keys
		// are its own.
		release <- struct{}{}
		a2 := receive(t, running, "attempt 2")
		require.Equal(t, attempt{a1.stepRunID, 2}, a2)
		_, err = spawn(a1, "leaf", "0")
		requireCode(t, connect.CodeFailedPrecondition, err, "attempt 1 is no longer running")
		second, err := spawn(a2, "leaf", "0")
		require.NoError(t, err)
		require.NotEqual(t, first, second, "a retried step gets fresh children")

		close(release)
		run, _ := waitRun(t, n, runID)
		require.Equal(t, runnel.RunCompleted, run.Status, run.Error)
		_, err = spawn(a2, "leaf", "1")
		requireCode(t, connect.CodeFailedPrecondition, err, "is no longer running")

		children := childrenOf(t, n, runID)
		require.Equal(t, []string{first, other, noKey1, noKey2, second}, ids(children))
		for _, c := range children {
			require.Equal(t, a1.stepRunID, c.ParentStepRunID)
			got, _ := waitRun(t, n, c.ID)
			require.Equal(t, runnel.RunCompleted, got.Status, "a completed parent leaves its children alone")
		}
	})
}

func ids(runs []*runnel.Run) []string {
	out := make([]string, 0, len(runs))
	for _, r := range runs {
		out = append(out, r.ID)
	}
	return out
}

// Pushed events trigger the workflows registered for their key, in the
// pusher's tenant only, with the payload as input and the event's metadata.
func TestPushEvent(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, n *node) {
		ctx := context.Background()
		echo := func(ctx runnel.Context) (any, error) {
			var in any
			if err := ctx.WorkflowInput(&in); err != nil {
				return nil, err
			}
			return map[string]any{"input": in, "meta": ctx.AdditionalMetadata(), "workflow": ctx.WorkflowName()}, nil
		}
		startWorker(t, n, "w", 4,
			runnel.NewWorkflow("on-create-b").Step("echo", echo).OnEvents("user:create", "user:delete"),
			runnel.NewWorkflow("on-create-a").Step("echo", echo).OnEvents("user:create"),
			runnel.NewWorkflow("on-paid").Step("echo", echo).OnEvents("order:paid"),
			runnel.NewWorkflow("no-events").Step("echo", echo),
		)
		// Another tenant listens to the same key.
		tok, err := n.client.Admin().CreateToken(ctx, "acme", "test")
		require.NoError(t, err)
		acme, err := runnel.NewClient(runnel.WithHost(n.url), runnel.WithToken(tok), runnel.WithLogger(testLogger(t)))
		require.NoError(t, err)
		acmeNode := &node{srv: n.srv, client: acme, url: n.url}
		startWorker(t, acmeNode, "acme-w", 1, runnel.NewWorkflow("acme-on-create").Step("echo", echo).OnEvents("user:create"))

		meta := map[string]string{"source": "signup"}
		runIDs, err := n.client.Event().Push(ctx, "user:create", map[string]string{"user": "u1"}, runnel.WithAdditionalMetadata(meta))
		require.NoError(t, err)
		require.Len(t, runIDs, 2)
		for i, wf := range []string{"on-create-a", "on-create-b"} {
			run, _ := waitRun(t, n, runIDs[i])
			require.Equal(t, wf, run.Workflow)
			require.Equal(t, runnel.RunCompleted, run.Status, run.Error)
			require.Equal(t, meta, run.AdditionalMetadata)
			require.JSONEq(t, `{"user":"u1"}`, string(run.Input))
			require.JSONEq(t, fmt.Sprintf(`{"echo":{"input":{"user":"u1"},"meta":{"source":"signup"},"workflow":%q}}`, wf), string(run.Output))
		}

		// A key nobody listens to: no runs, no error. No payload: {}.
		none, err := n.client.Event().Push(ctx, "nobody:listens", nil)
		require.NoError(t, err)
		require.Empty(t, none)
		del, err := n.client.Event().Push(ctx, "user:delete", nil)
		require.NoError(t, err)
		require.Len(t, del, 1)
		run, _ := waitRun(t, n, del[0])
		require.Equal(t, "on-create-b", run.Workflow)
		require.JSONEq(t, `{}`, string(run.Input))
		require.Empty(t, run.AdditionalMetadata)

		// The other tenant's push runs its own workflow only, and neither
		// tenant sees the other's runs.
		acmeIDs, err := acme.Event().Push(ctx, "user:create", map[string]int{"n": 1})
		require.NoError(t, err)
		require.Len(t, acmeIDs, 1)
		run, _ = waitRun(t, acmeNode, acmeIDs[0])
		require.Equal(t, "acme-on-create", run.Workflow)
		_, err = n.client.Admin().GetRun(ctx, acmeIDs[0])
		requireCode(t, connect.CodeNotFound, err, "unknown run")
		_, err = acme.Admin().GetRun(ctx, runIDs[0])
		requireCode(t, connect.CodeNotFound, err, "unknown run")
		runs, err := n.client.Admin().ListRuns(ctx, runnel.ListRunsOptions{})
		require.NoError(t, err)
		require.Len(t, runs, 3, "the default tenant's runs: two for user:create, one for user:delete")

		// Bad events are refused, naming the problem, and start nothing.
		raw := newRaw(n, n.srv.AdminToken)
		for _, tc := range []struct {
			key, payload, want string
		}{
			{"user:create", "{not json", `event "user:create" payload: input is not valid JSON`},
			{"bad key!", "{}", `invalid event key name "bad key!"`},
			{"", "{}", `invalid event key name ""`},
			{"user:create", `"` + strings.Repeat("x", 5<<20) + `"`, "exceeds the 4 MiB limit"},
		} {
			_, err := raw.runs.PushEvent(ctx, connect.NewRequest(&pb.PushEventRequest{Key: tc.key, Payload: []byte(tc.payload)}))
			requireCode(t, connect.CodeInvalidArgument, err, tc.want)
		}
		_, err = raw.runs.PushEvent(ctx, connect.NewRequest(&pb.PushEventRequest{
			Key: "user:create", AdditionalMetadata: map[string]string{"": "empty key"},
		}))
		requireCode(t, connect.CodeInvalidArgument, err, "additional metadata key")
		runs, err = n.client.Admin().ListRuns(ctx, runnel.ListRunsOptions{})
		require.NoError(t, err)
		require.Len(t, runs, 3)
	})
}

// A cascade cut short (the node stopped right after the parent's commit)
// is completed by the maintenance sweep: here the database holds a queued
// child of a cancelled parent, as such a crash would leave it.
func TestSweepCancelsOrphanedChildren(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, n *node) {
		ctx := context.Background()
		st := n.srv.Store()
		now := time.Now().UTC().Truncate(time.Microsecond)
		parent := store.Run{
			ID: uuid.Must(uuid.NewV7()).String(), Workflow: "gone", Status: store.RunCancelled,
			Input: []byte("{}"), CreatedAt: now, FinishedAt: now,
		}
		child := store.Run{
			ID: uuid.Must(uuid.NewV7()).String(), Workflow: "orphan", Status: store.RunQueued,
			Input: []byte("{}"), ParentRunID: parent.ID, ParentStepRunID: uuid.NewString(), CreatedAt: now,
		}
		require.NoError(t, st.Write(ctx, func(tx store.Tx) error {
			tn, err := tx.GetTenantByName(ctx, "default")
			if err != nil {
				return err
			}
			parent.TenantID, child.TenantID = tn.ID, tn.ID
			if err := tx.InsertRun(ctx, parent); err != nil {
				return err
			}
			return tx.InsertRun(ctx, child)
		}))
		got, events := waitRun(t, n, child.ID)
		require.Equal(t, runnel.RunCancelled, got.Status)
		require.Equal(t, "parent run "+parent.ID+" cancelled", got.Error)
		require.Equal(t, runnel.EventRunCancelled, events[len(events)-1].Type)
	})
}
