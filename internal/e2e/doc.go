// Package e2e holds Qiao's end-to-end tests: the provider simulators, the
// broker and relying parties on real loopback HTTP servers, a browser
// with its own cookies (package browser), and go-oidc as the client.
// Everything is in the _test files; the README's "The demo" section
// documents the demo.
package e2e
