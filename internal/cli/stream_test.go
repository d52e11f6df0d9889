package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/testengine"
)

// lineBuffer is a writer that counts lines and says when there are enough.
type lineBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func newLineBuffer() *lineBuffer { return &lineBuffer{changed: make(chan struct{})} }

func (b *lineBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	close(b.changed)
	b.changed = make(chan struct{})
	return b.buf.Write(p)
}

func (b *lineBuffer) lines() ([]string, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := strings.TrimSuffix(b.buf.String(), "\n")
	if s == "" {
		return nil, b.changed
	}
	return strings.Split(s, "\n"), b.changed
}

func TestStreamArgs(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"stream"}, {"stream", "r1", "--meta", "k=v"}, {"stream", "r1", "r2"}} {
		var out, errOut bytes.Buffer
		require.Equal(t, 1, Main(context.Background(), args, &out, &errOut), "%q", args)
		require.Contains(t, errOut.String(), "exactly one of RUN_ID or --meta", "%q", args)
	}
	var out, errOut bytes.Buffer
	require.Equal(t, 1, Main(context.Background(), []string{"stream", "--meta", "novalue"}, &out, &errOut))
	require.Contains(t, errOut.String(), "want key=value")
}

// `runnel stream --meta k=v --json` prints every event of every run
// carrying the pair, and only those, until interrupted (exit status 0).
func TestStreamMeta(t *testing.T) {
	t.Parallel()
	e := testengine.StartWithDemoWorker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	want := map[string]int{} // events per matching run
	for _, meta := range []map[string]string{{"k": "v"}, {"k": "w"}, {"k": "v"}} {
		id, err := e.Client.Admin().RunWorkflow(ctx, "demo-text", map[string]int{"chunks": 3, "intervalMs": 0}, runnel.WithAdditionalMetadata(meta))
		require.NoError(t, err)
		n := 0
		for _, err := range e.Client.Listener().Stream(ctx, id) {
			require.NoError(t, err)
			n++
		}
		if meta["k"] == "v" {
			want[id] = n
		}
	}
	total := 0
	for _, n := range want {
		total += n
	}

	out := newLineBuffer()
	var errOut bytes.Buffer
	sctx, stop := context.WithCancel(ctx)
	code := make(chan int, 1)
	go func() {
		code <- Main(sctx, []string{"stream", "--meta", "k=v", "--json", "--host", e.URL, "--token", e.Token}, out, &errOut)
	}()
	for {
		lines, changed := out.lines()
		if len(lines) >= total {
			break
		}
		select {
		case <-changed:
		case c := <-code:
			t.Fatalf("stream exited (%d) after %d lines: %s", c, len(lines), errOut.String())
		case <-ctx.Done():
			t.Fatalf("timed out with %d of %d lines", len(lines), total)
		}
	}
	stop()
	require.Equal(t, 0, <-code, errOut.String())
	lines, _ := out.lines()
	require.Len(t, lines, total)
	got := map[string]int{}
	for _, l := range lines {
		var ev struct {
			RunID    string `json:"runId"`
			Position string `json:"position"`
		}
		require.NoError(t, json.Unmarshal([]byte(l), &ev), l)
		require.NotEmpty(t, ev.Position)
		got[ev.RunID]++
	}
	require.Equal(t, want, got)
}
