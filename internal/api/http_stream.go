package api

import (
	"bytes"
	"net/http"
	"net/url"
	"strings"

	"github.com/runnel-dev/runnel/internal/apierr"
	"github.com/runnel-dev/runnel/internal/engine"
	"github.com/runnel-dev/runnel/internal/eventlog"
	"github.com/runnel-dev/runnel/internal/ssewire"
	"github.com/runnel-dev/runnel/internal/store"
)

// streamStart parses where an SSE stream starts and which types it keeps:
// the Last-Event-ID header (sent by EventSource when it reconnects) wins
// over ?after=, which wins over ?from=start|now.
func streamStart(h http.Header, q url.Values) (from string, types []string, err error) {
	from = q.Get("from")
	switch from {
	case "", "start", "now":
	default:
		return "", nil, apierr.New(apierr.InvalidArgument, "invalid from %q: want start or now (resume with ?after=POSITION or Last-Event-ID)", from)
	}
	if after := q.Get("after"); after != "" {
		from = after
	}
	if id := strings.TrimSpace(h.Get("Last-Event-ID")); id != "" {
		from = id
	}
	if t := q.Get("types"); t != "" {
		for _, typ := range strings.Split(t, ",") {
			if typ = strings.TrimSpace(typ); typ != "" {
				types = append(types, typ)
			}
		}
	}
	return from, types, nil
}

// streamRun serves GET /api/v1/runs/{runId}/stream as Server-Sent Events.
func (h *HTTP) streamRun(w http.ResponseWriter, r *http.Request, p engine.Principal) {
	runID := r.PathValue("runId")
	if _, err := h.readableRun(r, p, runID); err != nil {
		h.writeError(w, r, err)
		return
	}
	q, err := parseQuery(r.URL.RawQuery)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	from, types, err := streamStart(r.Header, q)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	sw := newSSEWriter(w, h.engine.Codec(), h.frames)
	err = h.engine.Subscribe(r.Context(), engine.SubscribeParams{
		TenantID: p.TenantID, RunID: runID, From: from, Types: types, Principal: p,
	}, sw.deliver)
	switch {
	case err == nil:
		sw.end(runID)
	case !sw.started:
		h.writeError(w, r, err)
	default:
		// Mid-stream (client gone, engine stopping): the client reconnects
		// with Last-Event-ID and resumes.
	}
}

// sseWriter writes subscription batches as SSE frames, one flush per batch
// (so every event leaves at once, and a burst leaves in one write).
type sseWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	codec   eventlog.Codec
	frames  *frameCache
	started bool
}

func newSSEWriter(w http.ResponseWriter, codec eventlog.Codec, frames *frameCache) *sseWriter {
	return &sseWriter{w: w, rc: http.NewResponseController(w), codec: codec, frames: frames}
}

// write sends what fill writes in one Write and flushes it to the client.
// The buffer is pooled: an idle subscriber holds none.
func (s *sseWriter) write(fill func(b *bytes.Buffer) error) error {
	b := batchBuffers.Get().(*bytes.Buffer)
	b.Reset()
	defer func() {
		if b.Cap() <= 1<<20 {
			batchBuffers.Put(b)
		}
	}()
	if err := fill(b); err != nil {
		return err
	}
	if _, err := s.w.Write(b.Bytes()); err != nil {
		return err
	}
	return s.rc.Flush()
}

func (s *sseWriter) deliver(events []store.Event, pos int64) error {
	if !s.started {
		// The subscription is open: send the headers now, so the client
		// knows it is connected before the first event.
		hdr := s.w.Header()
		hdr.Set("Content-Type", "text/event-stream")
		hdr.Set("Cache-Control", "no-cache")
		hdr.Set("Connection", "keep-alive")
		hdr.Set("X-Accel-Buffering", "no")
		s.w.WriteHeader(http.StatusOK)
		s.started = true
	}
	return s.write(func(b *bytes.Buffer) error {
		if len(events) == 0 {
			// First message or heartbeat: a comment keeps proxies and the
			// client's idle timers from closing the stream.
			return ssewire.WriteComment(b, "position "+s.codec.Encode(pos))
		}
		for _, ev := range events {
			f, err := s.frames.frame(s.codec, ev)
			if err != nil {
				return err
			}
			b.Write(f)
		}
		return nil
	})
}

func (s *sseWriter) end(runID string) {
	if !s.started {
		_ = s.deliver(nil, 0)
	}
	_ = s.write(func(b *bytes.Buffer) error { return ssewire.WriteEnd(b, runID) })
}
