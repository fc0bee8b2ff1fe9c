// Package report builds a test's report: the one place that turns a
// scenario and the merged results of the nodes that ran it into numbers,
// threshold outcomes and a status, and that renders them for people.
//
// Build is a pure function of its Input. The live report of a fleet run
// (node's status), `swarm results` (a query over the fleet's stores) and
// `swarm run --local` all build theirs with it, so the three agree exactly
// on the same data: the same formulas for planned arrivals and rates, the
// same region names, the same thresholds.
//
// Data comes in as one Part per node, merged down before it travels (see
// Fold): exact percentiles come from merging histograms, never from
// averaging percentiles.
package report
