package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/runnel-dev/runnel/internal/store"
	"github.com/runnel-dev/runnel/internal/store/sqlite/internal/dbsqlc"
)

func durableFromRow(r dbsqlc.DurableStream) store.DurableStream {
	return store.DurableStream{
		ID: r.ID, TenantID: r.TenantID, Name: r.Name, ContentType: r.ContentType,
		TTLSeconds: r.TtlSeconds, ExpiresAt: fromMicros(r.ExpiresAt), Closed: r.Closed,
		ClosedBy: r.ClosedBy, LastSeq: r.LastSeq, ForkSourceID: r.ForkSourceID,
		ForkOffset: r.ForkOffset, ForkSubOffset: r.ForkSubOffset, Deleted: r.Deleted,
		AccessedAt: fromMicros(r.AccessedAt), CreatedAt: fromMicros(r.CreatedAt),
	}
}

func (t *tx) InsertDurableStream(ctx context.Context, s store.DurableStream) error {
	n, err := t.q.InsertDurableStream(t.ctx(ctx), dbsqlc.InsertDurableStreamParams{
		ID: s.ID, TenantID: s.TenantID, Name: s.Name, ContentType: s.ContentType,
		TtlSeconds: s.TTLSeconds, ExpiresAt: toMicros(s.ExpiresAt), Closed: s.Closed,
		ClosedBy: s.ClosedBy, LastSeq: s.LastSeq, ForkSourceID: s.ForkSourceID,
		ForkOffset: s.ForkOffset, ForkSubOffset: s.ForkSubOffset,
		AccessedAt: toMicros(s.AccessedAt), CreatedAt: toMicros(s.CreatedAt),
	})
	if err != nil {
		return mapErr(err, "create durable stream %s", s.Name)
	}
	if n == 0 {
		return fmt.Errorf("create durable stream %s: %w", s.Name, store.ErrConflict)
	}
	return nil
}

func (t *tx) GetDurableStreamForUpdate(ctx context.Context, tenantID, name string) (store.DurableStream, error) {
	r, err := t.q.GetDurableStream(t.ctx(ctx), dbsqlc.GetDurableStreamParams{TenantID: tenantID, Name: name})
	if err != nil {
		return store.DurableStream{}, mapErr(err, "get durable stream %s", name)
	}
	return durableFromRow(r), nil
}

func (t *tx) UpdateDurableStream(ctx context.Context, s store.DurableStream) error {
	n, err := t.q.UpdateDurableStream(t.ctx(ctx), dbsqlc.UpdateDurableStreamParams{
		Closed: s.Closed, ClosedBy: s.ClosedBy, LastSeq: s.LastSeq, Deleted: s.Deleted, AccessedAt: toMicros(s.AccessedAt), ID: s.ID,
	})
	if err != nil {
		return mapErr(err, "update durable stream %s", s.Name)
	}
	if n == 0 {
		return mapErr(store.ErrNotFound, "update durable stream %s", s.Name)
	}
	return nil
}

func (t *tx) TouchDurableStream(ctx context.Context, id string, at time.Time) error {
	err := t.q.TouchDurableStream(t.ctx(ctx), dbsqlc.TouchDurableStreamParams{AccessedAt: toMicros(at), ID: id})
	return mapErr(err, "touch durable stream %s", id)
}

func (t *tx) DeleteDurableStream(ctx context.Context, id string) error {
	if err := t.q.DeleteDurableStreamEvents(t.ctx(ctx), id); err != nil {
		return mapErr(err, "delete events of durable stream %s", id)
	}
	if err := t.q.DeleteDurableStreamProducers(t.ctx(ctx), id); err != nil {
		return mapErr(err, "delete producers of durable stream %s", id)
	}
	return mapErr(t.q.DeleteDurableStream(t.ctx(ctx), id), "delete durable stream %s", id)
}

func (t *tx) GetDurableProducer(ctx context.Context, streamID, producerID string) (store.DurableProducer, error) {
	r, err := t.q.GetDurableProducer(t.ctx(ctx), dbsqlc.GetDurableProducerParams{StreamID: streamID, ProducerID: producerID})
	if err != nil {
		return store.DurableProducer{}, mapErr(err, "get producer %s", producerID)
	}
	return store.DurableProducer{StreamID: r.StreamID, ProducerID: r.ProducerID, Epoch: r.Epoch, LastSeq: r.LastSeq}, nil
}

func (t *tx) UpsertDurableProducer(ctx context.Context, p store.DurableProducer) error {
	err := t.q.UpsertDurableProducer(t.ctx(ctx), dbsqlc.UpsertDurableProducerParams{
		StreamID: p.StreamID, ProducerID: p.ProducerID, Epoch: p.Epoch, LastSeq: p.LastSeq,
	})
	return mapErr(err, "save producer %s", p.ProducerID)
}

func (s *Store) GetDurableStream(ctx context.Context, tenantID, name string) (store.DurableStream, error) {
	r, err := s.read.GetDurableStream(ctx, dbsqlc.GetDurableStreamParams{TenantID: tenantID, Name: name})
	if err != nil {
		return store.DurableStream{}, mapErr(err, "get durable stream %s", name)
	}
	return durableFromRow(r), nil
}

func (s *Store) ListDurableStreams(ctx context.Context, tenantID string) ([]store.DurableStream, error) {
	rows, err := s.read.ListDurableStreams(ctx, tenantID)
	if err != nil {
		return nil, mapErr(err, "list durable streams")
	}
	out := make([]store.DurableStream, len(rows))
	for i, r := range rows {
		out[i] = durableFromRow(r)
	}
	return out, nil
}

func (t *tx) GetDurableStreamByID(ctx context.Context, id string) (store.DurableStream, error) {
	r, err := t.q.GetDurableStreamByID(t.ctx(ctx), id)
	if err != nil {
		return store.DurableStream{}, mapErr(err, "get durable stream %s", id)
	}
	return durableFromRow(r), nil
}

func (t *tx) CountDurableForks(ctx context.Context, sourceID string) (int64, error) {
	n, err := t.q.CountDurableForks(t.ctx(ctx), sourceID)
	return n, mapErr(err, "count forks of %s", sourceID)
}

func (s *Store) GetDurableStreamByID(ctx context.Context, id string) (store.DurableStream, error) {
	r, err := s.read.GetDurableStreamByID(ctx, id)
	if err != nil {
		return store.DurableStream{}, mapErr(err, "get durable stream %s", id)
	}
	return durableFromRow(r), nil
}
