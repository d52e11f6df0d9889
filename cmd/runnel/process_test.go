package main_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/demo"
	"github.com/runnel-dev/runnel/internal/process"
	"github.com/runnel-dev/runnel/internal/testdb"
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

// proc is a runnel process whose stderr is watched for lines
// (internal/process, which the bench uses too).
type proc struct {
	*process.Process
}

func start(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	return startProgram(t, runnelBin, env, args...)
}

// startProgram starts any program (the test binary itself, for the fault
// suite's worker) as a watched process, killed when the test ends.
func startProgram(t *testing.T, program string, env []string, args ...string) *proc {
	t.Helper()
	p, err := process.Start(process.Config{Program: program, Args: args, Env: env})
	require.NoError(t, err)
	return watch(t, p, program, args)
}

// watch kills p when the test ends, and logs its output if the test failed.
func watch(t *testing.T, p *process.Process, program string, args []string) *proc {
	t.Cleanup(func() {
		_ = p.Kill()
		if t.Failed() {
			t.Logf("%s %s output:\n%s", filepath.Base(program), strings.Join(args, " "), strings.Join(p.Lines(), "\n"))
		}
	})
	return &proc{p}
}

// startEngine starts runnel with args (a server on url) and waits until it
// is ready there (/readyz).
func startEngine(t *testing.T, url string, args ...string) *proc {
	t.Helper()
	p := start(t, nil, args...)
	p.waitReady(t, url)
	return p
}

// restart starts the same process again, once it has exited (kill or stop
// it first).
func (p *proc) restart(t *testing.T, url string) *proc {
	t.Helper()
	q, err := p.Restart()
	require.NoError(t, err)
	r := watch(t, q, runnelBin, nil)
	r.waitReady(t, url)
	return r
}

// waitReady waits until the engine process answers ready on url (/readyz).
func (p *proc) waitReady(t *testing.T, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	require.NoError(t, p.WaitReady(ctx, url))
}

func (p *proc) output() []string { return p.Lines() }

// waitFor blocks until a stderr line contains s.
func (p *proc) waitFor(t *testing.T, s string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	require.NoError(t, p.WaitFor(ctx, s))
}

func (p *proc) kill(t *testing.T) {
	t.Helper()
	require.NoError(t, p.Kill())
}

func freeAddr(t *testing.T) string {
	t.Helper()
	addr, err := process.FreeAddr()
	require.NoError(t, err)
	return addr
}

// Issue 16: the engine is killed with SIGKILL while a step streams from a
// separate worker process, and restarted on the same store. Nothing
// acknowledged is lost, and nothing runs twice: the worker keeps running
// its step while the engine is down, registers again naming the attempt,
// the engine resumes it, and the run finishes with exactly one attempt. An
// SDK subscriber that followed throughout resumes by itself and sees each
// event once, in order: exactly the stored log, whose stream is the step's
// output once. The worker logs every invocation of a step function (debug
// "step started"): the step ran once.
func TestEngineKilledMidRunRecovers(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"sqlite", "postgres"} {
		for _, tc := range []struct {
			workflow string
			input    map[string]int
			killAt   int // stream events seen before the kill
			want     string
		}{
			// Killed after two ticks of six, or ten chunks of 120 (5.5 s
			// left): the step still runs when the worker registers again,
			// however slow the restart (restart and the worker's
			// registration backoff took over 2 s on a loaded CI machine,
			// longer than a 2 s demo-text had left).
			{"demo-slow", map[string]int{"seconds": 6}, 2, "tick 0tick 1tick 2tick 3tick 4tick 5"},
			{"demo-text", map[string]int{"chunks": 120, "intervalMs": 50}, 10, demo.TextOutput(120)},
		} {
			t.Run(kind+"/"+tc.workflow, func(t *testing.T) {
				t.Parallel()
				engineKilledMidRun(t, kind, tc.workflow, tc.input, tc.killAt, tc.want)
			})
		}
	}
}

// serverArgs are the arguments of a `runnel server` on a fresh store of the
// given kind, with its data directory.
func serverArgs(t *testing.T, kind, addr string, extra ...string) (args []string, dataDir string) {
	t.Helper()
	dataDir = t.TempDir()
	args = []string{"server", "--addr", addr, "--data-dir", dataDir, "--log-level", "debug"}
	if kind == "postgres" {
		args = append(args, "--db", testdb.PostgresURL(t))
	}
	return append(args, extra...), dataDir
}

// stepInvocations counts the step functions a `runnel worker --log-level
// debug` started for a step run: the SDK logs each invocation.
func stepInvocations(w *proc, stepRunID string) int {
	n := 0
	for _, line := range w.output() {
		if strings.Contains(line, `msg="step started"`) && strings.Contains(line, "step_run_id="+stepRunID) {
			n++
		}
	}
	return n
}

