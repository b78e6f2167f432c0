// Package replicas holds the tests that run Qiao as production runs it:
// several `qiao serve` processes behind one load balancer on one shared
// PostgreSQL database, under concurrency and database faults; the checks
// of the Dockerfile and docker-compose.yml; and the token endpoint
// benchmarks on PostgreSQL and SQLite. It has no code of its own: the
// replicas are a qiaotest world (qiaotest.WithReplicas, WithBinary) whose
// configured issuer is the test's load balancer; the benchmarks run on a
// qiaotest world with the broker in process.
//
// Run it with `go test ./internal/replicas/`; the benchmarks with
// `go test -run '^$' -bench . ./internal/replicas/`. PostgreSQL comes from
// internal/pgtest: outside CI a machine without it skips those tests.
package replicas
