package runnel

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	runnelv1 "github.com/runnel-dev/runnel/internal/gen/runnel/v1"
)

// MaxPayloadSize is the largest payload one [Context.PutStream] call may
// carry: 4 MiB.
const MaxPayloadSize = 4 << 20

// ErrPayloadTooLarge is wrapped by the error [Context.PutStream] returns for
// a payload over [MaxPayloadSize]. Nothing is sent, and the step may go on.
var ErrPayloadTooLarge = errors.New("stream payload exceeds the 4 MiB limit")

// payloadTooLargeError names the refused payload's size and the limit.
type payloadTooLargeError struct{ size int }

func (e *payloadTooLargeError) Error() string {
	return fmt.Sprintf("stream payload of %d bytes exceeds the %d MiB limit", e.size, MaxPayloadSize>>20)
}

func (e *payloadTooLargeError) Is(target error) bool { return target == ErrPayloadTooLarge }

// errStepReturned is returned by PutStream once the step function returned:
// its stream has been flushed and closed.
var errStepReturned = errors.New("put stream: the step has already returned")

// streamLimits bound a stepStream's batches and queue.
type streamLimits struct {
	batchPayloads int // payloads per PutStream request
	batchBytes    int // payload bytes per request (a single larger payload goes alone)
	queuePayloads int // unacknowledged payloads before PutStream blocks
	queueBytes    int // unacknowledged bytes before PutStream blocks
	retryBase     time.Duration
	retryMax      time.Duration
	callTimeout   time.Duration // per PutStream request, so a hung call is retried
}

var defaultStreamLimits = streamLimits{
	batchPayloads: 512,
	batchBytes:    8 << 20,
	queuePayloads: 4096,
	queueBytes:    32 << 20,
	retryBase:     100 * time.Millisecond,
	retryMax:      2 * time.Second,
	callTimeout:   30 * time.Second,
}

// putFunc sends one PutStream request; the worker binds it to the engine.
type putFunc func(ctx context.Context, req *runnelv1.PutStreamRequest) error

// stepStream is the ordered send queue of one step attempt's stream.
//
// PutStream only appends a copy of the payload to the queue, so a step can
// put events far faster than one round trip each. One sender goroutine per
// attempt takes everything queued (up to a batch limit) and sends it in one
// request, with a single request in flight, so the engine stores payloads
// in put order. Payloads are numbered from 1 per attempt; a request sent
// again after a transient error keeps its first_seq, and the engine skips
// seqs it already stored, so a retry never duplicates an event. The queue
// is bounded: a full queue blocks PutStream, which is the back-pressure
// that keeps a fast step from outrunning the engine.
type stepStream struct {
	put       putFunc
	stepRunID string
	attempt   int32
	limits    streamLimits
	// onStale is called once if the engine says the attempt is stale; the
	// worker cancels the step, whose results would be refused too.
	onStale func(error)
	log     *slog.Logger

	// ctx is the sender's: the attempt's context on this worker (it lives
	// across worker sessions: while the worker reconnects, sends are
	// retried and puts wait in the bounded queue), also cancelled by abort.
	ctx    context.Context
	cancel context.CancelFunc

	mu         sync.Mutex
	queue      []queued // unacknowledged puts and closes, in order
	queueBytes int
	puts       int64           // payloads accepted so far: the seq of the last one
	acked      int64           // seq of the last payload the engine stored
	ops        int64           // puts and closes queued so far
	ackedOps   int64           // puts and closes the engine stored
	closedSet  map[string]bool // streams closed by the step (stored names)
	err        error           // permanent failure; puts are refused after it
	errSeen    bool            // err was returned to the step by PutStream or Flush
	closed     bool            // no more puts: the step returned or was abandoned
	running    bool            // the sender goroutine was started
	stopped    bool            // the sender goroutine exited
	changed    chan struct{}
	wake       chan struct{}
	done       chan struct{} // closed when the sender exits
}

func newStepStream(attemptCtx context.Context, put putFunc, stepRunID string, attempt int32, limits streamLimits, onStale func(error), log *slog.Logger) *stepStream {
	ctx, cancel := context.WithCancel(attemptCtx)
	return &stepStream{
		put:       put,
		stepRunID: stepRunID,
		attempt:   attempt,
		limits:    limits,
		onStale:   onStale,
		log:       log,
		ctx:       ctx,
		cancel:    cancel,
		changed:   make(chan struct{}),
		wake:      make(chan struct{}, 1),
		done:      make(chan struct{}),
	}
}

