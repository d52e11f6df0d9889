package api

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/runnel-dev/runnel/internal/apierr"
	"github.com/runnel-dev/runnel/internal/engine"
	"github.com/runnel-dev/runnel/internal/eventlog"
	"github.com/runnel-dev/runnel/internal/ssewire"
	"github.com/runnel-dev/runnel/internal/store"
)

// The Durable Streams protocol (durable-streams/durable-streams,
// PROTOCOL.md) on standalone streams, under DurablePrefix: PUT creates,
// POST appends or closes, GET reads (catch-up, long-poll, SSE), HEAD
// describes, DELETE deletes. Offsets are log positions, zero-padded to 20
// digits and followed by "_" and 16 zeros (room for a sub-position) so that
// they sort as strings; "-1" is the start, "now" the tail.
// Auth is the API's (bearer or ?token=); a stream of another tenant, or one
// a token may not see, is 404.

// DurablePrefix is where standalone durable streams are served.
const DurablePrefix = "/v1/stream/"

const (
	durableMaxBody     = 8 << 20
	durableReadBytes   = 1 << 20
	durableLongPoll    = 10 * time.Second
	durableSSELifetime = 60 * time.Second
	durableMaxName     = 512
)

var cursorEpoch = time.Date(2024, 10, 9, 0, 0, 0, 0, time.UTC)

func (h *HTTP) mountDurable(mux *http.ServeMux) {
	mux.Handle(DurablePrefix+"{name...}", h.durableHeaders(h.durableCORS(h.authenticated(h.durable))))
	mux.Handle(RunStreamPath, h.durableHeaders(h.durableCORS(h.authenticated(h.runStream))))
	mux.Handle(RunNamedStreamPath, h.durableHeaders(h.durableCORS(h.authenticated(h.runStream))))
}

// durableCORS applies the configured origins (--cors-origin) to the
// protocol's routes, with the protocol's methods and headers. Preflights
// carry no token and get no stream data.
func (h *HTTP) durableCORS(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		allowed := origin != "" && (slices.Contains(h.cfg.CORSOrigins, origin) || slices.Contains(h.cfg.CORSOrigins, "*"))
		if origin != "" {
			w.Header().Add("Vary", "Origin")
		}
		if allowed {
			w.Header().Set("Access-Control-Allow-Origin", origin)
			w.Header().Set("Access-Control-Expose-Headers", "Content-Type, Retry-After, ETag, Location, Stream-Next-Offset, Stream-Cursor, "+
				"Stream-Up-To-Date, Stream-Closed, Stream-TTL, Stream-Expires-At, Stream-Sse-Data-Encoding, "+
				"Producer-Epoch, Producer-Seq, Producer-Expected-Seq, Producer-Received-Seq")
		}
		if r.Method == http.MethodOptions {
			if !allowed {
				durableError(w, http.StatusForbidden, fmt.Sprintf("origin %q is not allowed (see --cors-origin)", origin))
				return
			}
			w.Header().Set("Access-Control-Allow-Methods", "GET, HEAD, PUT, POST, DELETE, OPTIONS")
			w.Header().Set("Access-Control-Allow-Headers", "Authorization, Content-Type, If-None-Match, Stream-TTL, Stream-Expires-At, "+
				"Stream-Closed, Stream-Seq, Producer-Id, Producer-Epoch, Producer-Seq")
			w.Header().Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// durableHeaders sets the browser security headers of every protocol
// response, errors included.
func (h *HTTP) durableHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Cross-Origin-Resource-Policy", "cross-origin")
		next.ServeHTTP(w, r)
	})
}

