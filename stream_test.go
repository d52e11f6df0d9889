package runnel

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	runnelv1 "github.com/runnel-dev/runnel/internal/gen/runnel/v1"
)

// fakePut records PutStream requests; script decides each call's result.
type fakePut struct {
	mu     sync.Mutex
	reqs   []*runnelv1.PutStreamRequest
	script func(n int, req *runnelv1.PutStreamRequest) error // n counts calls from 0
}

func (f *fakePut) put(ctx context.Context, req *runnelv1.PutStreamRequest) error {
	f.mu.Lock()
	n := len(f.reqs)
	f.reqs = append(f.reqs, req)
	script := f.script
	f.mu.Unlock()
	if script != nil {
		return script(n, req)
	}
	return nil
}

func (f *fakePut) requests() []*runnelv1.PutStreamRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*runnelv1.PutStreamRequest(nil), f.reqs...)
}

func testLimits() streamLimits {
	l := defaultStreamLimits
	l.retryBase, l.retryMax = time.Millisecond, 5*time.Millisecond
	return l
}

// newTestStepContext builds a step context without a worker or engine.
func newTestStepContext(t *testing.T, f *fakePut, limits streamLimits, onStale func(error)) (*stepContext, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stream := newStepStream(ctx, f.put, "sr1", 1, limits, onStale, testLogger())
	t.Cleanup(stream.abort)
	return &stepContext{
		Context: ctx,
		a:       &runnelv1.StepAssignment{RunId: "r1", StepRunId: "sr1", Workflow: "wf", Step: "a", Attempt: 1},
		stream:  stream,
	}, cancel
}

func TestPutStreamSizeLimit(t *testing.T) {
	f := &fakePut{}
	sc, _ := newTestStepContext(t, f, testLimits(), nil)

	err := sc.PutStream(make([]byte, MaxPayloadSize+1))
	if !errors.Is(err, ErrPayloadTooLarge) {
		t.Fatalf("PutStream of MaxPayloadSize+1 bytes = %v, want ErrPayloadTooLarge", err)
	}
	if want := fmt.Sprintf("stream payload of %d bytes exceeds the 4 MiB limit", MaxPayloadSize+1); err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	// Nothing was sent, and the step may go on.
	if err := sc.Flush(); err != nil {
		t.Fatal(err)
	}
	if n := len(f.requests()); n != 0 {
		t.Errorf("%d requests sent for a refused payload", n)
	}
	if err := sc.PutStream(make([]byte, MaxPayloadSize)); err != nil {
		t.Fatalf("PutStream of exactly MaxPayloadSize: %v", err)
	}
	if err := sc.PutStream(nil); err != nil {
		t.Fatalf("PutStream of nothing: %v", err)
	}
	if err := sc.Flush(); err != nil {
		t.Fatal(err)
	}
	reqs := f.requests()
	var sizes []int
	for _, r := range reqs {
		for _, p := range r.GetPayloads() {
			sizes = append(sizes, len(p))
		}
	}
	if len(sizes) != 2 || sizes[0] != MaxPayloadSize || sizes[1] != 0 {
		t.Errorf("sent payload sizes %v", sizes)
	}
}

func TestPutStreamCopiesData(t *testing.T) {
	release := make(chan struct{})
	f := &fakePut{script: func(int, *runnelv1.PutStreamRequest) error { <-release; return nil }}
	sc, _ := newTestStepContext(t, f, testLimits(), nil)
	buf := []byte("first")
	if err := sc.PutStream(buf); err != nil {
		t.Fatal(err)
	}
	copy(buf, "XXXXX")
	close(release)
	if err := sc.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := string(f.requests()[0].GetPayloads()[0]); got != "first" {
		t.Errorf("sent %q: PutStream kept the caller's buffer", got)
	}
}

