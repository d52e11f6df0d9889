package runnel

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DurableStreams reads and writes the tenant's standalone durable streams: named,
// append-only streams that live outside runs (a chat session that outlives
// one run, a feed several workflows write), stored in the same event log as
// runs with the same durability and ordering, and served over the open
// Durable Streams protocol at /v1/stream/{name}, so that protocol's clients
// read them too. Get it from [Client.Streams]; it works from a step as well.
type DurableStreams struct {
	c *Client
}

// Streams returns the client of the tenant's standalone durable streams.
func (c *Client) Streams() *DurableStreams { return &DurableStreams{c: c} }

// ErrStreamNotFound is wrapped by errors about a stream that does not
// exist (or belongs to another tenant).
var ErrStreamNotFound = errors.New("durable stream not found")

// ErrStreamClosed is wrapped by the error of an append to a closed stream.
var ErrStreamClosed = errors.New("durable stream is closed")

// ErrStreamConflict is wrapped by errors the protocol answers with 409 other
// than a closed stream: the stream exists with another configuration or
// content type, or a producer's sequence has a gap.
var ErrStreamConflict = errors.New("durable stream conflict")

// ErrProducerFenced is wrapped by the error of an append from a producer
// epoch older than the stream has seen: another instance of the producer
// took over.
var ErrProducerFenced = errors.New("durable stream producer fenced by a newer epoch")

// StreamOption configures [DurableStreams.Create].
type StreamOption func(*streamConfig)

type streamConfig struct {
	contentType string
	ttl         time.Duration
}

// WithContentType sets a new stream's content type (default
// "application/octet-stream"). With "application/json" every append is a
// JSON value (an array appends each element as a message) and reads return
// a JSON array of the messages.
func WithContentType(ct string) StreamOption {
	return func(c *streamConfig) { c.contentType = ct }
}

// WithTTL deletes the stream after it was not read or written for d.
func WithTTL(d time.Duration) StreamOption {
	return func(c *streamConfig) { c.ttl = d }
}

// Producer makes appends idempotent, as the protocol defines: appends of
// one producer id carry increasing sequence numbers (from 0) within an
// epoch; an append sent again after a lost answer is stored once, and a
// new epoch fences off older instances of the producer.
type Producer struct {
	// ID names the producer (stable across its restarts).
	ID string
	// Epoch is the producer instance's generation; a higher one fences
	// off the older instances.
	Epoch int64
	// Seq numbers the producer's appends within an epoch, from 0.
	Seq int64
}

// AppendOption configures [DurableStreams.Append].
type AppendOption func(*appendConfig)

type appendConfig struct {
	producer *Producer
	close    bool
}

// AsProducer sends the append as p's (idempotent; see [Producer]).
func AsProducer(p Producer) AppendOption {
	return func(c *appendConfig) { c.producer = &p }
}

// AndClose closes the stream with this append: nothing can be appended
// after it.
func AndClose() AppendOption {
	return func(c *appendConfig) { c.close = true }
}

// StreamInfo describes a stream.
type StreamInfo struct {
	// Name is the stream's name in its tenant.
	Name string
	// ContentType is the stream's content type, fixed at creation.
	ContentType string
	// Tail is the offset after the last message: read from it to get only
	// what is appended later.
	Tail string
	// Closed: nothing can be appended any more.
	Closed bool
}

// StreamChunk is what one read returns.
type StreamChunk struct {
	// Data is the messages read: their bytes concatenated, or for a JSON
	// stream a JSON array of them.
	Data []byte
	// Next is the offset to read from next.
	Next string
	// UpToDate: the read reached the stream's tail.
	UpToDate bool
	// Closed: the stream is closed and Data ends it.
	Closed bool
}

// FromBeginning is the offset of a stream's first message.
const FromBeginning = "-1"

func (s *DurableStreams) url(name string, q url.Values) string {
	u := s.c.host + "/v1/stream/" + url.PathEscape(name)
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u
}

func (s *DurableStreams) do(ctx context.Context, method, name string, q url.Values, body []byte, header http.Header) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, s.url(name, q), bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	tok, err := s.c.auth.get(ctx)
	if err != nil {
		return nil, nil, err
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := s.c.http.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, err
	}
	return resp, b, nil
}

