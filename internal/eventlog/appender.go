package eventlog

import (
	"context"
	"errors"
	"log/slog"

	"github.com/runnel-dev/runnel/internal/apierr"
	"github.com/runnel-dev/runnel/internal/clock"
	"github.com/runnel-dev/runnel/internal/metrics"
	"github.com/runnel-dev/runnel/internal/startstop"
	"github.com/runnel-dev/runnel/internal/store"
)

// MaxPayloadSize is the largest stream event payload accepted.
const MaxPayloadSize = 4 << 20

// StreamPut is one worker request to append stream events of a step attempt.
type StreamPut struct {
	TenantID  string
	StepRunID string
	Attempt   int
	// FirstSeq numbers Payloads[0] in the attempt's stream (1-based);
	// payloads are consecutive. Seqs already stored are skipped, so a request
	// sent again after a lost reply is stored once.
	FirstSeq int64
	Payloads [][]byte
	// Stream names the stream the payloads go to ("" the default; see
	// StreamName). Seqs are per attempt, across all its streams.
	Stream string
	// Close finishes the stream after the payloads: a step.stream_closed
	// event is stored once, and later payloads for it are refused.
	Close bool
}

// AppenderConfig tunes group commit. Zero values are the defaults.
type AppenderConfig struct {
	// MaxBatchEvents caps the events written in one transaction (default 4096).
	MaxBatchEvents int
	// MaxBatchBytes caps the payload bytes of one transaction (default 16 MiB).
	MaxBatchBytes int
	// QueueLength bounds the requests waiting for a transaction (default
	// 1024); a full queue makes Put wait, which is the back-pressure on
	// workers.
	QueueLength int
	Logger      *slog.Logger
	// Clock stamps the events' creation times (default clock.Real).
	Clock clock.Clock
	// Metrics records each group commit (nil: none).
	Metrics *metrics.Metrics
}

