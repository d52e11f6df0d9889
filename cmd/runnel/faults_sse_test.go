package main_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// followSSE follows GET /api/v1/runs/{id}/stream like a browser's
// EventSource would, until `event: end`: when the connection fails (engine
// killed, 503 while the database restarts, refused) it reconnects, moving
// to the next node, and resumes with Last-Event-ID. It also drops the
// connection itself, mid-response, after a random number of frames, up to
// three times. The rng fixes those choices.
func followSSE(ctx context.Context, nodeURLs []string, token, runID string, rng *rand.Rand) subResult {
	r := subResult{name: fmt.Sprintf("sse %s (first via %s)", runID, nodeURLs[0]), runID: runID}
	last, node := "", 0
	drops := rng.IntN(4)
	var lastErr error
	for failures := 0; ; {
		if ctx.Err() != nil {
			r.err = fmt.Errorf("gave up after %d reconnections (last error: %v): %w", r.reconnects, lastErr, ctx.Err())
			return r
		}
		dropAfter := 0 // never
		if drops > 0 {
			dropAfter = 1 + rng.IntN(40)
		}
		ended, dropped, err := sseOnce(ctx, nodeURLs[node], token, runID, last, dropAfter, func(k evKey) {
			r.events = append(r.events, k)
			last = k.pos
		})
		switch {
		case ended:
			return r
		case dropped:
			drops--
			r.reconnects++
			continue
		}
		lastErr = err
		failures++
		r.reconnects++
		node = (node + 1) % len(nodeURLs)
		wait := time.Duration(min(failures, 10)) * 50 * time.Millisecond
		select {
		case <-time.After(wait):
		case <-ctx.Done():
		}
	}
}

// sseOnce reads one SSE response, passing each event frame to got. It
// reports ended at `event: end`, dropped when it hung up by itself after
// dropAfter frames (0: never), and otherwise why the stream stopped.
func sseOnce(ctx context.Context, nodeURL, token, runID, lastID string, dropAfter int, got func(evKey)) (ended, dropped bool, err error) {
	u := nodeURL + "/api/v1/runs/" + url.PathEscape(runID) + "/stream?token=" + url.QueryEscape(token)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return false, false, err
	}
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false, false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return false, false, fmt.Errorf("GET %s: %s: %s", nodeURL, resp.Status, body)
	}
	var id, event, data string
	frames := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 8<<20)
	for sc.Scan() {
		line := sc.Text()
		if line != "" {
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "id":
				id = value
			case "event":
				event = value
			case "data":
				data = value
			}
			continue // comments and other fields are ignored, as EventSource does
		}
		if event == "" && data == "" {
			continue
		}
		if event == "end" {
			return true, false, nil
		}
		k, err := sseKey(id, event, data)
		if err != nil {
			return false, false, err
		}
		got(k)
		id, event, data = "", "", ""
		if frames++; dropAfter > 0 && frames == dropAfter {
			return false, true, nil // hang up mid-response; resume from k
		}
	}
	if err := sc.Err(); err != nil {
		return false, false, err
	}
	return false, false, errors.New("stream ended without `event: end`")
}

func sseKey(id, event, data string) (evKey, error) {
	var f sseFrame
	f.ID, f.Event = id, event
	if err := json.Unmarshal([]byte(data), &f.Data); err != nil {
		return evKey{}, fmt.Errorf("frame %s: data: %w", id, err)
	}
	p, err := f.payload()
	if err != nil {
		return evKey{}, fmt.Errorf("frame %s: payload: %w", id, err)
	}
	runID, _ := f.Data["runId"].(string)
	attempt, _ := f.Data["attempt"].(float64)
	return evKey{runID: runID, pos: id, typ: event, attempt: int(attempt), payload: payloadKey(p)}, nil
}
