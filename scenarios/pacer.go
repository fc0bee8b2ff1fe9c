package scenarios

import (
	"math/rand/v2"
	"time"
)

// Pacer decides when arrivals are due. It is a function of elapsed time and
// the number of arrivals already issued, like vegeta's lib/pacer.go; only
// the executor loop sleeps.
type Pacer interface {
	// Pace returns how long to wait from elapsed until arrival number hits
	// (0-based) is due: zero or less means due now (or late). stop is true
	// once the profile holds no more arrivals.
	Pace(elapsed time.Duration, hits uint64) (wait time.Duration, stop bool)
}

// UniformPacer spaces arrivals evenly along a profile: arrival n is due when
// the profile's expected arrivals reach n.
type UniformPacer struct{ Profile Profile }

var _ Pacer = UniformPacer{}

// Pace implements Pacer.
func (p UniformPacer) Pace(elapsed time.Duration, hits uint64) (time.Duration, bool) {
	at, ok := p.Profile.TimeOf(float64(hits))
	if !ok {
		return 0, true
	}
	return at - elapsed, false
}

// PoissonPacer issues arrivals as a Poisson process whose rate follows the
// profile (time rescaling: arrival n is due when the profile's expected
// arrivals reach E_n, a sum of n+1 unit exponentials). The same seed gives
// the same schedule.
//
// A PoissonPacer keeps a cursor so that sequential calls cost O(1); it is not
// safe for concurrent use (one per executor loop).
type PoissonPacer struct {
	Profile Profile
	Seed    uint64

	rng *rand.Rand
	n   uint64  // arrivals whose E is summed into e
	e   float64 // E_{n-1}
}

var _ Pacer = (*PoissonPacer)(nil)

// NewPoissonPacer returns a pacer over p with its own random stream.
func NewPoissonPacer(p Profile, seed uint64) *PoissonPacer {
	return &PoissonPacer{Profile: p, Seed: seed}
}

// Pace implements Pacer.
func (p *PoissonPacer) Pace(elapsed time.Duration, hits uint64) (time.Duration, bool) {
	if p.rng == nil || hits+1 < p.n {
		// Rewind: replay the stream from the start.
		p.rng = rand.New(rand.NewPCG(p.Seed, p.Seed^0x9e3779b97f4a7c15))
		p.n, p.e = 0, 0
	}
	for p.n <= hits {
		p.e += p.rng.ExpFloat64()
		p.n++
	}
	at, ok := p.Profile.TimeOf(p.e)
	if !ok {
		return 0, true
	}
	return at - elapsed, false
}

// withProfile moves a pacer to a new profile, keeping its arrival stream
// (a Poisson pacer keeps its random sequence, so arrivals stay Poisson
// across the change).
func withProfile(p Pacer, prof Profile) Pacer {
	switch p := p.(type) {
	case UniformPacer:
		return UniformPacer{Profile: prof}
	case *PoissonPacer:
		q := *p
		q.Profile = prof
		return &q
	}
	return p
}

// NewPacer returns the pacer for an arrivals kind ("uniform" or "poisson").
func NewPacer(arrivals string, p Profile, seed uint64) Pacer {
	if arrivals == ArrivalsPoisson {
		return NewPoissonPacer(p, seed)
	}
	return UniformPacer{Profile: p}
}

// Arrival kinds.
const (
	ArrivalsUniform = "uniform"
	ArrivalsPoisson = "poisson"
)
