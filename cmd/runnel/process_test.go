package main_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/demo"
)

// runnelBin is the binary under test, built once for the test binary, with
// -race when the test binary has it (go test -race, as in CI).
var runnelBin string

func TestMain(m *testing.M) {
	if os.Getenv(staleWorkerEnv) != "" {
		// Re-executed as the fault suite's own worker process.
		os.Exit(staleWorkerMain())
	}
	dir, err := os.MkdirTemp("", "runnel-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	runnelBin = filepath.Join(dir, "runnel")
	args := []string{"build", "-o", runnelBin}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, ".")...)
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build runnel:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a runnel process whose stderr is watched for lines.
type proc struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []string
	added chan struct{} // closed and replaced when a line arrives
	done  chan struct{}
}

func start(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	return startProgram(t, runnelBin, env, args...)
}

// startProgram starts any program (the test binary itself, for the fault
// suite's worker) as a watched process.
func startProgram(t *testing.T, program string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(program, args...), added: make(chan struct{}), done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	stderr, err := p.cmd.StderrPipe()
	require.NoError(t, err)
	p.cmd.Stdout = io.Discard
	require.NoError(t, p.cmd.Start())
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			close(p.added)
			p.added = make(chan struct{})
			p.mu.Unlock()
		}
		_ = p.cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("%s %s output:\n%s", filepath.Base(program), strings.Join(args, " "), strings.Join(p.output(), "\n"))
		}
	})
	return p
}

func (p *proc) output() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lines...)
}

// waitFor blocks until a stderr line contains s.
func (p *proc) waitFor(t *testing.T, s string) {
	t.Helper()
	deadline := time.After(60 * time.Second)
	seen := 0
	for {
		p.mu.Lock()
		lines, added := p.lines, p.added
		p.mu.Unlock()
		for ; seen < len(lines); seen++ {
			if strings.Contains(lines[seen], s) {
				return
			}
		}
		select {
		case <-added:
		case <-p.done:
			t.Fatalf("process exited before printing %q", s)
		case <-deadline:
			t.Fatalf("timed out waiting for %q", s)
		}
	}
}

func (p *proc) kill(t *testing.T) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGKILL))
	<-p.done
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().String()
}

// The engine is killed with SIGKILL while a run streams. After a restart
// on the same data directory nothing acknowledged is lost, the worker
// reconnects, and the run finishes with its interrupted step as a new
// attempt; an SDK subscriber that followed throughout resumes by itself and
// ends with exactly the stored sequence and the run's terminal event.
func TestEngineKilledMidRunRecovers(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		workflow string
		input    map[string]int
		killAt   int // stream events of attempt 1 seen before the kill
		want     string
	}{
		{"demo-slow", map[string]int{"seconds": 3}, 2, "tick 0tick 1tick 2"},
		{"demo-text", map[string]int{"chunks": 40, "intervalMs": 50}, 10, demo.TextOutput(40)},
	} {
		t.Run(tc.workflow, func(t *testing.T) {
			t.Parallel()
			engineKilledMidRun(t, tc.workflow, tc.input, tc.killAt, tc.want)
		})
	}
}