func (h *HTTP) durable(w http.ResponseWriter, r *http.Request, p engine.Principal) {
	name := r.PathValue("name")
	if name == "" || len(name) > durableMaxName {
		durableError(w, http.StatusBadRequest, "a stream name of 1 to 512 bytes is needed after "+DurablePrefix)
		return
	}
	if !p.CanWrite() {
		// A browser token reads the one stream it was minted for.
		if !p.CanReadDurable(name) {
			durableError(w, http.StatusNotFound, "no stream "+name)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			durableError(w, http.StatusForbidden, "a browser token reads its stream; it cannot change it")
			return
		}
	}
	switch r.Method {
	case http.MethodPut:
		h.durableCreate(w, r, p, name)
	case http.MethodPost:
		h.durableAppend(w, r, p, name)
	case http.MethodGet:
		h.durableRead(w, r, h.standaloneSource(p, name), name)
	case http.MethodHead:
		h.durableHead(w, r, p, name)
	case http.MethodDelete:
		out, err := h.engine.DeleteDurableStream(r.Context(), p, name)
		switch {
		case err != nil:
			h.writeError(w, r, err)
		case out == engine.DurableNotFound:
			durableError(w, http.StatusNotFound, "no stream "+name)
		case out == engine.DurableGone:
			durableError(w, http.StatusGone, "stream "+name+" was deleted")
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	default:
		w.Header().Set("Allow", "GET, HEAD, PUT, POST, DELETE")
		durableError(w, http.StatusMethodNotAllowed, "method "+r.Method+" is not part of the protocol")
	}
}

func durableError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, msg+"\n")
}

// FormatOffset renders a log position as a protocol offset.
func FormatOffset(pos int64) string { return fmt.Sprintf("%016d_0000000000000000", pos) }

var offsetRE = regexp.MustCompile(`^[0-9]{16}_0{16}$`)

// parseOffset: "-1" or absent is the start (0), "now" the tail.
func parseOffset(q string, present bool, tail int64) (int64, bool, error) {
	switch {
	case !present || q == "-1":
		return 0, false, nil
	case q == "now":
		return tail, true, nil
	case offsetRE.MatchString(q):
		n, err := strconv.ParseInt(q[:16], 10, 64)
		if err != nil {
			return 0, false, fmt.Errorf("offset %q is out of range", q)
		}
		return n, false, nil
	}
	return 0, false, fmt.Errorf("offset %q is not an offset this server returned, -1 or now", q)
}

func isJSONType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && strings.EqualFold(mt, "application/json")
}

func isTextType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && (strings.HasPrefix(strings.ToLower(mt), "text/") || strings.EqualFold(mt, "application/json"))
}

// closedHeader: Stream-Closed counts only when it is "true", any case.
func closedHeader(r *http.Request) bool {
	return strings.EqualFold(strings.TrimSpace(r.Header.Get("Stream-Closed")), "true")
}

var ttlRE = regexp.MustCompile(`^(0|[1-9][0-9]{0,9})$`)

// splitMessages turns a body into the messages to store: one for bytes
// and text; for JSON, the elements of a top-level array (one level), or
// the value itself.
func splitMessages(body []byte, jsonMode, allowEmptyArray bool) ([][]byte, error) {
	if len(body) == 0 {
		return nil, nil
	}
	if !jsonMode {
		return [][]byte{body}, nil
	}
	if !json.Valid(body) {
		return nil, errors.New("the body is not valid JSON")
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) > 0 && trimmed[0] == '[' {
		var elems []json.RawMessage
		if err := json.Unmarshal(trimmed, &elems); err != nil {
			return nil, fmt.Errorf("the body is not a valid JSON array: %v", err)
		}
		if len(elems) == 0 && !allowEmptyArray {
			return nil, errors.New("an empty JSON array appends nothing")
		}
		out := make([][]byte, len(elems))
		for i, e := range elems {
			out[i] = compactJSON(e)
		}
		return out, nil
	}
	return [][]byte{compactJSON(trimmed)}, nil
}

func compactJSON(b []byte) []byte {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return b
	}
	return buf.Bytes()
}

func readBody(w http.ResponseWriter, r *http.Request) ([]byte, int, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, durableMaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("the body is over %d bytes", durableMaxBody)
		}
		return nil, http.StatusBadRequest, fmt.Errorf("reading the body: %v", err)
	}
	return body, 0, nil
}

func setStreamHeaders(w http.ResponseWriter, s store.DurableStream, tail int64) {
	w.Header().Set("Stream-Next-Offset", FormatOffset(tail))
	if s.Closed {
		w.Header().Set("Stream-Closed", "true")
	}
}

