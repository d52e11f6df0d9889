package api

import (
	"net/http"
	"strings"
	"time"

	"github.com/runnel-dev/runnel/internal/engine"
)

// streamJSON is a standalone durable stream as GET /api/v1/streams lists it.
type streamJSON struct {
	Name        string `json:"name"`
	ContentType string `json:"contentType"`
	Closed      bool   `json:"closed"`
	CreatedAt   string `json:"createdAt"`
	// TailOffset is the protocol offset after the stream's last message.
	TailOffset string `json:"tailOffset"`
}

// maxListedStreams bounds one listing; ?prefix= narrows it.
const maxListedStreams = 1000

// listStreams serves GET /api/v1/streams: the tenant's standalone durable
// streams by name (not part of the Durable Streams protocol, which has no
// listing). ?prefix= keeps names starting with it.
func (h *HTTP) listStreams(w http.ResponseWriter, r *http.Request, p engine.Principal) {
	q, ok := h.listingQuery(w, r, p, "prefix")
	if !ok {
		return
	}
	prefix := q.Get("prefix")
	if err := engine.CheckText("prefix", prefix); err != nil {
		h.writeError(w, r, err)
		return
	}
	streams, err := h.engine.ListDurableStreams(r.Context(), p)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	out := make([]streamJSON, 0, len(streams))
	for _, s := range streams {
		if !strings.HasPrefix(s.Name, prefix) {
			continue
		}
		if len(out) == maxListedStreams {
			break
		}
		tail, err := h.engine.LastDurablePosition(r.Context(), s)
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		out = append(out, streamJSON{
			Name: s.Name, ContentType: s.ContentType, Closed: s.Closed,
			CreatedAt: s.CreatedAt.UTC().Format(time.RFC3339), TailOffset: FormatOffset(tail),
		})
	}
	writeJSON(w, http.StatusOK, map[string]any{"streams": out})
}
