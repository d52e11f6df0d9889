package api

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/runnel-dev/runnel/internal/apierr"
	"github.com/runnel-dev/runnel/internal/engine"
	"github.com/runnel-dev/runnel/internal/store"
)

// triggerRequest is the body of POST /api/v1/workflows/{name}/runs.
type triggerRequest struct {
	Input              json.RawMessage   `json:"input"`
	AdditionalMetadata map[string]string `json:"additionalMetadata"`
}

func (h *HTTP) triggerRun(w http.ResponseWriter, r *http.Request, p engine.Principal) {
	if err := requireWriter(p); err != nil {
		h.writeError(w, r, err)
		return
	}
	var req triggerRequest
	if r.ContentLength != 0 {
		if err := decodeJSON(w, r, &req); err != nil {
			h.writeError(w, r, err)
			return
		}
	}
	id, err := h.engine.TriggerRun(r.Context(), engine.TriggerParams{
		TenantID: p.TenantID, Workflow: r.PathValue("name"), Input: req.Input, Metadata: req.AdditionalMetadata,
	})
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"runId": id})
}

func (h *HTTP) listWorkflows(w http.ResponseWriter, r *http.Request, p engine.Principal) {
	if err := requireWriter(p); err != nil {
		h.writeError(w, r, err)
		return
	}
	wfs, err := h.engine.ListWorkflows(r.Context(), p.TenantID)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	out := make([]json.RawMessage, 0, len(wfs))
	for _, wf := range wfs {
		out = append(out, wf.Definition) // the engine's JSON form of the definition
	}
	writeJSON(w, http.StatusOK, map[string]any{"workflows": out})
}

// listQuery is the parsed query of GET /api/v1/runs.
func parseListQuery(q url.Values) (store.ListRunsParams, error) {
	var p store.ListRunsParams
	for key := range q {
		switch key {
		case "workflow", "status", "meta", "limit", "before", "token":
		default:
			return p, apierr.New(apierr.InvalidArgument, "unknown query parameter %q (want workflow, status, meta, limit, before)", key)
		}
	}
	p.Workflow = q.Get("workflow")
	p.Status = store.RunStatus(q.Get("status"))
	p.Before = q.Get("before")
	if m := q.Get("meta"); m != "" {
		k, v, ok := strings.Cut(m, ":")
		if !ok || k == "" {
			return p, apierr.New(apierr.InvalidArgument, "invalid meta filter %q: want key:value", m)
		}
		p.MetaKey, p.MetaValue = k, v
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 {
			return p, apierr.New(apierr.InvalidArgument, "invalid limit %q: want a positive number", l)
		}
		p.Limit = n
	}
	return p, nil
}

func (h *HTTP) listRuns(w http.ResponseWriter, r *http.Request, p engine.Principal) {
	if err := requireWriter(p); err != nil {
		h.writeError(w, r, err)
		return
	}
	q, err := parseQuery(r.URL.RawQuery)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	params, err := parseListQuery(q)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	params.TenantID = p.TenantID
	runs, err := h.engine.ListRuns(r.Context(), params)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	out := make([]runJSON, 0, len(runs))
	for _, run := range runs {
		out = append(out, toRunJSON(run, nil))
	}
	resp := map[string]any{"runs": out}
	limit := params.Limit
	if limit == 0 {
		limit = 50 // the engine's default
	}
	if len(runs) == limit {
		resp["nextBefore"] = runs[len(runs)-1].ID // the next page: ?before=
	}
	writeJSON(w, http.StatusOK, resp)
}

func (h *HTTP) getRun(w http.ResponseWriter, r *http.Request, p engine.Principal) {
	view, err := h.engine.ReadRun(r.Context(), p, r.PathValue("runId"))
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	out := toRunJSON(view.Run, view.Steps)
	children, err := h.engine.ListChildRuns(r.Context(), p.TenantID, view.ID)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	for _, c := range children {
		if p.CanReadRun(c) {
			out.Children = append(out.Children, childRef{RunID: c.ID, Workflow: c.Workflow, Status: string(c.Status)})
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *HTTP) cancelRun(w http.ResponseWriter, r *http.Request, p engine.Principal) {
	if err := requireWriter(p); err != nil {
		h.writeError(w, r, err)
		return
	}
	runID := r.PathValue("runId")
	status, err := h.engine.CancelRun(r.Context(), p.TenantID, runID)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"runId": runID, "status": string(status)})
}

