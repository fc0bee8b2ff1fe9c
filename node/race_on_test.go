//go:build race

package node_test

// raceEnabled: the race detector slows every goroutine several times over;
// timing assertions (not overshoot ones) allow for it.
const raceEnabled = true

// overshoot is the most a second at the target may get, as a share of the
// plan: the race detector stalls a pacer for tens of milliseconds, and the
// tests let arrivals go out up to two seconds late under it (no arrival
// missed, so totals stay exact), which bursts.
const overshoot = 1.5
