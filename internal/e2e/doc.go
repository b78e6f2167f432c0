// Package e2e holds Qiao's end-to-end tests: the provider simulators, the
// broker in process and relying parties on real loopback HTTP servers, a
// browser with its own cookies, and go-oidc as the client, all from
// internal/qiaotest's world. Everything is in the _test files; the
// README's "The demo" section documents the demo.
package e2e
