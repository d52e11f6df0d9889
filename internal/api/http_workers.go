package api

import (
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/runnel-dev/runnel/internal/engine"
)

// workerJSON is a connected worker as GET /api/v1/workers lists it.
type workerJSON struct {
	WorkerID    string        `json:"workerId"`
	Name        string        `json:"name"`
	SDK         string        `json:"sdk"`
	SDKVersion  string        `json:"sdkVersion"`
	UserAgent   string        `json:"userAgent"`
	Workflows   []string      `json:"workflows"`
	Slots       int           `json:"slots"`
	SlotsInUse  int           `json:"slotsInUse"`
	ConnectedAt *time.Time    `json:"connectedAt"`
	HeartbeatAt *time.Time    `json:"heartbeatAt"`
	Running     []runningJSON `json:"running"`
}

type runningJSON struct {
	StepRunID string     `json:"stepRunId"`
	Attempt   int        `json:"attempt"`
	RunID     string     `json:"runId,omitempty"`
	Workflow  string     `json:"workflow,omitempty"`
	Step      string     `json:"step,omitempty"`
	StartedAt *time.Time `json:"startedAt"`
}

// listWorkers serves GET /api/v1/workers: the tenant's workers connected to
// this engine node, for the dashboard's workers page. Read-only; an API
// token (not a browser token) may call it.
func (h *HTTP) listWorkers(w http.ResponseWriter, r *http.Request, p engine.Principal) {
	if _, ok := h.listingQuery(w, r, p); !ok {
		return
	}
	workers, err := h.engine.ConnectedWorkers(r.Context(), p.TenantID)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	out := make([]workerJSON, 0, len(workers))
	for _, wk := range workers {
		sdk, version := sdkOf(wk.UserAgent)
		wj := workerJSON{
			WorkerID: wk.ID, Name: wk.Name, SDK: sdk, SDKVersion: version, UserAgent: wk.UserAgent,
			Workflows: wk.Workflows, Slots: wk.Slots, SlotsInUse: len(wk.Running),
			ConnectedAt: timePtr(wk.ConnectedAt), HeartbeatAt: timePtr(wk.HeartbeatAt), Running: []runningJSON{},
		}
		if wj.Workflows == nil {
			wj.Workflows = []string{}
		}
		for _, s := range wk.Running {
			wj.Running = append(wj.Running, runningJSON{
				StepRunID: s.StepRunID, Attempt: s.Attempt, RunID: s.RunID, Workflow: s.Workflow, Step: s.Step,
				StartedAt: timePtr(s.StartedAt),
			})
		}
		out = append(out, wj)
	}
	writeJSON(w, http.StatusOK, map[string]any{"workers": out})
}

// userAgents maps the User-Agent a worker connects with to its SDK: the Go
// SDK speaks through connect-go, the TypeScript one through connect-es (or
// Node's fetch), the Python one names itself.
var userAgents = []struct {
	re  *regexp.Regexp
	sdk string
}{
	{regexp.MustCompile(`^runnel-python/(\S+)`), "python"},
	{regexp.MustCompile(`^runnel-typescript/(\S+)`), "typescript"},
	{regexp.MustCompile(`^runnel-go/(\S+)`), "go"},
	{regexp.MustCompile(`^connect-go/\S+ \((go[^)\s]*)\)`), "go"},
	{regexp.MustCompile(`^connect-es/(\S+)`), "typescript"},
	{regexp.MustCompile(`^(?:node|undici)(?:/(\S+))?`), "typescript"},
}

// sdkOf names the SDK and its version (for the Go SDK: the Go version it
// was built with) from a User-Agent; "" for an unknown client.
func sdkOf(ua string) (sdk, version string) {
	for _, m := range userAgents {
		if g := m.re.FindStringSubmatch(strings.TrimSpace(ua)); g != nil {
			return m.sdk, g[1]
		}
	}
	return "", ""
}