func TestPutStreamBatchesInOrder(t *testing.T) {
	// The first request blocks, so the rest pile up and go out in batches.
	release := make(chan struct{})
	f := &fakePut{script: func(n int, _ *runnelv1.PutStreamRequest) error {
		if n == 0 {
			<-release
		}
		return nil
	}}
	sc, _ := newTestStepContext(t, f, testLimits(), nil)
	const n = 3000
	for i := range n {
		if err := sc.PutStream(fmt.Appendf(nil, "%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	close(release)
	if err := sc.Flush(); err != nil {
		t.Fatal(err)
	}
	next, i := int64(1), 0
	for _, r := range f.requests() {
		if r.GetFirstSeq() != next || r.GetStepRunId() != "sr1" || r.GetAttempt() != 1 {
			t.Fatalf("request first_seq %d (want %d), %s/%d", r.GetFirstSeq(), next, r.GetStepRunId(), r.GetAttempt())
		}
		if len(r.GetPayloads()) > 512 {
			t.Fatalf("batch of %d payloads", len(r.GetPayloads()))
		}
		for _, p := range r.GetPayloads() {
			if string(p) != fmt.Sprint(i) {
				t.Fatalf("payload %d = %q", i, p)
			}
			i++
		}
		next += int64(len(r.GetPayloads()))
	}
	if i != n {
		t.Errorf("sent %d payloads, want %d", i, n)
	}
	if len(f.requests()) > 1+(n+511)/512 {
		t.Errorf("%d requests for %d payloads: not batched", len(f.requests()), n)
	}
}

func TestPutStreamBatchBytes(t *testing.T) {
	release := make(chan struct{})
	f := &fakePut{script: func(n int, _ *runnelv1.PutStreamRequest) error {
		if n == 0 {
			<-release
		}
		return nil
	}}
	sc, _ := newTestStepContext(t, f, testLimits(), nil)
	for range 5 {
		if err := sc.PutStream(make([]byte, 3<<20)); err != nil {
			t.Fatal(err)
		}
	}
	close(release)
	if err := sc.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, r := range f.requests() {
		size := 0
		for _, p := range r.GetPayloads() {
			size += len(p)
		}
		if size > 8<<20 {
			t.Errorf("request of %d bytes, over the 8 MiB batch limit", size)
		}
	}
}

func TestPutStreamRetriesWithSameSeq(t *testing.T) {
	f := &fakePut{script: func(n int, _ *runnelv1.PutStreamRequest) error {
		if n < 2 {
			return connect.NewError(connect.CodeUnavailable, errors.New("engine restarting"))
		}
		return nil
	}}
	sc, _ := newTestStepContext(t, f, testLimits(), nil)
	for _, s := range []string{"a", "b"} {
		if err := sc.PutStream([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	if err := sc.Flush(); err != nil {
		t.Fatal(err)
	}
	reqs := f.requests()
	if len(reqs) < 3 {
		t.Fatalf("%d requests, want at least 3", len(reqs))
	}
	if reqs[0].GetFirstSeq() != 1 || reqs[1].GetFirstSeq() != 1 || reqs[2].GetFirstSeq() != 1 {
		t.Errorf("retries changed first_seq: %d, %d, %d", reqs[0].GetFirstSeq(), reqs[1].GetFirstSeq(), reqs[2].GetFirstSeq())
	}
}

func TestPutStreamBackPressure(t *testing.T) {
	release := make(chan struct{})
	f := &fakePut{script: func(n int, _ *runnelv1.PutStreamRequest) error {
		if n == 0 {
			<-release
		}
		return nil
	}}
	limits := testLimits()
	limits.queuePayloads = 4
	sc, _ := newTestStepContext(t, f, limits, nil)
	for i := range 4 {
		if err := sc.PutStream([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	// The queue is full: a put with a done context gives up.
	ctx, cancel := context.WithCancel(sc.Context)
	cancel()
	if err := sc.stream.Put(ctx, []byte("x"), ""); !errors.Is(err, context.Canceled) {
		t.Errorf("Put on a full queue with a cancelled context = %v", err)
	}
	// A put blocks until the engine acknowledges.
	var released atomic.Bool
	putDone := make(chan error)
	go func() {
		err := sc.PutStream([]byte("y"))
		if err == nil && !released.Load() {
			err = errors.New("PutStream on a full queue returned before the engine acknowledged")
		}
		putDone <- err
	}()
	released.Store(true)
	close(release)
	if err := recv(t, putDone, "blocked PutStream"); err != nil {
		t.Fatal(err)
	}
	if err := sc.Flush(); err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, r := range f.requests() {
		total += len(r.GetPayloads())
	}
	if total != 5 {
		t.Errorf("sent %d payloads, want 5", total)
	}
}

func TestPutStreamPermanentError(t *testing.T) {
	f := &fakePut{script: func(int, *runnelv1.PutStreamRequest) error {
		return connect.NewError(connect.CodeInvalidArgument, errors.New("bad payload"))
	}}
	sc, _ := newTestStepContext(t, f, testLimits(), func(error) { t.Error("onStale called for InvalidArgument") })
	if err := sc.PutStream([]byte("a")); err != nil {
		t.Fatal(err)
	}
	err := sc.Flush()
	if connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("Flush = %v, want the InvalidArgument error", err)
	}
	if err := sc.PutStream([]byte("b")); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("PutStream after the failure = %v", err)
	}
	// The step saw the error, so finishing does not report it again.
	if err := sc.stream.finish(context.Background()); err != nil {
		t.Errorf("finish = %v, want nil (error already seen)", err)
	}
	if err := sc.PutStream([]byte("c")); !errors.Is(err, errStepReturned) {
		t.Errorf("PutStream after finish = %v", err)
	}
}

func TestPutStreamUnseenErrorAtFinish(t *testing.T) {
	f := &fakePut{script: func(int, *runnelv1.PutStreamRequest) error {
		return connect.NewError(connect.CodeResourceExhausted, errors.New("quota"))
	}}
	sc, _ := newTestStepContext(t, f, testLimits(), nil)
	if err := sc.PutStream([]byte("a")); err != nil {
		t.Fatal(err)
	}
	if err := sc.stream.finish(context.Background()); connect.CodeOf(err) != connect.CodeResourceExhausted {
		t.Errorf("finish = %v, want the unseen ResourceExhausted error", err)
	}
}

func TestPutStreamStaleCancelsStep(t *testing.T) {
	f := &fakePut{script: func(int, *runnelv1.PutStreamRequest) error {
		return connect.NewError(connect.CodeFailedPrecondition, errors.New("attempt 1 is not current"))
	}}
	stale := make(chan error, 1)
	sc, _ := newTestStepContext(t, f, testLimits(), func(err error) { stale <- err })
	if err := sc.PutStream([]byte("a")); err != nil {
		t.Fatal(err)
	}
	if err := recv(t, stale, "onStale"); connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Errorf("onStale(%v)", err)
	}
	if err := sc.Flush(); !strings.Contains(err.Error(), "not current") {
		t.Errorf("Flush = %v", err)
	}
}

func TestPutStreamAfterCancel(t *testing.T) {
	sc, cancel := newTestStepContext(t, &fakePut{}, testLimits(), nil)
	cancel()
	if err := sc.PutStream([]byte("a")); !errors.Is(err, context.Canceled) {
		t.Errorf("PutStream after cancel = %v", err)
	}
}

func BenchmarkPutStream(b *testing.B) {
	ctx := context.Background()
	s := newStepStream(ctx, func(context.Context, *runnelv1.PutStreamRequest) error { return nil }, "sr", 1, defaultStreamLimits, nil, testLogger())
	payload := []byte("a small event of about forty bytes......")
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Put(ctx, payload, ""); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.finish(ctx); err != nil {
		b.Fatal(err)
	}
}
