// Package scheduler decides, for one test, which node schedules it, how its
// arrival rate is split over the fleet, and what each node does with its
// share.
//
// Its core is pure:
//   - Rank and RankFor order nodes for a test by rendezvous hashing (so
//     every node computes the same scheduler, the next in rank takes over
//     when it is gone, and a submitter never ranks itself first);
//   - SplitRate turns (profile, members, rules) into per-node Shares whose
//     rates add up exactly to the test's rate at every instant, within
//     each node's capacity; CheckPlan checks a plan against its test;
//   - Coordinator is the scheduler's state machine (plans, leases,
//     replans when a node is lost, slow or new), and Follower each node's
//     (which plan to follow, its lease, pause, resume, give up, stop).
//
// Neither state machine does I/O or reads a clock: package node drives
// them, one goroutine per test, and carries out what they return. The
// words: a profile is a rate over time, a segment one linear piece of it,
// a share one node's profile in a test, a plan the shares of one epoch, a
// lease the scheduler's renewal of the shares it names.
package scheduler
