package store

import (
	"context"
	"time"
)

// DurableStream is a standalone durable stream (issue 21): named per
// tenant, outside runs. Its data are events of the log whose RunID is the
// stream's ID, so positions, ordering, wake-ups and durability are the
// log's own.
type DurableStream struct {
	ID          string // "ds_" + UUID; never a run id
	TenantID    string
	Name        string
	ContentType string
	TTLSeconds  int64     // sliding TTL; 0: none
	ExpiresAt   time.Time // absolute expiry; zero: none
	Closed      bool
	// ClosedBy is the idempotent producer tuple (id, epoch, seq) of the
	// append that closed the stream, encoded by the engine; "" if none.
	ClosedBy string
	LastSeq  string // the last Stream-Seq accepted ("" none)
	// A fork reads ForkSourceID's events up to ForkOffset (a position),
	// then its own. ForkSubOffset is as the fork was asked for (to compare
	// a repeated PUT).
	ForkSourceID  string
	ForkOffset    int64
	ForkSubOffset int64
	// Deleted: deleted while forks read it (410 Gone until they are gone).
	Deleted    bool
	AccessedAt time.Time
	CreatedAt  time.Time
}

// DurableProducer is an idempotent producer's state on one stream.
type DurableProducer struct {
	StreamID   string
	ProducerID string
	Epoch      int64
	LastSeq    int64
}

// DurableTx holds the durable stream writes of Tx.
type DurableTx interface {
	// InsertDurableStream creates a stream; ErrConflict if the tenant has
	// one of that name.
	InsertDurableStream(ctx context.Context, s DurableStream) error
	// GetDurableStreamForUpdate reads and locks a stream by name.
	GetDurableStreamForUpdate(ctx context.Context, tenantID, name string) (DurableStream, error)
	// UpdateDurableStream writes Closed, ClosedBy, LastSeq, Deleted and AccessedAt.
	UpdateDurableStream(ctx context.Context, s DurableStream) error
	// TouchDurableStream sets AccessedAt (sliding TTL).
	TouchDurableStream(ctx context.Context, id string, at time.Time) error
	// GetDurableStreamByID reads a stream by id (a fork's source).
	GetDurableStreamByID(ctx context.Context, id string) (DurableStream, error)
	// CountDurableForks counts the streams forked from a stream.
	CountDurableForks(ctx context.Context, sourceID string) (int64, error)
	// DeleteDurableStream deletes a stream with its producers and events.
	DeleteDurableStream(ctx context.Context, id string) error
	// GetDurableProducer reads a producer's state; ErrNotFound if none.
	GetDurableProducer(ctx context.Context, streamID, producerID string) (DurableProducer, error)
	UpsertDurableProducer(ctx context.Context, p DurableProducer) error
}

// DurableReader holds the durable stream reads of Store.
type DurableReader interface {
	GetDurableStream(ctx context.Context, tenantID, name string) (DurableStream, error)
	GetDurableStreamByID(ctx context.Context, id string) (DurableStream, error)
	ListDurableStreams(ctx context.Context, tenantID string) ([]DurableStream, error)
}
