package testflag_test

import (
	"testing"

	"github.com/runnel-dev/runnel/internal/testflag"
)

func TestLong(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  bool
	}{{"", false}, {"0", false}, {"false", false}, {"1", true}, {"true", true}} {
		t.Setenv(testflag.LongEnv, tc.value)
		if got := testflag.Long(t); got != tc.want {
			t.Errorf("%s=%q: Long = %v, want %v", testflag.LongEnv, tc.value, got, tc.want)
		}
	}
}

// A typo fails instead of silently skipping the long tests.
func TestLongRejectsNonBoolean(t *testing.T) {
	t.Setenv(testflag.LongEnv, "yes please")
	rec := &recorder{TB: t}
	func() {
		defer func() { _ = recover() }() // Fatalf on the recorder stops here
		testflag.Long(rec)
	}()
	if !rec.fatal {
		t.Fatal("a non-boolean value did not fail the test")
	}
}

// recorder notes a Fatalf instead of failing the real test.
type recorder struct {
	testing.TB
	fatal bool
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) {
	r.fatal = true
	panic("fatal")
}
