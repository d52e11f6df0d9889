package runnel

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
)

// parseHosts parses one engine base URL or several, separated by commas
// (several engine nodes sharing one PostgreSQL database). All must use the
// same scheme.
func parseHosts(raw string) ([]string, error) {
	var hosts []string
	for _, part := range strings.Split(raw, ",") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		h, err := parseHost(part)
		if err != nil {
			return nil, err
		}
		hosts = append(hosts, h)
	}
	if len(hosts) == 0 {
		return nil, fmt.Errorf("invalid host %q: no URL", raw)
	}
	scheme := strings.SplitN(hosts[0], "://", 2)[0]
	for _, h := range hosts[1:] {
		if !strings.HasPrefix(h, scheme+"://") {
			return nil, fmt.Errorf("invalid hosts %q: all must use %s", raw, scheme)
		}
	}
	return hosts, nil
}

// failover sends every request to the current engine node and moves to the
// next one when a request cannot reach it (a transport error: refused,
// reset, timed out). It moves only on the transport layer; the SDK's own
// retries (worker re-registration, subscription resume) then reach the next
// node, and everything they resume from (worker ids, positions) is in the
// shared database.
type failover struct {
	base  http.RoundTripper
	hosts []*url.URL
	cur   atomic.Int64
}

func newFailover(base http.RoundTripper, hosts []string) (*failover, error) {
	f := &failover{base: base}
	for _, h := range hosts {
		u, err := url.Parse(h)
		if err != nil {
			return nil, err
		}
		f.hosts = append(f.hosts, u)
	}
	return f, nil
}

func (f *failover) RoundTrip(req *http.Request) (*http.Response, error) {
	i := f.cur.Load()
	target := f.hosts[int(i)%len(f.hosts)]
	r := req.Clone(req.Context())
	r.URL.Scheme, r.URL.Host, r.Host = target.Scheme, target.Host, ""
	r.URL.Path = strings.TrimSuffix(target.Path, "/") + req.URL.Path
	resp, err := f.base.RoundTrip(r)
	if err != nil && req.Context().Err() == nil {
		// Only the first failure of this node moves on; concurrent
		// failures of the same node must not skip the next one.
		f.cur.CompareAndSwap(i, i+1)
	}
	return resp, err
}