func (h *HTTP) durableCreate(w http.ResponseWriter, r *http.Request, p engine.Principal, name string) {
	c := engine.DurableCreate{Name: name, ContentType: r.Header.Get("Content-Type"), Closed: closedHeader(r)}
	c.ContentTypeSet = c.ContentType != ""
	from, hasFrom := r.Header.Get("Stream-Forked-From"), len(r.Header.Values("Stream-Forked-From")) > 0
	offHdr, hasOff := r.Header.Get("Stream-Fork-Offset"), len(r.Header.Values("Stream-Fork-Offset")) > 0
	subHdr, hasSub := r.Header.Get("Stream-Fork-Sub-Offset"), len(r.Header.Values("Stream-Fork-Sub-Offset")) > 0
	if !hasFrom && (hasOff || hasSub) {
		durableError(w, http.StatusBadRequest, "Stream-Fork-Offset and Stream-Fork-Sub-Offset need Stream-Forked-From")
		return
	}
	if hasFrom {
		src, ok := strings.CutPrefix(from, DurablePrefix)
		if !ok || src == "" {
			durableError(w, http.StatusNotFound, fmt.Sprintf("Stream-Forked-From %q is not a stream of this server (%s...)", from, DurablePrefix))
			return
		}
		f := &engine.DurableFork{SourceName: src}
		if hasOff {
			if !offsetRE.MatchString(offHdr) {
				durableError(w, http.StatusBadRequest, fmt.Sprintf("Stream-Fork-Offset %q is not an offset this server returned", offHdr))
				return
			}
			f.Offset, _ = strconv.ParseInt(offHdr[:16], 10, 64)
			f.HasOffset = true
		}
		if hasSub {
			if !producerNumRE.MatchString(subHdr) {
				durableError(w, http.StatusBadRequest, fmt.Sprintf("Stream-Fork-Sub-Offset %q is not a non-negative integer", subHdr))
				return
			}
			f.SubOffset, _ = strconv.ParseInt(subHdr, 10, 64)
			if f.SubOffset > 0 && !hasOff {
				durableError(w, http.StatusBadRequest, "Stream-Fork-Sub-Offset needs Stream-Fork-Offset")
				return
			}
		}
		c.Fork = f
	}
	if c.ContentType == "" {
		c.ContentType = "application/octet-stream"
	}
	if _, _, err := mime.ParseMediaType(c.ContentType); err != nil {
		durableError(w, http.StatusBadRequest, fmt.Sprintf("Content-Type %q is not a media type", c.ContentType))
		return
	}
	ttl, hasTTL := r.Header.Get("Stream-TTL"), r.Header.Get("Stream-TTL") != ""
	exp, hasExp := r.Header.Get("Stream-Expires-At"), r.Header.Get("Stream-Expires-At") != ""
	if hasTTL && hasExp {
		durableError(w, http.StatusBadRequest, "Stream-TTL and Stream-Expires-At cannot both be set")
		return
	}
	if hasTTL {
		if !ttlRE.MatchString(ttl) {
			durableError(w, http.StatusBadRequest, fmt.Sprintf("Stream-TTL %q is not a whole number of seconds", ttl))
			return
		}
		c.TTLSeconds, _ = strconv.ParseInt(ttl, 10, 64)
	}
	if hasExp {
		t, err := time.Parse(time.RFC3339Nano, exp)
		if err != nil {
			durableError(w, http.StatusBadRequest, fmt.Sprintf("Stream-Expires-At %q is not an RFC 3339 time", exp))
			return
		}
		c.ExpiresAt = t.UTC().Truncate(time.Microsecond)
	}
	body, status, err := readBody(w, r)
	if err != nil {
		durableError(w, status, err.Error())
		return
	}
	ct := c.ContentType
	if c.Fork != nil && !c.ContentTypeSet {
		// The fork's type is its source's: look it up to frame the body.
		if src, _, err := h.engine.GetDurableStream(r.Context(), p, c.Fork.SourceName, false); err == nil {
			ct = src.ContentType
		}
	}
	if c.Messages, err = splitMessages(body, isJSONType(ct), true); err != nil {
		durableError(w, http.StatusBadRequest, err.Error())
		return
	}
	res, err := h.engine.CreateDurableStream(r.Context(), p, c)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	switch res.Outcome {
	case engine.DurableNotFound:
		durableError(w, http.StatusNotFound, strings.TrimSpace("no stream "+name+" "+res.Reason))
	case engine.DurableConflict:
		durableError(w, http.StatusConflict, res.Reason)
	case engine.DurableBadRequest:
		durableError(w, http.StatusBadRequest, res.Reason)
	case engine.DurableCreated, engine.DurableExists:
		w.Header().Set("Content-Type", res.Stream.ContentType)
		setStreamHeaders(w, res.Stream, res.Tail)
		if res.Outcome == engine.DurableCreated {
			scheme := "http"
			if r.TLS != nil {
				scheme = "https"
			}
			w.Header().Set("Location", scheme+"://"+r.Host+r.URL.EscapedPath())
			w.WriteHeader(http.StatusCreated)
		} else {
			w.WriteHeader(http.StatusOK)
		}
	}
}

