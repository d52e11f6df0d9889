package runnel

import (
	"context"
	"errors"
	"iter"

	"connectrpc.com/connect"

	runnelv1 "github.com/runnel-dev/runnel/internal/gen/runnel/v1"
)

// StreamByAdditionalMetadata returns an iterator over the events of every
// run whose additional metadata has key = value: the runs that exist when it
// starts and every run created later with that pair (children spawned from
// such a run inherit it), in one order across runs, each run's events in
// their order. It starts at the oldest such run still stored unless an
// option says otherwise; [FromNow] gives only new events, and [After]
// resumes after any position it delivered (a position from [Listener.Stream]
// of such a run works too).
//
// It never ends by itself: runs come and go, and the subscription stays
// open until ctx ends or the loop is broken out of (which closes it). It
// reconnects and resumes like [Listener.Stream], without gaps or
// duplicates. An error that retrying cannot cure (connect.CodeInvalidArgument
// for an empty key or a bad position, connect.CodePermissionDenied for a
// browser token minted for another pair) is yielded once and ends the
// iteration, as does ctx's error when ctx ends.
//
//	for ev, err := range c.Listener().StreamByAdditionalMetadata(ctx, "streamKey", "sk-42") {
//		if err != nil {
//			return err
//		}
//		fmt.Println(ev.RunID, ev.Type, string(ev.Payload))
//	}
func (l *Listener) StreamByAdditionalMetadata(ctx context.Context, key, value string, opts ...SubscribeOption) iter.Seq2[Event, error] {
	if len(subscribeConfigOf(opts).streams) > 0 {
		return func(yield func(Event, error) bool) {
			yield(Event{}, errors.New("runnel: the Streams option is for run subscriptions (Listener.Stream), not metadata subscriptions"))
		}
	}
	return l.iterate(ctx, subscription{
		what: "runs with metadata " + key + "=" + value,
		open: func(ctx context.Context, from string, types []string) (*connect.ServerStreamForClient[runnelv1.SubscribeResponse], error) {
			return l.c.run.SubscribeMetadata(ctx, connect.NewRequest(&runnelv1.SubscribeMetadataRequest{
				Key: key, Value: value, From: from, Types: types,
			}))
		},
	}, opts)
}
