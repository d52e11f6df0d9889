package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"
)

// Durable Streams protocol scenarios: a standalone stream written and read
// through the open protocol at /v1/stream/{name}, as its clients do.

// dsMessage is one bench message: its producer sequence and send time. The
// writer pads it to about 100 bytes.
type dsMessage struct {
	Seq  int64  `json:"s"`
	Sent int64  `json:"t"`
	Pad  string `json:"p"`
}

// dsClient talks the Durable Streams protocol to one engine.
type dsClient struct {
	hc    *http.Client
	base  string // .../v1/stream/NAME
	token string
}

func newDSClient(host, token, name string, conns int) *dsClient {
	return &dsClient{
		hc: &http.Client{Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 30 * time.Second}).DialContext,
			MaxIdleConnsPerHost: conns,
			MaxConnsPerHost:     conns,
			DisableCompression:  true,
		}},
		base:  host + "/v1/stream/" + name,
		token: token,
	}
}

func (d *dsClient) do(ctx context.Context, method, url string, body []byte, header map[string]string) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+d.token)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := d.hc.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

func (d *dsClient) create(ctx context.Context) error {
	resp, body, err := d.do(ctx, http.MethodPut, d.base, nil, map[string]string{"Content-Type": "application/json"})
	if err != nil {
		return fmt.Errorf("create durable stream: %w", err)
	}
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return fmt.Errorf("create durable stream: %s: %s", resp.Status, body)
	}
	return nil
}

// producer appends with the protocol's idempotent producer headers, up to
// window requests in flight. A request that arrives before its predecessor
// is answered 409 (a sequence gap) and is sent again once the predecessor
// is stored, as the protocol's clients do.
type producer struct {
	d      *dsClient
	id     string
	mu     sync.Mutex
	done   map[int64]bool // producer seqs stored
	failed bool           // a send failed: waiters give up
	change *sync.Cond
}

func newProducer(d *dsClient) *producer {
	p := &producer{d: d, id: "bench-" + uuid.NewString(), done: make(map[int64]bool)}
	p.change = sync.NewCond(&p.mu)
	return p
}

// fail wakes every send waiting for a predecessor that will never come.
func (p *producer) fail() {
	p.mu.Lock()
	p.failed = true
	p.change.Broadcast()
	p.mu.Unlock()
}

// send appends one body as producer seq seq (from 0), waiting out gaps.
func (p *producer) send(ctx context.Context, seq int64, body []byte) error {
	header := map[string]string{
		"Content-Type": "application/json", "Producer-Id": p.id, "Producer-Epoch": "0", "Producer-Seq": strconv.FormatInt(seq, 10),
	}
	for {
		resp, b, err := p.d.do(ctx, http.MethodPost, p.d.base, body, header)
		if err != nil {
			p.fail()
			return fmt.Errorf("append seq %d: %w", seq, err)
		}
		switch {
		case resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusNoContent:
			p.mu.Lock()
			p.done[seq] = true
			p.change.Broadcast()
			p.mu.Unlock()
			return nil
		case resp.StatusCode == http.StatusConflict && resp.Header.Get("Producer-Expected-Seq") != "":
			// Arrived before its predecessor: wait until that is stored.
			p.mu.Lock()
			for !p.done[seq-1] && !p.failed {
				p.change.Wait()
			}
			failed := p.failed
			p.mu.Unlock()
			if failed {
				return fmt.Errorf("append seq %d: an earlier append failed", seq)
			}
		default:
			p.fail()
			return fmt.Errorf("append seq %d: %s: %s", seq, resp.Status, b)
		}
	}
}