var producerNumRE = regexp.MustCompile(`^(0|[1-9][0-9]{0,15})$`)

func parseProducer(r *http.Request) (*engine.Producer, error) {
	id, epoch, seq := r.Header.Values("Producer-Id"), r.Header.Get("Producer-Epoch"), r.Header.Get("Producer-Seq")
	n := 0
	for _, present := range []bool{len(id) > 0, r.Header.Values("Producer-Epoch") != nil, r.Header.Values("Producer-Seq") != nil} {
		if present {
			n++
		}
	}
	if n == 0 {
		return nil, nil
	}
	if n != 3 {
		return nil, errors.New("Producer-Id, Producer-Epoch and Producer-Seq must be sent together")
	}
	if id[0] == "" {
		return nil, errors.New("Producer-Id is empty")
	}
	pr := &engine.Producer{ID: id[0]}
	for _, f := range []struct {
		name, v string
		dst     *int64
	}{{"Producer-Epoch", epoch, &pr.Epoch}, {"Producer-Seq", seq, &pr.Seq}} {
		if !producerNumRE.MatchString(f.v) {
			return nil, fmt.Errorf("%s %q is not a non-negative integer", f.name, f.v)
		}
		v, _ := strconv.ParseInt(f.v, 10, 64)
		if v > 1<<53-1 {
			return nil, fmt.Errorf("%s %q is above 2^53-1", f.name, f.v)
		}
		*f.dst = v
	}
	return pr, nil
}

