// Package testnet runs a whole Loadswarm fleet on one machine, for
// newcomers, demos and CI, and the demo system under test.
//
//   - Up starts a fleet of real `swarm join` processes (node i on its own
//     loopback address 127.0.0.(i+1)), each in a simulated region whose
//     round-trip time it adds to every request to a target, plus the demo
//     target; State (a JSON file in the testnet's directory) lets Down,
//     Kill, Restart, Pause and Resume find them from another process.
//   - Package fleettest is the in-process variant for Go tests: real
//     nodes on 127.0.0.1 with port 0 and shrunk timings, stopped in
//     t.Cleanup. It lives apart so that this package, which the `swarm`
//     binary links, imports no testing code.
//   - Target is the demo shop: a gateway in front of catalog, cart and
//     payments services with replicas, capacity, queues, injected latency
//     and errors, gateway retries and an autoscaler, with Prometheus
//     metrics.
//
// Cutting a node off from the fleet is Pause (SIGSTOP): the node also stops
// its traffic, so it does not show the lease rule of a partitioned node
// that still reaches the target. A real partition needs per-node network
// rules (root), which the testnet avoids so that it runs anywhere.
package testnet
