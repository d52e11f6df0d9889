package main_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel"
)

// sseFollower follows a run's SSE stream the way a browser's EventSource
// does: when the stream closes without `event: end` it reconnects with
// Last-Event-ID (retrying while the engine is away), and stops at
// `event: end`.
type sseFollower struct {
	ids []string
	// interrupted counts streams that closed without `event: end`.
	interrupted int
	// seen is sent the number of events received so far after each event
	// (dropped when nobody listens).
	seen chan int
	done chan error
}

func followRunSSE(ctx context.Context, url, token string) *sseFollower {
	f := &sseFollower{seen: make(chan int, 1), done: make(chan error, 1)}
	go func() { f.done <- f.run(ctx, url, token) }()
	return f
}

func (f *sseFollower) run(ctx context.Context, url, token string) error {
	for {
		ended, err := f.once(ctx, url, token)
		if ended {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err == nil {
			f.interrupted++
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// once reads one stream; err is set when it could not be opened.
func (f *sseFollower) once(ctx context.Context, url, token string) (ended bool, err error) {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if len(f.ids) > 0 {
		req.Header.Set("Last-Event-ID", f.ids[len(f.ids)-1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return false, errors.New(resp.Status + ": " + string(b))
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		switch line := sc.Text(); {
		case strings.HasPrefix(line, "id: "):
			f.ids = append(f.ids, strings.TrimPrefix(line, "id: "))
			select {
			case <-f.seen:
			default:
			}
			f.seen <- len(f.ids)
		case line == "event: end":
			return true, nil
		}
	}
	return false, nil
}

// SIGTERM drains the engine: it exits 0 within --shutdown-timeout, saying
// so in its log; its subscribers are told to reconnect (the SSE stream
// closes without `event: end`, the SDK subscription ends with Unavailable)
// and its worker to register again. After a restart on the same data
// directory the run finishes, and both subscribers, having resumed by
// themselves, hold exactly the stored log: nothing acknowledged was lost.
func TestSIGTERMDrainsGracefully(t *testing.T) {
	t.Parallel()
	dataDir, addr := t.TempDir(), freeAddr(t)
	serverArgs := []string{"server", "--addr", addr, "--data-dir", dataDir, "--log-level", "debug", "--shutdown-timeout", "20s"}
	engine := startEngine(t, "http://"+addr, serverArgs...)
	tokenBytes, err := os.ReadFile(filepath.Join(dataDir, "admin.token"))
	require.NoError(t, err)
	token := strings.TrimSpace(string(tokenBytes))
	env := []string{"RUNNEL_HOST=http://" + addr, "RUNNEL_TOKEN=" + token}
	worker := start(t, env, "worker", "--slots", "4")
	engine.waitFor(t, "worker registered")

	c, err := runnel.NewClient(runnel.WithHost("http://"+addr), runnel.WithToken(token))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	runID, err := c.Admin().RunWorkflow(ctx, "demo-text", map[string]int{"chunks": 80, "intervalMs": 40})
	require.NoError(t, err)

	sse := followRunSSE(ctx, "http://"+addr+"/api/v1/runs/"+runID+"/stream", token)
	var seen []runnel.Event
	streamed, stopped := 0, false
	for ev, err := range c.Listener().Stream(ctx, runID) {
		require.NoError(t, err)
		seen = append(seen, ev)
		if ev.Type == runnel.EventStepStream {
			streamed++
		}
		if stopped || streamed < 10 {
			continue
		}
		// The SSE client is live too before the engine goes.
		for n := 0; n < 5; {
			select {
			case n = <-sse.seen:
			case <-ctx.Done():
				t.Fatal("the SSE client received nothing")
			}
		}
		stopped = true
		sigterm := time.Now()
		require.NoError(t, engine.Signal(syscall.SIGTERM))
		select {
		case <-engine.Done():
		case <-time.After(30 * time.Second):
			t.Fatal("the engine did not exit within 30 s of SIGTERM (--shutdown-timeout 20s)")
		}
		require.Equal(t, 0, engine.ExitCode(), "exit status after SIGTERM")
		require.Less(t, time.Since(sigterm), 20*time.Second, "the drain waited for its timeout")
		engine.waitFor(t, "draining")
		engine.waitFor(t, "drained and stopped")
		engine = engine.restart(t, "http://"+addr)
	}
	require.True(t, stopped, "the run ended before the engine was stopped")
	require.NoError(t, receiveErr(t, sse.done))
	require.GreaterOrEqual(t, sse.interrupted, 1, "the SSE stream was not interrupted: it should close without event: end")
	worker.waitFor(t, "registering again")

	last := seen[len(seen)-1]
	require.Equal(t, runnel.EventRunCompleted, last.Type, "%s", last.Data)
	var stored []runnel.Event
	for ev, err := range c.Listener().Stream(ctx, runID) {
		require.NoError(t, err)
		stored = append(stored, ev)
	}
	require.Equal(t, positions(stored), positions(seen), "SDK subscriber")
	want := make([]string, len(stored))
	for i, ev := range stored {
		want[i] = string(ev.Position)
	}
	require.Equal(t, want, sse.ids, "SSE subscriber")
}

func receiveErr(t *testing.T, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(60 * time.Second):
		t.Fatal("timed out")
		return nil
	}
}
