package postgres

import (
	"context"
	"fmt"

	"github.com/runnel-dev/runnel/internal/store"
	"github.com/runnel-dev/runnel/internal/store/postgres/internal/dbsqlc"
)

// ReadMetadataEvents reads one page in one statement (one snapshot, which
// the gap-free guarantee of the contract needs); see the ReadMetadataEvents
// query in queries/metadata.sql for how it is found without scanning the
// log.
func (s *Store) ReadMetadataEvents(ctx context.Context, p store.ReadMetadataEventsParams) ([]store.Event, error) {
	limit := p.PageLimit()
	rows, err := s.q.ReadMetadataEvents(ctx, dbsqlc.ReadMetadataEventsParams{
		TenantID:  p.TenantID,
		Key:       p.Key,
		Value:     p.Value,
		After:     p.After,
		Horizon:   s.horizon.current(),
		PageLimit: clampLimit(limit),
		MaxBytes:  int64(max(p.MaxBytes, 0)),
	})
	if err != nil {
		// The value is left out: it may be a customer's identifier.
		return nil, mapErr(err, "read events of runs with metadata %q after %d", p.Key, p.After)
	}
	out := make([]store.Event, len(rows))
	for i, e := range rows {
		out[i] = eventFromRow(e)
	}
	return out, nil
}

// LastPosition is the newest position every reader can read: the
// sequence's value now, once the horizon has reached it (every appender
// holding a position at or below it has ended). It asks the database, so
// a position another node handed out is never beyond it.
func (s *Store) LastPosition(ctx context.Context) (int64, error) {
	last, err := s.horizon.sequenceValue(ctx)
	if err != nil {
		return 0, err
	}
	if err := s.horizon.await(ctx, last); err != nil {
		return 0, fmt.Errorf("read the log's last position: %w", err)
	}
	return last, nil
}
