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
// Faults without root: Kill (SIGKILL, a crash), Pause and Resume (SIGSTOP
// and SIGCONT: a frozen process), Isolate and Heal (a partition: the node's
// gossip and libp2p traffic is dropped in userspace through its debug API,
// while it still reaches the target), and Add (a node that joins mid-test).
//
// Both variants use the same lease and start lead by default (1500ms and
// 1s): shrunk, as every node is on one host.
package testnet
