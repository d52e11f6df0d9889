package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/api"
	pb "github.com/runnel-dev/runnel/internal/gen/runnel/v1"
	"github.com/runnel-dev/runnel/internal/gen/runnel/v1/runnelv1connect"
	"github.com/runnel-dev/runnel/internal/server"
)

// countingListener counts the bytes the server reads from its connections.
type countingListener struct {
	net.Listener
	read *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countingConn{Conn: c, read: l.read}, nil
}

type countingConn struct {
	net.Conn
	read *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	return n, err
}

// endlessJSON is the start of a Connect JSON TriggerRun whose input never
// ends: a client that would send 60 MB if the server kept reading.
type endlessJSON struct {
	sent, limit int64
}

func (b *endlessJSON) Read(p []byte) (int, error) {
	if b.sent >= b.limit {
		return 0, io.EOF
	}
	n := min(int64(len(p)), b.limit-b.sent)
	if b.sent == 0 {
		n = int64(copy(p, `{"workflow":"held","input":"`))
	} else {
		for i := range n {
			p[i] = 'A'
		}
	}
	b.sent += n
	return int(n), nil
}

// An RPC without a valid token is refused from its headers: the engine
// answers unauthenticated without reading (let alone decoding) the body.
// Before the fix, a 60 MB TriggerRun with no token was read whole.
func TestRPCRefusesUnauthenticatedBeforeReadingTheBody(t *testing.T) {
	t.Parallel()
	var read atomic.Int64
	n := startNode(t, "sqlite", func(cfg *server.Config) {
		cfg.Listener = countingListener{Listener: cfg.Listener, read: &read}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	addr := strings.TrimPrefix(n.url, "http://")
	for _, token := range []string{"", "rnl_not-a-token"} {
		read.Store(0)
		body := &endlessJSON{limit: 60 << 20}
		// A raw connection, so the response is read while the body is
		// still being sent (net/http's client gives up on the response
		// when its write fails).
		conn, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		hdr := "POST " + runnelv1connect.RunServiceTriggerRunProcedure + " HTTP/1.1\r\nHost: " + addr +
			"\r\nContent-Type: application/json\r\nContent-Length: " + strconv.FormatInt(body.limit, 10) + "\r\n"
		if token != "" {
			hdr += "Authorization: Bearer " + token + "\r\n"
		}
		_, err = io.WriteString(conn, hdr+"\r\n")
		require.NoError(t, err)
		sent := make(chan int64, 1)
		go func() {
			n, _ := io.Copy(conn, body) // ends when the server closes
			sent <- n
		}()
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		require.NoError(t, err, "the refusal arrives while the client is still sending")
		var ce struct{ Code, Message string }
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&ce))
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		require.Equal(t, "unauthenticated", ce.Code)
		conn.Close()
		require.Less(t, <-sent, body.limit, "the client was stopped before sending everything")
		// net/http may drain up to 256 KiB to keep the connection; the
		// rest is never read.
		require.Less(t, read.Load(), int64(1<<20), "bytes the server read of a 60 MB unauthenticated body")
	}

	// The same refusal reaches Connect clients as CodeUnauthenticated, on
	// unary and streaming calls.
	raw := newRaw(n, "")
	_, err := raw.runs.GetRun(ctx, connect.NewRequest(&pb.GetRunRequest{RunId: "x"}))
	requireCode(t, connect.CodeUnauthenticated, err, "missing token")
	stream, err := raw.runs.Subscribe(ctx, connect.NewRequest(&pb.SubscribeRequest{RunId: "x"}))
	require.NoError(t, err)
	require.False(t, stream.Receive())
	requireCode(t, connect.CodeUnauthenticated, stream.Err(), "missing token")
}

// Every procedure of both services has its own read limit.
func TestEveryProcedureHasAReadLimit(t *testing.T) {
	services := pb.File_runnel_v1_runnel_proto.Services()
	count := 0
	for i := range services.Len() {
		sd := services.Get(i)
		for j := range sd.Methods().Len() {
			procedure := "/" + string(sd.FullName()) + "/" + string(sd.Methods().Get(j).Name())
			limit, ok := api.RPCReadLimit(procedure)
			require.True(t, ok, "no read limit for %s", procedure)
			require.LessOrEqual(t, limit, int64(api.MaxRPCMessageSize), procedure)
			count++
		}
	}
	require.Equal(t, 19, count)
	limit, _ := api.RPCReadLimit(runnelv1connect.RunServiceTriggerRunProcedure)
	require.Greater(t, limit, int64(4<<20*4/3), "a 4 MiB input as base64 JSON fits")
	require.True(t, strings.HasPrefix(runnelv1connect.RunServiceTriggerRunProcedure, "/runnel.v1."))
}
