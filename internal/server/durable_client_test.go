package server_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel"
)

// The Go client of standalone durable streams (c.Streams()): create,
// append (idempotent producers), read, follow live until closed, the
// protocol's errors as errors.Is-able values, on both stores.
func TestDurableStreamsGoClient(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, n *node) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		s := n.client.Streams()
		require.NoError(t, s.Create(ctx, "log", runnel.WithContentType("text/plain")))
		require.NoError(t, s.Create(ctx, "log", runnel.WithContentType("text/plain")), "creating again with the same configuration")
		require.ErrorIs(t, s.Create(ctx, "log", runnel.WithContentType("application/json")), runnel.ErrStreamConflict)

		_, err := s.Append(ctx, "nope", []byte("x"))
		require.ErrorIs(t, err, runnel.ErrStreamNotFound)
		var se *runnel.StreamError
		require.ErrorAs(t, err, &se)
		require.Equal(t, 404, se.Status)

		// Follow from the start while appends happen.
		got := make(chan string, 100)
		followed := make(chan error, 1)
		go func() {
			defer close(got)
			for chunk, err := range s.Follow(ctx, "log", runnel.FromBeginning) {
				if err != nil {
					followed <- err
					return
				}
				got <- string(chunk.Data)
			}
			followed <- nil
		}()
		p := runnel.Producer{ID: "p1"}
		for i := range 5 {
			p.Seq = int64(i)
			_, err := s.Append(ctx, "log", fmt.Appendf(nil, "m%d;", i), runnel.AsProducer(p))
			require.NoError(t, err)
		}
		p.Seq = 4
		_, err = s.Append(ctx, "log", []byte("m4;"), runnel.AsProducer(p))
		require.NoError(t, err, "a duplicate is accepted and stored once")
		p.Seq = 9
		_, err = s.Append(ctx, "log", []byte("gap"), runnel.AsProducer(p))
		require.ErrorIs(t, err, runnel.ErrStreamConflict, "a sequence gap")
		_, err = s.Append(ctx, "log", []byte("old"), runnel.AsProducer(runnel.Producer{ID: "p1", Epoch: 1, Seq: 0}))
		require.NoError(t, err, "a new epoch starts at seq 0")
		_, err = s.Append(ctx, "log", []byte("zombie"), runnel.AsProducer(runnel.Producer{ID: "p1", Epoch: 0, Seq: 5}))
		require.ErrorIs(t, err, runnel.ErrProducerFenced)
		require.NoError(t, s.Close(ctx, "log"))
		_, err = s.Append(ctx, "log", []byte("late"))
		require.ErrorIs(t, err, runnel.ErrStreamClosed)

		require.NoError(t, <-followed)
		var all string
		for c := range got {
			all += c
		}
		require.Equal(t, "m0;m1;m2;m3;m4;old", all)

		chunk, err := s.Read(ctx, "log", runnel.FromBeginning)
		require.NoError(t, err)
		require.Equal(t, "m0;m1;m2;m3;m4;old", string(chunk.Data))
		require.True(t, chunk.Closed)
		info, err := s.Head(ctx, "log")
		require.NoError(t, err)
		require.True(t, info.Closed)
		require.Equal(t, chunk.Next, info.Tail)

		require.NoError(t, s.Delete(ctx, "log"))
		_, err = s.Read(ctx, "log", runnel.FromBeginning)
		require.True(t, errors.Is(err, runnel.ErrStreamNotFound), "%v", err)
	})
}
