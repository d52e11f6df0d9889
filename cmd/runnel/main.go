// Command runnel is the Runnel engine, worker and client in one binary.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/runnel-dev/runnel/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
