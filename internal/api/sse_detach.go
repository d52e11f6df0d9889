package api

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/runnel-dev/runnel/internal/eventlog"
)

// Detached SSE streams.
//
// A subscriber idle between events costs what its goroutines and buffers
// cost, times every browser connected. Served the usual way, an HTTP/1.1
// SSE response holds net/http's connection goroutine (parked under the
// handler, the middleware and the subscription: a 16 KiB stack), its
// background reader and about 11 KiB of read and write buffers for as
// long as it lasts. So once a subscription has opened, the stream is
// detached: the handler takes the connection over (Hijack), hands it to
// the goroutine already running the subscription, and returns, which
// frees all of that. What remains per stream is the subscription's
// goroutine, a small goroutine that notices the client leaving, and the
// socket. The stream writes its own response head (chunked, Connection:
// close) and chunks; HTTP/2 and HTTP/1.0 responses, which cannot be taken
// over or chunked, are served through net/http as before.

// serveSSE serves a subscription as an SSE response. subscribe runs on a
// goroutine of its own and delivers through sw; until its first delivery
// (the start point) the handler waits, so an error before it (not found,
// forbidden, over a limit) is answered with a status as usual. At the
// first delivery the stream is detached when it can be; otherwise the
// handler waits for it to end. end, when not nil, writes the message that
// ends a stream whose subscription returned nil.
func (h *HTTP) serveSSE(w http.ResponseWriter, r *http.Request, sw *sseWriter, subscribe func(context.Context, eventlog.Deliver) error, end func(*sseWriter)) {
	// The subscription must outlive the handler once detached; until then
	// the request's end (the client leaving) ends it.
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	unwatch := context.AfterFunc(r.Context(), cancel)

	opened := make(chan struct{})  // the subscription reached its first delivery
	carryOn := make(chan struct{}) // the handler is done deciding: write on
	result := make(chan error, 1)  // the subscription's end, when the handler waits for it
	var detached *detachedStream   // set before carryOn is closed
	sw.beforeStart = func() {
		close(opened)
		<-carryOn
	}
	go func() {
		err := subscribe(ctx, sw.deliver)
		if detached == nil {
			result <- err // the handler is waiting: it ends the response
			return
		}
		cancel()
		finishSSE(sw, err, end)
		detached.close()
	}()

	select {
	case err := <-result:
		// Ended before opening: answered as any request.
		unwatch()
		cancel()
		sw.beforeStart = nil
		if err == nil {
			finishSSE(sw, nil, end)
		} else {
			h.writeError(w, r, err)
		}
		return
	case <-opened:
	}
	if unwatch() { // false: the client already left, and the subscription is ending
		if detached = h.detach(w, r, cancel); detached != nil {
			sw.out.MoveTo(detached)
			close(carryOn)
			return
		}
	}
	close(carryOn)
	stop := context.AfterFunc(r.Context(), cancel)
	err := <-result
	stop()
	cancel()
	finishSSE(sw, err, end)
}

// finishSSE ends a started stream: the end message after a subscription
// that ended by itself, the error message a client must act on otherwise.
func finishSSE(sw *sseWriter, err error, end func(*sseWriter)) {
	switch {
	case err == nil && end != nil:
		end(sw)
	case err == nil:
	case !sw.started():
		// Ended before its first delivery, without an error: nothing to say.
	default:
		sw.fail(err)
	}
}

// detachedStream is an SSE response on a connection taken over from
// net/http. It is the http.ResponseWriter the stream's ssewire.Writer
// moves to: it writes the response head itself, then each Write as one
// chunk (a batch of frames, one system call), and the last chunk and a
// close at the end.
type detachedStream struct {
	conn    net.Conn
	header  http.Header
	timeout time.Duration
	ended   []func() // the middleware's accounting of the response
	streams *detachedStreams
	started bool   // the head was written
	pending []byte // the head, until the first chunk goes with it
	failed  bool   // a write failed: the client is gone or stuck
}

// detach takes the response's connection over, or returns nil when it
// cannot: not an HTTP/1.1 GET (a HEAD response has no body, which net/http
// sees to), a writer that cannot be hijacked, or the node stopping.
// cancel ends the subscription when the client leaves.
func (h *HTTP) detach(w http.ResponseWriter, r *http.Request, cancel context.CancelFunc) *detachedStream {
	if r.ProtoMajor != 1 || r.ProtoMinor < 1 || r.Method != http.MethodGet {
		return nil
	}
	if !h.streams.enter() {
		return nil
	}
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		h.streams.leave()
		return nil
	}
	// net/http may have left deadlines on the connection; the stream's
	// writes are bounded one by one (ssewire), and reads only watch for
	// the client leaving.
	_ = conn.SetDeadline(time.Time{})
	d := &detachedStream{conn: conn, header: w.Header().Clone(), timeout: h.cfg.WriteTimeout, streams: &h.streams}
	for rw := w; rw != nil; {
		if m, ok := rw.(interface{ Detach() func() }); ok {
			d.ended = append(d.ended, m.Detach())
		}
		u, ok := rw.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			break
		}
		rw = u.Unwrap()
	}
	h.streams.add(d)
	go d.watch(cancel)
	return d
}

