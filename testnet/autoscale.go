package testnet

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// AutoscaleConfig is the shop's autoscaler: like a Kubernetes horizontal
// pod autoscaler with a slow start, it adds replicas only after demand has
// stayed high for UpDelay (detection plus the new replicas' start-up), which
// is the lag a sudden spike falls into. The zero value is off.
type AutoscaleConfig struct {
	// Enabled turns the autoscaler on. Default false (DefaultTargetConfig:
	// on).
	Enabled bool
	// Every is how often the autoscaler samples each service. Default 0
	// means 1s.
	Every time.Duration
	// UpAt is the demand ((in flight + queued) / capacity) at or above
	// which a service counts as short of replicas. Default 0 means 0.8.
	UpAt float64
	// DownAt is the demand below which a service counts as over-provisioned.
	// Default 0 means 0.3.
	DownAt float64
	// Aim is the demand a scale-up sizes for: new replicas = ceil(replicas
	// × demand / Aim). Default 0 means 0.6.
	Aim float64
	// UpDelay is how long demand must stay at or above UpAt before
	// replicas are added (and then again before the next addition).
	// Default 0 means 10s.
	UpDelay time.Duration
	// DownDelay is how long demand must stay below DownAt before one
	// replica is removed. Default 0 means 30s.
	DownDelay time.Duration
}

func (c AutoscaleConfig) withDefaults() AutoscaleConfig {
	def := func(v *float64, d float64) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.UpAt, 0.8)
	def(&c.DownAt, 0.3)
	def(&c.Aim, 0.6)
	if c.Every == 0 {
		c.Every = time.Second
	}
	if c.UpDelay == 0 {
		c.UpDelay = 10 * time.Second
	}
	if c.DownDelay == 0 {
		c.DownDelay = 30 * time.Second
	}
	return c
}

func (c AutoscaleConfig) validate() error {
	var errs []error
	if c.Every < 0 || c.UpDelay < 0 || c.DownDelay < 0 {
		errs = append(errs, errors.New("autoscale: durations must be >= 0"))
	}
	if c.UpAt < 0 || c.DownAt < 0 || c.Aim < 0 {
		errs = append(errs, errors.New("autoscale: thresholds must be >= 0"))
	}
	d := c.withDefaults()
	if d.DownAt >= d.UpAt {
		errs = append(errs, fmt.Errorf("autoscale: down-at %g must be below up-at %g", d.DownAt, d.UpAt))
	}
	return errors.Join(errs...)
}

// scaleState is what the autoscaler remembers about one service between
// samples.
type scaleState struct {
	highSince, lowSince time.Time // zero when demand is not high (low)
}

// decide is the autoscaler's rule, a pure function of one sample: it
// returns the replica count the service should have now and the updated
// state. c must have its defaults filled in.
func (c AutoscaleConfig) decide(now time.Time, st ServiceStats, s scaleState) (int, scaleState) {
	switch {
	case st.Demand >= c.UpAt:
		s.lowSince = time.Time{}
		if s.highSince.IsZero() {
			s.highSince = now
		}
		if now.Sub(s.highSince) >= c.UpDelay {
			s.highSince = now // the next step needs another delay
			want := int(math.Ceil(float64(st.Replicas) * st.Demand / c.Aim))
			return max(want, st.Replicas+1), s
		}
	case st.Demand < c.DownAt:
		s.highSince = time.Time{}
		if s.lowSince.IsZero() {
			s.lowSince = now
		}
		if now.Sub(s.lowSince) >= c.DownDelay {
			s.lowSince = now
			return st.Replicas - 1, s
		}
	default:
		s.highSince, s.lowSince = time.Time{}, time.Time{}
	}
	return st.Replicas, s
}
