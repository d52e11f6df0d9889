// Package testdb gives tests their own real database: a fresh SQLite file,
// or a fresh schema in the test PostgreSQL database.
//
// PostgreSQL tests read RUNNEL_TEST_DATABASE_URL (default
// postgres://postgres@127.0.0.1:5432/test?sslmode=disable). When it cannot be
// reached they are skipped with a message saying so, unless
// RUNNEL_TEST_REQUIRE_POSTGRES=1, when they fail.
package testdb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultPostgresURL is used when RUNNEL_TEST_DATABASE_URL is not set.
const DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// SQLitePath returns the path of a new database file in a per-test directory.
func SQLitePath(t testing.TB) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "runnel.db")
}

// PostgresURL creates a schema of its own for the test and returns a URL
// whose connections use it (search_path). The schema is dropped when the
// test ends.
func PostgresURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv("RUNNEL_TEST_DATABASE_URL")
	if base == "" {
		base = DefaultPostgresURL
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		if os.Getenv("RUNNEL_TEST_REQUIRE_POSTGRES") == "1" {
			t.Fatalf("PostgreSQL at %s is required (RUNNEL_TEST_REQUIRE_POSTGRES=1) but unreachable: %v", redact(base), err)
		}
		t.Skipf("PostgreSQL at %s unreachable, skipping (set RUNNEL_TEST_DATABASE_URL, or RUNNEL_TEST_REQUIRE_POSTGRES=1 to fail): %v", redact(base), err)
	}
	defer conn.Close(context.Background())

	var suffix [6]byte
	_, _ = rand.Read(suffix[:])
	schema := "t_" + hex.EncodeToString(suffix[:])
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create test schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Logf("drop test schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Logf("drop test schema %s: %v", schema, err)
		}
	})

	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse RUNNEL_TEST_DATABASE_URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}
