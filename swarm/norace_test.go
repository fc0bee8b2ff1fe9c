//go:build !race

package swarm_test

// raceDetector: see race_test.go.
const raceDetector = false