func engineKilledMidRun(t *testing.T, workflow string, input map[string]int, killAt int, want string) {
	dataDir, addr := t.TempDir(), freeAddr(t)
	serverArgs := []string{"server", "--addr", addr, "--data-dir", dataDir, "--log-level", "debug"}
	engine := start(t, nil, serverArgs...)
	engine.waitFor(t, "engine listening")
	token, err := os.ReadFile(filepath.Join(dataDir, "admin.token"))
	require.NoError(t, err)
	env := []string{"RUNNEL_HOST=http://" + addr, "RUNNEL_TOKEN=" + strings.TrimSpace(string(token))}
	worker := start(t, env, "worker", "--slots", "4")
	engine.waitFor(t, "worker registered")

	c, err := runnel.NewClient(runnel.WithHost("http://"+addr), runnel.WithToken(strings.TrimSpace(string(token))))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	runID, err := c.Admin().RunWorkflow(ctx, workflow, input)
	require.NoError(t, err)

	var seen []runnel.Event
	streamed, killed := 0, false
	for ev, err := range c.Listener().Stream(ctx, runID) {
		require.NoError(t, err)
		seen = append(seen, ev)
		if ev.Type == runnel.EventStepStream {
			streamed++
		}
		if !killed && streamed == killAt {
			killed = true
			engine.kill(t)
			engine = start(t, nil, serverArgs...)
			engine.waitFor(t, "engine listening")
		}
	}
	require.True(t, killed, "the run ended before the engine was killed")
	worker.waitFor(t, "registering again") // the worker noticed and reconnected

	last := seen[len(seen)-1]
	require.Equal(t, runnel.EventRunCompleted, last.Type, "%s", last.Data)

	// What the subscriber received is exactly the stored log: nothing lost
	// (every event seen before the kill was acknowledged and is still
	// there), nothing duplicated, same order.
	var stored []runnel.Event
	for ev, err := range c.Listener().Stream(ctx, runID) {
		require.NoError(t, err)
		stored = append(stored, ev)
	}
	require.Equal(t, positions(stored), positions(seen))

	run, err := c.Admin().GetRun(ctx, runID)
	require.NoError(t, err)
	require.Equal(t, runnel.RunCompleted, run.Status)
	step := run.Steps[0]
	require.Equal(t, 2, step.Attempt, "the interrupted step finishes as a new attempt")
	require.Len(t, step.Attempts, 2)
	require.Equal(t, runnel.StepFailed, step.Attempts[0].Status)
	require.Equal(t, runnel.StepCompleted, step.Attempts[1].Status)
	var first, second strings.Builder
	for _, ev := range stored {
		if ev.Type == runnel.EventStepStream {
			map[int]*strings.Builder{1: &first, 2: &second}[ev.Attempt].Write(ev.Payload)
		}
	}
	require.Equal(t, want, second.String(), "the new attempt streams everything again")
	require.True(t, strings.HasPrefix(want, first.String()), "the lost attempt's events are kept, in order")
	require.GreaterOrEqual(t, len(first.String()), 1)
}

func positions(events []runnel.Event) []string {
	out := make([]string, len(events))
	for i, ev := range events {
		out[i] = fmt.Sprintf("%s %s#%d %s", ev.Position, ev.Type, ev.Attempt, ev.Payload)
	}
	return out
}

// The README's tour: `runnel dev` runs engine and demo worker in one
// process, and the CLI (reading the token from the data directory) runs a
// demo workflow to completion and shows it with its steps and attempts.
func TestDevAndCLITour(t *testing.T) {
	t.Parallel()
	dataDir, addr := t.TempDir(), freeAddr(t)
	dev := start(t, nil, "dev", "--addr", addr, "--data-dir", dataDir)
	dev.waitFor(t, "worker registered")

	cli := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(runnelBin, append(args, "--host", "http://"+addr, "--data-dir", dataDir)...)
		cmd.Env = append(os.Environ(), "RUNNEL_TOKEN=")
		out, err := cmd.Output()
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		require.NoError(t, err, "runnel %s: %s", strings.Join(args, " "), stderr)
		return string(out)
	}
	out := cli("run", "demo-text", "--input", `{"chunks": 5, "intervalMs": 1}`, "--wait")
	require.Contains(t, out, `"text":`)

	runID := strings.TrimSpace(cli("run", "demo-flaky", "--input", `{"failAttempts": 1}`))
	require.Regexp(t, `^[0-9a-f-]{36}$`, runID)
	streamed := cli("stream", runID)
	require.Contains(t, streamed, "run.completed")
	require.Contains(t, streamed, `flaky#2 "attempt 2"`)

	got := cli("runs", "get", runID)
	require.Contains(t, got, "Status:    completed")
	require.Regexp(t, `attempt 1\s+failed`, got)
	require.Regexp(t, `attempt 2\s+completed`, got)
	require.Contains(t, cli("runs", "list"), runID)

	// Bad input: a clear error naming the problem, exit code 1.
	cmd := exec.Command(runnelBin, "run", "no-such-workflow", "--host", "http://"+addr, "--data-dir", dataDir)
	out2, err := cmd.CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(out2), `unknown workflow "no-such-workflow" (registered: demo-child, demo-file, demo-flaky, demo-parent, demo-slow, demo-text)`)
}
