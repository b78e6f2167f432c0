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
		b, err := startBroker(ctx, o, "http://127.0.0.1:9")
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
