package server_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/url"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/runnel-dev/runnel"
	pb "github.com/runnel-dev/runnel/internal/gen/runnel/v1"
)

// stuckSubscriberBudget is the engine heap a subscriber that never reads
// may cost at most: its connection's buffers and one delivery batch (64 KiB
// of payload, marshalled) blocked in a write.
const stuckSubscriberBudget = 192 << 10

// 1,000 subscribers that never read do not grow the engine's heap beyond
// 1,000 × stuckSubscriberBudget plus one run tail, and a subscriber that does
// read still gets every event, in order.
//
// The test is not parallel, so it runs alone (Go runs parallel tests after
// the sequential ones) and the process heap it measures is the engine's.
func TestStuckSubscribersBoundEngineMemory(t *testing.T) {
	const (
		stuck   = 1000
		events  = 4000
		payload = 1 << 10
	)
	for _, kind := range stores {
		t.Run(kind, func(t *testing.T) {
			stuckSubscribers(t, startNode(t, kind, defaultWorkerTimers), stuck, events, payload)
		})
	}
}

func stuckSubscribers(t *testing.T, n *node, stuck, events, payload int) {
	{
		release := make(chan struct{})
		wf := runnel.NewWorkflow("firehose").Step("emit", func(ctx runnel.Context) (any, error) {
			select {
			case <-release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			chunk := bytes.Repeat([]byte{'x'}, payload)
			for i := range events {
				msg := append(fmt.Appendf(nil, "%06d", i), chunk[6:]...)
				if err := ctx.PutStream(msg); err != nil {
					return nil, err
				}
			}
			return map[string]int{"events": events}, nil
		})
		startWorker(t, n, "w", 1, wf)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		runID, err := n.client.Admin().RunWorkflow(ctx, "firehose", nil)
		require.NoError(t, err)

		base := heapInUse()
		conns := make([]net.Conn, stuck)
		var wg sync.WaitGroup
		for i := range conns {
			wg.Go(func() { conns[i] = openStuckSubscriber(t, n, runID) })
		}
		wg.Wait()
		defer func() {
			for _, c := range conns {
				if c != nil {
					c.Close()
				}
			}
		}()
		require.False(t, t.Failed())

		// A subscriber that reads, started before the stream.
		var got []runnel.Event
		done := make(chan error, 1)
		go func() {
			for ev, err := range n.client.Listener().Stream(ctx, runID, runnel.WithTypes(runnel.EventStepStream)) {
				if err != nil {
					done <- err
					return
				}
				got = append(got, ev)
			}
			done <- nil
		}()
		close(release)
		require.NoError(t, <-done)
		// On a machine loaded enough to delay the worker's heartbeats past
		// the timeout, the step runs again as a new attempt: its stream is
		// the final attempt's events, whole and in order.
		got = finalAttempt(got)
		require.Len(t, got, events)
		for i, ev := range got {
			require.Equal(t, fmt.Sprintf("%06d", i), string(ev.Payload[:6]))
		}

		grown := heapInUse() - base
		limit := uint64(stuck*stuckSubscriberBudget + 16<<20)
		t.Logf("engine heap grew %d MiB with %d stuck subscribers (limit %d MiB)", grown>>20, stuck, limit>>20)
		require.Less(t, grown, limit)
	}
}

func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// openStuckSubscriber subscribes to a run over a raw HTTP/1.1 connection
// with a tiny receive buffer, reads the response headers, and then never
// reads again: the engine's writes to it block once the kernel buffers are
// full. The raw connection keeps the client side out of the heap measured.
func openStuckSubscriber(t *testing.T, n *node, runID string) net.Conn {
	u, err := url.Parse(n.url)
	if err != nil {
		t.Error(err)
		return nil
	}
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Error(err)
		return nil
	}
	_ = conn.(*net.TCPConn).SetReadBuffer(4 << 10)
	msg, err := proto.Marshal(&pb.SubscribeRequest{RunId: runID})
	if err != nil {
		t.Error(err)
		return conn
	}
	body := make([]byte, 5+len(msg))
	binary.BigEndian.PutUint32(body[1:5], uint32(len(msg)))
	copy(body[5:], msg)
	req := fmt.Sprintf("POST /runnel.v1.RunService/Subscribe HTTP/1.1\r\nHost: %s\r\n"+
		"Content-Type: application/connect+proto\r\nConnect-Protocol-Version: 1\r\n"+
		"Authorization: Bearer %s\r\nContent-Length: %d\r\n\r\n", u.Host, n.srv.AdminToken, len(body))
	if _, err := conn.Write(append([]byte(req), body...)); err != nil {
		t.Error(err)
		return conn
	}
	// Read up to the end of the headers, one byte at a time so nothing of
	// the body is taken off the socket.
	var head []byte
	b := make([]byte, 1)
	for !bytes.HasSuffix(head, []byte("\r\n\r\n")) {
		if _, err := conn.Read(b); err != nil {
			t.Errorf("read subscription response headers: %v", err)
			return conn
		}
		head = append(head, b[0])
	}
	if !bytes.HasPrefix(head, []byte("HTTP/1.1 200")) {
		t.Errorf("subscription refused: %s", head)
	}
	return conn
}
