package main

import (
	"context"
	"fmt"
	"io"
)

func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "demo: being wired up")
	return 1
}
