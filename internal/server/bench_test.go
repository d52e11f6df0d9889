package server_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/server"
)

// BenchmarkStreamEndToEnd measures the whole path of a stream event: a step's
// PutStream → SDK batching → PutStream RPC → group commit → wake-up → feed →
// Subscribe stream → SDK listener, on one in-process engine over loopback.
// It reports events/s through the path and the latency from PutStream to the
// subscriber (p50, p99), with the step putting as fast as it can (rate=max)
// or paced (rate=N events/s). Payloads are 100 bytes.
func BenchmarkStreamEndToEnd(b *testing.B) {
	for _, kind := range stores {
		for _, rate := range []int{0, 1000, 10000} {
			name := "max"
			if rate > 0 {
				name = fmt.Sprint(rate)
			}
			b.Run(fmt.Sprintf("%s/rate=%s", kind, name), func(b *testing.B) {
				benchStream(b, kind, rate)
			})
		}
	}
}

// BenchmarkStreamCrossNode is BenchmarkStreamEndToEnd with the worker on
// engine node A and the subscriber on node B, two nodes on one PostgreSQL
// database: events reach B through PostgreSQL notifications.
func BenchmarkStreamCrossNode(b *testing.B) {
	for _, rate := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("rate=%d", rate), func(b *testing.B) {
			benchStreamOn(b, "postgres", rate, true)
		})
	}
}

func benchStream(b *testing.B, kind string, rate int) { benchStreamOn(b, kind, rate, false) }

func benchStreamOn(b *testing.B, kind string, rate int, crossNode bool) {
	n := startNode(b, kind, defaultWorkerTimers)
	sub := n.client
	if crossNode {
		other := startNode(b, kind, defaultWorkerTimers, func(cfg *server.Config) { cfg.DatabaseURL = n.srv.Config().DatabaseURL })
		c, err := runnel.NewClient(runnel.WithHost(other.url), runnel.WithToken(n.srv.AdminToken), runnel.WithLogger(testLogger(b)))
		require.NoError(b, err)
		sub = c
	}
	total := b.N
	wf := runnel.NewWorkflow("bench").Step("emit", func(ctx runnel.Context) (any, error) {
		payload := make([]byte, 100)
		var tick *time.Ticker
		if rate > 0 {
			// Put in bursts every millisecond to approximate the rate.
			tick = time.NewTicker(time.Millisecond)
			defer tick.Stop()
		}
		perTick := max(rate/1000, 1)
		for i := 0; i < total; {
			if tick != nil {
				<-tick.C
			}
			for j := 0; j < perTick && i < total; j++ {
				binary.LittleEndian.PutUint64(payload, uint64(time.Now().UnixNano()))
				if err := ctx.PutStream(payload); err != nil {
					return nil, err
				}
				i++
				if tick == nil && j == perTick-1 {
					j = -1 // unpaced: keep going
				}
			}
		}
		return nil, nil
	})
	w, err := n.client.NewWorker("bench", runnel.WithSlots(1))
	require.NoError(b, err)
	require.NoError(b, w.Register(wf))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	<-w.Ready()

	runID, err := n.client.Admin().RunWorkflow(ctx, "bench", nil)
	require.NoError(b, err)
	lat := make([]time.Duration, 0, total)
	b.ResetTimer()
	start := time.Now()
	for ev, err := range sub.Listener().Stream(ctx, runID, runnel.WithTypes(runnel.EventStepStream)) {
		require.NoError(b, err)
		sent := time.Unix(0, int64(binary.LittleEndian.Uint64(ev.Payload)))
		lat = append(lat, time.Since(sent))
	}
	elapsed := time.Since(start)
	b.StopTimer()
	require.Len(b, lat, total)
	slices.Sort(lat)
	b.ReportMetric(float64(total)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(0, "ns/op")
	cancel()
	<-done
}
