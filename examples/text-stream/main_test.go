package main

import (
	"context"
	"strings"
	"testing"

	"github.com/runnel-dev/runnel/internal/demo"
	"github.com/runnel-dev/runnel/internal/testengine"
)

func TestTextStream(t *testing.T) {
	t.Parallel()
	e := testengine.StartWithDemoWorker(t)
	var out strings.Builder
	if err := run(context.Background(), e.Client, &out, 8); err != nil {
		t.Fatal(err)
	}
	if want := demo.TextOutput(8) + "\n"; out.String() != want {
		t.Fatalf("printed %q, want %q", out.String(), want)
	}
}
