package main_test

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// The fault suite's checker sees every kind of wrong delivery.
func TestFaultCheckerCountsWrongDeliveries(t *testing.T) {
	t.Parallel()
	stored := []evKey{
		{pos: "1", typ: "run.started"}, {pos: "2", typ: "step.stream", attempt: 1, payload: "a"},
		{pos: "3", typ: "step.stream", attempt: 1, payload: "b"}, {pos: "4", typ: "run.completed"},
	}
	for _, tc := range []struct {
		name string
		got  []evKey
		want deliveryCheck
	}{
		{"exact", stored, deliveryCheck{}},
		{"dropped", []evKey{stored[0], stored[1], stored[3]}, deliveryCheck{lost: 1}},
		{"repeated", []evKey{stored[0], stored[1], stored[1], stored[2], stored[3]}, deliveryCheck{duplicated: 1}},
		{"swapped", []evKey{stored[0], stored[2], stored[1], stored[3]}, deliveryCheck{outOfOrder: 1}},
		{"altered", []evKey{stored[0], {pos: "2", typ: "step.stream", attempt: 1, payload: "x"}, stored[2], stored[3]}, deliveryCheck{mismatched: 1}},
		{"unknown", append([]evKey{{pos: "9", typ: "run.started"}}, stored...), deliveryCheck{mismatched: 1}},
		{"nothing", nil, deliveryCheck{lost: 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := compareDeliveries(stored, tc.got)
			require.Equal(t, tc.want.ok(), got.ok(), got.first)
			got.first = ""
			require.Equal(t, tc.want, got)
		})
	}
}
