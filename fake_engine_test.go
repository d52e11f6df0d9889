package runnel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	runnelv1 "github.com/runnel-dev/runnel/internal/gen/runnel/v1"
	"github.com/runnel-dev/runnel/internal/gen/runnel/v1/runnelv1connect"
)

// This file holds an in-process fake of the engine's RPC services, enough
// to drive the SDK through the real protocol (HTTP/2 without TLS, connect)
// without the engine.

const testToken = "test-secret"

// testTimeout bounds every wait in these tests, so that a bug fails a test
// instead of hanging it.
const testTimeout = 10 * time.Second

// recv receives from ch or fails the test after testTimeout.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(testTimeout):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// requestInfo is what the fake saw of one HTTP request.
type requestInfo struct {
	path       string
	auth       string
	protoMajor int
}

// fakeServer serves the fake services on an h2c-capable test server.
type fakeServer struct {
	srv *httptest.Server

	mu       sync.Mutex
	requests []requestInfo
}

func newFakeServer(t *testing.T, workers runnelv1connect.WorkerServiceHandler, runs runnelv1connect.RunServiceHandler) *fakeServer {
	t.Helper()
	fs := &fakeServer{}
	mux := http.NewServeMux()
	if workers != nil {
		mux.Handle(runnelv1connect.NewWorkerServiceHandler(workers))
	}
	if runs != nil {
		mux.Handle(runnelv1connect.NewRunServiceHandler(runs))
	}
	fs.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fs.mu.Lock()
		fs.requests = append(fs.requests, requestInfo{path: r.URL.Path, auth: r.Header.Get("Authorization"), protoMajor: r.ProtoMajor})
		fs.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	fs.srv.Config.Protocols = new(http.Protocols)
	fs.srv.Config.Protocols.SetHTTP1(true)
	fs.srv.Config.Protocols.SetUnencryptedHTTP2(true)
	fs.srv.Start()
	t.Cleanup(fs.srv.Close)
	return fs
}

func (fs *fakeServer) seen() []requestInfo {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return append([]requestInfo(nil), fs.requests...)
}

