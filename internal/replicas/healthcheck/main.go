// Command qiao-healthcheck is the container health probe: it GETs a URL
// (by default http://127.0.0.1:5556/readyz) and exits 0 on HTTP 200, 1
// otherwise. The distroless image that runs qiao has no shell, curl or
// wget, so the Dockerfile builds this beside qiao and the HEALTHCHECK runs
// it.
//
//	qiao-healthcheck [URL]
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

const defaultURL = "http://127.0.0.1:5556/readyz"

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	url := defaultURL
	switch len(args) {
	case 0:
	case 1:
		url = args[0]
	default:
		fmt.Fprintln(stderr, "usage: qiao-healthcheck [URL]")
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		fmt.Fprintln(stderr, "qiao-healthcheck:", err)
		return 1
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintln(stderr, "qiao-healthcheck:", err)
		return 1
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "qiao-healthcheck: %s answered %s\n", url, resp.Status)
		return 1
	}
	return 0
}