// watch ends the subscription when the client closes the connection (or
// it fails). It returns when the connection is closed, by either side. A
// client sends nothing more on an SSE connection: bytes it does send are
// read and dropped.
func (d *detachedStream) watch(cancel context.CancelFunc) {
	var buf [64]byte
	for {
		if _, err := d.conn.Read(buf[:]); err != nil {
			cancel()
			return
		}
	}
}

// Header is the response's header until the head is written (dropped
// then: a stream lasts long, and holds nothing it no longer needs).
func (d *detachedStream) Header() http.Header {
	if d.header == nil {
		d.header = http.Header{}
	}
	return d.header
}

// WriteHeader writes the response head: the handler's headers (the
// middleware's among them), chunked, and Connection: close, since the
// connection is not handed back to net/http for another request.
func (d *detachedStream) WriteHeader(code int) {
	if d.started {
		return
	}
	d.started = true
	d.header.Del("Content-Length")
	d.header.Set("Transfer-Encoding", "chunked")
	d.header.Set("Connection", "close")
	d.header.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	head := make([]byte, 0, 512)
	head = append(head, "HTTP/1.1 "...)
	head = strconv.AppendInt(head, int64(code), 10)
	head = append(head, ' ')
	head = append(head, http.StatusText(code)...)
	head = append(head, "\r\n"...)
	b := headerBuffer{head}
	_ = d.header.Write(&b) // writes to memory
	b.p = append(b.p, "\r\n"...)
	d.pending, d.header = b.p, nil
}

// headerBuffer collects the head's bytes (http.Header.Write needs an
// io.Writer).
type headerBuffer struct{ p []byte }

func (b *headerBuffer) Write(p []byte) (int, error) {
	b.p = append(b.p, p...)
	return len(p), nil
}

// Write sends p as one chunk (after the head, when not yet sent), in one
// write: a copy into a pooled buffer costs less than the vectored write
// that would spare it.
func (d *detachedStream) Write(p []byte) (int, error) {
	if !d.started {
		d.WriteHeader(http.StatusOK)
	}
	if len(p) == 0 {
		return 0, d.FlushError()
	}
	bp := chunkBuffers.Get().(*[]byte)
	b := append((*bp)[:0], d.pending...)
	b = strconv.AppendInt(b, int64(len(p)), 16)
	b = append(b, '\r', '\n')
	b = append(b, p...)
	b = append(b, '\r', '\n')
	d.pending = nil
	_, err := d.conn.Write(b)
	if cap(b) <= 1<<20 {
		*bp = b
		chunkBuffers.Put(bp)
	}
	if err != nil {
		d.failed = true
		return 0, err
	}
	return len(p), nil
}

// chunkBuffers hold a chunk while it is written: a stream between
// deliveries holds none.
var chunkBuffers = sync.Pool{New: func() any { return new([]byte) }}

// FlushError sends the head if it is still pending; chunks leave as they
// are written.
func (d *detachedStream) FlushError() error {
	if d.pending == nil {
		return nil
	}
	_, err := d.conn.Write(d.pending)
	d.pending = nil
	d.failed = d.failed || err != nil
	return err
}

// SetWriteDeadline bounds the connection's writes (see ssewire.Writer).
func (d *detachedStream) SetWriteDeadline(t time.Time) error { return d.conn.SetWriteDeadline(t) }

// close ends the response (its last chunk, within the write timeout,
// unless a write already failed) and the connection, which ends watch.
func (d *detachedStream) close() {
	if d.started && !d.failed {
		_ = d.conn.SetWriteDeadline(time.Now().Add(d.timeout))
		_ = d.FlushError()
		_, _ = d.conn.Write([]byte("0\r\n\r\n"))
	}
	_ = d.conn.Close()
	for _, ended := range d.ended {
		ended()
	}
	d.streams.remove(d)
}

// detachedStreams are the streams a node serves past their handlers, so
// that stopping the node can wait for them: net/http's Shutdown knows
// nothing of connections taken over from it.
type detachedStreams struct {
	mu      sync.Mutex
	closed  bool
	open    map[*detachedStream]struct{}
	entered sync.WaitGroup
}

// enter reserves a place for a stream about to detach; false once the node
// is stopping.
func (s *detachedStreams) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.entered.Add(1)
	return true
}

func (s *detachedStreams) leave() { s.entered.Done() }

func (s *detachedStreams) add(d *detachedStream) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open == nil {
		s.open = make(map[*detachedStream]struct{})
	}
	s.open[d] = struct{}{}
}

func (s *detachedStreams) remove(d *detachedStream) {
	s.mu.Lock()
	delete(s.open, d)
	s.mu.Unlock()
	s.leave()
}

// CloseStreams waits for the detached SSE streams to end, once the
// engine's drain has ended their subscriptions; when ctx ends first, it
// closes their connections (a write blocked on a client that reads nothing
// fails then) and waits for them. No stream detaches after it is called.
func (h *HTTP) CloseStreams(ctx context.Context) error {
	s := &h.streams
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.entered.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	for d := range s.open {
		_ = d.conn.Close()
	}
	s.mu.Unlock()
	<-done
	return errors.New("detached SSE streams still open when the stop's time ran out: closed")
}
