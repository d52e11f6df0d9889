package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/demo"
	"github.com/runnel-dev/runnel/internal/testengine"
)

func TestParentChildren(t *testing.T) {
	t.Parallel()
	e := testengine.StartWithDemoWorker(t) // 8 slots: the parent and 5 children
	const n = 5
	var out strings.Builder
	parentID, err := run(context.Background(), e.Client, &out, n)
	if err != nil {
		t.Fatal(err)
	}

	// Every child's five chunks, in order, each line naming the child.
	runs, err := e.Client.Admin().ListRuns(context.Background(), runnel.ListRunsOptions{Workflow: demo.Child})
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != n {
		t.Fatalf("%d child runs, want %d", len(runs), n)
	}
	index := map[string]int{} // child run id -> its index
	for _, r := range runs {
		if r.ParentRunID != parentID {
			t.Fatalf("run %s has parent %q, want %s", r.ID, r.ParentRunID, parentID)
		}
		var in struct{ Index int }
		if err := json.Unmarshal(r.Input, &in); err != nil {
			t.Fatal(err)
		}
		index[r.ID] = in.Index
	}
	printed := map[string][]string{}
	for line := range strings.Lines(out.String()) {
		id, chunk, ok := strings.Cut(strings.TrimSuffix(line, "\n"), " ")
		if !ok {
			t.Fatalf("line %q: want <run id> <chunk>", line)
		}
		if _, ok := index[id]; !ok {
			t.Fatalf("line %q names run %s, not a child of %s", line, id, parentID)
		}
		printed[id] = append(printed[id], chunk)
	}
	if len(printed) != n {
		t.Fatalf("chunks of %d children printed, want %d:\n%s", len(printed), n, out.String())
	}
	for id, chunks := range printed {
		var want []string
		for k := range demo.ChildChunks {
			want = append(want, demo.ChildChunk(index[id], k))
		}
		if strings.Join(chunks, "|") != strings.Join(want, "|") {
			t.Errorf("child %s printed %q, want %q", id, chunks, want)
		}
	}
}
