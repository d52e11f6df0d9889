package server

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// storeCheckTimeout bounds the store queries of /readyz and of the
// runs-active gauge: a store that takes longer is as good as unreachable
// for a probe.
const storeCheckTimeout = 2 * time.Second

// readyz answers 200 when the store answers a cheap query (the log's newest
// position) within storeCheckTimeout, 503 naming the failure
// otherwise. /healthz only says the process serves HTTP; a load balancer
// or orchestrator should route to a node only while /readyz says ready.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	ctx, cancel := context.WithTimeout(r.Context(), storeCheckTimeout)
	defer cancel()
	if _, err := s.store.LastPosition(ctx); err != nil {
		s.cfg.Logger.Warn("not ready: store unreachable", "store", storeKind(s.cfg.DatabaseURL), "err", err)
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = fmt.Fprintf(w, "not ready: %s store unreachable: %v\n", storeKind(s.cfg.DatabaseURL), err)
		return
	}
	_, _ = w.Write([]byte("ready\n"))
}
