// Package scheduler decides, for one test, which node schedules it and how
// its arrival rate is split over the fleet.
//
// Its core is pure: Rank orders nodes for a test by rendezvous hashing (so
// every node computes the same scheduler, and the next in rank takes over
// when it dies), and Split turns (profile, members, rules) into per-node
// shares whose rates add up exactly to the test's rate at every instant,
// within each node's capacity. The loop that drives them over the network
// lives in package node.
package scheduler
