package storetest

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/store"
)

// BenchmarkAppend measures appends through Store.Write, one transaction per
// batch of 1, 100 and 1000 events with 100-byte payloads, and reports
// events/s. open returns an empty store and closes it when b ends.
func BenchmarkAppend(b *testing.B, open func(b *testing.B) store.Store) {
	for _, batch := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			s := open(b)
			f := newFixture(b, s)
			payload := bytes.Repeat([]byte("x"), 100)
			events := make([]store.Event, batch)
			for i := range events {
				events[i] = f.event(store.EventStepStream, payload)
			}
			ctx := b.Context()
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				err := s.Write(ctx, func(tx store.Tx) error { return tx.AppendEvents(ctx, events) })
				require.NoError(b, err)
				n++
			}
			b.ReportMetric(float64(n*batch)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkReadEvents measures reading a run's events from the start in
// pages, as a subscriber catching up does (256 events or 256 KiB a page),
// over a run of 100,000 events of 100 bytes, and reports events/s.
func BenchmarkReadEvents(b *testing.B, open func(b *testing.B) store.Store) {
	const total, batch = 100_000, 1000
	s := open(b)
	f := newFixture(b, s)
	ctx := b.Context()
	payload := bytes.Repeat([]byte("x"), 100)
	events := make([]store.Event, batch)
	for range total / batch {
		for i := range events {
			events[i] = f.event(store.EventStepStream, payload)
		}
		require.NoError(b, s.Write(ctx, func(tx store.Tx) error { return tx.AppendEvents(ctx, events) }))
	}
	b.ReportAllocs()
	read := 0
	for b.Loop() {
		var after int64
		for n := 0; n < total; {
			page, err := s.ReadEvents(ctx, store.ReadEventsParams{TenantID: f.tenant.ID, RunID: f.run.ID, After: after, Limit: 256, MaxBytes: 256 << 10})
			require.NoError(b, err)
			require.NotEmpty(b, page)
			n += len(page)
			after = page[len(page)-1].Position
		}
		read += total
	}
	b.ReportMetric(float64(read)/b.Elapsed().Seconds(), "events/s")
}
