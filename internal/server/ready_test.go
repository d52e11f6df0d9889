package server_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/server"
	"github.com/runnel-dev/runnel/internal/testdb"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

// waitStatus polls url until it answers status with a body containing
// want, returning the body.
func waitStatus(t *testing.T, url string, status int, want string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, body := get(t, url)
		if got == status && strings.Contains(body, want) {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s answered %d %q, want %d with %q", url, got, body, status, want)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not a synchronisation
	}
}

// /readyz follows the store: ready while it answers, 503 naming the failure
// once it is closed; /healthz (the process) stays 200 throughout.
func TestReadyzStoreClosed(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, n *node) {
		status, body := get(t, n.url+"/readyz")
		require.Equal(t, http.StatusOK, status)
		require.Equal(t, "ready\n", body)

		require.NoError(t, n.srv.Store().Close())
		status, body = get(t, n.url+"/readyz")
		require.Equal(t, http.StatusServiceUnavailable, status)
		require.Contains(t, body, "not ready:")
		require.Contains(t, body, "store unreachable")
		status, body = get(t, n.url+"/healthz")
		require.Equal(t, http.StatusOK, status)
		require.Equal(t, "ok\n", body)

		// The runs-active gauge cannot be counted; the other metrics are
		// still served.
		s := scrapeMetrics(t, n)
		require.NotContains(t, s, "runnel_runs_active")
		require.Contains(t, s, "runnel_worker_slots")
	})
}

// A PostgreSQL server that refuses the node's connections (its role may no
// longer log in, and its sessions were ended) makes the node unready until
// it accepts them again; nothing is restarted.
func TestReadyzPostgresRefusesConnections(t *testing.T) {
	t.Parallel()
	base := os.Getenv("RUNNEL_TEST_DATABASE_URL")
	if base == "" {
		base = testdb.DefaultPostgresURL
	}
	admin := func(t *testing.T, sql string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		require.NoError(t, err)
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, sql)
		require.NoError(t, err, sql)
	}
	role := "runnel_ready_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	n := startNode(t, "postgres", func(cfg *server.Config) {
		// A role of the node's own, with the rights it needs on the test's
		// schema, so that refusing it affects no other test.
		u, err := url.Parse(cfg.DatabaseURL)
		require.NoError(t, err)
		schema := u.Query().Get("search_path")
		admin(t, "CREATE ROLE "+role+" LOGIN")
		t.Cleanup(func() {
			// Runs after the node stopped; the role's tables go with it.
			admin(t, "DROP OWNED BY "+role)
			admin(t, "DROP ROLE "+role)
		})
		admin(t, fmt.Sprintf("GRANT ALL ON SCHEMA %s TO %s", schema, role))
		u.User = url.User(role)
		cfg.DatabaseURL = u.String()
	})
	require.Equal(t, "ready\n", waitStatus(t, n.url+"/readyz", http.StatusOK, ""))

	admin(t, "ALTER ROLE "+role+" NOLOGIN")
	admin(t, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '"+role+"'")
	// The first probe may meet a connection being terminated; once the pool
	// reconnects, the login is refused.
	body := waitStatus(t, n.url+"/readyz", http.StatusServiceUnavailable, "is not permitted to log in")
	require.True(t, strings.HasPrefix(body, "not ready: postgres store unreachable:"), body)
	status, _ := get(t, n.url+"/healthz")
	require.Equal(t, http.StatusOK, status)

	admin(t, "ALTER ROLE "+role+" LOGIN")
	require.Equal(t, "ready\n", waitStatus(t, n.url+"/readyz", http.StatusOK, ""))
}
