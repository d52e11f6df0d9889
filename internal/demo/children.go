package demo

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/runnel-dev/runnel"
)

// demo-parent and demo-child: child runs, followed together by one metadata
// subscription in examples/parent-children.
//
// demo-parent {"n": 3} spawns n runs of demo-child with input {"index": i}
// (i from 0), all at once, waits for them in order and outputs
// {"children": [<each child's step output>]}. Children inherit the parent's
// additional metadata.
//
// demo-child {"index": 0} streams ChildChunks (5 text chunks, one every
// intervalMs, default 50) and outputs {"index": i}.
//
// For tests of deeper trees and of cancellation, both take two optional
// fields that the parent passes on to its children:
//
//   - "spawn": k makes each demo-child spawn k demo-child grandchildren
//     (input {"index": j}, j from 0) before it streams, wait for them after,
//     and output {"index": i, "children": [<their outputs>]}. Grandchildren
//     get no "spawn", so a tree is at most three levels deep.
//   - "intervalMs": the pause between chunks, for every child and
//     grandchild (60000 keeps them running until they are cancelled).
//
// A step that waits for its children holds its worker slot: a worker needs
// more slots than waiting parents (1 for demo-parent, plus n when children
// spawn) to run the children.

// Steps of demo-parent and demo-child.
const (
	ParentStep = "spawn"
	ChildStep  = "stream"
)

// Limits of the child demos.
const (
	MaxChildren = 1000
	MaxSpawn    = 100
	// ChildChunks is how many chunks demo-child streams.
	ChildChunks = 5
)

// ChildChunk returns the text of demo-child's chunk k (from 0).
func ChildChunk(index, k int) string {
	return fmt.Sprintf("child %d: chunk %d/%d", index, k+1, ChildChunks)
}

type parentInput struct {
	N          int  `json:"n"`
	Spawn      int  `json:"spawn"`
	IntervalMs *int `json:"intervalMs"`
}

// childInput is demo-child's input; the optional fields are left out when
// unset, so a plain child's input is {"index": i} as documented.
type childInput struct {
	Index      int  `json:"index"`
	Spawn      int  `json:"spawn,omitempty"`
	IntervalMs *int `json:"intervalMs,omitempty"`
}

// ChildOutput is demo-child's step output.
type ChildOutput struct {
	Index    int           `json:"index"`
	Children []ChildOutput `json:"children,omitempty"`
}

// ParentOutput is demo-parent's step output.
type ParentOutput struct {
	Children []ChildOutput `json:"children"`
}

// spawnChildren is demo-parent's step.
func spawnChildren(ctx runnel.Context) (any, error) {
	in := parentInput{N: 3}
	if err := readInput(ctx, &in); err != nil {
		return nil, err
	}
	if in.N < 0 || in.N > MaxChildren {
		return nil, invalidInput(ctx, "n must be between 0 and %d, not %d", MaxChildren, in.N)
	}
	if err := checkChildOptions(ctx, in.Spawn, in.IntervalMs); err != nil {
		return nil, err
	}
	inputs := make([]childInput, in.N)
	for i := range inputs {
		inputs[i] = childInput{Index: i, Spawn: in.Spawn, IntervalMs: in.IntervalMs}
	}
	children, err := spawnAndWait(ctx, inputs)
	if err != nil {
		return nil, err
	}
	return ParentOutput{Children: children}, nil
}

// child is demo-child's step.
func child(ctx runnel.Context) (any, error) {
	in := childInput{}
	if err := readInput(ctx, &in); err != nil {
		return nil, err
	}
	if err := checkChildOptions(ctx, in.Spawn, in.IntervalMs); err != nil {
		return nil, err
	}
	interval := 50 * time.Millisecond
	if in.IntervalMs != nil {
		interval = time.Duration(*in.IntervalMs) * time.Millisecond
	}
	// Spawn first, so grandchildren run while this child streams.
	grand := make([]childInput, in.Spawn)
	for j := range grand {
		grand[j] = childInput{Index: j, IntervalMs: in.IntervalMs}
	}
	handles, err := spawnAll(ctx, grand)
	if err != nil {
		return nil, err
	}
	for k := range ChildChunks {
		if k > 0 && interval > 0 {
			if err := wait(ctx, interval); err != nil {
				return nil, err
			}
		}
		if err := ctx.PutStream([]byte(ChildChunk(in.Index, k))); err != nil {
			return nil, err
		}
	}
	children, err := awaitAll(ctx, handles)
	if err != nil {
		return nil, err
	}
	return ChildOutput{Index: in.Index, Children: children}, nil
}

func checkChildOptions(ctx runnel.Context, spawn int, intervalMs *int) error {
	if spawn < 0 || spawn > MaxSpawn {
		return invalidInput(ctx, "spawn must be between 0 and %d, not %d", MaxSpawn, spawn)
	}
	if intervalMs != nil && (*intervalMs < 0 || *intervalMs > MaxIntervalMs) {
		return invalidInput(ctx, "intervalMs must be between 0 and %d, not %d", MaxIntervalMs, *intervalMs)
	}
	return nil
}

// spawnAndWait spawns a demo-child per input, all before waiting, and
// returns their outputs in input order.
func spawnAndWait(ctx runnel.Context, inputs []childInput) ([]ChildOutput, error) {
	handles, err := spawnAll(ctx, inputs)
	if err != nil {
		return nil, err
	}
	return awaitAll(ctx, handles)
}

func spawnAll(ctx runnel.Context, inputs []childInput) ([]*runnel.ChildRun, error) {
	handles := make([]*runnel.ChildRun, 0, len(inputs))
	for _, in := range inputs {
		h, err := ctx.SpawnWorkflow(Child, in)
		if err != nil {
			return nil, fmt.Errorf("%s: spawn child %d: %w", ctx.WorkflowName(), in.Index, err)
		}
		handles = append(handles, h)
	}
	return handles, nil
}

// awaitAll waits for each child in order and returns their step outputs.
func awaitAll(ctx runnel.Context, handles []*runnel.ChildRun) ([]ChildOutput, error) {
	outs := make([]ChildOutput, 0, len(handles))
	for i, h := range handles {
		var steps map[string]json.RawMessage
		if err := h.Result(ctx, &steps); err != nil {
			return nil, fmt.Errorf("%s: child %d: %w", ctx.WorkflowName(), i, err)
		}
		var out ChildOutput
		if err := json.Unmarshal(steps[ChildStep], &out); err != nil {
			return nil, fmt.Errorf("%s: child %d (run %s): output: %w", ctx.WorkflowName(), i, h.RunID(), err)
		}
		outs = append(outs, out)
	}
	return outs, nil
}