// tokenRequest is the body of POST /api/v1/tokens.
type tokenRequest struct {
	RunID     string `json:"runId"`
	MetaKey   string `json:"metaKey"`
	MetaValue string `json:"metaValue"`
	Stream    string `json:"stream"`
	TTL       string `json:"ttl"`
}

func (h *HTTP) createToken(w http.ResponseWriter, r *http.Request, p engine.Principal) {
	var req tokenRequest
	if err := decodeJSON(w, r, &req); err != nil {
		h.writeError(w, r, err)
		return
	}
	var ttl time.Duration
	if req.TTL != "" {
		var err error
		if ttl, err = time.ParseDuration(req.TTL); err != nil || ttl <= 0 {
			h.writeError(w, r, apierr.New(apierr.InvalidArgument, "invalid ttl %q: want a duration such as 15m", req.TTL))
			return
		}
	}
	secret, expires, err := h.engine.CreateBrowserToken(r.Context(), p, engine.BrowserTokenParams{
		RunID: req.RunID, MetaKey: req.MetaKey, MetaValue: req.MetaValue, Stream: req.Stream, TTL: ttl,
	})
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"token": secret, "expiresAt": expires.Format(time.RFC3339)})
}

// runJSON is a run as the HTTP API shows it.
type runJSON struct {
	RunID              string            `json:"runId"`
	Workflow           string            `json:"workflow"`
	Status             string            `json:"status"`
	Input              json.RawMessage   `json:"input"`
	Output             json.RawMessage   `json:"output,omitempty"`
	Error              string            `json:"error,omitempty"`
	AdditionalMetadata map[string]string `json:"additionalMetadata"`
	ParentRunID        string            `json:"parentRunId,omitempty"`
	ParentStepRunID    string            `json:"parentStepRunId,omitempty"`
	CreatedAt          *time.Time        `json:"createdAt"`
	StartedAt          *time.Time        `json:"startedAt"`
	FinishedAt         *time.Time        `json:"finishedAt"`
	Steps              []stepJSON        `json:"steps,omitempty"`
	Children           []childRef        `json:"children,omitempty"`
}

type stepJSON struct {
	StepRunID  string          `json:"stepRunId"`
	Step       string          `json:"step"`
	Parents    []string        `json:"parents"`
	Status     string          `json:"status"`
	Attempt    int             `json:"attempt"`
	Output     json.RawMessage `json:"output,omitempty"`
	Error      string          `json:"error,omitempty"`
	StartedAt  *time.Time      `json:"startedAt"`
	FinishedAt *time.Time      `json:"finishedAt"`
	Attempts   []attemptJSON   `json:"attempts"`
}

type attemptJSON struct {
	Attempt    int        `json:"attempt"`
	Status     string     `json:"status"`
	WorkerID   string     `json:"workerId,omitempty"`
	Error      string     `json:"error,omitempty"`
	StartedAt  *time.Time `json:"startedAt"`
	FinishedAt *time.Time `json:"finishedAt"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

func toRunJSON(r store.Run, steps []engine.StepView) runJSON {
	out := runJSON{
		RunID: r.ID, Workflow: r.Workflow, Status: string(r.Status), Input: r.Input, Output: r.Output,
		Error: r.Error, AdditionalMetadata: r.Metadata, ParentRunID: r.ParentRunID, ParentStepRunID: r.ParentStepRunID,
		CreatedAt: timePtr(r.CreatedAt), StartedAt: timePtr(r.StartedAt), FinishedAt: timePtr(r.FinishedAt),
	}
	if out.AdditionalMetadata == nil {
		out.AdditionalMetadata = map[string]string{}
	}
	for _, s := range steps {
		sj := stepJSON{
			StepRunID: s.ID, Step: s.Step, Parents: s.Parents, Status: string(s.Status), Attempt: s.Attempt,
			Output: s.Output, Error: s.Error, StartedAt: timePtr(s.StartedAt), FinishedAt: timePtr(s.FinishedAt),
			Attempts: []attemptJSON{},
		}
		if sj.Parents == nil {
			sj.Parents = []string{}
		}
		for _, a := range s.Attempts {
			sj.Attempts = append(sj.Attempts, attemptJSON{
				Attempt: a.Attempt, Status: string(a.Status), WorkerID: a.WorkerID, Error: a.Error,
				StartedAt: timePtr(a.StartedAt), FinishedAt: timePtr(a.FinishedAt),
			})
		}
		out.Steps = append(out.Steps, sj)
	}
	return out
}
