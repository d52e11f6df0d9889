package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/runnel-dev/runnel/internal/ssewire"
)

// plainSSE is the fan-out limit: a plain Go SSE server, in the bench
// process, sending the frames the engine sends (same format, same 100-byte
// payloads, same rate) to every connection. It keeps the stream in memory
// and does nothing else: one goroutine per connection, one write and flush
// per event, no store, no tokens. What the engine loses against it is what
// its own work costs.
type plainSSE struct {
	srv *http.Server

	mu      sync.Mutex
	history [][]byte // every frame so far, for subscribers joining from the start
	subs    map[chan []byte]struct{}
	ended   bool
	changed chan struct{} // closed and replaced on every frame
}

// ServePlainSSE runs the plain SSE server on addr (`runnel
// bench-sse-server`, a process of its own as the engine is): it emits
// 100-byte events at rate from startAt for d to every connection on "/",
// answers GET /done with what it sent (JSON, once it is done), calls ready
// once listening, and serves until ctx ends.
func ServePlainSSE(ctx context.Context, addr string, rate int, startAt time.Time, d time.Duration, ready func()) error {
	if rate <= 0 || d <= 0 {
		return fmt.Errorf("plain SSE server: want a positive rate and duration")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("plain SSE server: %w", err)
	}
	p := &plainSSE{subs: map[chan []byte]struct{}{}, changed: make(chan struct{})}
	var (
		out     EmitOutput
		emitErr error
	)
	emitted := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", p.serve)
	mux.HandleFunc("GET /done", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-emitted:
		case <-r.Context().Done():
			return
		}
		if emitErr != nil {
			http.Error(w, emitErr.Error(), http.StatusInternalServerError)
			return
		}
		_ = json.NewEncoder(w).Encode(out)
	})
	p.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.srv.Serve(ln) }()
	defer p.close()
	go func() {
		defer close(emitted)
		out, emitErr = p.emit(ctx, startAt, rate, d)
	}()
	ready()
	<-ctx.Done()
	return nil
}

func (p *plainSSE) close() { _ = p.srv.Close() }

// serve sends the history, then every new frame, then the end frame.
func (p *plainSSE) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	fl := w.(http.Flusher)
	fl.Flush()
	next := 0
	for {
		p.mu.Lock()
		frames, ended, changed := p.history[next:], p.ended, p.changed
		p.mu.Unlock()
		// Frames already sent are never changed: reading past the lock is
		// safe, and the frames go out one write each, as a plain server
		// writes them.
		for _, f := range frames {
			if _, err := w.Write(f); err != nil {
				return
			}
			fl.Flush()
		}
		next += len(frames)
		if len(frames) == 0 && ended {
			_ = ssewire.WriteEnd(w, "plain")
			fl.Flush()
			return
		}
		if len(frames) > 0 {
			continue
		}
		select {
		case <-changed:
		case <-r.Context().Done():
			return
		}
	}
}

// publish sends frame to every subscriber.
func (p *plainSSE) publish(frame []byte) {
	p.mu.Lock()
	p.history = append(p.history, frame)
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
}

func (p *plainSSE) end() {
	p.mu.Lock()
	p.ended = true
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
}

// emit publishes 100-byte events at rate from startAt for d, stamped as the
// bench worker stamps them, and returns what it sent.
func (p *plainSSE) emit(ctx context.Context, startAt time.Time, rate int, d time.Duration) (EmitOutput, error) {
	if wait := time.Until(startAt); wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return EmitOutput{}, ctx.Err()
		}
	}
	payload := bytes.Repeat([]byte{'x'}, 100)
	start := time.Now()
	interval := time.Second / time.Duration(rate)
	tick := time.NewTicker(max(interval, time.Millisecond))
	defer tick.Stop()
	var n int64
	for now := start; now.Sub(start) < d; {
		for due := int64(now.Sub(start)/interval) + 1; n < due; {
			n++
			encodeHeader(payload, now.UnixNano(), n)
			data := ssewire.Data(ssewire.Event{RunID: "plain", Workflow: Emit, Type: "step.stream", StepRunID: "plain", Step: "emit", Attempt: 1, Payload: payload, Time: now})
			var b bytes.Buffer
			if err := ssewire.WriteEvent(&b, strconv.FormatInt(n, 10), "step.stream", data); err != nil {
				return EmitOutput{}, err
			}
			p.publish(b.Bytes())
		}
		select {
		case now = <-tick.C:
		case <-ctx.Done():
			return EmitOutput{}, errors.Join(ctx.Err(), errors.New("plain SSE server: stopped"))
		}
	}
	p.end()
	return EmitOutput{Events: n, StartNs: start.UnixNano(), EndNs: time.Now().UnixNano()}, nil
}
