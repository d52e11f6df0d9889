package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/testengine"
)

// runnel token create --expires, list and revoke, against a real engine.
func TestTokenCommands(t *testing.T) {
	e := testengine.Start(t)
	conn := []string{"--host", e.URL, "--token", e.Token}

	code, stdout, stderr := runCLI(t, append([]string{"token", "create", "--tenant", "acme", "--name", "ci", "--expires", "24h"}, conn...)...)
	require.Equal(t, 0, code, stderr)
	secret := strings.TrimSpace(stdout)
	require.True(t, strings.HasPrefix(secret, "rnl_"), "stdout is the secret alone: %q", stdout)
	require.Contains(t, stderr, "token id ")
	require.Contains(t, stderr, "expires ")
	id := strings.Fields(strings.TrimPrefix(stderr, "token id "))[0]
	id = strings.TrimSuffix(id, ",")

	code, stdout, stderr = runCLI(t, append([]string{"token", "list", "--output", "json"}, conn...)...)
	require.Equal(t, 0, code, stderr)
	var listed struct {
		Tokens []map[string]any `json:"tokens"`
	}
	require.NoError(t, json.Unmarshal([]byte(stdout), &listed), stdout)
	require.Len(t, listed.Tokens, 2)
	require.Equal(t, id, listed.Tokens[1]["id"])
	require.Equal(t, "acme", listed.Tokens[1]["tenant"])
	require.NotContains(t, stdout, secret)

	code, stdout, stderr = runCLI(t, append([]string{"token", "revoke", id}, conn...)...)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "Revoked token "+id)
	code, stdout, stderr = runCLI(t, append([]string{"token", "list"}, conn...)...)
	require.Equal(t, 0, code, stderr)
	require.Regexp(t, id+`\s+acme\s+api\s+ci\s+\S+\s+\S+\s+revoked `, stdout)

	code, _, stderr = runCLI(t, "runs", "list", "--host", e.URL, "--token", secret)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "token revoked")

	for want, args := range map[string][]string{
		"invalid --expires 500ms": {"token", "create", "--expires", "500ms"},
		"unknown token":           {"token", "revoke", "nope"},
		"cannot revoke itself":    {"token", "revoke", listed.Tokens[0]["id"].(string)},
	} {
		code, _, stderr = runCLI(t, append(args, conn...)...)
		require.Equal(t, 1, code, want)
		require.Contains(t, stderr, want)
	}
}
