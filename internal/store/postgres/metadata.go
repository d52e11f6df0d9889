package postgres

import (
	"context"

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

func (s *Store) LastPosition(ctx context.Context) (int64, error) {
	pos, err := s.q.LastPosition(ctx)
	if err != nil {
		return 0, mapErr(err, "read the log's last position")
	}
	return pos, nil
}
