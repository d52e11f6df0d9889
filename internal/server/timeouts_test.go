package server_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	pb "github.com/runnel-dev/runnel/internal/gen/runnel/v1"
	"github.com/runnel-dev/runnel/internal/gen/runnel/v1/runnelv1connect"
	"github.com/runnel-dev/runnel/internal/server"
)

// shortTimeouts makes every connection timeout short, so the tests see
// them pass.
func shortTimeouts(cfg *server.Config) {
	const d = time.Second
	cfg.Timeouts = server.Timeouts{ReadHeader: d, Idle: d, Body: d, Write: d}
	cfg.Engine.HeartbeatTimeout = 10 * time.Minute // raw workers here send none
}

// h2cPreface opens an HTTP/2 connection without TLS: the client preface
// and an empty SETTINGS frame.
const h2cPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + "\x00\x00\x00\x04\x00\x00\x00\x00\x00"

// probe is a connection that does what `send` says and then nothing; done
// is closed when the server closes it.
func probe(t *testing.T, addr, send string) (done <-chan struct{}) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	if send != "" {
		_, err = io.WriteString(conn, send)
		require.NoError(t, err)
	}
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		_ = conn.SetReadDeadline(time.Now().Add(time.Minute))
		_, err := io.Copy(io.Discard, conn) // until the server closes it
		if err != nil && !strings.Contains(err.Error(), "reset by peer") {
			t.Errorf("probe %q: %v", send, err)
		}
	}()
	return closed
}

// Connections that hold the node without doing their part are closed: an
// idle HTTP/1.1 keep-alive connection, an idle h2c connection, one that
// never sends its headers, one that never sends the body it announced.
// Before the fix the first two stayed open for good.
func TestIdleAndSlowConnectionsAreClosed(t *testing.T) {
	t.Parallel()
	n := startNode(t, "sqlite", shortTimeouts)
	addr := strings.TrimPrefix(n.url, "http://")
	probes := map[string]<-chan struct{}{
		"HTTP/1.1 keep-alive": probe(t, addr, "GET /healthz HTTP/1.1\r\nHost: runnel\r\n\r\n"),
		"h2c":                 probe(t, addr, h2cPreface),
		"no headers":          probe(t, addr, ""),
		"half the headers":    probe(t, addr, "GET /healthz HTTP/1.1\r\n"),
		"no body": probe(t, addr, "POST "+runnelv1connect.RunServiceGetRunProcedure+" HTTP/1.1\r\nHost: runnel\r\n"+
			"Authorization: Bearer "+n.srv.AdminToken+"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"),
	}
	for name, closed := range probes {
		select {
		case <-closed:
		case <-time.After(30 * time.Second):
			t.Fatalf("%s connection still open after 30 s; the timeouts are 1 s", name)
		}
	}
}

// The timeouts do not cut streams: an SSE stream, an RPC subscription over
// h2c and a worker's Listen stay open, idle, past the idle, body and write
// timeouts (an idle connection closed by the node is the signal that they
// passed) and go on delivering. (An HTTP/2 write deadline left set between
// writes resets the stream when it passes.)
func TestTimeoutsDoNotCutStreams(t *testing.T) {
	t.Parallel()
	n := startNode(t, "sqlite", shortTimeouts)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	release := make(chan struct{})
	startWorker(t, n, "held-worker", 1, heldWorkflow(release))
	runID, err := n.client.Admin().RunWorkflow(ctx, "held", nil)
	require.NoError(t, err)

	sse := followSSE(t, n.url+"/api/v1/runs/"+runID+"/stream", n.srv.AdminToken)
	<-sse.first

	h2c := &http.Transport{Protocols: new(http.Protocols)}
	h2c.Protocols.SetUnencryptedHTTP2(true)
	client := &http.Client{Transport: h2c}
	auth := connect.WithInterceptors(bearer(n.srv.AdminToken))
	runs := runnelv1connect.NewRunServiceClient(client, n.url, auth)
	sub, err := runs.Subscribe(ctx, connect.NewRequest(&pb.SubscribeRequest{RunId: runID}))
	require.NoError(t, err)
	require.True(t, sub.Receive(), "%v", sub.Err())

	workers := runnelv1connect.NewWorkerServiceClient(client, n.url, auth)
	reg, err := workers.RegisterWorker(ctx, connect.NewRequest(&pb.RegisterWorkerRequest{
		Name: "raw", Slots: 1,
		Workflows: []*pb.WorkflowDefinition{{Name: "raw-later", Steps: []*pb.StepDefinition{{Name: "s"}}}},
	}))
	require.NoError(t, err)
	listen, err := workers.Listen(ctx, connect.NewRequest(&pb.ListenRequest{WorkerId: reg.Msg.WorkerId}))
	require.NoError(t, err)

	// Both kinds of idle connection are closed: the timeouts have passed.
	addr := strings.TrimPrefix(n.url, "http://")
	<-probe(t, addr, "GET /healthz HTTP/1.1\r\nHost: runnel\r\n\r\n")
	<-probe(t, addr, h2cPreface)

	// The worker's Listen still receives its assignments.
	_, err = n.client.Admin().RunWorkflow(ctx, "raw-later", nil)
	require.NoError(t, err)
	require.True(t, listen.Receive(), "Listen ended: %v", listen.Err())
	require.NotNil(t, listen.Msg().GetAssignment())

	close(release)
	got := <-sse.done
	require.True(t, got.ended, "the SSE stream ends with `event: end`, not cut: %v", got.err)
	ended := false
	for sub.Receive() {
		ended = ended || sub.Msg().RunEnded
	}
	require.NoError(t, sub.Err())
	require.True(t, ended, "the RPC subscription delivered the run's end")
}
