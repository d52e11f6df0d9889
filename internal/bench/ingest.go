package bench

import (
	"context"
	"fmt"
	"time"
)

// ingest: stream events durably stored and acknowledged, with 1 and 16
// steps putting as fast as they can, 100 B and 4 KiB payloads. Each step
// counts its puts and flushes before it returns, so every counted event was
// acknowledged by the engine after its commit.
func ingest(ctx context.Context, o Options) ([]Measurement, error) {
	c, err := startCluster(ctx, o, 1)
	if err != nil {
		return nil, err
	}
	defer c.close()
	if err := c.startWorkers(ctx, 1, c.urls[0], 32); err != nil {
		return nil, err
	}
	client, err := c.sdkClient(c.urls[0])
	if err != nil {
		return nil, err
	}
	emitAll := func(steps, size int, d time.Duration) (events int64, span time.Duration, err error) {
		startAt := time.Now().Add(300 * time.Millisecond).UnixNano()
		ids := make([]string, steps)
		for i := range ids {
			if ids[i], err = client.Admin().RunWorkflow(ctx, Emit, EmitInput{StartAtNs: startAt, DurationMs: d.Milliseconds(), Size: size}); err != nil {
				return 0, 0, fmt.Errorf("trigger bench-emit: %w", err)
			}
		}
		var first, last int64
		for _, id := range ids {
			out, err := emitOutput(ctx, client, id)
			if err != nil {
				return 0, 0, err
			}
			events += out.Events
			if first == 0 || out.StartNs < first {
				first = out.StartNs
			}
			last = max(last, out.EndNs)
		}
		return events, time.Duration(last - first), nil
	}
	warm := min(time.Second, o.Duration/2)
	o.progress("ingest: warming up for %v", warm)
	if _, _, err := emitAll(16, 100, warm); err != nil {
		return nil, err
	}
	raw, err := c.rawLimits(ctx, o)
	if err != nil {
		return nil, err
	}
	defer raw.close()
	var out []Measurement
	for _, tc := range []struct{ steps, size int }{{1, 100}, {16, 100}, {1, 4096}, {16, 4096}} {
		o.progress("ingest: %d step(s) putting %d B payloads for %v", tc.steps, tc.size, o.Duration)
		events, span, err := emitAll(tc.steps, tc.size, o.Duration)
		if err != nil {
			return nil, err
		}
		var g *goal
		if tc.size == 100 {
			g = atLeast(150_000, 120_000)
		}
		rate := float64(events) / span.Seconds()
		name := fmt.Sprintf("%d step(s), %d B", tc.steps, tc.size)
		stored := measurement(name, "events stored", rate, "ev/s", g)
		if raw != nil {
			o.progress("ingest: limit: batched inserts of %d B rows", tc.size)
			lim, err := raw.insertLimit(ctx, tc.size, limitDuration(o))
			if err != nil {
				return nil, err
			}
			stored = withLimit(stored, insertWhat, lim, "rows/s")
		}
		out = append(out, stored,
			measurement(name, "payload bytes stored", rate*float64(tc.size)/(1<<20), "MiB/s", nil))
	}
	return out, nil
}
