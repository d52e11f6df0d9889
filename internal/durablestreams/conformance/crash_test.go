package conformance_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/process"
	"github.com/runnel-dev/runnel/internal/testdb"
)

// @durable-streams/client reads a run's stream live through the protocol
// (/v1/runs/{id}/stream) while the engine is SIGKILLed and restarted on the
// same store, and ends with exactly the stored sequence: nothing lost,
// nothing repeated, in order.
func TestProtocolClientAcrossEngineKill(t *testing.T) {
	requireSuite(t)
	if _, err := os.Stat(filepath.Join("node_modules", "@durable-streams", "client")); err != nil {
		t.Fatal("node_modules/@durable-streams/client is missing: run npm ci in internal/durablestreams/conformance")
	}
	bin := filepath.Join(t.TempDir(), "runnel")
	if out, err := exec.Command("go", "build", "-o", bin, "../../../cmd/runnel").CombinedOutput(); err != nil {
		t.Fatalf("build runnel: %v\n%s", err, out)
	}
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			db := ""
			if kind == "postgres" {
				db = testdb.PostgresURL(t)
			}
			testClientAcrossKill(t, bin, db)
		})
	}
}

func testClientAcrossKill(t *testing.T, bin, db string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	addr, err := process.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + addr
	dataDir := t.TempDir()
	args := []string{"server", "--addr", addr, "--data-dir", dataDir, "--heartbeat-timeout", "30s"}
	if db != "" {
		args = append(args, "--db", db)
	}
	engine, err := process.Start(process.Config{Program: bin, Args: args})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = engine.Kill() })
	if err := engine.WaitReady(ctx, url); err != nil {
		t.Fatalf("engine not ready: %v\n%s", err, strings.Join(engine.Lines(), "\n"))
	}
	tok, err := os.ReadFile(filepath.Join(dataDir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(tok))
	worker, err := process.Start(process.Config{Program: bin, Args: []string{"worker", "--host", url, "--token", token}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = worker.Kill() })
	if err := worker.WaitFor(ctx, "registered"); err != nil {
		t.Fatalf("worker: %v\n%s", err, strings.Join(worker.Lines(), "\n"))
	}
	c, err := runnel.NewClient(runnel.WithHost(url), runnel.WithToken(token))
	if err != nil {
		t.Fatal(err)
	}
	runID, err := c.Admin().RunWorkflow(ctx, "demo-text", map[string]int{"chunks": 400, "intervalMs": 5})
	if err != nil {
		t.Fatal(err)
	}

	// The reader: each message on a line of its stdout.
	var mu sync.Mutex
	var lines []string
	got := make(chan struct{}, 1)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	reader := exec.CommandContext(ctx, "node", "killread.mjs", url+"/v1/runs/"+runID+"/stream", token)
	reader.Stdout = pw
	var stderr bytes.Buffer
	reader.Stderr = &stderr
	if err := reader.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			mu.Lock()
			lines = append(lines, sc.Text())
			mu.Unlock()
			select {
			case got <- struct{}{}:
			default:
			}
		}
	}()
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(lines)
	}
	for count() < 50 {
		select {
		case <-got:
		case <-ctx.Done():
			t.Fatalf("the reader got %d messages before the kill; stderr:\n%s", count(), stderr.String())
		}
	}

	// Kill the engine mid-stream and start it again on the same store.
	if err := engine.Kill(); err != nil {
		t.Fatal(err)
	}
	<-engine.Done()
	t.Logf("engine killed after the reader got %d messages", count())
	engine, err = engine.Restart()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = engine.Kill() })
	if err := engine.WaitReady(ctx, url); err != nil {
		t.Fatalf("engine not ready after restart: %v", err)
	}

	if err := reader.Wait(); err != nil {
		t.Fatalf("reader: %v\nstderr:\n%s", err, stderr.String())
	}
	<-scanned

	// The stored sequence, read back with the Go SDK.
	var want []map[string]any
	for ev, err := range c.Listener().Stream(ctx, runID) {
		if err != nil {
			t.Fatal(err)
		}
		if ev.Type == runnel.EventRunCompleted || ev.Type == runnel.EventRunFailed {
			if ev.Type != runnel.EventRunCompleted {
				t.Fatalf("run ended %s", ev.Type)
			}
		}
		want = append(want, map[string]any{"type": string(ev.Type), "payload": string(ev.Payload), "attempt": float64(ev.Attempt)})
	}
	if len(lines) != len(want) {
		t.Fatalf("the reader got %d messages, the run has %d events; stderr:\n%s", len(lines), len(want), stderr.String())
	}
	for i, line := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("message %d: %v: %s", i, err, line)
		}
		payload, _ := m["payload"].(string)
		attempt, _ := m["attempt"].(float64)
		if m["type"] != want[i]["type"] || payload != want[i]["payload"] || attempt != want[i]["attempt"] {
			t.Fatalf("message %d is %s %q (attempt %v); the run's event %d is %s %q (attempt %v)",
				i, m["type"], payload, attempt, i, want[i]["type"], want[i]["payload"], want[i]["attempt"])
		}
	}
	t.Logf("%d messages, exactly the stored sequence; reader stderr: %s", len(lines), strings.TrimSpace(stderr.String()))
}
