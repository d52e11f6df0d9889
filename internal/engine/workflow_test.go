package engine

import (
	"testing"

	"github.com/runnel-dev/runnel/internal/apierr"
	"github.com/stretchr/testify/require"
)

func TestWorkflowDefValidate(t *testing.T) {
	t.Parallel()
	diamond := WorkflowDef{Name: "diamond", Steps: []StepDef{
		{Name: "a"}, {Name: "b", Parents: []string{"a"}}, {Name: "c", Parents: []string{"a"}},
		{Name: "d", Parents: []string{"b", "c"}},
	}}
	require.NoError(t, diamond.Validate())

	cases := map[string]struct {
		def  WorkflowDef
		want string
	}{
		"no steps":       {WorkflowDef{Name: "w"}, "has no steps"},
		"bad name":       {WorkflowDef{Name: "a b", Steps: []StepDef{{Name: "s"}}}, "invalid workflow name"},
		"bad step name":  {WorkflowDef{Name: "w", Steps: []StepDef{{Name: ""}}}, "invalid step name"},
		"duplicate step": {WorkflowDef{Name: "w", Steps: []StepDef{{Name: "s"}, {Name: "s"}}}, `step "s" is defined twice`},
		"unknown parent": {WorkflowDef{Name: "w", Steps: []StepDef{{Name: "s", Parents: []string{"x"}}}}, `unknown parent "x"`},
		"self parent":    {WorkflowDef{Name: "w", Steps: []StepDef{{Name: "s", Parents: []string{"s"}}}}, "its own parent"},
		"cycle": {WorkflowDef{Name: "w", Steps: []StepDef{
			{Name: "a", Parents: []string{"c"}}, {Name: "b", Parents: []string{"a"}}, {Name: "c", Parents: []string{"b"}},
		}}, "cycle: a -> c -> b -> a"},
		"negative retries": {WorkflowDef{Name: "w", Steps: []StepDef{{Name: "s", Retries: -1}}}, "retries -1 out of range"},
		"bad event key":    {WorkflowDef{Name: "w", Steps: []StepDef{{Name: "s"}}, OnEvents: []string{"no spaces"}}, "invalid event key"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			err := tc.def.Validate()
			require.Error(t, err)
			require.Equal(t, apierr.InvalidArgument, apierr.CodeOf(err))
			require.Contains(t, err.Error(), tc.want)
		})
	}
}
