package ssewire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/runnel-dev/runnel/internal/writedeadline"
)

// Writer writes one Server-Sent Events response: the headers, the retry
// field, frames, heartbeat comments and the end of a run stream. It is the
// one SSE writer of the engine's endpoints and of the public sse package.
//
// Frames are gathered in a buffer of at most BatchSize bytes and written
// when it fills or on Flush, so a burst leaves in few writes; a large
// payload is encoded and written piece by piece (see Write). Every write
// and flush must finish within the write timeout: a client that
// stops reading makes a write fail within it, and the stream ends (its
// client resumes later from its last position). A stream whose client
// stops reading therefore holds at most BatchSize bytes of buffer plus
// one piece of a large payload, for at most the write timeout.
//
// A Writer is not safe for concurrent use.
type Writer struct {
	w        http.ResponseWriter
	rc       *http.ResponseController
	watchdog *writedeadline.Watchdog
	timeout  time.Duration
	buf      *bytes.Buffer // frames not yet written; nil when empty
	started  bool
}

// BatchSize is the most a Writer buffers before writing.
const BatchSize = 64 << 10

// NewWriter returns a Writer on w with the given timeout for each write
// (it replaces any http.Server.WriteTimeout for this response, which would
// cut a stream that lasts longer). w must support flushing, as net/http's
// ResponseWriter does; middleware must let http.ResponseController reach
// it (an Unwrap method).
func NewWriter(w http.ResponseWriter, writeTimeout time.Duration) *Writer {
	return &Writer{w: w, rc: http.NewResponseController(w), watchdog: writedeadline.New(w, writeTimeout), timeout: writeTimeout}
}

// MoveTo carries on the response on w: the same response, on a connection
// a handler took over from net/http before anything was written (see
// package api's detached streams). Nothing may be queued.
func (s *Writer) MoveTo(w http.ResponseWriter) {
	s.w, s.rc, s.watchdog = w, http.NewResponseController(w), writedeadline.New(w, s.timeout)
}

// Started reports whether the headers were sent: errors can then no
// longer be answered with a status.
func (s *Writer) Started() bool { return s.started }

// Start sends the headers and, when retry is positive, the retry field
// (how long EventSource waits before reconnecting), and flushes them, so
// the client knows it is connected before the first event.
func (s *Writer) Start(retry time.Duration) error {
	h := s.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive") // dropped by net/http on HTTP/2, where it is not allowed
	h.Set("X-Accel-Buffering", "no")  // nginx: do not buffer the stream
	h.Del("Content-Length")
	// Lift the server's WriteTimeout, if any, which counts from the start
	// of the request and would cut the stream; each write is bounded by
	// the watchdog instead.
	if err := s.rc.SetWriteDeadline(time.Time{}); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	if err := s.bounded(func() error { s.w.WriteHeader(http.StatusOK); return nil }); err != nil {
		return err
	}
	s.started = true
	if retry > 0 {
		fmt.Fprintf(s.buffer(), "retry: %d\n\n", max(retry.Milliseconds(), 1))
	}
	return s.Flush()
}

// Frame queues an encoded frame (a cached one).
func (s *Writer) Frame(f []byte) error {
	s.buffer().Write(f)
	return s.spill()
}

// Event queues one run event's frame (see Write).
func (s *Writer) Event(ev Event) error {
	if ev.Type == "step.stream" && len(ev.Payload) > ChunkSize {
		// Written through now, piece by piece, after what is queued.
		if err := s.writeQueued(); err != nil {
			return err
		}
		return Write(writerFunc(s.write), ev)
	}
	if err := Write(s.buffer(), ev); err != nil {
		return err
	}
	return s.spill()
}

// EventData queues a frame of the given id, event name and data.
func (s *Writer) EventData(id, name string, data []byte) error {
	if err := WriteEvent(s.buffer(), id, name, data); err != nil {
		return err
	}
	return s.spill()
}

// Comment queues a comment line (a heartbeat).
func (s *Writer) Comment(text string) error {
	_ = WriteComment(s.buffer(), text)
	return s.spill()
}

// End writes the message that ends a run stream, and flushes.
func (s *Writer) End(runID string) error {
	_ = WriteEnd(s.buffer(), runID)
	return s.Flush()
}

// ErrorEvent is the name of the message that ends a stream the server
// cannot go on with, such as one whose token expired. Its data is the
// API's error object, {"error": {"code": "...", "message": "..."}}; it
// carries no id, so a client's Last-Event-ID stays the last event's.
const ErrorEvent = "error"

// Error writes an error message and flushes; the stream should end after
// it.
func (s *Writer) Error(code, message string) error {
	data, _ := json.Marshal(map[string]any{"error": map[string]string{"code": code, "message": message}})
	if err := s.EventData("", ErrorEvent, data); err != nil {
		return err
	}
	return s.Flush()
}

// Flush writes what is queued and sends it to the client (net/http
// buffers a response otherwise).
func (s *Writer) Flush() error {
	if err := s.writeQueued(); err != nil {
		return err
	}
	if err := s.bounded(s.rc.Flush); err != nil {
		if errors.Is(err, http.ErrNotSupported) {
			return errors.New("ssewire: the ResponseWriter cannot flush, so events would not reach the client as they happen")
		}
		return err
	}
	return nil
}

// batchBuffers hold queued frames: a stream between deliveries holds
// none.
var batchBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func (s *Writer) buffer() *bytes.Buffer {
	if s.buf == nil {
		s.buf = batchBuffers.Get().(*bytes.Buffer)
		s.buf.Reset()
	}
	return s.buf
}

// spill writes the queue once it holds BatchSize bytes.
func (s *Writer) spill() error {
	if s.buf != nil && s.buf.Len() >= BatchSize {
		return s.writeQueued()
	}
	return nil
}

func (s *Writer) writeQueued() error {
	if s.buf == nil {
		return nil
	}
	b := s.buf
	s.buf = nil
	defer func() {
		if b.Cap() <= 1<<20 {
			batchBuffers.Put(b)
		}
	}()
	if b.Len() == 0 {
		return nil
	}
	_, err := s.write(b.Bytes())
	return err
}

// write writes p to the client under the write deadline.
func (s *Writer) write(p []byte) (n int, err error) {
	err = s.bounded(func() (err error) {
		n, err = s.w.Write(p)
		return err
	})
	return n, err
}

// bounded runs one write or flush under the write timeout (see package
// writedeadline): it bounds how long one write waits for the client,
// never how long the stream lasts.
func (s *Writer) bounded(write func() error) error {
	return s.watchdog.Do(write)
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
