package sqlite

import (
	"context"

	"github.com/runnel-dev/runnel/internal/store"
	"github.com/runnel-dev/runnel/internal/store/sqlite/internal/dbsqlc"
)

// ReadMetadataEvents reads one page in one statement (one snapshot, which
// the gap-free guarantee of the contract needs); see the ReadMetadataEvents
// query for how it is found without scanning the log.
func (s *Store) ReadMetadataEvents(ctx context.Context, p store.ReadMetadataEventsParams) ([]store.Event, error) {
	limit := p.PageLimit()
	rows, err := s.read.ReadMetadataEvents(ctx, dbsqlc.ReadMetadataEventsParams{
		TenantID:  p.TenantID,
		Key:       p.Key,
		Value:     p.Value,
		After:     p.After,
		PageLimit: int64(limit),
		MaxBytes:  int64(max(p.MaxBytes, 0)),
	})
	if err != nil {
		return nil, mapErr(err, "read events of runs with metadata %q after %d", p.Key, p.After)
	}
	out := make([]store.Event, 0, len(rows))
	for _, r := range rows {
		out = append(out, eventFromRow(dbsqlc.ReadEventsRow(r)))
	}
	return out, nil
}

func (s *Store) LastPosition(ctx context.Context) (int64, error) {
	pos, err := s.read.LastPosition(ctx)
	if err != nil {
		return 0, mapErr(err, "read the log's last position")
	}
	return pos, nil
}