func (h *HTTP) durableAppend(w http.ResponseWriter, r *http.Request, p engine.Principal, name string) {
	a := engine.DurableAppend{Name: name, ContentType: r.Header.Get("Content-Type"), Close: closedHeader(r), StreamSeq: r.Header.Get("Stream-Seq")}
	pr, err := parseProducer(r)
	if err != nil {
		durableError(w, http.StatusBadRequest, err.Error())
		return
	}
	a.Producer = pr
	body, status, err := readBody(w, r)
	if err != nil {
		durableError(w, status, err.Error())
		return
	}
	if len(body) == 0 && !a.Close {
		durableError(w, http.StatusBadRequest, "an append needs a body (an empty one only with Stream-Closed: true)")
		return
	}
	if len(body) > 0 {
		if a.ContentType == "" {
			durableError(w, http.StatusBadRequest, "an append with a body needs a Content-Type")
			return
		}
		if _, _, err := mime.ParseMediaType(a.ContentType); err != nil {
			durableError(w, http.StatusBadRequest, fmt.Sprintf("Content-Type %q is not a media type", a.ContentType))
			return
		}
	}
	// JSON bodies are checked against the stream's type once known: read
	// it first (a missing stream is 404 before a bad body is 400).
	s, _, err := h.engine.GetDurableStream(r.Context(), p, name, false)
	if errors.Is(err, engine.ErrDurableGone) {
		durableError(w, http.StatusGone, "stream "+name+" was deleted")
		return
	}
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		h.writeError(w, r, err)
		return
	}
	if err == nil && len(body) > 0 && isJSONType(s.ContentType) && sameTypeLoose(s.ContentType, a.ContentType) {
		if a.Messages, err = splitMessages(body, true, false); err != nil {
			durableError(w, http.StatusBadRequest, err.Error())
			return
		}
	} else if len(body) > 0 {
		a.Messages = [][]byte{body}
	}
	res, err := h.engine.AppendDurable(r.Context(), p, a)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	hd := w.Header()
	switch res.Outcome {
	case engine.DurableNotFound:
		durableError(w, http.StatusNotFound, "no stream "+name)
	case engine.DurableGone:
		durableError(w, http.StatusGone, "stream "+name+" was deleted")
	case engine.DurableClosedErr:
		setStreamHeaders(w, res.Stream, res.Tail)
		durableError(w, http.StatusConflict, res.Reason)
	case engine.DurableConflict:
		durableError(w, http.StatusConflict, res.Reason)
	case engine.DurableStaleEpoch:
		hd.Set("Producer-Epoch", strconv.FormatInt(res.ProducerEpoch, 10))
		durableError(w, http.StatusForbidden, "stale producer epoch")
	case engine.DurableSeqGap:
		hd.Set("Producer-Expected-Seq", strconv.FormatInt(res.ExpectedSeq, 10))
		hd.Set("Producer-Received-Seq", strconv.FormatInt(res.ProducerSeq, 10))
		durableError(w, http.StatusConflict, "producer sequence gap")
	case engine.DurableBadEpochSeq:
		durableError(w, http.StatusBadRequest, res.Reason)
	case engine.DurableDuplicate, engine.DurableAppended:
		setStreamHeaders(w, res.Stream, res.Tail)
		if pr != nil {
			hd.Set("Producer-Epoch", strconv.FormatInt(res.ProducerEpoch, 10))
			hd.Set("Producer-Seq", strconv.FormatInt(res.ProducerSeq, 10))
		}
		if res.Outcome == engine.DurableAppended && pr != nil && len(a.Messages) > 0 {
			w.WriteHeader(http.StatusOK)
		} else {
			w.WriteHeader(http.StatusNoContent)
		}
	}
}

func sameTypeLoose(a, b string) bool {
	ma, _, _ := mime.ParseMediaType(a)
	mb, _, _ := mime.ParseMediaType(b)
	return strings.EqualFold(ma, mb)
}

