package bench

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"time"

	"github.com/runnel-dev/runnel"
)

// replayEvents is the size of the replayed run at scale 1.
const replayEvents = 1_000_000

// replay: a late subscriber reading a finished run of 1M events from the
// start, with the Go SDK and over SSE.
func replay(ctx context.Context, o Options) ([]Measurement, error) {
	c, err := startCluster(ctx, o, 1)
	if err != nil {
		return nil, err
	}
	defer c.close()
	if err := c.startWorkers(ctx, 1, c.urls[0], 4); err != nil {
		return nil, err
	}
	client, err := c.sdkClient(c.urls[0])
	if err != nil {
		return nil, err
	}
	n := max(int64(replayEvents*o.Scale), 1)
	o.progress("replay: writing a run of %d events", n)
	runID, err := client.Admin().RunWorkflow(ctx, Emit, EmitInput{Count: n, Size: 100})
	if err != nil {
		return nil, fmt.Errorf("trigger bench-emit: %w", err)
	}
	if _, err := emitOutput(ctx, client, runID); err != nil {
		return nil, err
	}
	var readLimit float64
	raw, err := c.rawLimits(ctx, o)
	if err != nil {
		return nil, err
	}
	if raw != nil {
		o.progress("replay: limit: a plain sequential read of the run")
		// Once to warm the cache as the readers below are, then measured.
		if _, err := raw.readLimit(ctx, runID); err != nil {
			raw.close()
			return nil, err
		}
		readLimit, err = raw.readLimit(ctx, runID)
		raw.close()
		if err != nil {
			return nil, err
		}
	}
	var out []Measurement
	// Each reader reads the whole run; the duration only sets how many
	// times, so a longer duration gives steadier figures.
	for _, reader := range []string{"SDK", "SSE"} {
		var total time.Duration
		reads := 0
		for total < o.Duration || reads == 0 {
			o.progress("replay: %s reader, pass %d", reader, reads+1)
			start := time.Now()
			var seq sequence
			if reader == "SDK" {
				for ev, err := range client.Listener().Stream(ctx, runID, runnel.WithTypes(runnel.EventStepStream)) {
					if err != nil {
						return nil, fmt.Errorf("SDK reader: %w", err)
					}
					_, s, err := decodeHeader(ev.Payload)
					if err != nil {
						return nil, err
					}
					seq.see(s)
				}
			} else {
				next, closeFn, err := sseSubscribe(ctx, sseHTTPClient(), c.urls[0], "/api/v1/runs/"+runID+"/stream",
					url.Values{"types": {string(runnel.EventStepStream)}}, c.token)
				if err != nil {
					return nil, err
				}
				for {
					ev, err := next()
					if err == io.EOF {
						break
					}
					if err != nil {
						closeFn()
						return nil, fmt.Errorf("SSE reader: %w", err)
					}
					_, s, err := decodeHeader([]byte(ev.Payload))
					if err != nil {
						closeFn()
						return nil, err
					}
					seq.see(s)
				}
				closeFn()
			}
			total += time.Since(start)
			reads++
			if err := seq.check(reader+" reader", n); err != nil {
				return nil, err
			}
		}
		g := atLeast(500_000, 500_000)
		if reader == "SSE" {
			g = atLeast(400_000, 400_000)
		}
		m := measurement(fmt.Sprintf("%d events → %s", n, reader), "read", float64(n)*float64(reads)/total.Seconds(), "ev/s", g)
		if raw != nil {
			m = withLimit(m, readWhat, readLimit, "rows/s")
		}
		out = append(out, m)
	}
	return out, nil
}
