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
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/runnel-dev/runnel"
)

// sdkClient is a Go SDK client of the engine at host.
func (c *cluster) sdkClient(host string) (*runnel.Client, error) {
	return runnel.NewClient(runnel.WithHost(host), runnel.WithToken(c.token))
}

// sseHTTPClient makes one HTTP/1.1 connection per SSE subscriber, as
// browsers' EventSource does.
func sseHTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 1024,
		DisableCompression:  true,
	}}
}

// sseEvent is what the bench reads of an SSE message.
type sseEvent struct {
	Type    string `json:"type"`
	Payload string `json:"payload"`
}

// sseSubscribe opens an SSE stream and returns once the engine answered
// (the subscription is open). next then returns each message's data until
// the stream's end message, then io.EOF.
func sseSubscribe(ctx context.Context, hc *http.Client, host, path string, q url.Values, token string) (next func() (sseEvent, error), closeFn func(), err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, host+path+"?"+q.Encode(), nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("SSE subscribe: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		resp.Body.Close()
		return nil, nil, fmt.Errorf("SSE subscribe: %s: %s", resp.Status, bytes.TrimSpace(b))
	}
	r := bufio.NewReaderSize(resp.Body, 16<<10)
	var name string
	var data []byte
	next = func() (sseEvent, error) {
		for {
			line, err := r.ReadSlice('\n')
			if err != nil {
				if err == io.EOF {
					return sseEvent{}, io.ErrUnexpectedEOF
				}
				return sseEvent{}, err
			}
			line = bytes.TrimRight(line, "\r\n")
			switch {
			case len(line) == 0:
				if name == "end" {
					return sseEvent{}, io.EOF
				}
				if data == nil {
					continue
				}
				var ev sseEvent
				err := json.Unmarshal(data, &ev)
				name, data = "", nil
				return ev, err
			case bytes.HasPrefix(line, []byte("event: ")):
				name = string(line[7:])
			case bytes.HasPrefix(line, []byte("data: ")):
				data = append(data, line[6:]...)
			}
		}
	}
	return next, func() { resp.Body.Close() }, nil
}

// awaitRun waits for the run's terminal event on a subscription.
func awaitRun(ctx context.Context, c *runnel.Client, runID string) (runnel.Event, error) {
	for ev, err := range c.Listener().Stream(ctx, runID,
		runnel.WithTypes(runnel.EventRunCompleted, runnel.EventRunFailed, runnel.EventRunCancelled, runnel.EventRunTimedOut)) {
		if err != nil {
			return runnel.Event{}, err
		}
		if ev.Terminal() {
			return ev, nil
		}
	}
	return runnel.Event{}, fmt.Errorf("run %s: subscription ended without a terminal event", runID)
}

// emitOutput waits for a bench-emit run and returns its output.
func emitOutput(ctx context.Context, c *runnel.Client, runID string) (EmitOutput, error) {
	ev, err := awaitRun(ctx, c, runID)
	if err != nil {
		return EmitOutput{}, err
	}
	if ev.Type != runnel.EventRunCompleted {
		run, _ := c.Admin().GetRun(ctx, runID)
		detail := ""
		if run != nil {
			for _, s := range run.Steps {
				detail += " " + s.Error
			}
		}
		return EmitOutput{}, fmt.Errorf("bench-emit run %s ended %s:%s", runID, ev.Type, detail)
	}
	run, err := c.Admin().GetRun(ctx, runID)
	if err != nil {
		return EmitOutput{}, err
	}
	if len(run.Steps) != 1 {
		return EmitOutput{}, fmt.Errorf("bench-emit run %s has %d steps, want 1", runID, len(run.Steps))
	}
	var out EmitOutput
	if err := json.Unmarshal(run.Steps[0].Output, &out); err != nil {
		return EmitOutput{}, fmt.Errorf("bench-emit output %s: %w", run.Steps[0].Output, err)
	}
	return out, nil
}

// sequence checks that a subscriber saw events 1..n, each once, in order.
type sequence struct {
	last     int64
	problems int64 // events out of order, repeated or after a gap
}

func (s *sequence) see(seq int64) {
	if seq != s.last+1 {
		s.problems++
	}
	s.last = max(s.last, seq)
}

func (s *sequence) check(who string, want int64) error {
	if s.problems > 0 || s.last != want {
		return fmt.Errorf("%s: saw up to event %d of %d with %d out of sequence: lost, repeated or reordered events", who, s.last, want, s.problems)
	}
	return nil
}

// counterSum reads the engine's /metrics and sums every series of the
// counter named name (0 when it has none yet).
func counterSum(ctx context.Context, host, name string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, host+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("read the engine's metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("read the engine's metrics: %s", resp.Status)
	}
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest != "" && rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, fmt.Errorf("metric line %q: %w", line, err)
		}
		sum += v
	}
	return sum, sc.Err()
}
