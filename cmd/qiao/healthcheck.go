package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

const defaultHealthURL = "http://127.0.0.1:5556/readyz"

// cmdHealthcheck is the container health probe: GET URL (default the local
// /readyz) and exit 0 on HTTP 200, 1 otherwise. The distroless image has no
// shell or curl, so its HEALTHCHECK runs `qiao healthcheck`.
func cmdHealthcheck(ctx context.Context, args []string, stderr io.Writer) int {
	url := defaultHealthURL
	switch len(args) {
	case 0:
	case 1:
		url = args[0]
	default:
		fmt.Fprintln(stderr, "usage: qiao healthcheck [URL]")
		return 2
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		fmt.Fprintln(stderr, "healthcheck:", err)
		return 1
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintln(stderr, "healthcheck:", err)
		return 1
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "healthcheck: %s answered %s\n", url, resp.Status)
		return 1
	}
	return 0
}
