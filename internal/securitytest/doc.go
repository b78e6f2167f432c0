// Package securitytest holds the broker's security and robustness tests:
// secrets kept out of logs, pages and the store, open redirects, CSRF,
// cookie flags, escaping of provider-controlled text, response headers,
// request limits, token binding to clients, PKCE and fuzz harnesses of
// the HTTP endpoints. It has no code of its own.
package securitytest
