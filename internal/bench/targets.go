package bench

import "fmt"

// goal is a target of the benchmark issue: a bound per store.
type goal struct {
	atLeast bool // the value must be ≥ (else ≤) the bound
	sqlite  float64
	pg      float64
}

func atLeast(sqlite, pg float64) *goal { return &goal{atLeast: true, sqlite: sqlite, pg: pg} }
func atMost(sqlite, pg float64) *goal  { return &goal{sqlite: sqlite, pg: pg} }

// measurement builds a Measurement with its target, if any.
func measurement(c, metric string, v float64, unit string, g *goal) Measurement {
	return Measurement{Case: c, Metric: metric, Value: v, Unit: unit, goal: g}
}

// judge fills in the target for the store and whether the value meets it.
func judge(m *Measurement, store string) {
	if m.goal == nil || store == "remote" {
		return
	}
	bound := m.goal.sqlite
	if store == "postgres" {
		bound = m.goal.pg
	}
	met := m.Value <= bound
	op := "≤"
	if m.goal.atLeast {
		met, op = m.Value >= bound, "≥"
	}
	m.Target = fmt.Sprintf("%s %s", op, formatValue(bound))
	m.Met = &met
}
