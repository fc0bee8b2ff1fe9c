// Package swarm moves bytes and envelopes between the nodes of a fleet.
//
// It joins three libraries behind one small API, none of whose types it
// exports:
//
//   - membership by gossip (hashicorp/memberlist): join through any
//     member's address, graceful leave, failure detection, and node metadata
//     (region, zone, org, capacity, cpus, tags, libp2p peer id and address,
//     version) spread to every member; a name belongs to one live node
//     (Join fails with ErrNameTaken otherwise);
//   - identity and authenticated transport (go-libp2p over TCP with Noise and
//     yamux); the host key is persisted so that a restarted node keeps its
//     peer id, and signs data that must prove its author wherever it is
//     relayed ([Identity.Sign], [VerifySignature]);
//   - broadcast on GossipSub topics with strict signing ([Topic]), and
//     request/response streams by protocol id with deadlines
//     ([Swarm.Handle], [Swarm.Request]).
//
// Every message is one CBOR [Envelope] (type, version, sender, test id,
// body), decoded with explicit limits ([Limits]); unknown newer fields are
// ignored. The application owns the wire registry ([Config.Types]): each
// [Type] with a [TypeSpec] that says how it travels (gossip, request,
// answer), its largest size, and for gossip the rate each sender may
// publish it at. The transport knows envelopes, not what is in them: its
// own types are [TypePing] and [TypeError] only, and adding a message
// touches the application only. A Config without Types knows those two:
// it pings and answers, and publishes nothing. A type outside the
// registry, a type sent the wrong way, or an envelope over its type's size
// is refused at the sender and at every receiver; [Registry.Name] names a
// type in logs.
//
// Trust no member: a node holding the fleet key can still lie. So every
// node bounds what a peer costs it. GossipSub reads no message larger than
// the largest gossip type (a bigger one is refused from its length
// prefix); a token bucket per (signer, type) drops what exceeds a type's
// rate, in a table of bounded size; a signer whose messages keep failing
// is cut off by GossipSub's peer scoring; and refusals are counted by
// reason ([Stats]) and logged once per sender per minute.
//
// A [FleetKey] (32 random bytes, see [GenerateFleetKey]) gates both layers:
// memberlist encrypts gossip with a key derived from it, and libp2p runs a
// private network with a pre-shared key derived from it. A node without the
// key, or with another one, can neither join nor be dialed. Without a key the
// fleet is open, and New logs so.
//
// Package swarmtest starts clusters of in-process nodes on 127.0.0.1 for
// tests in other packages, speaking a small registry of test types
// (swarmtest.Types). It imports package testing: tests only.
package swarm
