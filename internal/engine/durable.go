package engine

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/runnel-dev/runnel/internal/apierr"
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
	DurableCreated     DurableOutcome = iota // 201
	DurableExists                            // 200: same configuration
	DurableAppended                          // new data (or closed)
	DurableDuplicate                         // idempotent producer retry: nothing written
	DurableNotFound                          // 404
	DurableConflict                          // 409: configuration differs, content type, Stream-Seq
	DurableClosedErr                         // 409 with Stream-Closed: the stream is closed
	DurableStaleEpoch                        // 403: producer epoch fenced
	DurableSeqGap                            // 409: producer sequence gap
	DurableBadEpochSeq                       // 400: a new epoch must start at seq 0
	DurableGone                              // 410: deleted, kept for its forks
	DurableBadRequest                        // 400: Reason says why
)

// ErrDurableGone: the stream was deleted (or expired) while forks still
// read it; the protocol answers 410 Gone.
var ErrDurableGone = errors.New("the stream was deleted; its forks still read it")

// DurableCreate describes a stream to create.
type DurableCreate struct {
	Name        string
	ContentType string
	TTLSeconds  int64     // 0: none
	ExpiresAt   time.Time // zero: none
	Closed      bool
	Messages    [][]byte // initial content, one event each
	// ContentTypeSet: the request named a content type (a fork inherits
	// its source's otherwise, and its TTL or expiry when neither is set).
	ContentTypeSet bool
	Fork           *DurableFork
}