// broadcast wakes everyone waiting for a state change. Call with mu held.
func (s *stepStream) broadcast() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// waitChange waits, with mu held, until the state changes or ctx is done;
// it reports whether the state (may have) changed.
func (s *stepStream) waitChange(ctx context.Context) bool {
	ch := s.changed
	s.mu.Unlock()
	defer s.mu.Lock()
	select {
	case <-ch:
		return true
	case <-ctx.Done():
		return false
	}
}

func (s *stepStream) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// queued is one entry of a step stream's send queue: a payload for a
// stream, or the closing of a stream.
type queued struct {
	data   []byte
	stream string // "" is the default stream
	close  bool
}

// Put queues a copy of data for a stream ("" the default one). It blocks
// while the queue is full, until there is room or ctx is done.
func (s *stepStream) Put(ctx context.Context, data []byte, stream string) error {
	if len(data) > MaxPayloadSize {
		return &payloadTooLargeError{size: len(data)}
	}
	p := bytes.Clone(data)
	if p == nil {
		p = []byte{}
	}
	return s.enqueue(ctx, queued{data: p, stream: stream})
}

// Close queues the closing of a stream after everything put on it, and
// waits until the engine stored it.
func (s *stepStream) Close(ctx context.Context, stream string) error {
	if err := s.enqueue(ctx, queued{stream: stream, close: true}); err != nil {
		return err
	}
	return s.Flush(ctx)
}

// enqueue adds a put or a close to the queue, waiting for room.
func (s *stepStream) enqueue(ctx context.Context, q queued) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closedSet[q.stream] {
		return fmt.Errorf("put stream: stream %q was closed by this step", displayStream(q.stream))
	}
	for {
		switch {
		case s.closed:
			return errStepReturned
		case s.err != nil:
			s.errSeen = true
			return s.err
		case ctx.Err() != nil:
			return fmt.Errorf("put stream: %w", ctx.Err())
		case s.stopped:
			return errors.New("put stream: the attempt was abandoned")
		}
		if len(s.queue) == 0 ||
			(len(s.queue) < s.limits.queuePayloads && s.queueBytes+len(q.data) <= s.limits.queueBytes) {
			break
		}
		if !s.waitChange(ctx) {
			return fmt.Errorf("put stream: %w", ctx.Err())
		}
	}
	s.queue = append(s.queue, q)
	s.queueBytes += len(q.data)
	s.ops++
	if q.close {
		if s.closedSet == nil {
			s.closedSet = make(map[string]bool)
		}
		s.closedSet[q.stream] = true
	} else {
		s.puts++
	}
	if !s.running {
		// Owned by the step goroutine, which waits for it in finish or abort.
		s.running = true
		go s.send()
	}
	s.signal()
	return nil
}

// Flush waits until every payload put so far is stored by the engine. It
// returns the stream's permanent error if there is one.
func (s *stepStream) Flush(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	target := s.ops
	for {
		switch {
		case s.ackedOps >= target:
			return nil
		case s.err != nil:
			s.errSeen = true
			return s.err
		case s.stopped:
			return errors.New("flush stream: the attempt was abandoned")
		}
		if !s.waitChange(ctx) {
			return fmt.Errorf("flush stream: %w", ctx.Err())
		}
	}
}

// finish closes the stream after the step returned, waits until everything
// queued is stored and the sender has exited. It returns an error if the
// stream failed in a way the step was never told about (the step's last
// puts were lost), or if ctx ended first.
func (s *stepStream) finish(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	running := s.running
	s.mu.Unlock()
	defer s.cancel()
	if !running {
		return nil
	}
	s.signal()
	err := s.drain(ctx)
	if err != nil {
		s.cancel()
	}
	<-s.done
	return err
}

// drain waits until the queue is acknowledged, for finish.
func (s *stepStream) drain(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		switch {
		case s.ackedOps >= s.ops:
			return nil
		case s.err != nil:
			if s.errSeen {
				return nil
			}
			return s.err
		case s.stopped:
			return errors.New("stream: the attempt was abandoned")
		}
		if !s.waitChange(ctx) {
			return fmt.Errorf("stream: %w", ctx.Err())
		}
	}
}

