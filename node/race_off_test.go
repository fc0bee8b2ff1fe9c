//go:build !race

package node_test

const raceEnabled = false

// overshoot is the most a second at the target may get, as a share of the
// plan: the guarantee.
const overshoot = 1.05