// DurableFork asks for a fork of SourceName at Offset (a position;
// HasOffset false: the source's tail), SubOffset messages (JSON) or bytes
// further.
type DurableFork struct {
	SourceName string
	Offset     int64
	HasOffset  bool
	SubOffset  int64
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
	var fk forkPlan
	if c.Fork != nil {
		var res DurableResult
		fk, res = e.planFork(ctx, p, &c)
		if res.Outcome != DurableCreated {
			return res, nil
		}
	}
	var res DurableResult
	err := e.store.Write(ctx, func(tx store.Tx) error {
		res = DurableResult{}
		now := time.Now()
		if c.Fork != nil {
			src, err := tx.GetDurableStreamForUpdate(ctx, p.TenantID, c.Fork.SourceName)
			if errors.Is(err, store.ErrNotFound) || (err == nil && src.ID != fk.sourceID) {
				res.Outcome = DurableNotFound
				return nil
			}
			if err != nil {
				return err
			}
			if src.Deleted {
				res.Outcome, res.Reason = DurableConflict, "the source stream was deleted"
				return nil
			}
		}
		old, err := tx.GetDurableStreamForUpdate(ctx, p.TenantID, c.Name)
		switch {
		case err == nil && old.Deleted:
			res.Outcome, res.Reason = DurableConflict, "a deleted stream of that name is kept for its forks"
			return nil
		case err == nil && durableExpired(old, now):
			n, err := tx.CountDurableForks(ctx, old.ID)
			if err != nil {
				return err
			}
			if n > 0 {
				res.Outcome, res.Reason = DurableConflict, "an expired stream of that name is kept for its forks"
				return nil
			}
			if err := e.deleteCascade(ctx, tx, old); err != nil {
				return err
			}
		case err == nil:
			res.Stream = old
			if sameMediaType(old.ContentType, c.ContentType) && old.TTLSeconds == c.TTLSeconds &&
				old.ExpiresAt.Equal(c.ExpiresAt) && old.Closed == c.Closed &&
				old.ForkSourceID == fk.sourceID && old.ForkOffset == fk.offset && old.ForkSubOffset == fk.subOffset {
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
			ForkSourceID: fk.sourceID, ForkOffset: fk.offset, ForkSubOffset: fk.subOffset,
		}
		if fk.prefix != nil {
			c.Messages = append([][]byte{fk.prefix}, c.Messages...)
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
	if res.Outcome == DurableExists || (res.Outcome == DurableCreated && res.Tail == 0) {
		res.Tail, err = e.durableTail(ctx, res.Stream)
	}
	return res, err
}

// forkPlan is a fork's resolved source and offsets.
type forkPlan struct {
	sourceID  string
	offset    int64
	subOffset int64
	prefix    []byte // a binary sub-offset's bytes, stored as the fork's first event
}

// planFork resolves a fork request against its source (read outside the
// write: the offsets it checks never change once returned). Outcome is
// DurableCreated when the fork may be created.
func (e *Engine) planFork(ctx context.Context, p Principal, c *DurableCreate) (forkPlan, DurableResult) {
	f := c.Fork
	src, tail, err := e.GetDurableStream(ctx, p, f.SourceName, false)
	switch {
	case errors.Is(err, ErrDurableGone):
		return forkPlan{}, DurableResult{Outcome: DurableConflict, Reason: "the source stream was deleted"}
	case errors.Is(err, store.ErrNotFound):
		return forkPlan{}, DurableResult{Outcome: DurableNotFound, Reason: "no source stream " + f.SourceName}
	case err != nil:
		return forkPlan{}, DurableResult{Outcome: DurableBadRequest, Reason: err.Error()}
	}
	if c.ContentTypeSet && !sameMediaType(c.ContentType, src.ContentType) {
		return forkPlan{}, DurableResult{Outcome: DurableConflict, Reason: fmt.Sprintf("content type %q differs from the source's %q", c.ContentType, src.ContentType)}
	}
	c.ContentType = src.ContentType
	if c.TTLSeconds == 0 && c.ExpiresAt.IsZero() {
		c.TTLSeconds, c.ExpiresAt = src.TTLSeconds, src.ExpiresAt
	}
	fk := forkPlan{sourceID: src.ID, offset: tail, subOffset: f.SubOffset}
	if f.HasOffset {
		if f.Offset > tail {
			return forkPlan{}, DurableResult{Outcome: DurableBadRequest, Reason: "Stream-Fork-Offset is beyond the source's tail"}
		}
		fk.offset = f.Offset
	}
	if f.SubOffset > 0 {
		json := strings.EqualFold(strings.TrimSpace(strings.SplitN(src.ContentType, ";", 2)[0]), "application/json")
		evs, err := e.readSegments(ctx, src, fk.offset, 0, int(f.SubOffset))
		if err != nil {
			return forkPlan{}, DurableResult{Outcome: DurableBadRequest, Reason: err.Error()}
		}
		if json {
			if int64(len(evs)) < f.SubOffset {
				return forkPlan{}, DurableResult{Outcome: DurableBadRequest, Reason: "Stream-Fork-Sub-Offset is past the next messages"}
			}
			fk.offset = evs[f.SubOffset-1].Position
		} else {
			if len(evs) == 0 || int64(len(evs[0].Payload)) < f.SubOffset {
				return forkPlan{}, DurableResult{Outcome: DurableBadRequest, Reason: "Stream-Fork-Sub-Offset is past the next append"}
			}
			if int64(len(evs[0].Payload)) == f.SubOffset {
				fk.offset = evs[0].Position
			} else {
				fk.prefix = evs[0].Payload[:f.SubOffset]
			}
		}
	}
	return fk, DurableResult{Outcome: DurableCreated}
}

// segment is one stream of a fork chain, read up to bound.
type segment struct {
	id    string
	bound int64
}

// segments lists a stream's fork chain, oldest source first.
func (e *Engine) segments(ctx context.Context, s store.DurableStream) ([]segment, error) {
	segs := []segment{{id: s.ID, bound: 1<<63 - 1}}
	bound, src := s.ForkOffset, s.ForkSourceID
	for src != "" {
		st, err := e.store.GetDurableStreamByID(ctx, src)
		if err != nil {
			return nil, fmt.Errorf("fork source of %s: %w", s.Name, err)
		}
		segs = append([]segment{{id: st.ID, bound: bound}}, segs...)
		bound, src = min(bound, st.ForkOffset), st.ForkSourceID
	}
	return segs, nil
}

// readSegments reads a stream's events (its fork chain's, then its own)
// after a position: one page, from the first segment that has any.
func (e *Engine) readSegments(ctx context.Context, s store.DurableStream, after int64, maxBytes, limit int) ([]store.Event, error) {
	segs := []segment{{id: s.ID, bound: 1<<63 - 1}}
	if s.ForkSourceID != "" {
		var err error
		if segs, err = e.segments(ctx, s); err != nil {
			return nil, err
		}
	}
	// One page spans the segments, in order, until the byte budget or the
	// limit is spent (a segment's page that stops early ends it).
	var out []store.Event
	bytes := 0
	for _, sg := range segs {
		if after >= sg.bound {
			continue
		}
		p := store.ReadEventsParams{TenantID: s.TenantID, RunID: sg.id, After: after, Limit: limit}
		if maxBytes > 0 {
			p.MaxBytes = max(1, maxBytes-bytes)
		}
		if limit > 0 {
			p.Limit = limit - len(out)
		}
		evs, err := e.store.ReadEvents(ctx, p)
		if err != nil {
			return nil, err
		}
		n := 0
		for n < len(evs) && evs[n].Position <= sg.bound {
			bytes += len(evs[n].Payload)
			n++
		}
		out = append(out, evs[:n]...)
		if n > 0 {
			after = evs[n-1].Position
		}
		full := (maxBytes > 0 && bytes >= maxBytes) || (limit > 0 && len(out) >= limit)
		if full || (n == len(evs) && n == p.PageLimit()) {
			break // this page is full: the next read goes on from after
		}
	}
	return out, nil
}

// durableTail is the position of a stream's last event, inherited ones
// included: its own last, else its fork offset.
func (e *Engine) durableTail(ctx context.Context, s store.DurableStream) (int64, error) {
	last, err := e.store.LastRunPosition(ctx, s.TenantID, s.ID)
	if err != nil || last > 0 {
		return last, err
	}
	return s.ForkOffset, nil
}

// deleteCascade deletes a stream, then each source up its fork chain that
// was deleted and has no fork left.
func (e *Engine) deleteCascade(ctx context.Context, tx store.Tx, s store.DurableStream) error {
	for {
		if err := tx.DeleteDurableStream(ctx, s.ID); err != nil {
			return err
		}
		if s.ForkSourceID == "" {
			return nil
		}
		src, err := tx.GetDurableStreamByID(ctx, s.ForkSourceID)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if !src.Deleted && !durableExpired(src, time.Now()) {
			return nil
		}
		n, err := tx.CountDurableForks(ctx, src.ID)
		if err != nil || n > 0 {
			return err
		}
		s = src
	}
}

func producerKey(pr *Producer) string {
	if pr == nil {
		return ""
	}
	// Numbers first: the id may hold any character but NUL, which
	// PostgreSQL text refuses.
	return strconv.FormatInt(pr.Epoch, 10) + ":" + strconv.FormatInt(pr.Seq, 10) + ":" + pr.ID
}

// applyDurable applies one append (and/or close) in tx: the protocol's
// rules are checked against the stream row, locked, so requests batched
// in one transaction see each other's effects in order.
func (e *Engine) applyDurable(ctx context.Context, tx store.Tx, p Principal, a DurableAppend) (res DurableResult, err error) {
	now := time.Now()
	s, err := tx.GetDurableStreamForUpdate(ctx, p.TenantID, a.Name)
	if errors.Is(err, store.ErrNotFound) || (err == nil && durableExpired(s, now)) {
		res.Outcome = DurableNotFound
		return res, nil
	}
	if err != nil {
		return res, err
	}
	res.Stream = s
	if s.Deleted {
		res.Outcome = DurableGone
		return res, nil
	}
	if s.Closed {
		switch {
		case a.Producer != nil && s.ClosedBy == producerKey(a.Producer):
			res.Outcome, res.ProducerEpoch, res.ProducerSeq = DurableDuplicate, a.Producer.Epoch, a.Producer.Seq
		case len(a.Messages) == 0 && a.Close:
			res.Outcome = DurableDuplicate
		default:
			res.Outcome, res.Reason = DurableClosedErr, "the stream is closed"
		}
		return res, nil
	}
	if len(a.Messages) > 0 && !sameMediaType(s.ContentType, a.ContentType) {
		res.Outcome = DurableConflict
		res.Reason = fmt.Sprintf("content type %q does not match the stream's %q", a.ContentType, s.ContentType)
		return res, nil
	}
	if pr := a.Producer; pr != nil {
		st, err := tx.GetDurableProducer(ctx, s.ID, pr.ID)
		known := err == nil
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return res, err
		}
		switch {
		case known && pr.Epoch < st.Epoch:
			res.Outcome, res.ProducerEpoch = DurableStaleEpoch, st.Epoch
			return res, nil
		case !known || pr.Epoch > st.Epoch:
			if pr.Seq != 0 {
				if !known {
					res.Outcome, res.ExpectedSeq, res.ProducerSeq = DurableSeqGap, 0, pr.Seq
				} else {
					res.Outcome = DurableBadEpochSeq
					res.Reason = "a new producer epoch must start at Producer-Seq 0"
				}
				return res, nil
			}
		case pr.Seq <= st.LastSeq:
			res.Outcome, res.ProducerEpoch, res.ProducerSeq = DurableDuplicate, st.Epoch, st.LastSeq
			return res, nil
		case pr.Seq > st.LastSeq+1:
			res.Outcome, res.ExpectedSeq, res.ProducerSeq = DurableSeqGap, st.LastSeq+1, pr.Seq
			return res, nil
		}
		res.ProducerEpoch, res.ProducerSeq = pr.Epoch, pr.Seq
	}
	// Stream-Seq after the producer check: a producer's retry is a
	// duplicate (204) even when it repeats its Stream-Seq.
	if a.StreamSeq != "" && a.StreamSeq <= s.LastSeq {
		res.Outcome = DurableConflict
		res.Reason = fmt.Sprintf("Stream-Seq %q is not above the last one, %q", a.StreamSeq, s.LastSeq)
		return res, nil
	}
	if pr := a.Producer; pr != nil {
		if err := tx.UpsertDurableProducer(ctx, store.DurableProducer{StreamID: s.ID, ProducerID: pr.ID, Epoch: pr.Epoch, LastSeq: pr.Seq}); err != nil {
			return res, err
		}
	}
	if a.StreamSeq != "" {
		s.LastSeq = a.StreamSeq
	}
	if a.Close {
		s.Closed, s.ClosedBy = true, producerKey(a.Producer)
	}
	s.AccessedAt = now
	if err := tx.UpdateDurableStream(ctx, s); err != nil {
		return res, err
	}
	res.Outcome, res.Stream = DurableAppended, s
	if len(a.Messages) > 0 {
		evs := e.durableEvents(p.TenantID, s.ID, a.Messages, now)
		if err := tx.AppendEvents(ctx, evs); err != nil {
			return res, err
		}
		res.Tail = evs[len(evs)-1].Position
	}
	return res, nil
}

// AppendDurable appends to (and/or closes) a stream. Concurrent appends
// share transactions (see durableBatcher): one commit for every append
// waiting, so throughput is not one commit per request.
func (e *Engine) AppendDurable(ctx context.Context, p Principal, a DurableAppend) (DurableResult, error) {
	if !p.CanWrite() {
		return DurableResult{Outcome: DurableNotFound}, nil
	}
	res, err := e.durables.submit(ctx, e, p, a)
	if err != nil {
		return DurableResult{}, err
	}
	if a.Close && len(a.Messages) == 0 && res.Outcome == DurableAppended {
		// No event was appended, so no commit wakes this node's live
		// readers: wake them, so they see the close now, not at their
		// next poll. (Readers on other nodes see it at theirs.)
		e.hub.NotifyRuns(res.Stream.ID)
	}
	if res.Outcome != DurableNotFound && res.Outcome != DurableGone && res.Tail == 0 {
		res.Tail, err = e.durableTail(ctx, res.Stream)
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
	if s.Deleted {
		return s, 0, ErrDurableGone
	}
	now := time.Now()
	if durableExpired(s, now) {
		return store.DurableStream{}, 0, e.expireDurable(ctx, p.TenantID, name)
	}
	if touch && s.TTLSeconds > 0 {
		if err := e.store.Write(ctx, func(tx store.Tx) error { return tx.TouchDurableStream(ctx, s.ID, now) }); err != nil {
			return s, 0, err
		}
	}
	tail, err := e.durableTail(ctx, s)
	return s, tail, err
}

// expireDurable deletes an expired stream as DELETE would, and returns
// the error a reader gets: not found, or gone when forks keep it.
func (e *Engine) expireDurable(ctx context.Context, tenantID, name string) error {
	gone := false
	err := e.store.Write(ctx, func(tx store.Tx) error {
		gone = false
		s, err := tx.GetDurableStreamForUpdate(ctx, tenantID, name)
		if err != nil || !durableExpired(s, time.Now()) {
			return err
		}
		n, err := tx.CountDurableForks(ctx, s.ID)
		if err != nil {
			return err
		}
		if n > 0 {
			gone, s.Deleted = true, true
			return tx.UpdateDurableStream(ctx, s)
		}
		return e.deleteCascade(ctx, tx, s)
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if gone {
		return ErrDurableGone
	}
	return fmt.Errorf("durable stream %s expired: %w", name, store.ErrNotFound)
}

// ReadDurable reads a stream's events after a position, up to about
// maxBytes of payload (at least one event).
func (e *Engine) ReadDurable(ctx context.Context, s store.DurableStream, after int64, maxBytes int) ([]store.Event, error) {
	return e.readSegments(ctx, s, after, maxBytes, 0)
}

// WaitDurable returns a channel closed at the next append to the stream
// (or any wake-up that may concern it). Arm it before reading.
func (e *Engine) WaitDurable(id string) <-chan struct{} { return e.hub.Wait(id) }

// DeleteDurableStream deletes a stream and its data: DurableAppended when
// done, DurableNotFound, or DurableGone when it was deleted already but
// forks keep it. A stream with forks is only marked deleted (410 from then
// on); the last fork's deletion removes it.
func (e *Engine) DeleteDurableStream(ctx context.Context, p Principal, name string) (DurableOutcome, error) {
	if !p.CanWrite() {
		return DurableNotFound, nil
	}
	var out DurableOutcome
	id := ""
	err := e.store.Write(ctx, func(tx store.Tx) error {
		out, id = DurableNotFound, ""
		s, err := tx.GetDurableStreamForUpdate(ctx, p.TenantID, name)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if s.Deleted {
			out = DurableGone
			return nil
		}
		expired := durableExpired(s, time.Now())
		n, err := tx.CountDurableForks(ctx, s.ID)
		if err != nil {
			return err
		}
		out, id = DurableAppended, s.ID
		if n > 0 {
			if expired {
				out = DurableGone
			}
			s.Deleted = true
			return tx.UpdateDurableStream(ctx, s)
		}
		if expired {
			out = DurableNotFound
		}
		return e.deleteCascade(ctx, tx, s)
	})
	if err == nil && id != "" {
		e.hub.NotifyRuns(id) // live readers look again and find it gone
	}
	return out, err
}

// ListDurableStreams lists the tenant's live streams by name: not deleted,
// not expired. Errors: PermissionDenied for browser tokens.
func (e *Engine) ListDurableStreams(ctx context.Context, p Principal) ([]store.DurableStream, error) {
	if !p.CanWrite() {
		return nil, apierr.New(apierr.PermissionDenied, "a browser token cannot list streams")
	}
	all, err := e.store.ListDurableStreams(ctx, p.TenantID)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	out := all[:0]
	for _, s := range all {
		if !s.Deleted && !durableExpired(s, now) {
			out = append(out, s)
		}
	}
	return out, nil
}

// LastDurablePosition is the position of the stream's last event.
func (e *Engine) LastDurablePosition(ctx context.Context, s store.DurableStream) (int64, error) {
	return e.durableTail(ctx, s)
}

// RunStreamTail is the position of a run's last event (0: none), for
// serving a run as a read-only durable stream.
func (e *Engine) RunStreamTail(ctx context.Context, tenantID, runID string) (int64, error) {
	return e.store.LastRunPosition(ctx, tenantID, runID)
}

// RunNamedStreamTail is the position of the newest step.stream event of a
// run's stream ("" the default one), 0 if it has none.
func (e *Engine) RunNamedStreamTail(ctx context.Context, tenantID, runID, stream string) (int64, error) {
	return e.store.LastStreamPosition(ctx, tenantID, runID, []string{stream})
}

// ReadRunStream reads a page of a run's events after a position.
func (e *Engine) ReadRunStream(ctx context.Context, tenantID, runID string, after int64, maxBytes int) ([]store.Event, error) {
	return e.store.ReadEvents(ctx, store.ReadEventsParams{TenantID: tenantID, RunID: runID, After: after, MaxBytes: maxBytes})
}
