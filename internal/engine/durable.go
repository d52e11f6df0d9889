package engine

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/runnel-dev/runnel/internal/store"
)

// Standalone durable streams (issue 21). A stream's data are events of the
// log with RunID = the stream's id, so appends are ordered, durable and
// woken exactly like run events, and offsets are log positions. The rules
// of the Durable Streams protocol (creation idempotency, closing,
// idempotent producers, Stream-Seq) are applied here, inside the write
// transaction that locks the stream's row, so they hold across nodes.

// EventDurableAppend is the type of a durable stream's data events.
const EventDurableAppend = "durable.append"

// DurableOutcome says how a durable stream write ended, for the protocol's
// status codes.
type DurableOutcome int

const (
	DurableCreated      DurableOutcome = iota // 201
	DurableExists                             // 200: same configuration
	DurableAppended                           // new data (or closed)
	DurableDuplicate                          // idempotent producer retry: nothing written
	DurableNotFound                           // 404
	DurableConflict                           // 409: configuration differs, content type, Stream-Seq
	DurableClosedErr                          // 409 with Stream-Closed: the stream is closed
	DurableStaleEpoch                         // 403: producer epoch fenced
	DurableSeqGap                             // 409: producer sequence gap
	DurableBadEpochSeq                        // 400: a new epoch must start at seq 0
)

// DurableCreate describes a stream to create.
type DurableCreate struct {
	Name        string
	ContentType string
	TTLSeconds  int64     // 0: none
	ExpiresAt   time.Time // zero: none
	Closed      bool
	Messages    [][]byte // initial content, one event each
}

// Producer identifies an idempotent producer's request.
type Producer struct {
	ID    string
	Epoch int64
	Seq   int64
}

// DurableAppend is one append (or close).
type DurableAppend struct {
	Name        string
	ContentType string // checked against the stream's when Messages is not empty
	Messages    [][]byte
	Close       bool
	StreamSeq   string    // optional
	Producer    *Producer // optional
}

// DurableResult is what a durable stream write did.
type DurableResult struct {
	Outcome DurableOutcome
	Stream  store.DurableStream
	// Tail is the position of the stream's last event (0: none).
	Tail int64
	// ProducerEpoch and ProducerSeq: the producer's current state (echo on
	// success, current epoch on a fence). ExpectedSeq on a gap.
	ProducerEpoch int64
	ProducerSeq   int64
	ExpectedSeq   int64
	Reason        string
}

func durableExpired(s store.DurableStream, now time.Time) bool {
	if !s.ExpiresAt.IsZero() && !now.Before(s.ExpiresAt) {
		return true
	}
	return s.TTLSeconds > 0 && !now.Before(s.AccessedAt.Add(time.Duration(s.TTLSeconds)*time.Second))
}

func (e *Engine) durableEvents(tenantID, id string, msgs [][]byte, now time.Time) []store.Event {
	evs := make([]store.Event, len(msgs))
	for i, m := range msgs {
		evs[i] = store.Event{TenantID: tenantID, RunID: id, Type: EventDurableAppend, Payload: m, CreatedAt: now}
	}
	return evs
}

func sameMediaType(a, b string) bool {
	norm := func(s string) string {
		if i := strings.IndexByte(s, ';'); i >= 0 {
			s = s[:i]
		}
		return strings.ToLower(strings.TrimSpace(s))
	}
	return norm(a) == norm(b)
}