func (h *HTTP) durableHead(w http.ResponseWriter, r *http.Request, p engine.Principal, name string) {
	s, tail, err := h.engine.GetDurableStream(r.Context(), p, name, false)
	if errors.Is(err, store.ErrNotFound) {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	if errors.Is(err, engine.ErrDurableGone) {
		w.WriteHeader(http.StatusGone)
		return
	}
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", s.ContentType)
	w.Header().Set("Cache-Control", "no-store")
	setStreamHeaders(w, s, tail)
	if s.TTLSeconds > 0 {
		w.Header().Set("Stream-TTL", strconv.FormatInt(s.TTLSeconds, 10))
	}
	if !s.ExpiresAt.IsZero() {
		w.Header().Set("Stream-Expires-At", s.ExpiresAt.UTC().Format(time.RFC3339Nano))
	}
	w.WriteHeader(http.StatusOK)
}

// cursor returns the protocol's interval cursor, above the client's.
func cursor(client string) string {
	n := int64(time.Since(cursorEpoch) / (20 * time.Second))
	if c, err := strconv.ParseInt(client, 10, 64); err == nil && c >= n {
		n = c + 1 + rand.Int64N(180)
	}
	return strconv.FormatInt(n, 10)
}

// body renders events as a read's body: a JSON array in JSON mode, the
// bytes concatenated otherwise.
func renderBody(events []store.Event, jsonMode bool) []byte {
	var b bytes.Buffer
	if jsonMode {
		b.WriteByte('[')
	}
	for i, ev := range events {
		if jsonMode && i > 0 {
			b.WriteByte(',')
		}
		b.Write(ev.Payload)
	}
	if jsonMode {
		b.WriteByte(']')
	}
	return b.Bytes()
}

// protoSource is what the protocol's read path reads: a standalone stream,
// or a run's events (read-only).
type protoSource struct {
	// load returns the stream (Closed: no more data will come) and the
	// position of its last event; store.ErrNotFound or ErrDurableGone.
	load func(ctx context.Context, touch bool) (store.DurableStream, int64, error)
	// read returns a page of messages after a position (Payload: the
	// message's bytes).
	read func(ctx context.Context, s store.DurableStream, after int64) ([]store.Event, error)
}

func (h *HTTP) standaloneSource(p engine.Principal, name string) protoSource {
	return protoSource{
		load: func(ctx context.Context, touch bool) (store.DurableStream, int64, error) {
			return h.engine.GetDurableStream(ctx, p, name, touch)
		},
		read: func(ctx context.Context, s store.DurableStream, after int64) ([]store.Event, error) {
			return h.engine.ReadDurable(ctx, s, after, durableReadBytes)
		},
	}
}

func (h *HTTP) durableRead(w http.ResponseWriter, r *http.Request, src protoSource, name string) {
	q := r.URL.Query()
	live := q.Get("live")
	if live != "" && live != "long-poll" && live != "sse" {
		durableError(w, http.StatusBadRequest, fmt.Sprintf("live=%q: use long-poll or sse", live))
		return
	}
	offs, hasOffset := q["offset"]
	if len(offs) > 1 {
		durableError(w, http.StatusBadRequest, "offset is given more than once")
		return
	}
	if live != "" && !hasOffset {
		durableError(w, http.StatusBadRequest, "live reads need an offset")
		return
	}
	var offStr string
	if hasOffset {
		offStr = offs[0]
		if offStr == "" {
			durableError(w, http.StatusBadRequest, "offset is empty")
			return
		}
	}
	s, tail, err := src.load(r.Context(), true)
	if errors.Is(err, store.ErrNotFound) {
		durableError(w, http.StatusNotFound, "no stream "+name)
		return
	}
	if errors.Is(err, engine.ErrDurableGone) {
		durableError(w, http.StatusGone, "stream "+name+" was deleted")
		return
	}
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	after, isNow, err := parseOffset(offStr, hasOffset, tail)
	if err != nil {
		durableError(w, http.StatusBadRequest, err.Error())
		return
	}
	if live == "sse" {
		h.durableSSE(w, r, src, s, after)
		return
	}
	jsonMode := isJSONType(s.ContentType)
	hd := w.Header()
	var wake <-chan struct{}
	var timeout <-chan time.Time
	if live == "long-poll" {
		wake = h.engine.WaitDurable(s.ID)
		t := time.NewTimer(durableLongPoll)
		defer t.Stop()
		timeout = t.C
	}
	for {
		var events []store.Event
		if !(isNow && live == "") {
			events, err = src.read(r.Context(), s, after)
			if err != nil {
				h.writeError(w, r, err)
				return
			}
		}
		if len(events) > 0 || live == "" || s.Closed {
			next := after
			if len(events) > 0 {
				next = events[len(events)-1].Position
			}
			if next > tail {
				tail = next
			}
			if len(events) > 0 {
				if _, tail2, err := src.load(r.Context(), false); err == nil && tail2 > tail {
					tail = tail2
				}
			}
			upToDate := next >= tail
			hd.Set("Content-Type", s.ContentType)
			hd.Set("Stream-Next-Offset", FormatOffset(next))
			if upToDate {
				hd.Set("Stream-Up-To-Date", "true")
				if s.Closed {
					hd.Set("Stream-Closed", "true")
				}
			}
			if live != "" && !(s.Closed && upToDate) {
				hd.Set("Stream-Cursor", cursor(q.Get("cursor")))
			}
			if isNow {
				hd.Set("Cache-Control", "no-store")
			} else {
				etag := fmt.Sprintf(`"%s:%s:%s`, s.ID, FormatOffset(after), FormatOffset(next))
				if s.Closed && upToDate {
					etag += ":c"
				}
				etag += `"`
				hd.Set("ETag", etag)
				hd.Set("Cache-Control", "private, max-age=60, stale-while-revalidate=300")
				if inm := r.Header.Get("If-None-Match"); inm != "" && inm == etag {
					w.WriteHeader(http.StatusNotModified)
					return
				}
			}
			if live == "long-poll" && len(events) == 0 {
				w.WriteHeader(http.StatusNoContent)
				return
			}
			w.WriteHeader(http.StatusOK)
			if r.Method != http.MethodHead {
				_, _ = w.Write(renderBody(events, jsonMode))
			}
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-timeout:
			hd.Set("Stream-Next-Offset", FormatOffset(after))
			hd.Set("Stream-Up-To-Date", "true")
			hd.Set("Stream-Cursor", cursor(q.Get("cursor")))
			w.WriteHeader(http.StatusNoContent)
			return
		case <-wake:
		}
		wake = h.engine.WaitDurable(s.ID)
		s, tail, err = src.load(r.Context(), false)
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, engine.ErrDurableGone) {
			durableError(w, http.StatusNotFound, "stream "+name+" was deleted")
			return
		}
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		isNow = false
	}
}

