package server_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/demo"
)

// readUntil reads SSE lines until one equals want.
func readUntil(t *testing.T, sc *bufio.Scanner, want string) {
	t.Helper()
	for sc.Scan() {
		if sc.Text() == want {
			return
		}
	}
	t.Fatalf("stream ended before %q: %v", want, sc.Err())
}

// An HTTP/1.1 SSE stream is served past its handler on the connection the
// engine took over (sse_detach.go): it has the middleware's headers, is
// chunked and closes its connection at the end, counts as an open SSE
// connection and subscriber while it lasts, and ends cleanly (the last
// chunk: a client reading it to the end sees no error), and is counted as
// a request when it ends. A client that leaves is noticed without any
// write: its subscription ends.
func TestSSEDetachedStream(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, n *node) {
		release := make(chan struct{})
		startWorker(t, n, "w", 2, heldWorkflow(release))
		runID, err := n.client.Admin().RunWorkflow(context.Background(), "held", nil)
		require.NoError(t, err)
		url := n.url + "/api/v1/runs/" + runID + "/stream"
		// Open streams, and streams counted as requests when they end.
		gauges := func(open, ended float64) func(s scrape) string {
			return allValues(
				wantValue{"runnel_sse_connections", nil, open},
				wantValue{"runnel_subscribers", []string{"transport", "sse", "source", "run"}, open},
				wantValue{"runnel_http_requests_total", []string{"route", "GET /api/v1/runs/{runId}/stream", "code", "200"}, ended},
			)
		}

		// A client that leaves mid-stream.
		leaving := openSSE(t, url, n.srv.AdminToken)
		require.Equal(t, http.StatusOK, leaving.StatusCode)
		require.True(t, leaving.Close, "Connection: close")
		require.Equal(t, []string{"chunked"}, leaving.TransferEncoding)
		require.Equal(t, "text/event-stream", leaving.Header.Get("Content-Type"))
		require.Equal(t, "nosniff", leaving.Header.Get("X-Content-Type-Options"), "the middleware's headers")
		readUntil(t, bufio.NewScanner(leaving.Body), "event: step.stream")
		waitMetrics(t, n, "one detached stream open", gauges(1, 0))
		require.NoError(t, leaving.Body.Close())
		waitMetrics(t, n, "the stream's client gone", gauges(0, 1))

		// A client that stays to the end.
		staying := openSSE(t, url, n.srv.AdminToken)
		sc := bufio.NewScanner(staying.Body)
		readUntil(t, sc, "event: step.stream")
		close(release)
		var rest []string
		for sc.Scan() {
			rest = append(rest, sc.Text())
		}
		require.NoError(t, sc.Err(), "the stream ends with its last chunk")
		require.Contains(t, strings.Join(rest, "\n"), "event: end")
		waitMetrics(t, n, "the stream ended", gauges(0, 2))
	})
}

// Stopping a node ends its detached streams, as it ends every subscription:
// the stream closes without an end message (the client resumes elsewhere),
// and Stop returns once they have ended.
func TestSSEDetachedStreamEndsOnStop(t *testing.T) {
	t.Parallel()
	n := startNode(t, "sqlite")
	release := make(chan struct{})
	defer close(release)
	startWorker(t, n, "w", 1, heldWorkflow(release))
	runID, err := n.client.Admin().RunWorkflow(context.Background(), "held", nil)
	require.NoError(t, err)
	resp := openSSE(t, n.url+"/api/v1/runs/"+runID+"/stream", n.srv.AdminToken)
	sc := bufio.NewScanner(resp.Body)
	readUntil(t, sc, "event: step.stream")

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, n.srv.Stop(ctx))
	var rest []string
	for sc.Scan() {
		rest = append(rest, sc.Text())
	}
	require.NoError(t, sc.Err())
	require.NotContains(t, strings.Join(rest, "\n"), "event: end", "no end: the run goes on")
}

// A HEAD request on a stream is not detached: net/http keeps its response
// bodiless, so the connection stays usable for the next request.
func TestSSEHeadIsNotDetached(t *testing.T) {
	t.Parallel()
	n := startNode(t, "sqlite")
	startWorker(t, n, "demo", 1, demo.Workflows()...)
	runID, err := n.client.Admin().RunWorkflow(context.Background(), demo.Text, map[string]int{"chunks": 3, "intervalMs": 0})
	require.NoError(t, err)
	waitRun(t, n, runID)

	u, err := url.Parse(n.url)
	require.NoError(t, err)
	conn, err := net.Dial("tcp", u.Host)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(time.Minute)))
	_, err = fmt.Fprintf(conn, "HEAD /api/v1/runs/%s/stream HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n\r\n"+
		"GET /healthz HTTP/1.1\r\nHost: %s\r\n\r\n", runID, u.Host, n.srv.AdminToken, u.Host)
	require.NoError(t, err)
	br := bufio.NewReader(conn)
	head, err := http.ReadResponse(br, &http.Request{Method: http.MethodHead})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, head.StatusCode)
	require.False(t, head.Close, "kept alive: net/http served it")
	health, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet})
	require.NoError(t, err, "the next response follows a bodiless HEAD response")
	require.Equal(t, http.StatusOK, health.StatusCode)
}
