package engine

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/runnel-dev/runnel/internal/apierr"
)

// WorkflowDef is a workflow definition as registered by a worker. It is
// stored as JSON in store.Workflow.Definition.
type WorkflowDef struct {
	Name     string    `json:"name"`
	Steps    []StepDef `json:"steps"`
	OnEvents []string  `json:"onEvents,omitempty"`
}

// StepDef is one step of a workflow.
type StepDef struct {
	Name      string   `json:"name"`
	Parents   []string `json:"parents,omitempty"`
	Retries   int      `json:"retries,omitempty"`
	BackoffMs int64    `json:"backoffMs,omitempty"`
	TimeoutMs int64    `json:"timeoutMs,omitempty"`
}

// Limits of a definition.
const (
	maxSteps     = 256
	maxRetries   = 100
	maxBackoffMs = int64(60 * 60 * 1000)       // an hour
	maxTimeoutMs = int64(7 * 24 * 3600 * 1000) // a week
)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$`)

// validateName checks a workflow, step or event key name.
func validateName(kind, name string) error {
	if !nameRE.MatchString(name) {
		return apierr.New(apierr.InvalidArgument,
			"invalid %s name %q: use 1-128 letters, digits, '_', '.', ':' or '-', starting with a letter or digit", kind, name)
	}
	return nil
}

// Validate checks a definition: names, limits, parents that exist, and no
// cycle. Errors are InvalidArgument and name the workflow and the problem.
func (w WorkflowDef) Validate() error {
	if err := validateName("workflow", w.Name); err != nil {
		return err
	}
	bad := func(format string, args ...any) error {
		return apierr.New(apierr.InvalidArgument, "workflow %q: %s", w.Name, fmt.Sprintf(format, args...))
	}
	if len(w.Steps) == 0 {
		return bad("has no steps")
	}
	if len(w.Steps) > maxSteps {
		return bad("has %d steps, more than the limit of %d", len(w.Steps), maxSteps)
	}
	index := make(map[string]int, len(w.Steps))
	for i, s := range w.Steps {
		if err := validateName("step", s.Name); err != nil {
			return bad("%s", apierr.Message(err))
		}
		if _, dup := index[s.Name]; dup {
			return bad("step %q is defined twice", s.Name)
		}
		index[s.Name] = i
		switch {
		case s.Retries < 0 || s.Retries > maxRetries:
			return bad("step %q: retries %d out of range 0..%d", s.Name, s.Retries, maxRetries)
		case s.BackoffMs < 0 || s.BackoffMs > maxBackoffMs:
			return bad("step %q: backoff %dms out of range 0..%dms", s.Name, s.BackoffMs, maxBackoffMs)
		case s.TimeoutMs < 0 || s.TimeoutMs > maxTimeoutMs:
			return bad("step %q: timeout %dms out of range 0..%dms", s.Name, s.TimeoutMs, maxTimeoutMs)
		}
	}
	for _, s := range w.Steps {
		seen := map[string]bool{}
		for _, p := range s.Parents {
			if _, ok := index[p]; !ok {
				return bad("step %q has unknown parent %q", s.Name, p)
			}
			if p == s.Name {
				return bad("step %q is its own parent", s.Name)
			}
			if seen[p] {
				return bad("step %q names parent %q twice", s.Name, p)
			}
			seen[p] = true
		}
	}
	if cycle := findCycle(w.Steps, index); cycle != nil {
		return bad("steps form a cycle: %s", strings.Join(cycle, " -> "))
	}
	for _, key := range w.OnEvents {
		if err := validateName("event key", key); err != nil {
			return bad("%s", apierr.Message(err))
		}
	}
	return nil
}

// findCycle returns the steps of one parent cycle (first step repeated at
// the end), or nil if the steps form a DAG.
func findCycle(steps []StepDef, index map[string]int) []string {
	const (
		unvisited = iota
		onPath
		done
	)
	state := make([]int, len(steps))
	var path []string
	var visit func(i int) []string
	visit = func(i int) []string {
		state[i] = onPath
		path = append(path, steps[i].Name)
		for _, p := range steps[i].Parents {
			j := index[p]
			switch state[j] {
			case onPath:
				start := slices.Index(path, p)
				return append(slices.Clone(path[start:]), p)
			case unvisited:
				if c := visit(j); c != nil {
					return c
				}
			}
		}
		path = path[:len(path)-1]
		state[i] = done
		return nil
	}
	for i := range steps {
		if state[i] == unvisited {
			if c := visit(i); c != nil {
				return c
			}
		}
	}
	return nil
}

func decodeWorkflowDef(b []byte) (WorkflowDef, error) {
	var w WorkflowDef
	if err := json.Unmarshal(b, &w); err != nil {
		return w, fmt.Errorf("decode stored workflow definition: %w", err)
	}
	return w, nil
}
