package server_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/server"
)

// A PostgreSQL outage under load: while the engine cannot reach its
// database, requests are answered Unavailable (RPC) and 503 "unavailable"
// (HTTP), not internal errors; the worker's stream put and result, refused
// that way, are retried by the SDK and applied once the database is back;
// nothing acknowledged is lost and the subscriber that followed throughout
// sees exactly the stored log.
func TestPostgresOutageAnswersUnavailableAndLosesNothing(t *testing.T) {
	t.Parallel()
	proxy := newTCPProxy(t)
	n := startNode(t, "postgres", func(cfg *server.Config) {
		u, err := url.Parse(cfg.DatabaseURL)
		require.NoError(t, err)
		proxy.setTarget(u.Host)
		u.Host = proxy.addr
		cfg.DatabaseURL = u.String()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	started, gate := make(chan struct{}), make(chan struct{})
	wf := runnel.NewWorkflow("outage").Step("s", func(ctx runnel.Context) (any, error) {
		if err := ctx.PutStream([]byte("before ")); err != nil {
			return nil, err
		}
		close(started)
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if err := ctx.PutStream([]byte("during")); err != nil {
			return nil, err
		}
		return map[string]string{"ok": "yes"}, nil
	})
	// The worker's own client, whose log tells when its put was refused.
	logs := &recordingHandler{}
	wc, err := runnel.NewClient(runnel.WithHost(n.url), runnel.WithToken(n.srv.AdminToken), runnel.WithLogger(slog.New(logs)))
	require.NoError(t, err)
	w, err := wc.NewWorker("outage-worker", runnel.WithSlots(1))
	require.NoError(t, err)
	require.NoError(t, w.Register(wf))
	workerCtx, stopWorker := context.WithCancel(ctx)
	workerDone := make(chan error, 1)
	go func() { workerDone <- w.Run(workerCtx) }()
	defer func() { stopWorker(); <-workerDone }()
	<-w.Ready()

	runID, err := n.client.Admin().RunWorkflow(ctx, "outage", nil)
	require.NoError(t, err)
	type result struct {
		events []runnel.Event
		err    error
	}
	followed := make(chan result, 1)
	go func() {
		var r result
		for ev, err := range n.client.Listener().Stream(ctx, runID) {
			if err != nil {
				r.err = err
				break
			}
			r.events = append(r.events, ev)
		}
		followed <- r
	}()
	<-started

	proxy.cut()
	_, err = n.client.Admin().GetRun(ctx, runID)
	require.Equal(t, connect.CodeUnavailable, connect.CodeOf(err), "GetRun during the outage: %v", err)
	require.Contains(t, err.Error(), "the database is unreachable; retry")

	resp, err := http.Get(n.url + "/api/v1/runs/" + runID + "?token=" + url.QueryEscape(n.srv.AdminToken))
	require.NoError(t, err)
	var body struct {
		Error struct{ Code, Message string }
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	resp.Body.Close()
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	require.Equal(t, "unavailable", body.Error.Code)

	close(gate)
	logs.waitFor(t, ctx, "stream put failed; retrying", "unavailable")
	proxy.restore()

	r := <-followed
	require.NoError(t, r.err)
	require.NotEmpty(t, r.events)
	require.Equal(t, runnel.EventRunCompleted, r.events[len(r.events)-1].Type, "%s", r.events[len(r.events)-1].Data)
	var again []runnel.Event
	for ev, err := range n.client.Listener().Stream(ctx, runID) {
		require.NoError(t, err)
		again = append(again, ev)
	}
	require.Equal(t, eventKeys(again), eventKeys(r.events), "the subscriber saw exactly the stored log")
	var text strings.Builder
	for _, ev := range again {
		if ev.Type == runnel.EventStepStream {
			require.Equal(t, 1, ev.Attempt)
			text.Write(ev.Payload)
		}
	}
	require.Equal(t, "before during", text.String(), "each put stored once, in order")
	run, err := n.client.Admin().GetRun(ctx, runID)
	require.NoError(t, err)
	require.Equal(t, runnel.RunCompleted, run.Status)
	require.Equal(t, 1, run.Steps[0].Attempt, "the attempt survived the outage")
}

func eventKeys(events []runnel.Event) []string {
	out := make([]string, len(events))
	for i, ev := range events {
		out[i] = string(ev.Position) + " " + string(ev.Type) + " " + string(ev.Payload)
	}
	return out
}

// tcpProxy forwards connections to target until cut, which closes the
// listener and every connection; restore listens again on the same address.
type tcpProxy struct {
	t      *testing.T
	addr   string
	target string
	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]bool
	wg     sync.WaitGroup
}

func newTCPProxy(t *testing.T) *tcpProxy {
	p := &tcpProxy{t: t, conns: map[net.Conn]bool{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(func() { p.cut(); p.wg.Wait() })
	return p
}

func (p *tcpProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			target := p.target
			p.mu.Unlock()
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns[c], p.conns[up] = true, true
			p.mu.Unlock()
			for _, pair := range [][2]net.Conn{{c, up}, {up, c}} {
				p.wg.Go(func() {
					_, _ = io.Copy(pair[0], pair[1])
					pair[0].Close()
					pair[1].Close()
				})
			}
		}
	})
}

func (p *tcpProxy) setTarget(addr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.target = addr
}

func (p *tcpProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

func (p *tcpProxy) restore() {
	ln, err := net.Listen("tcp", p.addr)
	require.NoError(p.t, err)
	p.serve(ln)
}

// recordingHandler keeps log records' messages and attributes as text.
type recordingHandler struct {
	mu      sync.Mutex
	lines   []string
	changed chan struct{}
}

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler            { return h }
func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.Key + "=" + a.Value.String())
		return true
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lines = append(h.lines, b.String())
	if h.changed != nil {
		close(h.changed)
		h.changed = nil
	}
	return nil
}

// waitFor blocks until a record contains every one of parts.
func (h *recordingHandler) waitFor(t *testing.T, ctx context.Context, parts ...string) {
	t.Helper()
	seen := 0
	for {
		h.mu.Lock()
		lines := h.lines
		if h.changed == nil {
			h.changed = make(chan struct{})
		}
		changed := h.changed
		h.mu.Unlock()
	next:
		for ; seen < len(lines); seen++ {
			for _, p := range parts {
				if !strings.Contains(lines[seen], p) {
					continue next
				}
			}
			return
		}
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatalf("no log record with %q; got:\n%s", parts, strings.Join(lines, "\n"))
		}
	}
}
