package api

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/runnel-dev/runnel/internal/apierr"
	"github.com/runnel-dev/runnel/internal/engine"
	"github.com/runnel-dev/runnel/internal/eventlog"
)

// eventRequest is the body of POST /api/v1/events.
type eventRequest struct {
	Key                string            `json:"key"`
	Payload            json.RawMessage   `json:"payload"`
	AdditionalMetadata map[string]string `json:"additionalMetadata"`
}

// pushEvent serves POST /api/v1/events: every workflow registered OnEvents
// for the key runs with the payload as input and the event's metadata.
func (h *HTTP) pushEvent(w http.ResponseWriter, r *http.Request, p engine.Principal) {
	if err := requireWriter(p); err != nil {
		h.writeError(w, r, err)
		return
	}
	var req eventRequest
	if err := decodeJSON(w, r, &req); err != nil {
		h.writeError(w, r, err)
		return
	}
	ids, err := h.engine.PushEvent(r.Context(), p.TenantID, req.Key, req.Payload, req.AdditionalMetadata)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if ids == nil {
		ids = []string{}
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"runIds": ids})
}

// streamMetadata serves GET /api/v1/stream?metaKey=K&metaValue=V: every
// event of every run carrying the pair, including runs created later, as
// SSE. It never ends by itself. Browser tokens must be scoped to the pair.
func (h *HTTP) streamMetadata(w http.ResponseWriter, r *http.Request, p engine.Principal) {
	q, err := parseQuery(r.URL.RawQuery)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	key, value := q.Get("metaKey"), q.Get("metaValue")
	if key == "" {
		h.writeError(w, r, apierr.New(apierr.InvalidArgument, "metaKey is required (with metaValue): the additional metadata pair to follow"))
		return
	}
	from, types, err := streamStart(r.Header, q)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	params := engine.SubscribeMetadataParams{
		TenantID: p.TenantID, Key: key, Value: value, From: from, Types: types, Principal: p,
	}
	h.serveSSE(w, r, newSSEWriter(w, h.engine.Codec(), h.frames, h.cfg.WriteTimeout),
		func(ctx context.Context, deliver eventlog.Deliver) error {
			return h.engine.SubscribeMetadata(ctx, params, deliver)
		},
		nil) // a metadata subscription has no end of its own
}

// childRef is a child run as listed on its parent.
type childRef struct {
	RunID    string `json:"runId"`
	Workflow string `json:"workflow"`
	Status   string `json:"status"`
}
