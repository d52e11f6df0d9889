package server_test

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/engine"
	pb "github.com/runnel-dev/runnel/internal/gen/runnel/v1"
)

// sseTranscript is what an SSE client read until the server closed.
type sseTranscript struct {
	ids    []string
	events []string // event names, in order
	data   []string // data lines, in order
}

func transcribeSSE(t *testing.T, url, token string, header ...string) sseTranscript {
	t.Helper()
	resp := openSSE(t, url, token, header...)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var tr sseTranscript
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "id: "):
			tr.ids = append(tr.ids, strings.TrimPrefix(line, "id: "))
		case strings.HasPrefix(line, "event: "):
			tr.events = append(tr.events, strings.TrimPrefix(line, "event: "))
		case strings.HasPrefix(line, "data: "):
			tr.data = append(tr.data, strings.TrimPrefix(line, "data: "))
		}
	}
	return tr
}

// Every stream ends at its token's expiry, with a message clients
// understand (SSE: `event: error` with code unauthenticated; RPC:
// CodeUnauthenticated), and resumes with a new token after its last
// position: nothing lost, nothing repeated. Before the fix, expiry was
// checked only at connect, so these streams outlived their tokens (a
// metadata subscription for good).
func TestStreamsEndAtTokenExpiry(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, n *node) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		release := make(chan struct{})
		startWorker(t, n, "held-worker", 1, heldWorkflow(release))
		runID, err := n.client.Admin().RunWorkflow(ctx, "held", nil,
			runnel.WithAdditionalMetadata(map[string]string{"k": "v"}))
		require.NoError(t, err)

		admin, err := n.srv.Engine().Authenticate(ctx, n.srv.AdminToken)
		require.NoError(t, err)
		mint := func(bp engine.BrowserTokenParams) string {
			bp.TTL = time.Second
			tok, _, err := n.srv.Engine().CreateBrowserToken(ctx, admin, bp)
			require.NoError(t, err)
			return tok
		}
		runTok, pairTok := mint(engine.BrowserTokenParams{RunID: runID}), mint(engine.BrowserTokenParams{MetaKey: "k", MetaValue: "v"})

		var wg sync.WaitGroup
		var runSSE, metaSSE sseTranscript
		var runRPC, metaRPC error
		wg.Go(func() { runSSE = transcribeSSE(t, n.url+"/api/v1/runs/"+runID+"/stream", runTok) })
		wg.Go(func() { metaSSE = transcribeSSE(t, n.url+"/api/v1/stream?metaKey=k&metaValue=v", pairTok) })
		wg.Go(func() {
			s, err := newRaw(n, runTok).runs.Subscribe(ctx, connect.NewRequest(&pb.SubscribeRequest{RunId: runID}))
			if err == nil {
				for s.Receive() {
				}
				err = s.Err()
			}
			runRPC = err
		})
		wg.Go(func() {
			s, err := newRaw(n, pairTok).runs.SubscribeMetadata(ctx, connect.NewRequest(&pb.SubscribeMetadataRequest{Key: "k", Value: "v"}))
			if err == nil {
				for s.Receive() {
				}
				err = s.Err()
			}
			metaRPC = err
		})
		wg.Wait()

		for name, tr := range map[string]sseTranscript{"run": runSSE, "metadata": metaSSE} {
			require.NotEmpty(t, tr.ids, "%s stream: events before the expiry", name)
			require.Equal(t, "error", tr.events[len(tr.events)-1], "%s stream ends with `event: error`: %v", name, tr.events)
			require.NotContains(t, tr.events, "end", name)
			last := tr.data[len(tr.data)-1]
			require.Contains(t, last, `"code":"unauthenticated"`, name)
			require.Contains(t, last, "token expired", name)
		}
		requireCode(t, connect.CodeUnauthenticated, runRPC, "token expired")
		requireCode(t, connect.CodeUnauthenticated, metaRPC, "token expired")

		// A new token resumes after the last position: the rest, once.
		close(release)
		rest := transcribeSSE(t, n.url+"/api/v1/runs/"+runID+"/stream", mint(engine.BrowserTokenParams{RunID: runID}),
			"Last-Event-ID", runSSE.ids[len(runSSE.ids)-1])
		require.Equal(t, "end", rest.events[len(rest.events)-1])
		_, all := waitRun(t, n, runID)
		require.Equal(t, eventPositions(all), append(runSSE.ids, rest.ids...), "every event once, in order, across the expiry")
	})
}

func eventPositions(events []runnel.Event) []string {
	out := make([]string, len(events))
	for i, ev := range events {
		out[i] = string(ev.Position)
	}
	return out
}

// The Go SDK, given a token function, resumes a subscription the engine
// ended at its token's expiry with a fresh token, after its last position:
// every event once, in order.
func TestGoListenerRenewsAnExpiredToken(t *testing.T) {
	t.Parallel()
	n := startNode(t, "sqlite")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	release := make(chan struct{})
	startWorker(t, n, "held-worker", 1, heldWorkflow(release))
	runID, err := n.client.Admin().RunWorkflow(ctx, "held", nil)
	require.NoError(t, err)
	admin, err := n.srv.Engine().Authenticate(ctx, n.srv.AdminToken)
	require.NoError(t, err)

	renewed := make(chan struct{}) // closed at the second token
	mints := 0
	c, err := runnel.NewClient(runnel.WithHost(n.url), runnel.WithLogger(testLogger(t)),
		runnel.WithTokenFunc(func(ctx context.Context) (string, error) {
			tok, _, err := n.srv.Engine().CreateBrowserToken(ctx, admin, engine.BrowserTokenParams{RunID: runID, TTL: time.Second})
			if mints++; mints == 2 {
				close(renewed)
			}
			return tok, err
		}))
	require.NoError(t, err)
	// The run ends only once the first token expired and the stream
	// asked for another.
	go func() {
		select {
		case <-renewed:
			close(release)
		case <-ctx.Done():
		}
	}()
	var got []runnel.Event
	for ev, err := range c.Listener().Stream(ctx, runID) {
		require.NoError(t, err)
		got = append(got, ev)
	}
	_, all := waitRun(t, n, runID)
	require.Equal(t, eventPositions(all), eventPositions(got))
}
