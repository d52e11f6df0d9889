package process

import (
	"net"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

// FreeAddr's ports are outside the ephemeral range (so no listener on port
// 0 and no outgoing connection takes one while an engine restarts), free,
// and never the same twice in a process.
func TestFreeAddr(t *testing.T) {
	t.Parallel()
	start := ephemeralPortsStart()
	seen := map[string]bool{}
	for range 50 {
		addr, err := FreeAddr()
		require.NoError(t, err)
		require.False(t, seen[addr], "handed out twice: %s", addr)
		seen[addr] = true
		_, portText, err := net.SplitHostPort(addr)
		require.NoError(t, err)
		port, err := strconv.Atoi(portText)
		require.NoError(t, err)
		require.Less(t, port, start, "below the ephemeral range")
		ln, err := net.Listen("tcp", addr)
		require.NoError(t, err, "free after the call")
		require.NoError(t, ln.Close())
	}
}
