package api

import (
	"strings"
	"testing"

	"github.com/runnel-dev/runnel/internal/apierr"
	pb "github.com/runnel-dev/runnel/internal/gen/runnel/v1"
)

// checkMessageText refuses a request exactly when one of its strings
// (plain, repeated, map key or value, nested) holds a NUL or is not UTF-8,
// with a client error naming the field.
func FuzzCheckMessageText(f *testing.F) {
	f.Add("wf", "k", "v", "step", "ev")
	f.Add("w\x00f", "k", "v", "step", "ev")
	f.Add("wf", "k\x00", "v", "s", "e")
	f.Add("wf", "k", "v", "s\x00", "\xff")
	f.Fuzz(func(t *testing.T, workflow, key, value, step, event string) {
		msg := &pb.RegisterWorkerRequest{
			Name: workflow,
			Workflows: []*pb.WorkflowDefinition{{
				Name: workflow, OnEvents: []string{event},
				Steps: []*pb.StepDefinition{{Name: step, Parents: []string{step}}},
			}},
		}
		trigger := &pb.TriggerRunRequest{Workflow: workflow, AdditionalMetadata: map[string]string{key: value}}
		bad := func(ss ...string) bool {
			for _, s := range ss {
				if strings.ContainsRune(s, 0) || !isUTF8(s) {
					return true
				}
			}
			return false
		}
		err := checkMessageText(msg.ProtoReflect(), "")
		if want := bad(workflow, step, event); (err != nil) != want {
			t.Fatalf("RegisterWorker %q %q %q: err %v, want refusal %v", workflow, step, event, err, want)
		}
		if err != nil && apierr.CodeOf(err) != apierr.InvalidArgument {
			t.Fatalf("not a client error: %v", err)
		}
		err = checkMessageText(trigger.ProtoReflect(), "")
		if want := bad(workflow, key, value); (err != nil) != want {
			t.Fatalf("TriggerRun %q %q %q: err %v, want refusal %v", workflow, key, value, err, want)
		}
	})
}

func isUTF8(s string) bool { return strings.ToValidUTF8(s, "") == s }