// dsAppend: appends/s to one standalone stream through the protocol, one
// producer, 100-byte messages: one message per POST with requests
// pipelined (several in flight), and JSON-array batches (the protocol's
// batching: one POST appends every element of the array as a message).
func dsAppend(ctx context.Context, o Options) ([]Measurement, error) {
	c, err := startCluster(ctx, o, 1)
	if err != nil {
		return nil, err
	}
	defer c.close()
	raw, err := c.rawLimits(ctx, o)
	if err != nil {
		return nil, err
	}
	defer raw.close()
	var out []Measurement
	for _, tc := range []struct {
		name     string
		window   int // requests in flight
		perPost  int // messages per POST
		target   *goal
		checkAll bool
	}{
		{"1 msg/POST, 1 in flight", 1, 1, nil, true},
		{"1 msg/POST, 64 in flight", 64, 1, atLeast(20000, 20000), true},
		{"100 msgs/POST (JSON array), 8 in flight", 8, 100, nil, true},
	} {
		name := "bench-" + uuid.NewString()
		d := newDSClient(c.urls[0], c.token, name, tc.window)
		if err := d.create(ctx); err != nil {
			return nil, err
		}
		p := newProducer(d)
		var next atomic.Int64 // next producer seq
		var msgs atomic.Int64 // messages stored in the window
		warm := min(time.Second, o.Duration/2)
		start := time.Now()
		measureFrom, measureTo := start.Add(warm), start.Add(warm+o.Duration)
		o.progress("durable append: %s for %v (after %v warm-up)", tc.name, o.Duration, warm)
		g, gctx := errgroup.WithContext(ctx)
		for range tc.window {
			g.Go(func() error {
				for time.Now().Before(measureTo) {
					seq := next.Add(1) - 1
					body := dsBody(seq, tc.perPost)
					if err := p.send(gctx, seq, body); err != nil {
						return err
					}
					if now := time.Now(); now.After(measureFrom) && now.Before(measureTo) {
						msgs.Add(int64(tc.perPost))
					}
				}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return nil, err
		}
		total := next.Load() * int64(tc.perPost)
		if err := dsCheckAll(ctx, d, total, tc.perPost); err != nil {
			return nil, err
		}
		m := measurement("durable append, "+tc.name, "appends", float64(msgs.Load())/o.Duration.Seconds(), "msg/s", tc.target)
		if raw != nil {
			// One message a request is bound by commits (the engine
			// groups concurrent requests into one); arrays by inserts.
			if tc.perPost == 1 {
				lim, err := raw.commitLimit(ctx, tc.window, limitDuration(o))
				if err != nil {
					return nil, err
				}
				m = withLimit(m, fmt.Sprintf("%s, %d clients", commitWhat, tc.window), lim.perSecond, "commits/s")
			} else {
				lim, err := raw.insertLimit(ctx, 100, limitDuration(o))
				if err != nil {
					return nil, err
				}
				m = withLimit(m, insertWhat, lim, "rows/s")
			}
		}
		out = append(out, m)
	}
	return out, nil
}

// dsBody is the JSON body of producer seq seq: one message, or an array of
// perPost messages numbered seq*perPost…
func dsBody(seq int64, perPost int) []byte {
	msg := func(n int64) dsMessage {
		m := dsMessage{Seq: n, Sent: time.Now().UnixNano()}
		m.Pad = strings.Repeat("x", 100-len(fmt.Sprintf(`{"s":%d,"t":%d,"p":""}`, m.Seq, m.Sent)))
		return m
	}
	var v any = msg(seq)
	if perPost > 1 {
		batch := make([]dsMessage, perPost)
		for i := range batch {
			batch[i] = msg(seq*int64(perPost) + int64(i))
		}
		v = batch
	}
	b, _ := json.Marshal(v)
	return b
}

// dsCheckAll reads the whole stream back (catch-up reads) and checks it
// holds messages 0…total-1, each once, in order.
func dsCheckAll(ctx context.Context, d *dsClient, total int64, perPost int) error {
	offset := "-1"
	var want int64
	for {
		resp, body, err := d.do(ctx, http.MethodGet, d.base+"?offset="+offset, nil, nil)
		if err != nil {
			return fmt.Errorf("read back: %w", err)
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("read back at %s: %s: %s", offset, resp.Status, body)
		}
		var msgs []dsMessage
		if err := json.Unmarshal(body, &msgs); err != nil {
			return fmt.Errorf("read back at %s: %w", offset, err)
		}
		for _, m := range msgs {
			if m.Seq != want {
				return fmt.Errorf("read back: message %d where %d was expected (lost, repeated or reordered)", m.Seq, want)
			}
			want++
		}
		offset = resp.Header.Get("Stream-Next-Offset")
		if resp.Header.Get("Stream-Up-To-Date") == "true" || len(msgs) == 0 {
			break
		}
	}
	if want != total {
		return fmt.Errorf("read back %d messages, %d were appended", want, total)
	}
	_ = perPost
	return nil
}

// dsLatency: a live SSE reader of a standalone stream (?live=sse) while one
// writer appends 100-byte messages at 1,000/s; latency from before the
// append's POST to the reader parsing the message.
func dsLatency(ctx context.Context, o Options) ([]Measurement, error) {
	c, err := startCluster(ctx, o, 1)
	if err != nil {
		return nil, err
	}
	defer c.close()
	const rate = 1000
	d := newDSClient(c.urls[0], c.token, "bench-"+uuid.NewString(), 4)
	if err := d.create(ctx); err != nil {
		return nil, err
	}
	warm := min(time.Second, o.Duration/2)
	o.progress("durable SSE latency at %d appends/s for %v (after %v warm-up)", rate, o.Duration, warm)

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.base+"?offset=-1&live=sse", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+d.token)
	resp, err := sseHTTPClient().Do(req)
	if err != nil {
		return nil, fmt.Errorf("open the SSE reader: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return nil, fmt.Errorf("open the SSE reader: %s: %s", resp.Status, b)
	}

	start := time.Now()
	from, to := start.Add(warm).UnixNano(), start.Add(warm+o.Duration)
	var lat []time.Duration   // the reader's; read after it stopped
	var received atomic.Int64 // messages the reader checked
	progress := make(chan struct{}, 1)
	readerDone := make(chan error, 1)
	go func() {
		var want int64
		r := bufio.NewReaderSize(resp.Body, 64<<10)
		var event string
		var data bytes.Buffer
		for {
			line, err := r.ReadBytes('\n')
			if err != nil {
				readerDone <- fmt.Errorf("SSE reader: %w", err)
				return
			}
			line = bytes.TrimRight(line, "\r\n")
			switch {
			case len(line) == 0:
				if event == "data" {
					now := time.Now()
					var msgs []dsMessage
					if err := json.Unmarshal(data.Bytes(), &msgs); err != nil {
						readerDone <- fmt.Errorf("SSE reader: %w", err)
						return
					}
					for _, m := range msgs {
						if m.Seq != want {
							readerDone <- fmt.Errorf("SSE reader: message %d where %d was expected", m.Seq, want)
							return
						}
						want++
						if m.Sent >= from {
							lat = append(lat, now.Sub(time.Unix(0, m.Sent)))
						}
					}
					received.Store(want)
					select {
					case progress <- struct{}{}:
					default:
					}
				}
				event = ""
				data.Reset()
			case bytes.HasPrefix(line, []byte("event:")):
				event = strings.TrimSpace(string(line[len("event:"):]))
			case bytes.HasPrefix(line, []byte("data:")):
				if data.Len() > 0 {
					data.WriteByte('\n')
				}
				data.Write(line[len("data:"):])
			}
		}
	}()

	// One append at a time, on a 1 ms schedule: an append that takes
	// longer delays the next ones, which then catch up, so the rate holds.
	p := newProducer(d)
	tick := time.NewTicker(time.Second / rate)
	defer tick.Stop()
	var seq int64
	for now := time.Now(); now.Before(to); now = time.Now() {
		if due := int64(now.Sub(start) * rate / time.Second); seq >= due {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case err := <-readerDone:
				return nil, fmt.Errorf("the reader ended early: %v", err)
			case <-tick.C:
			}
			continue
		}
		if err := p.send(ctx, seq, dsBody(seq, 1)); err != nil {
			return nil, err
		}
		seq++
	}
	deadline := time.After(30 * time.Second)
	for received.Load() < seq {
		select {
		case <-progress:
		case err := <-readerDone:
			return nil, fmt.Errorf("the reader ended early: %v", err)
		case <-deadline:
			return nil, fmt.Errorf("the SSE reader got %d of %d messages within 30s", received.Load(), seq)
		}
	}
	resp.Body.Close()
	<-readerDone // it stopped: lat is complete
	sorted := sortDurations(lat)
	achieved := float64(len(lat)) / o.Duration.Seconds()
	ms := []Measurement{
		measurement("durable SSE reader at 1k appends/s", "rate achieved", achieved, "msg/s", nil),
		measurement("durable SSE reader at 1k appends/s", "p50", percentile(sorted, 50), "ms", atMost(2, 2)),
		measurement("durable SSE reader at 1k appends/s", "p99", percentile(sorted, 99), "ms", atMost(10, 10)),
	}
	return c.withCommitFloor(ctx, o, ms)
}
