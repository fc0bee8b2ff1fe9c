// Package testnet runs Loadswarm locally: a demo system under test now, and
// (as the fleet layers land) a local fleet of node processes with simulated
// regions.
package testnet