// abort drops whatever is queued and stops the sender: the attempt's
// results will not be reported.
func (s *stepStream) abort() {
	s.mu.Lock()
	s.closed = true
	running := s.running
	s.mu.Unlock()
	s.cancel()
	if running {
		<-s.done
	}
}

// send is the sender goroutine: it sends the queue in order, one request at
// a time, until the stream is closed and drained, fails permanently, or its
// context ends.
func (s *stepStream) send() {
	defer func() {
		s.mu.Lock()
		s.stopped = true
		s.broadcast()
		s.mu.Unlock()
		close(s.done)
	}()
	bo := newBackoff(s.limits.retryBase, s.limits.retryMax)
	for {
		s.mu.Lock()
		for len(s.queue) == 0 && !s.closed {
			s.mu.Unlock()
			select {
			case <-s.wake:
			case <-s.ctx.Done():
				return
			}
			s.mu.Lock()
		}
		if len(s.queue) == 0 {
			s.mu.Unlock()
			return // closed and drained
		}
		// One request carries consecutive payloads of one stream, and that
		// stream's closing if it comes next.
		stream := s.queue[0].stream
		n, size := 0, 0
		var payloads [][]byte
		closing := false
		for n < len(s.queue) && len(payloads) < s.limits.batchPayloads {
			q := s.queue[n]
			if q.stream != stream {
				break
			}
			if q.close {
				closing = true
				n++
				break
			}
			if n > 0 && size+len(q.data) > s.limits.batchBytes {
				break
			}
			size += len(q.data)
			payloads = append(payloads, q.data)
			n++
		}
		req := &runnelv1.PutStreamRequest{
			StepRunId:   s.stepRunID,
			Attempt:     s.attempt,
			FirstSeq:    s.acked + 1,
			Payloads:    payloads,
			Stream:      stream,
			CloseStream: closing,
		}
		s.mu.Unlock()

		if err := s.sendBatch(req, bo); err != nil {
			if s.ctx.Err() != nil {
				return // attempt abandoned or the worker stops: nothing to report
			}
			s.mu.Lock()
			s.err = fmt.Errorf("put stream: %w", err)
			clear(s.queue)
			s.queue, s.queueBytes = nil, 0
			s.broadcast()
			s.mu.Unlock()
			if isStale(err) {
				s.log.Debug("stream put refused: attempt is stale", "step_run_id", s.stepRunID, "attempt", s.attempt, "error", err)
				if s.onStale != nil {
					s.onStale(err)
				}
			} else {
				s.log.Warn("stream put failed", "step_run_id", s.stepRunID, "attempt", s.attempt, "error", err)
			}
			return
		}
		bo.reset()
		s.mu.Lock()
		clear(s.queue[:n]) // let the payloads be collected
		s.queue = s.queue[n:]
		s.queueBytes -= size
		s.acked += int64(len(payloads))
		s.ackedOps += int64(n)
		s.broadcast()
		s.mu.Unlock()
	}
}

// sendBatch sends one request, again with the same first_seq after
// transient errors, until it succeeds, fails permanently, or the sender's
// context ends.
func (s *stepStream) sendBatch(req *runnelv1.PutStreamRequest, bo *backoff) error {
	for {
		ctx, cancel := context.WithTimeout(s.ctx, s.limits.callTimeout)
		err := s.put(ctx, req)
		cancel()
		if err == nil {
			return nil
		}
		if s.ctx.Err() != nil || !isTransient(err) {
			return err
		}
		d := bo.next()
		s.log.Debug("stream put failed; retrying", "step_run_id", s.stepRunID, "attempt", s.attempt, "first_seq", req.FirstSeq, "error", err, "retry_in", d)
		if !sleep(s.ctx, d) {
			return s.ctx.Err()
		}
	}
}

// maxStreamName is the longest stream name the engine accepts.
const maxStreamName = 64

// checkStreamName returns a stream name as sent ("" for the default stream,
// also spelled "default"), or an error naming what is wrong with it.
func checkStreamName(name string) (string, error) {
	if name == "" || name == DefaultStream {
		return "", nil
	}
	if len(name) > maxStreamName {
		return "", fmt.Errorf("stream name of %d bytes is longer than %d", len(name), maxStreamName)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return "", fmt.Errorf("invalid stream name %q: use 1-%d characters from A-Z a-z 0-9 . _ -", name, maxStreamName)
		}
	}
	return name, nil
}

func displayStream(stored string) string {
	if stored == "" {
		return DefaultStream
	}
	return stored
}