func engineKilledMidRun(t *testing.T, kind, workflow string, input map[string]int, killAt int, want string) {
	addr := freeAddr(t)
	args, dataDir := serverArgs(t, kind, addr)
	engine := startEngine(t, "http://"+addr, args...)
	token, err := os.ReadFile(filepath.Join(dataDir, "admin.token"))
	require.NoError(t, err)
	env := []string{"RUNNEL_HOST=http://" + addr, "RUNNEL_TOKEN=" + strings.TrimSpace(string(token))}
	worker := start(t, env, "worker", "--slots", "4", "--log-level", "debug")
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
			engine = engine.restart(t, "http://"+addr)
		}
	}
	require.True(t, killed, "the run ended before the engine was killed")
	worker.waitFor(t, "registering again") // the worker noticed and reconnected
	engine.waitFor(t, "resumed=1")         // ... and its attempt was resumed

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
	require.Equal(t, 1, step.Attempt, "the step survived the engine restart as attempt 1")
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
	require.Equal(t, want, text.String(), "the stream holds each chunk once, in order")
	require.Equal(t, 1, stepInvocations(worker, step.ID), "the step function ran once")
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

// Issue 16: a worker that stays away longer than the engine's heartbeat
// timeout (here paused with SIGSTOP) is declared dead and its step
// re-queued as attempt 2, which another worker runs; when the first worker
// comes back (SIGCONT) it is told its attempt is gone and abandons it, so
// attempt 1 never reports a result. The step function ran once per
// attempt, each on its worker.
func TestWorkerAwayPastHeartbeatTimeoutIsReplaced(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			addr := freeAddr(t)
			args, dataDir := serverArgs(t, kind, addr, "--heartbeat-interval", "250ms", "--heartbeat-timeout", "1500ms")
			startEngine(t, "http://"+addr, args...)
			token, err := os.ReadFile(filepath.Join(dataDir, "admin.token"))
			require.NoError(t, err)
			env := []string{"RUNNEL_HOST=http://" + addr, "RUNNEL_TOKEN=" + strings.TrimSpace(string(token))}
			a := start(t, env, "worker", "--slots", "1", "--name", "away", "--log-level", "debug")
			a.waitFor(t, "worker registered")

			c, err := runnel.NewClient(runnel.WithHost("http://"+addr), runnel.WithToken(strings.TrimSpace(string(token))))
			require.NoError(t, err)
			ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
			defer cancel()
			runID, err := c.Admin().RunWorkflow(ctx, demo.Slow, map[string]int{"seconds": 3})
			require.NoError(t, err)
			a.waitFor(t, `msg="step started"`)
			pauseProcess(t, a)
			b := start(t, env, "worker", "--slots", "1", "--name", "stand-in", "--log-level", "debug")
			b.waitFor(t, "attempt=2")
			resumeProcess(t, a)

			events, err := collect(ctx, c, runID)
			require.NoError(t, err)
			require.Equal(t, runnel.EventRunCompleted, events[len(events)-1].Type)
			a.waitFor(t, "registering again") // it learnt it was declared dead

			run, err := c.Admin().GetRun(ctx, runID)
			require.NoError(t, err)
			step := run.Steps[0]
			require.Equal(t, 2, step.Attempt)
			require.Len(t, step.Attempts, 2)
			require.Equal(t, runnel.StepFailed, step.Attempts[0].Status)
			require.Contains(t, step.Attempts[0].Error, "worker lost: no heartbeat")
			require.Equal(t, runnel.StepCompleted, step.Attempts[1].Status)
			completed := 0
			var second strings.Builder
			for _, ev := range events {
				if ev.Type == runnel.EventStepCompleted {
					completed++
					require.Equal(t, 2, ev.Attempt, "attempt 1's late result was not applied")
				}
				if ev.Type == runnel.EventStepStream && ev.Attempt == 2 {
					second.WriteString(string(ev.Payload))
				}
			}
			require.Equal(t, 1, completed)
			require.Equal(t, "tick 0tick 1tick 2", second.String())
			require.Equal(t, 1, stepInvocations(a, step.ID), "the paused worker ran attempt 1 only")
			require.Equal(t, 1, stepInvocations(b, step.ID), "the stand-in ran attempt 2 only")
			out := strings.Join(a.output(), "\n")
			require.Regexp(t, `step attempt abandoned|stream put refused: attempt is stale|step result refused`, out,
				"the paused worker gave up attempt 1 when it came back")
		})
	}
}
