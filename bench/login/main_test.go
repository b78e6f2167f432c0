package main

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestStartBrokerReturnsWhenTheBrokerExitsEarly: a broker that exits
// before it is ready is reported, not waited for forever (waitReady and
// kill both waited for the one exit notification).
func TestStartBrokerReturnsWhenTheBrokerExitsEarly(t *testing.T) {
	o := options{qiaoBin: "/bin/false", store: "sqlite", alg: "RS256", logLevel: "info", weiboAppKey: weiboAppKey, weiboSecret: "s"}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		b, err := startBroker(ctx, o, "http://127.0.0.1:9", nil)
		if b != nil {
			b.stop(&strings.Builder{})
		}
		errc <- err
	}()
	select {
	case err := <-errc:
		if err == nil || !strings.Contains(err.Error(), "exited before it was ready") {
			t.Fatalf("startBroker with a broker that exits at once: %v, want \"exited before it was ready\"", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("startBroker did not return within 30 s after the broker exited")
	}
}

// TestExchangeMode: -mode exchange signs in through the mini-program
// token exchange at a broker it starts (with a WeChat simulator), and
// reports the exchanges and their store cost.
func TestExchangeMode(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts qiao")
	}
	o := options{concurrency: 2, count: 4, warmup: -1, mode: "exchange", alg: "ES256", persons: 2,
		timeout: time.Minute, store: "sqlite", logLevel: "info", weiboAppKey: weiboAppKey, weiboListen: "127.0.0.1:0"}
	if err := o.check(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out strings.Builder
	if err := run(ctx, o, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	for _, want := range []string{"exchange: 4 ok, 0 errors", "commits per exchange", "simulator: 1.00 API calls", "broker allocations: "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output has no %q:\n%s", want, out.String())
		}
	}
}