func (h *HTTP) durableSSE(w http.ResponseWriter, r *http.Request, src protoSource, s store.DurableStream, after int64) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		durableError(w, http.StatusInternalServerError, "streaming is not supported by this connection")
		return
	}
	jsonMode, text := isJSONType(s.ContentType), isTextType(s.ContentType)
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-cache")
	if !text {
		hd.Set("Stream-Sse-Data-Encoding", "base64")
	}
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	lifetime := time.NewTimer(durableSSELifetime)
	defer lifetime.Stop()
	clientCursor := r.URL.Query().Get("cursor")
	var buf bytes.Buffer
	first := true
	for {
		wake := h.engine.WaitDurable(s.ID)
		events, err := src.read(r.Context(), s, after)
		if err != nil {
			return
		}
		cur, tail, err := src.load(r.Context(), false)
		if err != nil || cur.ID != s.ID {
			return // deleted: end the stream
		}
		s = cur
		if len(events) > 0 || first || (s.Closed && after >= tail) {
			first = false
			buf.Reset()
			if len(events) > 0 {
				after = events[len(events)-1].Position
				buf.WriteString("event: data\n")
				payload := renderBody(events, jsonMode)
				if !text {
					payload = []byte(base64.StdEncoding.EncodeToString(payload))
				}
				// Every line break of SSE (CRLF, LF, CR) starts a new data
				// line, so a payload cannot inject an event or field.
				payload = bytes.ReplaceAll(payload, []byte("\r\n"), []byte("\n"))
				payload = bytes.ReplaceAll(payload, []byte("\r"), []byte("\n"))
				for _, line := range bytes.Split(payload, []byte("\n")) {
					buf.WriteString("data:")
					buf.Write(line)
					buf.WriteByte('\n')
				}
				buf.WriteByte('\n')
			}
			upToDate := after >= tail
			ctrl := map[string]any{"streamNextOffset": FormatOffset(after)}
			closed := s.Closed && upToDate
			if closed {
				ctrl["streamClosed"] = true
				ctrl["upToDate"] = true
			} else {
				ctrl["streamCursor"] = cursor(clientCursor)
				if upToDate {
					ctrl["upToDate"] = true
				}
			}
			cj, _ := json.Marshal(ctrl)
			buf.WriteString("event: control\ndata:")
			buf.Write(cj)
			buf.WriteString("\n\n")
			_ = rc.SetWriteDeadline(time.Now().Add(h.cfg.WriteTimeout))
			if _, err := w.Write(buf.Bytes()); err != nil {
				return
			}
			flusher.Flush()
			if closed {
				return
			}
			if !upToDate {
				continue
			}
		}
		select {
		case <-r.Context().Done():
			return
		case <-lifetime.C:
			return
		case <-wake:
		}
	}
}

// RunStreamPath is where a run's event log is served as a read-only
// durable stream: application/json, one message per event (the SSE API's
// event object), offsets = the events' log positions, closed once the run
// has ended and its last event is read.
const RunStreamPath = "/v1/runs/{runId}/stream"

// RunNamedStreamPath serves one named stream of a run ("default" the
// unnamed one) as a read-only durable stream: its step.stream events, as
// on RunStreamPath, closed once the run has ended and they are all read.
const RunNamedStreamPath = "/v1/runs/{runId}/streams/{stream}"

