package cli

import (
	"encoding/json"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestVersion(t *testing.T) {
	t.Parallel()
	code, out, errOut := runCLI(t, "version")
	require.Equal(t, 0, code, errOut)
	require.Regexp(t, `(?m)^Version:\s+\S+`, out)
	require.Regexp(t, `(?m)^Go:\s+`+runtime.Version()+`$`, out)
	require.Regexp(t, `(?m)^Platform:\s+`+runtime.GOOS+"/"+runtime.GOARCH+`$`, out)

	code, out, errOut = runCLI(t, "version", "--output", "json")
	require.Equal(t, 0, code, errOut)
	var v map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &v), out)
	require.NotEmpty(t, v["version"]) // "(devel)" in a test binary
	require.Equal(t, runtime.Version(), v["goVersion"])
	require.Equal(t, runtime.GOOS+"/"+runtime.GOARCH, v["platform"])
}

// The completion command (cobra's) is there for every shell the docs name;
// TestDynamicCompletion covers what it completes from the engine.
func TestCompletion(t *testing.T) {
	t.Parallel()
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		code, out, errOut := runCLI(t, "completion", shell)
		require.Equal(t, 0, code, errOut)
		require.Contains(t, out, "runnel", shell)
	}
}
