package sse

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"connectrpc.com/connect"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/ssewire"
)

// EndEvent is the name of the message written after the run's terminal
// event: the stream is complete and the client should close it. It is the
// engine's too (GET /api/v1/runs/{runId}/stream).
const EndEvent = ssewire.EndEvent

// DefaultHeartbeat is how often an idle stream gets a comment line, so
// proxies and load balancers, which often drop connections silent for 30 or
// 60 seconds, keep it open.
const DefaultHeartbeat = 15 * time.Second

// confirmWait bounds how long Stream holds the response headers back
// waiting for the engine to confirm the subscription (runnel.OnSubscribed)
// or refuse it. Holding them back lets a refusal (an unknown run, a
// position of another event log, say a Last-Event-ID from another engine)
// be answered with an HTTP status: a 400 or 404 stops EventSource, which
// would otherwise reconnect with the same request forever. A confirmation
// takes one round trip; an engine that gives neither within confirmWait
// is reported unavailable (503). A variable so that tests can shorten it.
var confirmWait = 10 * time.Second

const (
	// writeTimeout bounds each write to the client. It replaces any
	// http.Server.WriteTimeout for this response, which would otherwise cut
	// every stream that lasts longer, and it drops a client that stopped
	// reading instead of blocking on it.
	writeTimeout = time.Minute
	// maxPositionLen bounds a Last-Event-ID or ?after= value: positions are
	// short, and the value is echoed in error messages.
	maxPositionLen = 128
)

// Option configures [Stream].
type Option func(*config)

type config struct {
	types     []runnel.EventType
	streams   []string
	latest    bool
	filters   []func(runnel.Event) bool
	transform func(runnel.Event) (string, any, bool)
	heartbeat time.Duration
	retry     time.Duration
}

// WithTypes sends only events of these types; the engine filters them, so
// the others never reach your backend. The stream still ends with `event:
// end` after the run ends, even if its terminal event is not among the
// types.
func WithTypes(types ...runnel.EventType) Option {
	types = append([]runnel.EventType(nil), types...)
	return func(c *config) { c.types = types }
}

// WithStreams sends the stream events of these named streams only
// ([runnel.DefaultStream] is the unnamed one); the engine filters them.
// Other events are still sent, so the stream still ends with the run.
func WithStreams(names ...string) Option {
	names = append([]string(nil), names...)
	return func(c *config) { c.streams = names }
}

// FromLatest starts a new stream (one without Last-Event-ID or ?after=) at
// the run's newest stream event, that event included, instead of the
// run's start: a late viewer sees the latest state without the replay. A
// reconnecting client still resumes exactly after its last event.
func FromLatest() Option {
	return func(c *config) { c.latest = true }
}

// WithFilter sends only the events for which keep returns true. Several
// filters must all keep an event. Filters run before [WithTransform].
func WithFilter(keep func(runnel.Event) bool) Option {
	return func(c *config) {
		if keep != nil {
			c.filters = append(c.filters, keep)
		}
	}
}

// WithTransform replaces an event's name and data: fn returns the `event:`
// name (empty for EventSource's default "message" event; it must not
// contain a line break), the data, which is encoded with encoding/json
// (pass a json.RawMessage to send JSON you already have), and ok=false to
// skip the event. [Data] returns the default data object, to extend.
//
// The `id:` of each message stays the event's position, so a client that
// reconnects with Last-Event-ID resumes exactly after the last event it
// got, transformed or not. Returning an unencodable value or a name with a
// line break ends the stream with an error.
func WithTransform(fn func(runnel.Event) (event string, data any, ok bool)) Option {
	return func(c *config) { c.transform = fn }
}

// WithHeartbeat sets how long the stream may stay silent before a comment
// line is sent (default [DefaultHeartbeat]; zero or less means the
// default). The timer restarts after every message.
func WithHeartbeat(d time.Duration) Option {
	return func(c *config) { c.heartbeat = d }
}

// WithRetry sends the client an SSE `retry:` field at the start of the
// stream: how long EventSource waits before reconnecting after the
// connection drops (browsers default to about 3 s). Zero or less sends
// none.
func WithRetry(d time.Duration) Option {
	return func(c *config) { c.retry = d }
}

