// Package swarm moves bytes and envelopes between the nodes of a fleet.
//
// It joins three libraries behind one small API, none of whose types it
// exports:
//
//   - membership by gossip (hashicorp/memberlist): join through any
//     member's address, graceful leave, failure detection, and node metadata
//     (region, zone, org, capacity, cpus, tags, libp2p peer id and address,
//     version) spread to every member;
//   - identity and authenticated transport (go-libp2p over TCP with Noise and
//     yamux); the host key is persisted so that a restarted node keeps its
//     peer id;
//   - broadcast on GossipSub topics with strict signing ([Topic]), and
//     request/response streams by protocol id with deadlines
//     ([Swarm.Handle], [Swarm.Request]).
//
// Every message is one CBOR [Envelope] (type, version, sender, test id,
// body), decoded with explicit limits ([Limits]); unknown newer fields are
// ignored and an unknown [Type] is an error.
//
// A [FleetKey] (32 random bytes, see [GenerateFleetKey]) gates both layers:
// memberlist encrypts gossip with a key derived from it, and libp2p runs a
// private network with a pre-shared key derived from it. A node without the
// key, or with another one, can neither join nor be dialed. Without a key the
// fleet is open, and New logs so.
//
// Package swarmtest starts clusters of in-process nodes on 127.0.0.1 for
// tests in other packages.
package swarm
