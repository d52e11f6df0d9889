package eventlog

import (
	"testing"

	"github.com/runnel-dev/runnel/internal/apierr"
	"github.com/stretchr/testify/require"
)

func TestCodecRoundTrip(t *testing.T) {
	t.Parallel()
	c := NewCodec("log-a")
	for _, pos := range []int64{0, 1, 42, 1 << 40} {
		got, err := c.Decode(c.Encode(pos))
		require.NoError(t, err)
		require.Equal(t, pos, got)
	}
}

func TestCodecRefusesBadPositions(t *testing.T) {
	t.Parallel()
	c := NewCodec("log-a")
	other := NewCodec("log-b").Encode(5)
	for _, in := range []string{"", "5", ".5", "x.", c.Encode(5) + "x", other, "abc.-1", c.Encode(1)[:9] + "+1"} {
		_, err := c.Decode(in)
		require.Error(t, err, "input %q", in)
		require.Equal(t, apierr.InvalidArgument, apierr.CodeOf(err), "input %q", in)
	}
}

func FuzzCodecDecode(f *testing.F) {
	c := NewCodec("log-a")
	f.Add(c.Encode(7))
	f.Add("")
	f.Add("deadbeef.12")
	f.Add(c.Encode(1) + ".2")
	f.Fuzz(func(t *testing.T, s string) {
		pos, err := c.Decode(s)
		if err != nil {
			return
		}
		// Whatever decodes must be the canonical form of its offset.
		if pos < 0 {
			t.Fatalf("decoded negative position %d from %q", pos, s)
		}
		back, err := c.Decode(c.Encode(pos))
		if err != nil || back != pos {
			t.Fatalf("re-encode of %d from %q: %d, %v", pos, s, back, err)
		}
	})
}
