package cli

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseMeta(t *testing.T) {
	t.Parallel()
	got, err := parseMeta([]string{"a=1", "b=", "c=x=y"})
	require.NoError(t, err)
	require.Equal(t, map[string]string{"a": "1", "b": "", "c": "x=y"}, got)
	for _, bad := range [][]string{{"a"}, {"=1"}, {"a=1", "a=2"}} {
		_, err := parseMeta(bad)
		require.Error(t, err, "%q", bad)
		require.Contains(t, err.Error(), "--meta")
	}
}

func FuzzParseMeta(f *testing.F) {
	f.Add("a=1")
	f.Add("=")
	f.Add("k==v")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseMeta([]string{s})
		if err != nil {
			return
		}
		k, v, _ := strings.Cut(s, "=")
		if len(got) != 1 || got[k] != v || k == "" {
			t.Fatalf("parseMeta(%q) = %v", s, got)
		}
	})
}
