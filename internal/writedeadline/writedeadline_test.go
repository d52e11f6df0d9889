package writedeadline_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/runnel-dev/runnel/internal/writedeadline"
)

// A write the client does not take fails with ErrStalled after the
// timeout, on HTTP/1.1 and HTTP/2; a stream that is only idle between
// writes for longer than the timeout is not cut.
func TestStalledWriteFailsIdleStreamDoesNot(t *testing.T) {
	t.Parallel()
	const timeout = 200 * time.Millisecond
	for _, h2 := range []bool{false, true} {
		name := map[bool]string{false: "HTTP/1.1", true: "h2c"}[h2]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			result := make(chan error, 1)
			idleDone := make(chan struct{})
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				d := writedeadline.New(w, timeout)
				rc := http.NewResponseController(w)
				if r.URL.Path == "/idle" {
					// Two writes with an idle gap longer than the timeout:
					// the client's second read is the signal it arrived.
					for range 2 {
						if err := d.Do(func() error { _, err := io.WriteString(w, "tick\n"); return err }); err != nil {
							result <- err
							return
						}
						if err := d.Do(rc.Flush); err != nil {
							result <- err
							return
						}
						if r.ProtoMajor == 2 {
							<-idleDone // held past the timeout by the client
						}
					}
					result <- nil
					return
				}
				chunk := make([]byte, 64<<10)
				for {
					if err := d.Do(func() error { _, err := w.Write(chunk); return err }); err != nil {
						result <- err
						return
					}
				}
			}))
			srv.Config.Protocols = new(http.Protocols)
			srv.Config.Protocols.SetHTTP1(true)
			srv.Config.Protocols.SetUnencryptedHTTP2(true)
			srv.Start()
			defer srv.Close()

			tr := &http.Transport{Protocols: new(http.Protocols)}
			if h2 {
				tr.Protocols.SetUnencryptedHTTP2(true)
			} else {
				tr.Protocols.SetHTTP1(true)
			}
			client := &http.Client{Transport: tr}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()

			// A client that never reads its response.
			req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/flood", nil)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			select {
			case err := <-result:
				if !errors.Is(err, writedeadline.ErrStalled) {
					t.Fatalf("write to a client that does not read: %v, want ErrStalled", err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("the stalled write was not failed")
			}

			if !h2 {
				return // the idle case matters where deadlines are timers: HTTP/2
			}
			req, _ = http.NewRequestWithContext(ctx, "GET", srv.URL+"/idle", nil)
			resp2, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp2.Body.Close()
			br := bufio.NewReader(resp2.Body)
			if _, err := br.ReadString('\n'); err != nil {
				t.Fatal(err)
			}
			// Idle longer than the timeout: a stalled-write watchdog on a
			// loaded machine takes at least this long too.
			idle := time.NewTimer(3 * timeout)
			<-idle.C
			close(idleDone)
			if _, err := br.ReadString('\n'); err != nil {
				t.Fatalf("the stream was cut while idle: %v", err)
			}
			if err := <-result; err != nil {
				t.Fatalf("idle stream: %v", err)
			}
		})
	}
}
