// Package scenarios owns a test as its user writes it and one node's run
// of it.
//
//   - The test file: DecodeSpec and Compile turn YAML into a Scenario
//     (validated, every problem with its path: load.stages[2].rate),
//     with its expr templates, checks, extractions, thresholds and
//     distribution rules compiled once, with size limits.
//   - The arrival profile (Profile: piecewise-linear rates over time) and
//     the pacers (UniformPacer, PoissonPacer): pure functions of elapsed
//     time and arrivals issued.
//   - The executor (Run): one share of a test, in an open model. Arrivals
//     come at their scheduled times whatever the responses do; latency
//     counts from the scheduled time; an arrival with no free worker is
//     dropped, one reached too late (a frozen process) is missed, and
//     none is sent past the Control's deadline (a lease). Results go out a
//     second at a time as storage.Second.
//   - Where requests may go: TargetPolicy, checked on names at validation
//     and on every resolved address before a dial.
//
// It imports only storage.
package scenarios