func (h *HTTP) runSource(r *http.Request, p engine.Principal, runID string) protoSource {
	if r.PathValue("stream") != "" {
		return h.runNamedSource(r, p, runID, r.PathValue("stream"))
	}
	codec := h.engine.Codec()
	return protoSource{
		load: func(ctx context.Context, _ bool) (store.DurableStream, int64, error) {
			view, err := h.engine.ReadRun(r.Context(), p, runID)
			if err != nil {
				if apierr.CodeOf(codeStoreErr(err)) == apierr.NotFound {
					return store.DurableStream{}, 0, fmt.Errorf("run %s: %w", runID, store.ErrNotFound)
				}
				return store.DurableStream{}, 0, err
			}
			s := store.DurableStream{ID: runID, TenantID: p.TenantID, Name: runID, ContentType: "application/json", Closed: view.Status.Terminal()}
			tail, err := h.engine.RunStreamTail(ctx, p.TenantID, runID)
			return s, tail, err
		},
		read: func(ctx context.Context, s store.DurableStream, after int64) ([]store.Event, error) {
			evs, err := h.engine.ReadRunStream(ctx, s.TenantID, s.ID, after, durableReadBytes)
			if err != nil {
				return nil, err
			}
			out := make([]store.Event, len(evs))
			for i, ev := range evs {
				msg, err := json.Marshal(ssewire.DataObject(wireEvent(codec, ev)))
				if err != nil {
					return nil, err
				}
				out[i] = store.Event{Position: ev.Position, Payload: msg}
			}
			return out, nil
		},
	}
}

// runNamedSource is a run's named stream: the run's events filtered to the
// stream's step.stream events. A page whose events are all of other
// streams is skipped, so a read returns at least one message unless the
// reader is at the stream's tail.
func (h *HTTP) runNamedSource(r *http.Request, p engine.Principal, runID, name string) protoSource {
	codec := h.engine.Codec()
	stream, nameErr := eventlog.StreamName(name)
	return protoSource{
		load: func(ctx context.Context, _ bool) (store.DurableStream, int64, error) {
			if nameErr != nil {
				return store.DurableStream{}, 0, nameErr
			}
			view, err := h.engine.ReadRun(r.Context(), p, runID)
			if err != nil {
				if apierr.CodeOf(codeStoreErr(err)) == apierr.NotFound {
					return store.DurableStream{}, 0, fmt.Errorf("run %s: %w", runID, store.ErrNotFound)
				}
				return store.DurableStream{}, 0, err
			}
			s := store.DurableStream{ID: runID, TenantID: p.TenantID, Name: runID + "/" + name, ContentType: "application/json", Closed: view.Status.Terminal()}
			tail, err := h.engine.RunNamedStreamTail(ctx, p.TenantID, runID, stream)
			return s, tail, err
		},
		read: func(ctx context.Context, s store.DurableStream, after int64) ([]store.Event, error) {
			for {
				evs, err := h.engine.ReadRunStream(ctx, s.TenantID, s.ID, after, durableReadBytes)
				if err != nil || len(evs) == 0 {
					return nil, err
				}
				var out []store.Event
				for _, ev := range evs {
					if ev.Type != store.EventStepStream || ev.Stream != stream {
						continue
					}
					msg, err := json.Marshal(ssewire.DataObject(wireEvent(codec, ev)))
					if err != nil {
						return nil, err
					}
					out = append(out, store.Event{Position: ev.Position, Payload: msg})
				}
				if len(out) > 0 {
					return out, nil
				}
				after = evs[len(evs)-1].Position
			}
		},
	}
}

func (h *HTTP) runStream(w http.ResponseWriter, r *http.Request, p engine.Principal) {
	switch r.Method {
	case http.MethodGet:
		h.durableRead(w, r, h.runSource(r, p, r.PathValue("runId")), r.PathValue("runId"))
	case http.MethodHead:
		src := h.runSource(r, p, r.PathValue("runId"))
		s, tail, err := src.load(r.Context(), false)
		if errors.Is(err, store.ErrNotFound) {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		w.Header().Set("Content-Type", s.ContentType)
		w.Header().Set("Cache-Control", "no-store")
		setStreamHeaders(w, s, tail)
		w.WriteHeader(http.StatusOK)
	default:
		w.Header().Set("Allow", "GET, HEAD")
		durableError(w, http.StatusMethodNotAllowed, "a run's stream is read-only")
	}
}