// testLogger discards logs unless RUNNEL_TEST_LOG is set, then it writes
// them, debug level included, to stderr.
func testLogger() *slog.Logger {
	if os.Getenv("RUNNEL_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func (fs *fakeServer) client(t *testing.T) *Client {
	t.Helper()
	c, err := NewClient(WithHost(fs.srv.URL), WithToken(testToken), WithLogger(testLogger()))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// fakeSession is one Listen stream of the fake worker service.
type fakeSession struct {
	workerID string
	send     chan *runnelv1.ListenResponse
	end      chan error // ends the Listen call with this error (nil: cleanly)
	closed   chan struct{}
}

func (s *fakeSession) assign(t *testing.T, a *runnelv1.StepAssignment) {
	t.Helper()
	select {
	case s.send <- &runnelv1.ListenResponse{Msg: &runnelv1.ListenResponse_Assignment{Assignment: a}}:
	case <-s.closed:
		t.Fatalf("session %s closed before assignment of %s", s.workerID, a.GetStep())
	case <-time.After(testTimeout):
		t.Fatal("timed out sending an assignment")
	}
}

func (s *fakeSession) cancel(t *testing.T, stepRunID string, attempt int32) {
	t.Helper()
	select {
	case s.send <- &runnelv1.ListenResponse{Msg: &runnelv1.ListenResponse_Cancellation{Cancellation: &runnelv1.StepCancellation{
		StepRunId: stepRunID, Attempt: attempt, Reason: "run cancelled",
	}}}:
	case <-time.After(testTimeout):
		t.Fatal("timed out sending a cancellation")
	}
}

// fakeWorkers is a scriptable WorkerService.
type fakeWorkers struct {
	runnelv1connect.UnimplementedWorkerServiceHandler

	heartbeatMs int64

	registrations chan *runnelv1.RegisterWorkerRequest
	sessions      chan *fakeSession
	completes     chan *runnelv1.CompleteStepRequest
	fails         chan *runnelv1.FailStepRequest

	mu          sync.Mutex
	nextID      int
	puts        []*runnelv1.PutStreamRequest
	stored      map[attemptKey][][]byte // stream payloads stored, deduplicated by seq
	registerErr []error                 // returned by the next RegisterWorker calls
	completeErr []error                 // returned by the next CompleteStep calls
	putErr      []error                 // returned by the next PutStream calls
	heartbeat   func(workerID string) error
	// resume picks the attempts a registration resumes (nil: none).
	resume func(req *runnelv1.RegisterWorkerRequest) []*runnelv1.RunningAttempt
}

func newFakeWorkers() *fakeWorkers {
	return &fakeWorkers{
		heartbeatMs:   60_000,
		registrations: make(chan *runnelv1.RegisterWorkerRequest, 100),
		sessions:      make(chan *fakeSession, 100),
		completes:     make(chan *runnelv1.CompleteStepRequest, 100),
		fails:         make(chan *runnelv1.FailStepRequest, 100),
		stored:        make(map[attemptKey][][]byte),
	}
}

func popErr(errs *[]error) error {
	if len(*errs) == 0 {
		return nil
	}
	err := (*errs)[0]
	*errs = (*errs)[1:]
	return err
}

func (f *fakeWorkers) RegisterWorker(_ context.Context, req *connect.Request[runnelv1.RegisterWorkerRequest]) (*connect.Response[runnelv1.RegisterWorkerResponse], error) {
	f.mu.Lock()
	err := popErr(&f.registerErr)
	f.nextID++
	id := fmt.Sprintf("w%d", f.nextID)
	resume := f.resume
	f.mu.Unlock()
	f.registrations <- req.Msg
	if err != nil {
		return nil, err
	}
	resp := &runnelv1.RegisterWorkerResponse{WorkerId: id, HeartbeatIntervalMs: f.heartbeatMs}
	if resume != nil {
		resp.Resumed = resume(req.Msg)
	}
	return connect.NewResponse(resp), nil
}

func (f *fakeWorkers) Listen(ctx context.Context, req *connect.Request[runnelv1.ListenRequest], stream *connect.ServerStream[runnelv1.ListenResponse]) error {
	s := &fakeSession{
		workerID: req.Msg.GetWorkerId(),
		send:     make(chan *runnelv1.ListenResponse),
		end:      make(chan error, 1),
		closed:   make(chan struct{}),
	}
	defer close(s.closed)
	f.sessions <- s
	for {
		select {
		case msg := <-s.send:
			if err := stream.Send(msg); err != nil {
				return err
			}
		case err := <-s.end:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (f *fakeWorkers) Heartbeat(_ context.Context, req *connect.Request[runnelv1.HeartbeatRequest]) (*connect.Response[runnelv1.HeartbeatResponse], error) {
	f.mu.Lock()
	hb := f.heartbeat
	f.mu.Unlock()
	if hb != nil {
		if err := hb(req.Msg.GetWorkerId()); err != nil {
			return nil, err
		}
	}
	return connect.NewResponse(&runnelv1.HeartbeatResponse{}), nil
}

func (f *fakeWorkers) PutStream(_ context.Context, req *connect.Request[runnelv1.PutStreamRequest]) (*connect.Response[runnelv1.PutStreamResponse], error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.puts = append(f.puts, req.Msg)
	if err := popErr(&f.putErr); err != nil {
		return nil, err
	}
	key := attemptKey{req.Msg.GetStepRunId(), req.Msg.GetAttempt()}
	have := int64(len(f.stored[key]))
	if req.Msg.GetFirstSeq() > have+1 {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("gap in stream seqs"))
	}
	for i, p := range req.Msg.GetPayloads() {
		if seq := req.Msg.GetFirstSeq() + int64(i); seq > have {
			f.stored[key] = append(f.stored[key], p)
			have++
		}
	}
	return connect.NewResponse(&runnelv1.PutStreamResponse{}), nil
}

func (f *fakeWorkers) storedPayloads(stepRunID string, attempt int32) [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]byte(nil), f.stored[attemptKey{stepRunID, attempt}]...)
}

func (f *fakeWorkers) CompleteStep(_ context.Context, req *connect.Request[runnelv1.CompleteStepRequest]) (*connect.Response[runnelv1.CompleteStepResponse], error) {
	f.mu.Lock()
	err := popErr(&f.completeErr)
	f.mu.Unlock()
	f.completes <- req.Msg
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&runnelv1.CompleteStepResponse{}), nil
}

func (f *fakeWorkers) FailStep(_ context.Context, req *connect.Request[runnelv1.FailStepRequest]) (*connect.Response[runnelv1.FailStepResponse], error) {
	f.fails <- req.Msg
	return connect.NewResponse(&runnelv1.FailStepResponse{}), nil
}
