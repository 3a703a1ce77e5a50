// Command berth makes a Linux host run exactly what a directory of manifests
// describes. See README.md.
package main

import (
	"context"
	"os"
	"syscall"

	"berth.dev/berth/cmd/berth/internal/cli"
	_ "berth.dev/berth/cmd/berth/internal/prestart" // container monitors start while berth initializes
	"berth.dev/berth/engine/reexec"
	_ "berth.dev/berth/engine/reexec/prefault" // the first page faults, in two system calls
)

func init() {
	// The container init, the monitor and the DNS helper are this binary
	// re-executed; they must take over before main parses any flags.
	if reexec.Init() {
		os.Exit(0)
	}
}

func main() {
	ctx, stop := cli.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
