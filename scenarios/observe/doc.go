// Package observe reads metrics of the system under test while a load test
// runs, so that the report can set what the load did (latency, errors)
// beside what the system did (replicas, queue length, CPU).
//
// A test's observe: section lists sources. A scrape source GETs a
// Prometheus text-format endpoint (an application's /metrics, a node
// exporter, a Prometheus /federate URL) and sums the samples that match a
// series selector. A query source runs an instant PromQL query against a
// Prometheus server's HTTP API. Spec.Compile validates the section (every
// problem with its path, all at once); Run reads every source once per
// Every and hands each round's points and gaps to a callback, stamped with
// whole seconds since the test's start so they line up with the load
// results. Summarize and FirstMove are pure helpers for the report (for
// example: how many seconds after the load step did replicas first change).
//
// The sampler runs on the test's scheduler node only, never on every load
// node: the observed values are facts about the system under test, not
// about one node's share of the load, so one reader is enough; N readers
// would multiply the load on the metrics endpoints and produce N slightly
// different copies of the same series that would then have to be merged.
// The node checks Config.URLs against its operator's target allow-list
// before it accepts a test, and hands Run an http.Client whose dialer
// enforces that policy on every connection (redirects included).
//
// Everything read from the network is bounded (body size, time, number of
// series, error text) and never trusted: a source that is down, slow or
// wrong yields a Gap for that round, never a panic and never a stalled
// round.
//
// The package is a leaf: it imports no other loadswarm package, only the
// Prometheus project's own parsers and API client, so the text format and
// PromQL mean here exactly what they mean in Prometheus.
package observe
