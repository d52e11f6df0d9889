// Package process starts and controls runnel processes for the process
// tests (cmd/runnel: the fault suite, kill and restart tests) and the bench
// (internal/bench), so both start an engine, wait for it to be ready, and
// kill, pause or stop it the same way.
//
// It does not import testing: the bench is part of the runnel binary.
package process

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Config says what to run.
type Config struct {
	// Program is the executable; Args its arguments.
	Program string
	Args    []string
	// Env is added to this process's environment.
	Env []string
	// Log, if set, receives the child's stderr, and its lines are not
	// kept (a long bench run would keep them all); otherwise they are
	// kept for Lines and WaitFor.
	Log io.Writer
	// Stdout receives the child's stdout (default: discarded).
	Stdout io.Writer
}

// Process is a running (or exited) child process.
type Process struct {
	cfg Config
	cmd *exec.Cmd

	mu    sync.Mutex
	lines []string
	added chan struct{} // closed and replaced when a line arrives

	done chan struct{} // closed once the process has exited and its output is read
	err  error         // the exit error; set before done is closed
}

// Start starts the program.
func Start(cfg Config) (*Process, error) {
	p := &Process{cfg: cfg, cmd: exec.Command(cfg.Program, cfg.Args...), added: make(chan struct{}), done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), cfg.Env...)
	p.cmd.Stdout = cfg.Stdout
	if p.cmd.Stdout == nil {
		p.cmd.Stdout = io.Discard
	}
	var stderr io.Reader
	if cfg.Log != nil {
		p.cmd.Stderr = cfg.Log
	} else {
		pipe, err := p.cmd.StderrPipe()
		if err != nil {
			return nil, err
		}
		stderr = pipe
	}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", cfg.Program, err)
	}
	go func() {
		if stderr != nil {
			sc := bufio.NewScanner(stderr)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for sc.Scan() {
				p.mu.Lock()
				p.lines = append(p.lines, sc.Text())
				close(p.added)
				p.added = make(chan struct{})
				p.mu.Unlock()
			}
			// Keep the pipe drained if a line was too long.
			_, _ = io.Copy(io.Discard, stderr)
		}
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Restart starts the same program again (the process must have exited:
// Kill or Stop it first), with the same configuration.
func (p *Process) Restart() (*Process, error) {
	select {
	case <-p.done:
	default:
		return nil, errors.New("restart: the process is still running")
	}
	return Start(p.cfg)
}

// Pid returns the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed once the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err returns how the process exited (nil for status 0); call after Done.
func (p *Process) Err() error {
	<-p.done
	return p.err
}

// ExitCode returns the exit status (-1 if killed by a signal); call after
// Done.
func (p *Process) ExitCode() int {
	<-p.done
	return p.cmd.ProcessState.ExitCode()
}

// Lines returns the stderr lines so far (none when Config.Log is set).
func (p *Process) Lines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lines...)
}

// WaitFor waits until a stderr line contains s. It fails when the process
// exits first or ctx ends.
func (p *Process) WaitFor(ctx context.Context, s string) error {
	seen := 0
	for {
		p.mu.Lock()
		lines, added := p.lines, p.added
		p.mu.Unlock()
		for ; seen < len(lines); seen++ {
			if strings.Contains(lines[seen], s) {
				return nil
			}
		}
		select {
		case <-added:
		case <-p.done:
			return fmt.Errorf("process exited (%v) before printing %q", p.err, s)
		case <-ctx.Done():
			return fmt.Errorf("waiting for %q: %w", s, ctx.Err())
		}
	}
}

// readyPoll is how often WaitReady asks: readiness is only visible over
// HTTP, so this is the one wait that polls.
const readyPoll = 20 * time.Millisecond

// WaitReady waits until the engine at baseURL (http://host:port) answers
// 200 on /readyz: its store is open and it serves. It fails when the
// process exits first or ctx ends.
func (p *Process) WaitReady(ctx context.Context, baseURL string) error {
	tick := time.NewTicker(readyPoll)
	defer tick.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+"/readyz", nil)
		if err != nil {
			return err
		}
		if resp, err := http.DefaultClient.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.done:
			return fmt.Errorf("process exited (%v) before it was ready at %s", p.err, baseURL)
		case <-ctx.Done():
			return fmt.Errorf("not ready at %s: %w", baseURL, ctx.Err())
		case <-tick.C:
		}
	}
}

// Kill sends SIGKILL and waits until the process is gone.
func (p *Process) Kill() error {
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	<-p.done
	return nil
}

// Pause stops the process (SIGSTOP) until Resume: it keeps its
// connections but neither reads nor writes, like a process stalled by the
// machine.
func (p *Process) Pause() error { return p.cmd.Process.Signal(syscall.SIGSTOP) }

// Resume continues a paused process (SIGCONT).
func (p *Process) Resume() error { return p.cmd.Process.Signal(syscall.SIGCONT) }

// Signal sends sig.
func (p *Process) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Stop asks the process to end (SIGTERM) and waits; after grace it kills
// it. It returns how the process exited.
func (p *Process) Stop(grace time.Duration) error {
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-p.done:
	case <-timer.C:
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	return p.err
}

// FreeAddr returns a loopback address with a port free at the time of the
// call, for an engine that must come back on the same address after a
// restart. The port is taken below the kernel's ephemeral range: a port
// from there (what listening on port 0 gives) is handed out again to any
// other listener on port 0 and to outgoing connections, so while the
// engine is down another test's engine could start on it and answer in its
// place. Below the range only another FreeAddr caller can pick the same
// port, and this process never hands one out twice.
func FreeAddr() (string, error) {
	low, high := 10000, ephemeralPortsStart()
	if high-low < 1000 {
		low = 1024 // an unusual range; still stay out of it
	}
	for range 100 {
		port := low + rand.IntN(high-low)
		if _, taken := handedOut.LoadOrStore(port, true); taken {
			continue
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue // in use: try another
		}
		addr := ln.Addr().String()
		if err := ln.Close(); err != nil {
			return "", fmt.Errorf("find a free port: %w", err)
		}
		return addr, nil
	}
	return "", fmt.Errorf("find a free port: none of 100 tried in %d-%d was free", low, high-1)
}

// handedOut are the ports FreeAddr returned in this process.
var handedOut sync.Map

// ephemeralPortsStart is the first port of the kernel's ephemeral range
// (Linux's default when it cannot be read).
func ephemeralPortsStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	fields := strings.Fields(string(b))
	if len(fields) == 0 {
		return 32768
	}
	n, err := strconv.Atoi(fields[0])
	if err != nil || n <= 1024 {
		return 32768
	}
	return n
}
