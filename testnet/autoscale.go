package testnet

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
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
	// ServiceConfig.ScaleUpDelay overrides it for one service.
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

// ScaleLogMsg is the message of the line the shop logs for every change the
// autoscaler makes. With `swarm target` (slog's text handler, on stderr)
// the line is:
//
//	time=... level=INFO msg=scaled service=catalog from=2 to=4 at=2026-11-27T19:00:01.234Z direction=up demand=1.20 queued=30 component=autoscaler
//
// service is catalog, cart or payments; from and to are replica counts;
// at is when the replicas changed, in UTC, RFC 3339 with milliseconds
// (time= is the logger's own local time); direction is up or down; demand
// and queued are the sample that triggered the change. ParseScaleEvent
// reads the line back.
const ScaleLogMsg = "scaled"

// scaleAtLayout is the layout of at= in the scale log line.
const scaleAtLayout = "2006-01-02T15:04:05.000Z07:00"

// ScaleEvent is one autoscaler change, as logged.
type ScaleEvent struct {
	Service  string
	From, To int
	At       time.Time
}

// scaleLogArgs are the attributes of the scale log line, in order.
func scaleLogArgs(e ScaleEvent, st ServiceStats) []any {
	dir := "up"
	if e.To < e.From {
		dir = "down"
	}
	return []any{"service", e.Service, "from", e.From, "to", e.To, "at", e.At.UTC().Format(scaleAtLayout),
		"direction", dir, "demand", fmt.Sprintf("%.2f", st.Demand), "queued", st.Queued, "component", "autoscaler"}
}

// ParseScaleEvent reads an autoscaler line (see ScaleLogMsg) from the
// shop's log; ok is false for any other line.
func ParseScaleEvent(line string) (e ScaleEvent, ok bool) {
	kv := map[string]string{}
	for _, f := range strings.Fields(line) {
		if k, v, found := strings.Cut(f, "="); found {
			kv[k] = strings.Trim(v, `"`)
		}
	}
	if kv["msg"] != ScaleLogMsg || kv["service"] == "" {
		return ScaleEvent{}, false
	}
	var err1, err2, err3 error
	e.Service = kv["service"]
	e.From, err1 = strconv.Atoi(kv["from"])
	e.To, err2 = strconv.Atoi(kv["to"])
	e.At, err3 = time.Parse(time.RFC3339Nano, kv["at"])
	if err1 != nil || err2 != nil || err3 != nil {
		return ScaleEvent{}, false
	}
	return e, true
}