// StreamError is the error of a durable stream call the engine refused.
// errors.Is matches it against [ErrStreamNotFound], [ErrStreamClosed],
// [ErrStreamConflict] and [ErrProducerFenced].
type StreamError struct {
	// Op is what was refused ("append to", "read", …) and Name the stream.
	Op, Name string
	Status   int    // the HTTP status
	Message  string // the engine's explanation
	kind     error
}

// Error names the call, the stream, the status and the engine's message.
func (e *StreamError) Error() string {
	return fmt.Sprintf("%s stream %q: %d %s: %s", e.Op, e.Name, e.Status, http.StatusText(e.Status), e.Message)
}

// Unwrap returns the sentinel error of the refusal, if it has one.
func (e *StreamError) Unwrap() error { return e.kind }

// streamError turns a protocol error status into a StreamError.
func streamError(op, name string, resp *http.Response, body []byte) error {
	msg := strings.TrimSpace(string(body))
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	e := &StreamError{Op: op, Name: name, Status: resp.StatusCode, Message: msg}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		e.kind = ErrStreamNotFound
	case resp.StatusCode == http.StatusConflict && resp.Header.Get("Stream-Closed") == "true":
		e.kind = ErrStreamClosed
	case resp.StatusCode == http.StatusConflict:
		e.kind = ErrStreamConflict
	case resp.StatusCode == http.StatusForbidden && resp.Header.Get("Producer-Epoch") != "":
		e.kind = ErrProducerFenced
	}
	return e
}

// Create creates a stream, or does nothing if it exists with the same
// configuration (an error wrapping [ErrStreamConflict] if not).
func (s *DurableStreams) Create(ctx context.Context, name string, opts ...StreamOption) error {
	cfg := streamConfig{contentType: "application/octet-stream"}
	for _, o := range opts {
		o(&cfg)
	}
	h := http.Header{"Content-Type": {cfg.contentType}}
	if cfg.ttl > 0 {
		h.Set("Stream-TTL", strconv.FormatInt(int64(cfg.ttl.Seconds()), 10))
	}
	resp, body, err := s.do(ctx, http.MethodPut, name, nil, nil, h)
	if err != nil {
		return fmt.Errorf("runnel: create stream %q: %w", name, err)
	}
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return streamError("create", name, resp, body)
	}
	return nil
}