// CreateDurableStream creates a stream, or reports that one of that name
// exists with the same configuration (DurableExists) or another
// (DurableConflict). An expired stream of that name is replaced.
func (e *Engine) CreateDurableStream(ctx context.Context, p Principal, c DurableCreate) (DurableResult, error) {
	if !p.CanWrite() {
		return DurableResult{Outcome: DurableNotFound}, nil
	}
	var res DurableResult
	err := e.store.Write(ctx, func(tx store.Tx) error {
		res = DurableResult{}
		now := time.Now()
		old, err := tx.GetDurableStreamForUpdate(ctx, p.TenantID, c.Name)
		switch {
		case err == nil && durableExpired(old, now):
			if err := tx.DeleteDurableStream(ctx, old.ID); err != nil {
				return err
			}
		case err == nil:
			res.Stream = old
			if sameMediaType(old.ContentType, c.ContentType) && old.TTLSeconds == c.TTLSeconds &&
				old.ExpiresAt.Equal(c.ExpiresAt) && old.Closed == c.Closed {
				res.Outcome = DurableExists
			} else {
				res.Outcome = DurableConflict
				res.Reason = "a stream of that name exists with another configuration"
			}
			return nil
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		s := store.DurableStream{
			ID: "ds_" + uuid.Must(uuid.NewV7()).String(), TenantID: p.TenantID, Name: c.Name,
			ContentType: c.ContentType, TTLSeconds: c.TTLSeconds, ExpiresAt: c.ExpiresAt,
			Closed: c.Closed, AccessedAt: now, CreatedAt: now,
		}
		if err := tx.InsertDurableStream(ctx, s); err != nil {
			return err
		}
		res.Outcome, res.Stream = DurableCreated, s
		if len(c.Messages) > 0 {
			evs := e.durableEvents(p.TenantID, s.ID, c.Messages, now)
			if err := tx.AppendEvents(ctx, evs); err != nil {
				return err
			}
			res.Tail = evs[len(evs)-1].Position
		}
		return nil
	})
	if err != nil {
		return DurableResult{}, err
	}
	if res.Outcome == DurableExists {
		res.Tail, err = e.store.LastRunPosition(ctx, p.TenantID, res.Stream.ID)
	}
	return res, err
}

func producerKey(pr *Producer) string {
	if pr == nil {
		return ""
	}
	return pr.ID + "\x00" + strconv.FormatInt(pr.Epoch, 10) + "\x00" + strconv.FormatInt(pr.Seq, 10)
}

// AppendDurable appends to (and/or closes) a stream.
func (e *Engine) AppendDurable(ctx context.Context, p Principal, a DurableAppend) (DurableResult, error) {
	if !p.CanWrite() {
		return DurableResult{Outcome: DurableNotFound}, nil
	}
	var res DurableResult
	err := e.store.Write(ctx, func(tx store.Tx) error {
		res = DurableResult{}
		now := time.Now()
		s, err := tx.GetDurableStreamForUpdate(ctx, p.TenantID, a.Name)
		if errors.Is(err, store.ErrNotFound) || (err == nil && durableExpired(s, now)) {
			res.Outcome = DurableNotFound
			return nil
		}
		if err != nil {
			return err
		}
		res.Stream = s
		if s.Closed {
			switch {
			case a.Producer != nil && s.ClosedBy == producerKey(a.Producer):
				res.Outcome, res.ProducerEpoch, res.ProducerSeq = DurableDuplicate, a.Producer.Epoch, a.Producer.Seq
			case len(a.Messages) == 0 && a.Close:
				res.Outcome = DurableDuplicate
			default:
				res.Outcome, res.Reason = DurableClosedErr, "the stream is closed"
			}
			return nil
		}
		if len(a.Messages) > 0 && !sameMediaType(s.ContentType, a.ContentType) {
			res.Outcome = DurableConflict
			res.Reason = fmt.Sprintf("content type %q does not match the stream's %q", a.ContentType, s.ContentType)
			return nil
		}
		if a.StreamSeq != "" && a.StreamSeq <= s.LastSeq {
			res.Outcome = DurableConflict
			res.Reason = fmt.Sprintf("Stream-Seq %q is not above the last one, %q", a.StreamSeq, s.LastSeq)
			return nil
		}
		if pr := a.Producer; pr != nil {
			st, err := tx.GetDurableProducer(ctx, s.ID, pr.ID)
			known := err == nil
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			switch {
			case known && pr.Epoch < st.Epoch:
				res.Outcome, res.ProducerEpoch = DurableStaleEpoch, st.Epoch
				return nil
			case !known || pr.Epoch > st.Epoch:
				if pr.Seq != 0 {
					if !known {
						res.Outcome, res.ExpectedSeq, res.ProducerSeq = DurableSeqGap, 0, pr.Seq
					} else {
						res.Outcome = DurableBadEpochSeq
						res.Reason = "a new producer epoch must start at Producer-Seq 0"
					}
					return nil
				}
			case pr.Seq <= st.LastSeq:
				res.Outcome, res.ProducerEpoch, res.ProducerSeq = DurableDuplicate, st.Epoch, st.LastSeq
				return nil
			case pr.Seq > st.LastSeq+1:
				res.Outcome, res.ExpectedSeq, res.ProducerSeq = DurableSeqGap, st.LastSeq+1, pr.Seq
				return nil
			}
			if err := tx.UpsertDurableProducer(ctx, store.DurableProducer{StreamID: s.ID, ProducerID: pr.ID, Epoch: pr.Epoch, LastSeq: pr.Seq}); err != nil {
				return err
			}
			res.ProducerEpoch, res.ProducerSeq = pr.Epoch, pr.Seq
		}
		if a.StreamSeq != "" {
			s.LastSeq = a.StreamSeq
		}
		if a.Close {
			s.Closed, s.ClosedBy = true, producerKey(a.Producer)
		}
		s.AccessedAt = now
		if err := tx.UpdateDurableStream(ctx, s); err != nil {
			return err
		}
		res.Outcome, res.Stream = DurableAppended, s
		if len(a.Messages) > 0 {
			evs := e.durableEvents(p.TenantID, s.ID, a.Messages, now)
			if err := tx.AppendEvents(ctx, evs); err != nil {
				return err
			}
			res.Tail = evs[len(evs)-1].Position
		}
		return nil
	})
	if err != nil {
		return DurableResult{}, err
	}
	if res.Outcome != DurableNotFound && res.Tail == 0 {
		res.Tail, err = e.store.LastRunPosition(ctx, p.TenantID, res.Stream.ID)
	}
	return res, err
}

// GetDurableStream returns a stream and the position of its last event;
// store.ErrNotFound (wrapped) if there is none, it expired, or the
// principal may not see it. touch resets a sliding TTL (reads do, HEAD
// does not).
func (e *Engine) GetDurableStream(ctx context.Context, p Principal, name string, touch bool) (store.DurableStream, int64, error) {
	if !p.CanWrite() && !p.CanReadDurable(name) {
		return store.DurableStream{}, 0, fmt.Errorf("durable stream %s: %w", name, store.ErrNotFound)
	}
	s, err := e.store.GetDurableStream(ctx, p.TenantID, name)
	if err != nil {
		return s, 0, err
	}
	now := time.Now()
	if durableExpired(s, now) {
		return store.DurableStream{}, 0, fmt.Errorf("durable stream %s expired: %w", name, store.ErrNotFound)
	}
	if touch && s.TTLSeconds > 0 {
		if err := e.store.Write(ctx, func(tx store.Tx) error { return tx.TouchDurableStream(ctx, s.ID, now) }); err != nil {
			return s, 0, err
		}
	}
	tail, err := e.store.LastRunPosition(ctx, p.TenantID, s.ID)
	return s, tail, err
}

// ReadDurable reads a stream's events after a position, up to about
// maxBytes of payload (at least one event).
func (e *Engine) ReadDurable(ctx context.Context, s store.DurableStream, after int64, maxBytes int) ([]store.Event, error) {
	return e.store.ReadEvents(ctx, store.ReadEventsParams{TenantID: s.TenantID, RunID: s.ID, After: after, MaxBytes: maxBytes})
}

// WaitDurable returns a channel closed at the next append to the stream
// (or any wake-up that may concern it). Arm it before reading.
func (e *Engine) WaitDurable(id string) <-chan struct{} { return e.hub.Wait(id) }

// DeleteDurableStream deletes a stream and its data; false if none.
func (e *Engine) DeleteDurableStream(ctx context.Context, p Principal, name string) (bool, error) {
	if !p.CanWrite() {
		return false, nil
	}
	found, id := false, ""
	err := e.store.Write(ctx, func(tx store.Tx) error {
		found, id = false, ""
		s, err := tx.GetDurableStreamForUpdate(ctx, p.TenantID, name)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		found = !durableExpired(s, time.Now())
		id = s.ID
		return tx.DeleteDurableStream(ctx, s.ID)
	})
	if err == nil && id != "" {
		e.hub.NotifyRuns(id) // live readers look again and find it gone
	}
	return found, err
}

// ListDurableStreams lists the tenant's streams.
func (e *Engine) ListDurableStreams(ctx context.Context, p Principal) ([]store.DurableStream, error) {
	if !p.CanWrite() {
		return nil, nil
	}
	return e.store.ListDurableStreams(ctx, p.TenantID)
}

// LastDurablePosition is the position of the stream's last event.
func (e *Engine) LastDurablePosition(ctx context.Context, s store.DurableStream) (int64, error) {
	return e.store.LastRunPosition(ctx, s.TenantID, s.ID)
}
