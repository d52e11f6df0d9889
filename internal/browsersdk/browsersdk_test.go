package browsersdk_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/runnel-dev/runnel/internal/browsersdk"
	"github.com/runnel-dev/runnel/internal/browsertest"
)

// TestMain stops the browser the browser tests share.
func TestMain(m *testing.M) { browsertest.Main(m) }

// TestHandler: the module is served as JavaScript that any origin may
// import, revalidated on every use (the URL has no version) at the cost of
// a 304.
func TestHandler(t *testing.T) {
	mux := http.NewServeMux()
	browsersdk.Mount(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	req, _ := http.NewRequest("GET", srv.URL+browsersdk.Path, nil)
	req.Header.Set("Origin", "http://elsewhere.example")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, browsersdk.Source()) {
		t.Fatalf("GET %s: %s, %d bytes; want 200 and the module", browsersdk.Path, resp.Status, len(body))
	}
	for name, want := range map[string]string{
		"Content-Type":                "text/javascript; charset=utf-8",
		"Access-Control-Allow-Origin": "*",
		"Cache-Control":               "no-cache",
		"X-Content-Type-Options":      "nosniff",
	} {
		if got := resp.Header.Get(name); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	etag := resp.Header.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag: revalidation would send the whole file")
	}

	req, _ = http.NewRequest("GET", srv.URL+browsersdk.Path, nil)
	req.Header.Set("If-None-Match", etag)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotModified {
		t.Errorf("revalidation with the ETag: %s, want 304", resp.Status)
	}
}
