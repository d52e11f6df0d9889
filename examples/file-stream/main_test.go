package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"testing"

	"github.com/runnel-dev/runnel/internal/demo"
	"github.com/runnel-dev/runnel/internal/testengine"
)

func TestFileStream(t *testing.T) {
	t.Parallel()
	e := testengine.StartWithDemoWorker(t)
	const size = 3 << 20
	path, err := run(context.Background(), e.Client, t.TempDir(), size, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, demo.FilePayload(size)) {
		t.Fatalf("%s is not byte-identical to the streamed file", path)
	}
}
