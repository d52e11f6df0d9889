package server

import (
	"errors"
	"io"
	"net/http"
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
			if err := rc.SetReadDeadline(time.Now().Add(t.Body)); err == nil {
				r.Body = &liftAtEOF{ReadCloser: r.Body, rc: rc}
			}
		}
		next.ServeHTTP(dw, r)
		if r.ProtoMajor == 1 {
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

// liftAtEOF lifts the body's read deadline once the body is read whole,
// so that it cannot end the response later (on HTTP/1.1 the connection's
// read deadline also governs net/http's background read, whose failure
// cancels the request's context).
type liftAtEOF struct {
	io.ReadCloser
	rc     *http.ResponseController
	lifted bool
}

func (b *liftAtEOF) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if errors.Is(err, io.EOF) && !b.lifted {
		b.lifted = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}
