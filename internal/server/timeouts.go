package server

import (
	"errors"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/runnel-dev/runnel/internal/writedeadline"
)

// Timeouts bound how long a connection may hold the node without doing
// its part. None of them cuts a long response: an SSE stream or an RPC
// stream (a subscription, a worker's Listen) lasts as long as its client
// reads what it is sent.
type Timeouts struct {
	// ReadHeader: a request's headers must arrive within it (default 10s).
	ReadHeader time.Duration
	// Idle: an HTTP/1.1 keep-alive connection between requests, or an
	// HTTP/2 connection with no request open, is closed after it (default
	// 2m). A connection that never sends a request is closed after
	// ReadHeader.
	Idle time.Duration
	// Body: a request's body must arrive whole within it (default 1m,
	// enough for the largest RPC, 12 MiB, at 200 KiB/s). Once the body is
	// read the deadline is lifted, so a stream's response is not cut.
	Body time.Duration
	// Write: every write of a response, including each write of a
	// stream, must be taken by the client within it (default 30s); a
	// client that stops reading is dropped then, and a subscriber resumes
	// later from its position.
	Write time.Duration
}

// Default timeouts.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultIdleTimeout       = 2 * time.Minute
	DefaultBodyTimeout       = time.Minute
	DefaultWriteTimeout      = 30 * time.Second
)

func (t *Timeouts) applyDefaults() {
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{{&t.ReadHeader, DefaultReadHeaderTimeout}, {&t.Idle, DefaultIdleTimeout}, {&t.Body, DefaultBodyTimeout}, {&t.Write, DefaultWriteTimeout}} {
		if *d.v <= 0 {
			*d.v = d.def
		}
	}
}

// withDeadlines gives every request a body deadline and every write of
// its response a write deadline. net/http's own ReadTimeout and
// WriteTimeout cannot do this: they count from the start of the request,
// so they would cut every stream that outlives them.
func withDeadlines(next http.Handler, t Timeouts) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		dw := &deadlineWriter{ResponseWriter: w, rc: rc, watchdog: writedeadline.New(w, t.Write)}
		if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
			b := watchBody(r.Body, rc, t.Body)
			defer b.stop()
			r.Body = b
		}
		next.ServeHTTP(dw, r)
		if r.ProtoMajor == 1 && !dw.detached {
			// What net/http still writes after the handler (buffered
			// bytes, the end of a chunked body) gets a deadline too; the
			// server lifts it before the next request. (An HTTP/2 write
			// deadline is a timer that resets the stream when it fires,
			// so none is left behind there.)
			_ = rc.SetWriteDeadline(time.Now().Add(t.Write))
		}
	})
}

// deadlineWriter bounds every write and flush by the write timeout (see
// package writedeadline): it limits how long one write may wait for the
// client, never how long a response lasts.
type deadlineWriter struct {
	http.ResponseWriter
	rc       *http.ResponseController
	watchdog *writedeadline.Watchdog
	detached bool // the handler took the connection over
}

// Detach is called by a handler that takes its connection over from
// net/http (a detached SSE stream): the connection's deadlines are then
// the handler's, and none is left behind on it.
func (w *deadlineWriter) Detach() func() {
	w.detached = true
	return func() {}
}

func (w *deadlineWriter) WriteHeader(code int) {
	_ = w.watchdog.Do(func() error { w.ResponseWriter.WriteHeader(code); return nil })
}

func (w *deadlineWriter) Write(p []byte) (n int, err error) {
	err = w.watchdog.Do(func() (err error) {
		n, err = w.ResponseWriter.Write(p)
		return err
	})
	return n, err
}

func (w *deadlineWriter) Flush() { _ = w.FlushError() }

// FlushError lets http.ResponseController report a failed flush.
func (w *deadlineWriter) FlushError() error { return w.watchdog.Do(w.rc.Flush) }

// Unwrap lets http.ResponseController reach the connection.
func (w *deadlineWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// watchedBody fails a request body that has not arrived whole within its
// timeout: a timer, stopped at the body's end (or the handler's), sets a
// read deadline in the past only if it fires first. Setting a deadline up
// front and lifting it at the end would do the same at the cost of two
// trips through an HTTP/2 connection's serving goroutine per request, and
// on HTTP/1.1 a deadline left set would also govern net/http's background
// read, whose failure cancels the request's context.
type watchedBody struct {
	io.ReadCloser
	timer *time.Timer

	mu      sync.Mutex
	stopped bool
}

func watchBody(body io.ReadCloser, rc *http.ResponseController, timeout time.Duration) *watchedBody {
	b := &watchedBody{ReadCloser: body}
	b.timer = time.AfterFunc(timeout, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if !b.stopped {
			_ = rc.SetReadDeadline(time.Unix(1, 0))
		}
	})
	return b
}

// stop disarms the timer; once it returns the ResponseWriter is no
// longer used (a firing timer holds mu while it uses it).
func (b *watchedBody) stop() {
	b.mu.Lock()
	b.stopped = true
	b.mu.Unlock()
	b.timer.Stop()
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if errors.Is(err, io.EOF) {
		b.stop()
	}
	return n, err
}
