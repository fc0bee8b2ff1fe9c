//go:build race

package swarm_test

// raceDetector: the race detector slows everything about tenfold, so
// tests that load the machine on purpose load it less.
const raceDetector = true
