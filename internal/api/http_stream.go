package api

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/runnel-dev/runnel/internal/apierr"
	"github.com/runnel-dev/runnel/internal/engine"
	"github.com/runnel-dev/runnel/internal/eventlog"
	"github.com/runnel-dev/runnel/internal/ssewire"
	"github.com/runnel-dev/runnel/internal/store"
)

// streamStart parses where an SSE stream starts and which types it keeps:
// the Last-Event-ID header (sent by EventSource when it reconnects) wins
// over ?after=, which wins over ?from=start|now|latest.
func streamStart(h http.Header, q url.Values) (from string, types []string, err error) {
	from = q.Get("from")
	switch from {
	case "", "start", "now", engine.FromLatest:
	default:
		return "", nil, apierr.New(apierr.InvalidArgument, "invalid from %q: want start, now or latest (resume with ?after=POSITION or Last-Event-ID)", from)
	}
	if after := q.Get("after"); after != "" {
		from = after
	}
	if id := strings.TrimSpace(h.Get("Last-Event-ID")); id != "" {
		from = id
	}
	types = splitList(q.Get("types"))
	return from, types, nil
}

// splitList splits a comma-separated query value, dropping empty items.
func splitList(v string) []string {
	var out []string
	for _, item := range strings.Split(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// streamRun serves GET /api/v1/runs/{runId}/stream as Server-Sent Events.
func (h *HTTP) streamRun(w http.ResponseWriter, r *http.Request, p engine.Principal) {
	runID := r.PathValue("runId")
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
	params := engine.SubscribeParams{
		TenantID: p.TenantID, RunID: runID, From: from, Types: types, Streams: splitList(q.Get("streams")), Principal: p,
	}
	h.serveSSE(w, r, newSSEWriter(w, h.engine.Codec(), h.frames, h.cfg.WriteTimeout),
		func(ctx context.Context, deliver eventlog.Deliver) error {
			return h.engine.Subscribe(ctx, params, deliver)
		},
		func(sw *sseWriter) { sw.end(runID) })
}

// sseWriter writes subscription batches as SSE frames through the one SSE
// writer (ssewire.Writer), one flush per batch (so every event leaves at
// once, and a burst leaves in few writes). Every write has a deadline: a
// client that stops reading is dropped, and resumes later from its last
// position.
type sseWriter struct {
	out    *ssewire.Writer
	codec  eventlog.Codec
	frames *frameCache
	batch  [][]byte // the frames of the batch being written, reused
	// beforeStart, when set, runs once before the headers are sent (see
	// serveSSE).
	beforeStart func()
}

func newSSEWriter(w http.ResponseWriter, codec eventlog.Codec, frames *frameCache, writeTimeout time.Duration) *sseWriter {
	return &sseWriter{out: ssewire.NewWriter(w, writeTimeout), codec: codec, frames: frames}
}

func (s *sseWriter) started() bool { return s.out.Started() }

func (s *sseWriter) deliver(events []store.Event, pos int64) error {
	if !s.out.Started() {
		if s.beforeStart != nil {
			s.beforeStart()
			s.beforeStart = nil
		}
		// The subscription is open: send the headers now, so the client
		// knows it is connected before the first event.
		if err := s.out.Start(0); err != nil {
			return err
		}
	}
	if len(events) == 0 {
		// First message or heartbeat: a comment keeps proxies and the
		// client's idle timers from closing the stream.
		if err := s.out.Comment("position " + s.codec.Encode(pos)); err != nil {
			return err
		}
	}
	for len(events) > 0 {
		// Runs of events small enough to cache, then one too large to
		// cache or to hold encoded, streamed in pieces.
		n := 0
		for n < len(events) && !(events[n].Type == store.EventStepStream && len(events[n].Payload) > ssewire.ChunkSize) {
			n++
		}
		if n > 0 {
			var err error
			if s.batch, err = s.frames.batch(s.codec, events[:n], s.batch); err != nil {
				return err
			}
			for _, f := range s.batch {
				if err := s.out.Frame(f); err != nil {
					return err
				}
			}
			clear(s.batch) // the frames are the cache's: hold none between batches
			events = events[n:]
			continue
		}
		if err := s.out.Event(wireEvent(s.codec, events[0])); err != nil {
			return err
		}
		events = events[1:]
	}
	return s.out.Flush()
}

// fail ends a stream that had started. When its token expired, the client
// is told so (an `event: error` message with code unauthenticated), so it
// gets a new token and resumes from its last position. Otherwise (client
// gone, engine stopping) the stream just closes: the client reconnects
// with Last-Event-ID and resumes.
func (s *sseWriter) fail(err error) {
	if apierr.CodeOf(err) == apierr.Unauthenticated {
		_ = s.out.Error(string(apierr.Unauthenticated), apierr.Message(err))
	}
}

func (s *sseWriter) end(runID string) {
	if !s.out.Started() {
		_ = s.deliver(nil, 0)
	}
	_ = s.out.End(runID)
}
