package main_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel"
)

// plainBin is the runnel binary built without -race, for memory figures
// that mean what they say (the race detector multiplies them).
var plainBin = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "runnel-plain-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "runnel")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("build runnel: %v\n%s", err, out)
	}
	return bin, nil
})

// procStatus reads a field of /proc/PID/status, in bytes.
func procStatus(t *testing.T, pid int, field string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(t, err)
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			require.NoError(t, err)
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// metric reads one sample of the engine's /metrics (0 when absent).
func metric(addr, sample string) (int, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), sample+" "); ok {
			return strconv.Atoi(rest)
		}
	}
	return 0, sc.Err()
}

const (
	// sseRunSubscribers is the gauge of open SSE run subscriptions.
	sseRunSubscribers = `runnel_subscribers{source="run",transport="sse"}`
	// sseRunStreamsEnded counts run SSE streams that ended after a 200.
	sseRunStreamsEnded = `runnel_http_requests_total{code="200",route="GET /api/v1/runs/{runId}/stream"}`
)

// neverReading opens an SSE request on a socket with a tiny receive buffer
// and then never reads from it.
func neverReading(t *testing.T, addr, path string) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	conn, err := d.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	_, err = fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n", path, addr)
	require.NoError(t, err)
	return conn
}

// 80 clients that never read, on one browser token's SSE stream of a run
// with a 4 MiB payload, neither grow the engine's memory without bound nor
// hold their subscriptions: each is dropped once a write waits longer than
// --write-timeout, and the engine's peak resident memory stays within
// 200 MiB of its idle figure. Before the fix each held ~17 MB and its
// subscription forever (1.45 GB for 80).
func TestNeverReadingSSEClientsAreDroppedAndBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a second runnel binary")
	}
	t.Parallel()
	bin, err := plainBin()
	require.NoError(t, err)
	const writeTimeout = 2 * time.Second
	dataDir, addr := t.TempDir(), freeAddr(t)
	dev := startProgram(t, bin, nil, "dev", "--addr", addr, "--data-dir", dataDir, "--write-timeout", writeTimeout.String())
	dev.waitFor(t, "worker registered")
	pid := dev.Pid()
	tok, err := os.ReadFile(filepath.Join(dataDir, "admin.token"))
	require.NoError(t, err)
	admin := strings.TrimSpace(string(tok))

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := runnel.NewClient(runnel.WithHost("http://"+addr), runnel.WithToken(admin))
	require.NoError(t, err)
	runID, err := c.Admin().RunWorkflow(ctx, "demo-file", map[string]int{"bytes": 4 << 20})
	require.NoError(t, err)
	for _, err := range c.Listener().Stream(ctx, runID) {
		require.NoError(t, err)
	}
	run, err := c.Admin().GetRun(ctx, runID)
	require.NoError(t, err)
	require.Equal(t, runnel.RunCompleted, run.Status)

	// One browser token for every socket.
	body, _ := json.Marshal(map[string]string{"runId": runID})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/api/v1/tokens", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+admin)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	var minted struct{ Token string }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&minted))
	resp.Body.Close()
	require.NotEmpty(t, minted.Token)

	idle := procStatus(t, pid, "VmRSS")
	// Reset the peak, so VmHWM below is the peak while the sockets hang.
	require.NoError(t, os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0))

	const sockets = 80
	endedBefore, err := metric(addr, sseRunStreamsEnded)
	require.NoError(t, err)
	path := "/api/v1/runs/" + runID + "/stream?token=" + minted.Token
	opened := time.Now()
	conns := make([]net.Conn, sockets)
	for i := range conns {
		conns[i] = neverReading(t, addr, path)
	}
	// Every one is dropped once a write has waited writeTimeout: all 80
	// streams end. The bound is generous for a loaded machine; the figure
	// is logged.
	require.Eventually(t, func() bool {
		ended, err := metric(addr, sseRunStreamsEnded)
		return err == nil && ended-endedBefore == sockets
	}, writeTimeout+time.Minute, 10*time.Millisecond, "the %d never-reading sockets are dropped", sockets)
	open, err := metric(addr, sseRunSubscribers)
	require.NoError(t, err)
	require.Zero(t, open, "subscriptions still held")
	allDropped := time.Since(opened)
	peak := procStatus(t, pid, "VmHWM")

	// The sockets were cut, not served to the end.
	for _, conn := range conns {
		_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		got, err := io.ReadAll(conn)
		if err != nil {
			require.ErrorIs(t, err, syscall.ECONNRESET)
		}
		require.NotContains(t, string(got), "event: end")
	}
	t.Logf("%d never-reading sockets on a 4 MiB demo-file stream: engine RSS idle %d MiB, peak %d MiB (+%d MiB); all dropped %s after opening (write timeout %s)",
		sockets, idle>>20, peak>>20, (peak-idle)>>20, allDropped.Round(100*time.Millisecond), writeTimeout)
	require.Less(t, peak-idle, int64(200<<20), "engine peak RSS above idle")
}