// Append appends data as one message (for a JSON stream, a JSON value; an
// array appends each element). It returns the stream's tail offset after
// it.
func (s *DurableStreams) Append(ctx context.Context, name string, data []byte, opts ...AppendOption) (string, error) {
	var cfg appendConfig
	for _, o := range opts {
		o(&cfg)
	}
	// The protocol wants the stream's content type on every append.
	ct, ok := s.c.streamTypes.Load(name)
	if !ok {
		info, err := s.Head(ctx, name)
		if err != nil {
			return "", err
		}
		ct = info.ContentType
		s.c.streamTypes.Store(name, ct)
	}
	h := http.Header{"Content-Type": {ct.(string)}}
	if cfg.producer != nil {
		h.Set("Producer-Id", cfg.producer.ID)
		h.Set("Producer-Epoch", strconv.FormatInt(cfg.producer.Epoch, 10))
		h.Set("Producer-Seq", strconv.FormatInt(cfg.producer.Seq, 10))
	}
	if cfg.close {
		h.Set("Stream-Closed", "true")
	}
	resp, body, err := s.do(ctx, http.MethodPost, name, nil, data, h)
	if err != nil {
		return "", fmt.Errorf("runnel: append to stream %q: %w", name, err)
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNoContent {
		return "", streamError("append to", name, resp, body)
	}
	return resp.Header.Get("Stream-Next-Offset"), nil
}

// Close closes the stream: readers get everything appended, then the end.
// Closing a closed stream is harmless.
func (s *DurableStreams) Close(ctx context.Context, name string) error {
	resp, body, err := s.do(ctx, http.MethodPost, name, nil, nil, http.Header{"Stream-Closed": {"true"}})
	if err != nil {
		return fmt.Errorf("runnel: close stream %q: %w", name, err)
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNoContent {
		return streamError("close", name, resp, body)
	}
	return nil
}

// Delete deletes the stream and its messages.
func (s *DurableStreams) Delete(ctx context.Context, name string) error {
	s.c.streamTypes.Delete(name)
	resp, body, err := s.do(ctx, http.MethodDelete, name, nil, nil, nil)
	if err != nil {
		return fmt.Errorf("runnel: delete stream %q: %w", name, err)
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNoContent {
		return streamError("delete", name, resp, body)
	}
	return nil
}

// Head returns the stream's content type, tail offset and whether it is
// closed.
func (s *DurableStreams) Head(ctx context.Context, name string) (StreamInfo, error) {
	resp, body, err := s.do(ctx, http.MethodHead, name, nil, nil, nil)
	if err != nil {
		return StreamInfo{}, fmt.Errorf("runnel: head of stream %q: %w", name, err)
	}
	if resp.StatusCode != http.StatusOK {
		return StreamInfo{}, streamError("head of", name, resp, body)
	}
	return StreamInfo{
		Name:        name,
		ContentType: resp.Header.Get("Content-Type"),
		Tail:        resp.Header.Get("Stream-Next-Offset"),
		Closed:      resp.Header.Get("Stream-Closed") == "true",
	}, nil
}

// Read reads what the stream holds from offset ([FromBeginning], or a
// Next of an earlier read), without waiting for more.
func (s *DurableStreams) Read(ctx context.Context, name, offset string) (StreamChunk, error) {
	return s.read(ctx, name, url.Values{"offset": {offset}})
}

func (s *DurableStreams) read(ctx context.Context, name string, q url.Values) (StreamChunk, error) {
	resp, body, err := s.do(ctx, http.MethodGet, name, q, nil, nil)
	if err != nil {
		return StreamChunk{}, fmt.Errorf("runnel: read stream %q: %w", name, err)
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNoContent {
		return StreamChunk{}, streamError("read", name, resp, body)
	}
	return StreamChunk{
		Data:     body,
		Next:     resp.Header.Get("Stream-Next-Offset"),
		UpToDate: resp.Header.Get("Stream-Up-To-Date") == "true",
		Closed:   resp.Header.Get("Stream-Closed") == "true",
	}, nil
}

// Follow reads the stream from offset and then follows it live (the
// protocol's long-poll), yielding each chunk that holds messages. It
// resumes from the last offset after a dropped connection or an engine
// restart, and ends after the stream is closed and read to its end. An
// error that retrying cannot cure (no such stream, a bad offset, a refused
// token) is yielded once and ends it, as does ctx's error.
func (s *DurableStreams) Follow(ctx context.Context, name, offset string) iter.Seq2[StreamChunk, error] {
	return func(yield func(StreamChunk, error) bool) {
		bo := newBackoff(listenRetryBase, listenRetryMax)
		live := false
		for {
			q := url.Values{"offset": {offset}}
			if live {
				q.Set("live", "long-poll")
			}
			chunk, err := s.read(ctx, name, q)
			if err != nil {
				if ctx.Err() != nil {
					yield(StreamChunk{}, ctx.Err())
					return
				}
				var se *StreamError
				if errors.As(err, &se) && se.Status < 500 && se.Status != http.StatusTooManyRequests {
					yield(StreamChunk{}, err)
					return
				}
				if !sleep(ctx, bo.next()) {
					yield(StreamChunk{}, ctx.Err())
					return
				}
				continue
			}
			bo.reset()
			if chunk.Next != "" {
				offset = chunk.Next
			}
			if len(chunk.Data) > 0 && !isEmptyJSONArray(chunk.Data) && !yield(chunk, nil) {
				return
			}
			if chunk.Closed && chunk.UpToDate {
				return
			}
			live = chunk.UpToDate
		}
	}
}

func isEmptyJSONArray(b []byte) bool {
	return string(bytes.TrimSpace(b)) == "[]"
}

// List returns the tenant's streams whose name starts with prefix ("" for
// all, at most 1000), by name.
func (s *DurableStreams) List(ctx context.Context, prefix string) ([]StreamInfo, error) {
	u := s.c.host + "/api/v1/streams"
	if prefix != "" {
		u += "?" + url.Values{"prefix": {prefix}}.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	tok, err := s.c.auth.get(ctx)
	if err != nil {
		return nil, err
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := s.c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("runnel: list streams: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("runnel: list streams: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("runnel: list streams: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	var out struct {
		Streams []struct {
			Name, ContentType, TailOffset string
			Closed                        bool
		}
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("runnel: list streams: decode the answer: %w", err)
	}
	infos := make([]StreamInfo, len(out.Streams))
	for i, st := range out.Streams {
		infos[i] = StreamInfo{Name: st.Name, ContentType: st.ContentType, Tail: st.TailOffset, Closed: st.Closed}
	}
	return infos, nil
}
