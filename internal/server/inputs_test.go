package server_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/demo"
	"github.com/runnel-dev/runnel/internal/store"
)

// storeBrowserToken writes a browser token straight into the store, as an
// older engine may have minted it, and returns its secret.
func storeBrowserToken(t *testing.T, n *node, tok store.Token) string {
	t.Helper()
	ctx := context.Background()
	secret := "rnl_test_" + hex.EncodeToString([]byte(t.Name() + tok.MetaKey + tok.RunID))[:20]
	sum := sha256.Sum256([]byte(secret))
	err := n.srv.Engine().Store().Write(ctx, func(tx store.Tx) error {
		tenant, err := tx.GetTenantByName(ctx, "default")
		if err != nil {
			return err
		}
		tok.ID, tok.TenantID, tok.Hash, tok.Kind = "tok-"+secret[len(secret)-8:], tenant.ID, hex.EncodeToString(sum[:]), store.TokenBrowser
		tok.Name, tok.CreatedAt, tok.ExpiresAt = "browser", time.Now(), time.Now().Add(time.Hour)
		return tx.CreateToken(ctx, tok)
	})
	require.NoError(t, err)
	return secret
}

// Finding 5: a browser token for metaKey=K, metaValue="" must not read the
// runs that lack K. Minting one is refused; one already stored reads only
// runs that carry K (with the empty value).
func TestBrowserTokenEmptyMetaValue(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, n *node) {
		startWorker(t, n, "demo", 2, demo.Workflows()...)
		api, admin := n.url+"/api/v1", n.srv.AdminToken
		status, body := call(t, "POST", api+"/workflows/demo-text/runs", admin, `{"input": {"chunks": 1, "intervalMs": 1}}`)
		require.Equal(t, 201, status, "%v", body)
		without := body["runId"].(string)
		status, body = call(t, "POST", api+"/workflows/demo-text/runs", admin,
			`{"input": {"chunks": 1, "intervalMs": 1}, "additionalMetadata": {"tenantKey": ""}}`)
		require.Equal(t, 201, status, "%v", body)
		withEmpty := body["runId"].(string)

		status, body = call(t, "POST", api+"/tokens", admin, `{"metaKey": "tenantKey", "metaValue": ""}`)
		requireAPIError(t, status, body, 400, "invalid_argument", "metaValue is empty")
		status, body = call(t, "POST", api+"/tokens", admin, `{"metaKey": "tenantKey"}`)
		requireAPIError(t, status, body, 400, "invalid_argument", "metaValue is empty")

		old := storeBrowserToken(t, n, store.Token{MetaKey: "tenantKey"})
		status, body = call(t, "GET", api+"/runs/"+without, old, "")
		requireAPIError(t, status, body, 404, "not_found", "unknown run")
		status, body = call(t, "GET", api+"/runs/"+without+"/stream", old, "")
		requireAPIError(t, status, body, 404, "not_found", "unknown run")
		status, body = call(t, "GET", api+"/runs/"+withEmpty, old, "")
		require.Equal(t, 200, status, "%v", body)
	})
}
