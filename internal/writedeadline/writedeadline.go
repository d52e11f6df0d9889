// Package writedeadline bounds how long one write of an HTTP response may
// wait for its client, without limiting how long the response lasts.
//
// A write deadline set with http.ResponseController is the wrong tool on
// its own: on HTTP/2 it is a timer that resets the stream when it fires,
// even between writes, and setting and lifting it around every write costs
// two round trips through the connection's serving goroutine. A Watchdog
// instead arms a timer while a write runs; only when the write is still
// blocked at the timeout does it set a deadline in the past, which fails
// the write at once (HTTP/1.1: the connection's; HTTP/2: the stream is
// reset).
package writedeadline

import (
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// Watchdog bounds the writes of one response. It is not safe for
// concurrent use, like the ResponseWriter it guards.
type Watchdog struct {
	rc      *http.ResponseController
	timeout time.Duration
	timer   *time.Timer

	mu      sync.Mutex // held by expire while it runs
	expired bool       // guarded by mu
}

// New returns a watchdog for w's writes.
func New(w http.ResponseWriter, timeout time.Duration) *Watchdog {
	return &Watchdog{rc: http.NewResponseController(w), timeout: timeout}
}

// ErrStalled is wrapped by the error of a write that the client did not
// take within the timeout.
var ErrStalled = errors.New("the client took no data")

// Do runs one write (or flush) and fails it if it is still blocked after
// the timeout. Once a write failed so, the response is unusable.
func (d *Watchdog) Do(write func() error) error {
	if d.timer == nil {
		d.timer = time.AfterFunc(d.timeout, d.expire)
	} else {
		d.timer.Reset(d.timeout)
	}
	err := write()
	if !d.timer.Stop() {
		// It fired during the write: wait until expire is done with the
		// ResponseWriter, which must not be used once the handler returns.
		d.mu.Lock()
		d.mu.Unlock() //nolint:staticcheck // an empty critical section: waiting is the point
	}
	d.mu.Lock()
	stalled := d.expired
	d.mu.Unlock()
	if err != nil && stalled {
		return fmt.Errorf("%w for %s: %w", ErrStalled, d.timeout, err)
	}
	return err
}

func (d *Watchdog) expire() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.expired = true
	// A deadline in the past fails the blocked write now. Unsupported
	// writers (a test recorder) never block.
	_ = d.rc.SetWriteDeadline(time.Unix(1, 0))
}
