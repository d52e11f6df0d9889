package cli

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// Bad limit and shutdown flags are refused at start, naming the flag.
func TestServerLimitFlagsAreValidated(t *testing.T) {
	for want, args := range map[string][]string{
		"invalid --max-subscribers -1":           {"--max-subscribers", "-1"},
		"invalid --max-subscribers-per-token -5": {"--max-subscribers-per-token", "-5"},
		"invalid --token-mint-rate -0.5":         {"--token-mint-rate", "-0.5"},
		"invalid --token-mint-burst 0":           {"--token-mint-burst", "0"},
		"invalid --shutdown-timeout 0s":          {"--shutdown-timeout", "0s"},
		"invalid --idle-timeout 0s":              {"--idle-timeout", "0s"},
		"invalid --write-timeout -1s":            {"--write-timeout", "-1s"},
	} {
		code, _, stderr := runCLI(t, append([]string{"server", "--data-dir", t.TempDir()}, args...)...)
		require.Equal(t, 1, code)
		require.Contains(t, stderr, want)
	}
}
