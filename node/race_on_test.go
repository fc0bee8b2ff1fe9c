//go:build race

package node_test

// raceEnabled: the race detector slows every goroutine several times over;
// timing assertions (not overshoot ones) allow for it.
const raceEnabled = true