func (c *AppenderConfig) setDefaults() {
	if c.MaxBatchEvents <= 0 {
		c.MaxBatchEvents = 4096
	}
	if c.MaxBatchBytes <= 0 {
		c.MaxBatchBytes = 16 << 20
	}
	if c.QueueLength <= 0 {
		c.QueueLength = 1024
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Clock == nil {
		c.Clock = clock.Real()
	}
}

// Appender stores stream events with group commit: one goroutine takes every
// request waiting in its queue and writes them in one transaction, then
// answers each. Under light load a batch is one request (no added latency);
// under load batches grow by themselves, so throughput is bounded by rows per
// transaction, not commits per second.
type Appender struct {
	store store.Store
	cfg   AppenderConfig
	queue chan *putRequest
	svc   startstop.Base
}

type putRequest struct {
	put    StreamPut
	result chan error // buffered(1)
}

// NewAppender returns an appender writing to st. Start it before use.
func NewAppender(st store.Store, cfg AppenderConfig) *Appender {
	cfg.setDefaults()
	return &Appender{store: st, cfg: cfg, queue: make(chan *putRequest, cfg.QueueLength)}
}

// Start runs the batching goroutine until Stop.
func (a *Appender) Start(ctx context.Context) error { return a.svc.Start(ctx, a.loop) }

// Stop finishes the batch being written, fails requests still queued, and
// waits for the goroutine. Safe to call twice or before Start.
func (a *Appender) Stop() { a.svc.Stop() }

// Started returns a channel closed once the batching goroutine runs.
func (a *Appender) Started() <-chan struct{} { return a.svc.Started() }

// Put validates a request, queues it and waits until its events are stored
// (or refused). Errors are coded (apierr): InvalidArgument for bad requests,
// ResourceExhausted for an oversized payload, FailedPrecondition when the
// attempt is no longer running, Unavailable when the appender is stopping.
func (a *Appender) Put(ctx context.Context, put StreamPut) error {
	stream, err := StreamName(put.Stream)
	if err != nil {
		return err
	}
	put.Stream = stream
	if len(put.Payloads) == 0 && !put.Close {
		return nil
	}
	if put.Attempt < 1 || (len(put.Payloads) > 0 && put.FirstSeq < 1) {
		return apierr.New(apierr.InvalidArgument, "stream put needs attempt >= 1 and first_seq >= 1")
	}
	for i, p := range put.Payloads {
		if len(p) > MaxPayloadSize {
			return apierr.New(apierr.ResourceExhausted,
				"stream payload %d of %d bytes exceeds the %d MiB limit", put.FirstSeq+int64(i), len(p), MaxPayloadSize>>20)
		}
	}
	req := &putRequest{put: put, result: make(chan error, 1)}
	stopped := a.svc.Stopped()
	select {
	case a.queue <- req:
	case <-ctx.Done():
		return ctx.Err()
	case <-stopped:
		return errStopping
	}
	select {
	case err := <-req.result:
		return err
	case <-ctx.Done():
		// The batch may still commit; the worker sends the same seqs again
		// and the duplicates are skipped.
		return ctx.Err()
	case <-stopped:
		select {
		case err := <-req.result:
			return err
		default:
			return errStopping
		}
	}
}

func (a *Appender) loop(ctx context.Context) {
	for {
		var first *putRequest
		select {
		case first = <-a.queue:
		case <-ctx.Done():
			a.drainFailing()
			return
		}
		batch := []*putRequest{first}
		events, bytes := len(first.put.Payloads), payloadBytes(first.put)
	fill:
		for events < a.cfg.MaxBatchEvents && bytes < a.cfg.MaxBatchBytes {
			select {
			case req := <-a.queue:
				batch = append(batch, req)
				events += len(req.put.Payloads)
				bytes += payloadBytes(req.put)
			default:
				break fill
			}
		}
		a.write(context.WithoutCancel(ctx), batch)
	}
}

func (a *Appender) drainFailing() {
	for {
		select {
		case req := <-a.queue:
			req.result <- errStopping
		default:
			return
		}
	}
}

func payloadBytes(p StreamPut) int {
	n := 0
	for _, b := range p.Payloads {
		n += len(b)
	}
	return n
}

// write stores one batch in one transaction. Requests for attempts that are
// no longer running are answered with an error and left out; the rest commit
// together.
func (a *Appender) write(ctx context.Context, batch []*putRequest) {
	var results []error
	written := 0
	began := a.cfg.Clock.Now()
	err := a.store.Write(ctx, func(tx store.Tx) error {
		results = make([]error, len(batch))
		written = 0
		now := a.cfg.Clock.Now()
		steps := make(map[string]*store.StepRun)
		closed := make(map[streamKey]bool)
		var events []store.Event
		for i, req := range batch {
			put := req.put
			s, ok := steps[put.StepRunID]
			if !ok {
				got, err := tx.GetStepRunForUpdate(ctx, put.StepRunID)
				if errors.Is(err, store.ErrNotFound) {
					results[i] = apierr.New(apierr.NotFound, "unknown step run %s", put.StepRunID)
					continue
				}
				if err != nil {
					return err
				}
				s = &got
				steps[put.StepRunID] = s
			}
			if s.TenantID != put.TenantID {
				results[i] = apierr.New(apierr.NotFound, "unknown step run %s", put.StepRunID)
				continue
			}
			if err := CheckAttemptRunning(*s, put.Attempt); err != nil {
				results[i] = err
				continue
			}
			last := put.FirstSeq + int64(len(put.Payloads)) - 1
			if len(put.Payloads) > 0 && put.FirstSeq > s.StreamSeq+1 {
				results[i] = apierr.New(apierr.FailedPrecondition,
					"stream seq gap for step run %s: got %d, next expected %d", s.ID, put.FirstSeq, s.StreamSeq+1)
				continue
			}
			key := streamKey{s.ID, s.Attempt, put.Stream}
			isClosed, known := closed[key]
			if !known {
				c, err := tx.StreamClosed(ctx, s.ID, s.Attempt, put.Stream)
				if err != nil {
					return err
				}
				isClosed, closed[key] = c, c
			}
			if isClosed && last > s.StreamSeq {
				results[i] = apierr.New(apierr.FailedPrecondition,
					"stream %q of step run %s attempt %d is closed", DisplayStreamName(put.Stream), s.ID, s.Attempt)
				continue
			}
			ev := store.Event{
				TenantID:  s.TenantID,
				RunID:     s.RunID,
				Workflow:  s.Workflow,
				Type:      store.EventStepStream,
				StepRunID: s.ID,
				Step:      s.Step,
				Attempt:   s.Attempt,
				Stream:    put.Stream,
				CreatedAt: now,
			}
			for seq := s.StreamSeq + 1; seq <= last; seq++ {
				ev.Payload = put.Payloads[seq-put.FirstSeq]
				events = append(events, ev)
			}
			if last > s.StreamSeq {
				s.StreamSeq = last
			}
			if put.Close && !isClosed {
				ev.Type, ev.Payload = store.EventStepStreamClosed, nil
				events = append(events, ev)
				closed[key] = true
			}
		}
		if len(events) == 0 {
			return nil
		}
		for _, s := range steps {
			if err := tx.UpdateStepRun(ctx, *s); err != nil {
				return err
			}
		}
		written = len(events)
		return tx.AppendEvents(ctx, events)
	})
	if err == nil && written > 0 {
		a.cfg.Metrics.AppendCommitted(written, a.cfg.Clock.Now().Sub(began))
	}
	if err != nil {
		a.cfg.Logger.Error("append stream events", "requests", len(batch), "err", err)
		err = &apierr.Error{Code: apierr.Unavailable, Message: "storing stream events failed; retry", Err: err}
	}
	for i, req := range batch {
		switch {
		case err != nil:
			req.result <- err
		default:
			req.result <- results[i]
		}
	}
}

// streamKey names one stream of one step attempt.
type streamKey struct {
	stepRunID string
	attempt   int
	stream    string
}

var errStopping = apierr.New(apierr.Unavailable, "engine is shutting down; retry on another node or after restart")

// CheckAttemptRunning refuses a report (stream data, a result, a spawn) of
// an attempt that is no longer its step run's running attempt: cancelled,
// timed out, or re-queued as a new attempt. Every path that takes such a
// report asks here, so a stale worker always hears the same
// FailedPrecondition.
func CheckAttemptRunning(current store.StepRun, attempt int) error {
	if current.Status == store.StepRunning && current.Attempt == attempt {
		return nil
	}
	return apierr.New(apierr.FailedPrecondition,
		"step run %s attempt %d is no longer running (now attempt %d, %s)", current.ID, attempt, current.Attempt, current.Status)
}