// Data returns the default data object of an event, the one [Stream] sends
// without a transform: runId, workflow, type and timestamp; stepRunId, step
// and attempt for step events; the event's details (output, error) merged
// in; and for step.stream the payload, as text when it is valid UTF-8,
// else base64 with "encoding": "base64". Transforms may add to it or pick
// from it.
func Data(ev runnel.Event) map[string]any {
	return ssewire.DataObject(wireEvent(ev))
}

func wireEvent(ev runnel.Event) ssewire.Event {
	return ssewire.Event{
		Position:  string(ev.Position),
		RunID:     ev.RunID,
		Workflow:  ev.Workflow,
		Type:      string(ev.Type),
		StepRunID: ev.StepRunID,
		Step:      ev.Step,
		Attempt:   ev.Attempt,
		Stream:    ev.Stream,
		Payload:   ev.Payload,
		Data:      ev.Data,
		Time:      ev.Time,
	}
}

// Stream serves the events of run runID, read through c, as Server-Sent
// Events on w, and returns when the stream is over.
//
// It starts at the beginning of the run, or right after the position in
// the request's Last-Event-ID header (which EventSource sends when it
// reconnects) or, without one, its ?after= query parameter. Each event is
// one message, id the event's position, event its type, data one line of
// JSON (see [Data]), flushed at once. An idle stream gets a comment line at
// least every 15 s (see [WithHeartbeat]). After the run's terminal event
// Stream writes an `event: end` message (no id, so the client's
// Last-Event-ID stays the terminal event's) and returns nil.
//
// Errors found before anything is written are answered with an HTTP error
// and a JSON body {"error": {"code": "...", "message": "..."}}, and
// returned: 400 for a malformed or foreign position, 404 for a run the
// engine does not know (or the client's token may not read), 503 when the
// engine is unreachable or does not answer, 502 when the engine refuses
// the backend (a bad token) or fails. Stream holds its headers back until
// the engine confirms the subscription ([runnel.OnSubscribed]) or refuses
// it, so those are answered with a status; an engine that does neither
// within 10 s is answered 503 rather than left to keep the client waiting.
// Once streaming has begun, the subscription rides out a dropped engine
// connection or an engine restart by itself (heartbeats keep the client's
// connection open meanwhile), and an error it cannot cure ends the stream
// and is returned; the client reconnects and resumes.
//
// When the client goes away (the request's context ends) Stream returns
// nil: for SSE that is the normal end of a connection, not a failure.
//
// Stream sets Content-Type: text/event-stream, Cache-Control: no-cache,
// Connection: keep-alive and X-Accel-Buffering: no (so nginx does not buffer
// the stream), and a write deadline for each write, which overrides the
// server's WriteTimeout for this response. w must support flushing, as the
// net/http server's ResponseWriter does; wrap middleware so that
// http.ResponseController can reach it (an Unwrap method).
func Stream(w http.ResponseWriter, r *http.Request, c *runnel.Client, runID string, opts ...Option) error {
	cfg := config{heartbeat: DefaultHeartbeat}
	for _, opt := range opts {
		if opt != nil {
			opt(&cfg)
		}
	}
	if cfg.heartbeat <= 0 {
		cfg.heartbeat = DefaultHeartbeat
	}
	ctx := r.Context()
	if c == nil {
		writeError(w, http.StatusInternalServerError, "internal", "server misconfigured")
		return errors.New("sse: Stream called with a nil *runnel.Client")
	}

	after, err := resumePosition(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_argument", err.Error())
		return err
	}
	// The engine confirms the subscription (or refuses it) before any
	// event: the headers wait for that, not for a guess of how long it
	// takes.
	subscribed := make(chan struct{}, 1)
	subOpts := []runnel.SubscribeOption{runnel.OnSubscribed(func(runnel.Position) {
		select {
		case subscribed <- struct{}{}:
		default:
		}
	})}
	switch {
	case after != "":
		subOpts = append(subOpts, runnel.After(after))
	case cfg.latest:
		subOpts = append(subOpts, runnel.FromLatest())
	}
	if len(cfg.types) > 0 {
		subOpts = append(subOpts, runnel.WithTypes(cfg.types...))
	}
	if len(cfg.streams) > 0 {
		subOpts = append(subOpts, runnel.Streams(cfg.streams...))
	}
	// The subscription runs in its own goroutine so that the loop below can
	// wait for an event, the heartbeat timer and the client at once. The
	// channel holds one event: enough to tell, after a write, whether the
	// next one is already here (then the flush waits for it), and little
	// enough that a slow client holds at most one extra payload in memory.
	subCtx, cancel := context.WithCancel(ctx)
	items := make(chan item, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(items)
		for ev, err := range c.Listener().Stream(subCtx, runID, subOpts...) {
			select {
			case items <- item{ev: ev, err: err}:
			case <-subCtx.Done():
				return
			}
			if err != nil {
				return
			}
		}
		// The iteration ended without an error: the run is over and every
		// event was delivered. Say so explicitly: a closed channel alone
		// could also mean the request's context ended, and the client must
		// not be told `end` then (a server shutting down would make every
		// browser close a stream that has not ended).
		select {
		case items <- item{ended: true}:
		case <-subCtx.Done():
		}
	}()
	defer func() {
		cancel()
		<-done
	}()

	s := &stream{w: w, out: ssewire.NewWriter(w, writeTimeout), cfg: &cfg, runID: runID, subscribed: subscribed}
	err = s.run(ctx, items)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// item is what the subscription goroutine hands over: an event, an error
// that ends the subscription, or the run's end.
type item struct {
	ev    runnel.Event
	err   error
	ended bool
}

// errStopped: the subscription stopped because the request's context
// ended.
var errStopped = errors.New("sse: subscription stopped")

// stream writes one SSE response through the engine's SSE writer, which
// gives every write a deadline (see writeTimeout).
type stream struct {
	w          http.ResponseWriter // for an error answered before the stream starts
	out        *ssewire.Writer
	cfg        *config
	runID      string
	subscribed <-chan struct{} // the engine confirmed the subscription
	dirty      bool            // written since the last flush
}

func (s *stream) run(ctx context.Context, items <-chan item) error {
	// Hold the headers back until the engine confirms or refuses the
	// subscription (see confirmWait).
	wait := time.NewTimer(confirmWait)
	defer wait.Stop()
	var first *item
	select {
	case it, ok := <-items:
		if !ok {
			return errStopped
		}
		if it.err != nil {
			if ctx.Err() == nil {
				status, code, msg := classify(it.err)
				writeError(s.w, status, code, msg)
			}
			return it.err
		}
		first = &it
	case <-s.subscribed:
	case <-wait.C:
		// Neither a confirmation nor a refusal: the engine is unreachable
		// (the subscription keeps retrying it) or overloaded.
		writeError(s.w, http.StatusServiceUnavailable, "unavailable", "the workflow engine is unavailable; try again later")
		return fmt.Errorf("sse: the engine did not confirm the subscription to run %s within %s", s.runID, confirmWait)
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := s.start(); err != nil {
		return err
	}

	heartbeat := time.NewTimer(s.cfg.heartbeat)
	defer heartbeat.Stop()
	// handle writes one item; over is true when the stream is complete.
	// more says another item is already waiting: a replay delivers events
	// faster than they can be written, so the flush waits for the last of
	// a burst, which then leaves in a few writes, and no event ever waits
	// for a flush.
	handle := func(it item, more bool) (over bool, err error) {
		switch {
		case it.err != nil:
			return true, it.err
		case it.ended:
			return true, s.out.End(s.runID)
		}
		if err := s.event(it.ev); err != nil {
			return true, err
		}
		if s.dirty && !more {
			if err := s.flush(); err != nil {
				return true, err
			}
			heartbeat.Reset(s.cfg.heartbeat)
		}
		return false, nil
	}
	if first != nil {
		if over, err := handle(*first, len(items) > 0); over || err != nil {
			return err
		}
	}
	for {
		select {
		case it, ok := <-items:
			if !ok {
				return errStopped
			}
			if over, err := handle(it, len(items) > 0); over || err != nil {
				return err
			}
		case <-heartbeat.C:
			if err := s.out.Comment("heartbeat"); err != nil {
				return err
			}
			if err := s.flush(); err != nil {
				return err
			}
			heartbeat.Reset(s.cfg.heartbeat)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// start sends the headers (and the retry field), so the client knows it
// is connected even before the first event.
func (s *stream) start() error { return s.out.Start(s.cfg.retry) }

// event writes one run event, unless a filter or the transform drops it.
func (s *stream) event(ev runnel.Event) error {
	for _, keep := range s.cfg.filters {
		if !keep(ev) {
			return nil
		}
	}
	s.dirty = true
	if s.cfg.transform == nil {
		return s.out.Event(wireEvent(ev))
	}
	name, v, ok := s.cfg.transform(ev)
	if !ok {
		return nil
	}
	// encoding/json never writes a raw line break (it escapes them in
	// strings and compacts json.RawMessage), so the data stays one line;
	// WriteEvent refuses one anyway rather than break the framing.
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("sse: encode transformed %s event at %s: %w", ev.Type, ev.Position, err)
	}
	return s.out.EventData(string(ev.Position), name, data)
}

// flush sends what was written.
func (s *stream) flush() error {
	s.dirty = false
	return s.out.Flush()
}

// resumePosition returns where the client resumes: the Last-Event-ID header,
// which EventSource sends when it reconnects and which is therefore newer
// than the URL it was opened with, else ?after=, else "" (from the start).
func resumePosition(r *http.Request) (runnel.Position, error) {
	if id := r.Header.Get("Last-Event-ID"); strings.TrimSpace(id) != "" {
		p, err := parsePosition(id)
		if err != nil {
			return "", fmt.Errorf("invalid Last-Event-ID: %w", err)
		}
		return p, nil
	}
	after, err := queryParam(r.URL.RawQuery, "after")
	if err != nil {
		return "", err
	}
	if strings.TrimSpace(after) != "" {
		p, err := parsePosition(after)
		if err != nil {
			return "", fmt.Errorf("invalid after: %w", err)
		}
		return p, nil
	}
	return "", nil
}

// queryParam returns the first value of the query parameter name. Unlike
// url.Values, it refuses a pair for name that url.ParseQuery would drop
// (one holding ';', or a bad %-escape), so ?after=X;Y is an error rather
// than a silent replay from the start; other parameters (the backend's own)
// are left alone.
func queryParam(rawQuery, name string) (string, error) {
	for rawQuery != "" {
		var pair string
		pair, rawQuery, _ = strings.Cut(rawQuery, "&")
		rawKey, rawValue, _ := strings.Cut(pair, "=")
		key, err := url.QueryUnescape(strings.Split(rawKey, ";")[0])
		if err != nil || key != name {
			continue
		}
		if strings.Contains(pair, ";") {
			return "", fmt.Errorf("invalid %s: ';' does not separate query parameters (use '&')", name)
		}
		value, err := url.QueryUnescape(rawValue)
		if err != nil {
			return "", fmt.Errorf("invalid %s: bad %%-escape", name)
		}
		return value, nil
	}
	return "", nil
}

// parsePosition checks a position sent by a client. Positions are opaque
// to the SDK, so only what no position can be is refused here (too long,
// spaces, control or non-ASCII characters); the engine refuses the rest
// with InvalidArgument, which Stream also answers with 400.
func parsePosition(s string) (runnel.Position, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", errors.New("empty position")
	}
	if len(s) > maxPositionLen {
		return "", fmt.Errorf("position longer than %d bytes", maxPositionLen)
	}
	for i := 0; i < len(s); i++ {
		if b := s[i]; b <= ' ' || b >= 0x7f {
			return "", fmt.Errorf("position %q: want the id of a received event", s)
		}
	}
	return runnel.Position(s), nil
}

// classify maps an error from the engine to an HTTP status, an error code
// and a message for the client. Details of server-side failures stay out
// of the message: the handler gets the error itself to log.
func classify(err error) (status int, code, msg string) {
	var ce *connect.Error
	hasCE := errors.As(err, &ce)
	switch connect.CodeOf(err) {
	case connect.CodeInvalidArgument:
		m := "invalid request"
		if hasCE {
			m = ce.Message()
		}
		return http.StatusBadRequest, "invalid_argument", m
	case connect.CodeNotFound:
		return http.StatusNotFound, "not_found", "unknown run"
	case connect.CodeUnavailable, connect.CodeDeadlineExceeded, connect.CodeResourceExhausted, connect.CodeAborted:
		return http.StatusServiceUnavailable, "unavailable", "the workflow engine is unavailable; try again later"
	case connect.CodeUnauthenticated, connect.CodePermissionDenied:
		return http.StatusBadGateway, "bad_gateway", "the workflow engine refused this server's credentials"
	case connect.CodeUnknown, connect.CodeInternal, connect.CodeCanceled:
		if !connect.IsWireError(err) {
			// Not the engine's answer: the connection failed.
			return http.StatusServiceUnavailable, "unavailable", "the workflow engine is unreachable; try again later"
		}
	}
	return http.StatusBadGateway, "bad_gateway", "the workflow engine failed"
}

// writeError answers with {"error": {"code", "message"}}.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
}
