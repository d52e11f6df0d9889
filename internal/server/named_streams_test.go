package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel"
	pb "github.com/runnel-dev/runnel/internal/gen/runnel/v1"
)

// isStreamEvent: the events a stream filter applies to.
func isStreamEvent(ev runnel.Event) bool {
	return ev.Type == runnel.EventStepStream || ev.Type == "step.stream_closed"
}

// onStreams is what a subscriber of these streams must get of all: every
// event that is not a stream event, and the stream events of its streams.
func onStreams(all []runnel.Event, streams ...string) []runnel.Event {
	var out []runnel.Event
	for _, ev := range all {
		name := ev.Stream
		if name == "" {
			name = runnel.DefaultStream
		}
		if !isStreamEvent(ev) || contains(streams, name) {
			out = append(out, ev)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func collect(t *testing.T, seq func(func(runnel.Event, error) bool)) []runnel.Event {
	t.Helper()
	var out []runnel.Event
	for ev, err := range seq {
		require.NoError(t, err)
		out = append(out, ev)
	}
	return out
}

// Issue 21: a step writes three streams interleaved (the default one, "a"
// and "b"), closes "a" before it ends; subscribers of one, two and all
// streams, through the Go SDK and SSE, each get exactly their sequence;
// from=latest gives the newest stream event and everything after, no more;
// a closed stream refuses more data, also from a client that does not
// check; bad names are refused with errors naming them.
func TestNamedStreams(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, n *node) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		const rounds = 30
		halfway := make(chan struct{})
		release := make(chan struct{})
		type refusals struct{ badName, afterClose, engineAfterClose error }
		refused := make(chan refusals, 1)
		raw := newRaw(n, n.srv.AdminToken)
		wf := runnel.NewWorkflow("three-streams").Step("s", func(sc runnel.Context) (any, error) {
			var r refusals
			puts := int64(0) // payloads put so far: the attempt's seq
			for i := range rounds {
				if i == rounds/2 {
					if err := sc.Flush(); err != nil {
						return nil, err
					}
					close(halfway)
					<-release
				}
				batch := []struct {
					data string
					opts []runnel.PutOption
				}{{fmt.Sprintf("a%d", i), []runnel.PutOption{runnel.ToStream("a")}}}
				if i%2 == 0 {
					batch = append(batch, struct {
						data string
						opts []runnel.PutOption
					}{fmt.Sprintf("b%d", i), []runnel.PutOption{runnel.ToStream("b")}})
				}
				if i%3 == 0 {
					batch = append(batch, struct {
						data string
						opts []runnel.PutOption
					}{fmt.Sprintf("d%d", i), nil})
				}
				for _, p := range batch {
					if i > rounds-5 && len(p.opts) > 0 && p.data[0] == 'a' {
						continue // "a" is closed by then
					}
					if err := sc.PutStream([]byte(p.data), p.opts...); err != nil {
						return nil, err
					}
					puts++
				}
				if i == rounds-5 {
					if err := sc.CloseStream("a"); err != nil {
						return nil, err
					}
					r.afterClose = sc.PutStream([]byte("late"), runnel.ToStream("a"))
					_, r.engineAfterClose = raw.worker.PutStream(sc, connect.NewRequest(&pb.PutStreamRequest{
						StepRunId: sc.StepRunID(), Attempt: int32(sc.Attempt()), FirstSeq: puts + 1,
						Payloads: [][]byte{[]byte("late")}, Stream: "a",
					}))
				}
			}
			r.badName = sc.PutStream([]byte("x"), runnel.ToStream("no spaces"))
			refused <- r
			return "ok", nil
		})
		startWorker(t, n, "w", 2, wf)
		runID, err := n.client.Admin().RunWorkflow(ctx, "three-streams", nil)
		require.NoError(t, err)

		// from=latest while the run goes on: the newest "b" event so far,
		// then everything after it of "b" (and the lifecycle events).
		select {
		case <-halfway:
		case <-ctx.Done():
			t.Fatal("the step never got halfway")
		}
		liveLatest := make(chan []runnel.Event, 1)
		subscribed := make(chan struct{})
		go func() {
			var got []runnel.Event
			for ev, err := range n.client.Listener().Stream(ctx, runID, runnel.FromLatest(), runnel.Streams("b"),
				runnel.OnSubscribed(func(runnel.Position) { close(subscribed) })) {
				if err != nil {
					t.Error(err)
					break
				}
				got = append(got, ev)
			}
			liveLatest <- got
		}()
		<-subscribed
		close(release)

		run, all := waitRun(t, n, runID)
		require.Equal(t, runnel.RunCompleted, run.Status, run.Error)
		r := <-refused
		require.ErrorContains(t, r.badName, `invalid stream name "no spaces"`)
		require.ErrorContains(t, r.afterClose, `stream "a" was closed`)
		require.Equal(t, connect.CodeFailedPrecondition, connect.CodeOf(r.engineAfterClose), "%v", r.engineAfterClose)
		require.ErrorContains(t, r.engineAfterClose, `stream "a"`)

		// The run's events: three streams, each in put order, "a" closed.
		texts := map[string][]string{}
		closes := 0
		for _, ev := range all {
			switch ev.Type {
			case runnel.EventStepStream:
				texts[ev.Stream] = append(texts[ev.Stream], string(ev.Payload))
			case "step.stream_closed":
				closes++
				require.Equal(t, "a", ev.Stream)
			}
		}
		require.Equal(t, 1, closes)
		require.Len(t, texts["a"], rounds-4)
		require.Len(t, texts["b"], rounds/2)
		require.Len(t, texts[""], rounds/3)
		require.Equal(t, "a0", texts["a"][0])
		require.Equal(t, fmt.Sprintf("b%d", rounds-2), texts["b"][len(texts["b"])-1])

		// Subscribers of one, two and all streams.
		for _, streams := range [][]string{{"a"}, {"b"}, {runnel.DefaultStream}, {"a", "b"}, {"b", runnel.DefaultStream}, {"a", "b", runnel.DefaultStream}} {
			got := collect(t, n.client.Listener().Stream(ctx, runID, runnel.Streams(streams...)))
			require.Equal(t, onStreams(all, streams...), got, "streams %v", streams)
		}

		// The live from=latest subscriber: the newest "b" event before it
		// joined, then the rest of "b".
		got := <-liveLatest
		bOnly := onStreams(all, "b")
		require.NotEmpty(t, got)
		require.Equal(t, runnel.EventStepStream, got[0].Type)
		require.Equal(t, "b", got[0].Stream)
		require.Equal(t, fmt.Sprintf("b%d", rounds/2-1), string(got[0].Payload), "the newest b event at the time")
		idx := indexOf(bOnly, got[0].Position)
		require.GreaterOrEqual(t, idx, 0)
		require.Equal(t, bOnly[idx:], got)

		// from=latest on the finished run: the last stream event of the
		// chosen streams and everything after, no more.
		for _, streams := range [][]string{nil, {"a"}, {runnel.DefaultStream}} {
			opts := []runnel.SubscribeOption{runnel.FromLatest()}
			want := all
			if streams != nil {
				opts = append(opts, runnel.Streams(streams...))
				want = onStreams(all, streams...)
			}
			last := -1
			for i, ev := range want {
				if ev.Type == runnel.EventStepStream {
					last = i
				}
			}
			got := collect(t, n.client.Listener().Stream(ctx, runID, opts...))
			require.Equal(t, want[last:], got, "from latest of %v", streams)
		}

		// SSE: ?streams= and ?from=latest; named events carry "stream".
		sseURL := n.url + "/api/v1/runs/" + runID + "/stream"
		resp := openSSE(t, sseURL+"?streams=b,default", n.srv.AdminToken)
		require.Equal(t, 200, resp.StatusCode)
		frames, _ := readSSE(t, resp.Body)
		want := onStreams(all, "b", runnel.DefaultStream)
		require.Len(t, frames, len(want)+1)
		for i, ev := range want {
			require.Equal(t, string(ev.Position), frames[i].id)
			var data struct {
				Type, Stream, Payload string
			}
			require.NoError(t, json.Unmarshal([]byte(frames[i].data), &data))
			require.Equal(t, string(ev.Type), data.Type)
			require.Equal(t, ev.Stream, data.Stream)
			require.Equal(t, string(ev.Payload), data.Payload)
			if ev.Stream == "" {
				require.NotContains(t, frames[i].data, `"stream"`, "the default stream's events are as before")
			}
		}
		resp = openSSE(t, sseURL+"?from=latest&streams=a", n.srv.AdminToken)
		require.Equal(t, 200, resp.StatusCode)
		frames, _ = readSSE(t, resp.Body)
		aOnly := onStreams(all, "a")
		lastA := 0
		for i, ev := range aOnly {
			if ev.Type == runnel.EventStepStream {
				lastA = i
			}
		}
		require.Len(t, frames, len(aOnly)-lastA+1)
		require.Equal(t, string(aOnly[lastA].Position), frames[0].id)

		// Bad input: a clear 400 naming the problem.
		for q, msg := range map[string]string{
			"streams=" + url.QueryEscape("a b"):  `invalid stream name "a b"`,
			"streams=" + strings.Repeat("x", 65): "longer than 64",
			"from=newest":                        "want start, now or latest",
		} {
			status, body := call(t, "GET", sseURL+"?"+q, n.srv.AdminToken, "")
			requireAPIError(t, status, body, 400, "invalid_argument", msg)
		}
		status, body := call(t, "GET", n.url+"/api/v1/stream?from=latest&metaKey=k&metaValue=v", n.srv.AdminToken, "")
		requireAPIError(t, status, body, 400, "invalid_argument", "from=latest is for run subscriptions")

		// The Durable Streams protocol: each named stream of the run, read
		// only, closed since the run ended; offsets are log positions.
		for _, name := range []string{"a", "b", runnel.DefaultStream} {
			resp := openSSE(t, n.url+"/v1/runs/"+runID+"/streams/"+name+"?offset=-1", n.srv.AdminToken)
			require.Equal(t, 200, resp.StatusCode, name)
			require.Equal(t, "true", resp.Header.Get("Stream-Closed"), name)
			var msgs []struct{ Type, Stream, Payload string }
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&msgs))
			want := texts[name]
			if name == runnel.DefaultStream {
				want = texts[""]
			}
			var got []string
			for _, m := range msgs {
				require.Equal(t, "step.stream", m.Type)
				got = append(got, m.Payload)
			}
			require.Equal(t, want, got, "protocol read of stream %s", name)
		}
		resp = openSSE(t, n.url+"/v1/runs/"+runID+"/streams/no%20such", n.srv.AdminToken)
		require.Equal(t, 400, resp.StatusCode)
		other, err := n.client.Admin().CreateToken(ctx, "tenant-other", "")
		require.NoError(t, err)
		resp = openSSE(t, n.url+"/v1/runs/"+runID+"/streams/a?offset=-1", other)
		require.Equal(t, 404, resp.StatusCode, "another tenant's token")
	})
}

func indexOf(events []runnel.Event, pos runnel.Position) int {
	for i, ev := range events {
		if ev.Position == pos {
			return i
		}
	}
	return -1
}
