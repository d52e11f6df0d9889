package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/runnel-dev/runnel"
)

// latency: PutStream → Go SDK subscriber and → SSE client, one engine, at
// 100, 1k and 10k events/s.
func latency(ctx context.Context, o Options) ([]Measurement, error) {
	c, err := startCluster(ctx, o, 1)
	if err != nil {
		return nil, err
	}
	defer c.close()
	if err := c.startWorkers(ctx, 1, c.urls[0], 4); err != nil {
		return nil, err
	}
	ms, err := measureLatency(ctx, o, c, c.urls[0], c.urls[0], []int{100, 1000, 10000}, atMost(1, 1), atMost(5, 5))
	if err != nil {
		return nil, err
	}
	return c.withCommitFloor(ctx, o, ms)
}

// crossNode: latency with the worker on node A and the subscribers on node
// B, two engines on one PostgreSQL database.
func crossNode(ctx context.Context, o Options) ([]Measurement, error) {
	if !o.postgres() && o.Host == "" {
		return nil, errors.New("cross-node runs two engines on one PostgreSQL database: give --db postgres://…")
	}
	c, err := startCluster(ctx, o, 2)
	if err != nil {
		return nil, err
	}
	defer c.close()
	if err := c.startWorkers(ctx, 1, c.urls[0], 4); err != nil {
		return nil, err
	}
	ms, err := measureLatency(ctx, o, c, c.urls[0], c.urls[1], []int{100, 1000, 10000}, nil, atMost(25, 25))
	if err != nil {
		return nil, err
	}
	return c.withCommitFloor(ctx, o, ms)
}

// measureLatency runs one bench-emit run per rate, triggered on triggerURL,
// and follows it from subURL with the SDK and with an SSE client at once.
// p50 and p99 at the highest rate carry the targets.
func measureLatency(ctx context.Context, o Options, c *cluster, triggerURL, subURL string, rates []int, p50Goal, p99Goal *goal) ([]Measurement, error) {
	trigger, err := c.sdkClient(triggerURL)
	if err != nil {
		return nil, err
	}
	sub, err := c.sdkClient(subURL)
	if err != nil {
		return nil, err
	}
	hc := sseHTTPClient()
	warm := min(time.Second, o.Duration/2)
	var out []Measurement
	for _, rate := range rates {
		o.progress("latency at %d events/s for %v (after %v warm-up)", rate, o.Duration, warm)
		startAt := time.Now().Add(500 * time.Millisecond)
		from := startAt.Add(warm).UnixNano()
		runID, err := trigger.Admin().RunWorkflow(ctx, Emit, EmitInput{
			StartAtNs: startAt.UnixNano(), Rate: rate, DurationMs: (warm + o.Duration).Milliseconds(), Size: 100,
		})
		if err != nil {
			return nil, fmt.Errorf("trigger bench-emit: %w", err)
		}
		// sdkRecorded splits the SDK's latencies at the time the engine
		// recorded the event (its transaction's clock): put → recorded is
		// the worker's batching, the RPC and the appender's queue; the rest
		// is the commit, the feed's read and the delivery.
		var sdkLat, sseLat, sdkRecorded []time.Duration
		var sdkSeq, sseSeq sequence
		subCtx, cancelSubs := context.WithCancel(ctx)
		g, gctx := errgroup.WithContext(subCtx)
		g.Go(func() error {
			for ev, err := range sub.Listener().Stream(gctx, runID, runnel.WithTypes(runnel.EventStepStream)) {
				now := time.Now()
				if err != nil {
					return fmt.Errorf("SDK subscriber: %w", err)
				}
				sent, seq, err := decodeHeader(ev.Payload)
				if err != nil {
					return err
				}
				sdkSeq.see(seq)
				if sent >= from {
					sdkLat = append(sdkLat, now.Sub(time.Unix(0, sent)))
					sdkRecorded = append(sdkRecorded, ev.Time.Sub(time.Unix(0, sent)))
				}
			}
			return nil
		})
		g.Go(func() error {
			next, closeFn, err := sseSubscribe(gctx, hc, subURL, "/api/v1/runs/"+runID+"/stream",
				url.Values{"types": {string(runnel.EventStepStream)}}, c.token)
			if err != nil {
				return err
			}
			defer closeFn()
			for {
				ev, err := next()
				now := time.Now()
				if err == io.EOF {
					return nil
				}
				if err != nil {
					return fmt.Errorf("SSE subscriber: %w", err)
				}
				sent, seq, err := decodeHeader([]byte(ev.Payload))
				if err != nil {
					return err
				}
				sseSeq.see(seq)
				if sent >= from {
					sseLat = append(sseLat, now.Sub(time.Unix(0, sent)))
				}
			}
		})
		emitted, err := emitOutput(ctx, trigger, runID)
		if err != nil {
			cancelSubs()
			_ = g.Wait()
			return nil, err
		}
		err = g.Wait()
		cancelSubs()
		if err != nil {
			return nil, err
		}
		if err := sdkSeq.check("SDK subscriber", emitted.Events); err != nil {
			return nil, err
		}
		if err := sseSeq.check("SSE subscriber", emitted.Events); err != nil {
			return nil, err
		}
		var p50g, p99g *goal
		if rate == rates[len(rates)-1] {
			p50g, p99g = p50Goal, p99Goal
		}
		achieved := float64(emitted.Events) / time.Duration(emitted.EndNs-emitted.StartNs).Seconds()
		out = append(out, measurement(fmt.Sprintf("%d ev/s", rate), "rate achieved", achieved, "ev/s", nil))
		for _, s := range []struct {
			name string
			lat  []time.Duration
		}{{"SDK", sdkLat}, {"SSE", sseLat}} {
			sorted := sortDurations(s.lat)
			cs := fmt.Sprintf("%d ev/s → %s", rate, s.name)
			out = append(out,
				measurement(cs, "p50", percentile(sorted, 50), "ms", p50g),
				measurement(cs, "p99", percentile(sorted, 99), "ms", p99g),
				measurement(cs, "p99.9", percentile(sorted, 99.9), "ms", nil),
			)
		}
		recorded := sortDurations(sdkRecorded)
		out = append(out, measurement(fmt.Sprintf("%d ev/s → SDK", rate), "p50 of put → recorded", percentile(recorded, 50), "ms", nil))
	}
	return out, nil
}
