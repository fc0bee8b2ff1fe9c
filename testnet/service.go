package testnet

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"time"
)

// ServiceConfig shapes one service of the demo shop (catalog, cart,
// payments). The zero value is a service with no latency, no errors and
// unlimited capacity.
type ServiceConfig struct {
	// Latency is the time one request takes on a free replica (its service
	// time). Default 0 (DefaultTargetConfig: catalog 10ms, cart 8ms,
	// payments 30ms).
	Latency time.Duration
	// Jitter adds a uniform random 0..Jitter to each service time.
	// Default 0.
	Jitter time.Duration
	// ErrorRate is the fraction (0-1) of requests the service fails (503,
	// after their service time). Default 0.
	ErrorRate float64
	// Capacity is how many requests one replica works on at once; past
	// replicas × Capacity, requests wait in the queue. Default 0: unlimited
	// (no queueing at all).
	Capacity int
	// Queue is how many requests may wait per replica; past replicas ×
	// Queue, a request is refused at once (503, "overloaded"). Default 0:
	// none wait.
	Queue int
	// Replicas is how many replicas run at start, and the fewest the
	// autoscaler keeps. Default 0 means 1.
	Replicas int
	// MaxReplicas caps the autoscaler. Default 0 means Replicas (no
	// scaling up).
	MaxReplicas int
	// ScaleUpDelay, when set, replaces the autoscaler's UpDelay for this
	// service (--set catalog.autoscale.delay=30s). Default 0: UpDelay.
	ScaleUpDelay time.Duration
}

func (c ServiceConfig) validate(name string) error {
	var errs []error
	if c.Latency < 0 || c.Jitter < 0 {
		errs = append(errs, fmt.Errorf("%s: latency and jitter must be >= 0", name))
	}
	if c.ErrorRate < 0 || c.ErrorRate > 1 {
		errs = append(errs, fmt.Errorf("%s: error rate %g: must be 0..1", name, c.ErrorRate))
	}
	if c.Capacity < 0 || c.Queue < 0 {
		errs = append(errs, fmt.Errorf("%s: capacity and queue must be >= 0", name))
	}
	if c.Replicas < 0 || c.Replicas > 1000 || c.MaxReplicas < 0 || c.MaxReplicas > 1000 {
		errs = append(errs, fmt.Errorf("%s: replicas and max replicas must be 0..1000", name))
	}
	if c.ScaleUpDelay < 0 {
		errs = append(errs, fmt.Errorf("%s: autoscale delay must be >= 0", name))
	}
	if c.MaxReplicas > 0 && c.MaxReplicas < c.Replicas {
		errs = append(errs, fmt.Errorf("%s: max replicas %d is below replicas %d", name, c.MaxReplicas, c.Replicas))
	}
	return errors.Join(errs...)
}

// errOverloaded is returned by service.do when the queue is full.
var errOverloaded = errors.New("overloaded: queue full")

// errFailed is returned by service.do for an injected failure.
var errFailed = errors.New("failed")

// service is one backend of the shop: replicas with a capacity each and one
// queue in front of them (as behind a load balancer that sends each request
// to the first free replica). Its methods are safe for concurrent use.
type service struct {
	name string
	cfg  ServiceConfig

	mu       sync.Mutex
	replicas int
	inFlight int
	queue    []chan struct{} // waiters, oldest first; closed when given a slot
	served   int64           // requests done (ok or failed)
	failed   int64           // injected failures
	rejected int64           // refused: queue full
}

func newService(name string, cfg ServiceConfig) *service {
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	if cfg.MaxReplicas == 0 {
		cfg.MaxReplicas = cfg.Replicas
	}
	return &service{name: name, cfg: cfg, replicas: cfg.Replicas}
}

// slotsLocked is how many requests the service works on at once; 0 is
// unlimited.
func (s *service) slotsLocked() int { return s.replicas * s.cfg.Capacity }

// acquire takes a slot, waiting in the queue if every replica is busy.
func (s *service) acquire(ctx context.Context) error {
	s.mu.Lock()
	if s.cfg.Capacity == 0 || s.inFlight < s.slotsLocked() {
		s.inFlight++
		s.mu.Unlock()
		return nil
	}
	if len(s.queue) >= s.replicas*s.cfg.Queue {
		s.rejected++
		s.mu.Unlock()
		return errOverloaded
	}
	ch := make(chan struct{})
	s.queue = append(s.queue, ch)
	s.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		defer s.mu.Unlock()
		for i, w := range s.queue {
			if w == ch {
				s.queue = append(s.queue[:i], s.queue[i+1:]...)
				return ctx.Err()
			}
		}
		// Given a slot while giving up: hand it on.
		s.releaseLocked()
		return ctx.Err()
	}
}

// release frees a slot: the oldest waiter gets it if the service is not
// over its (possibly just reduced) slots.
func (s *service) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.releaseLocked()
}

func (s *service) releaseLocked() {
	s.inFlight--
	s.admitLocked()
}

// admitLocked moves waiters into free slots.
func (s *service) admitLocked() {
	for len(s.queue) > 0 && (s.cfg.Capacity == 0 || s.inFlight < s.slotsLocked()) {
		close(s.queue[0])
		s.queue = s.queue[1:]
		s.inFlight++
	}
}

// do runs one request on the service: a slot (maybe after queueing), the
// service time, then success or an injected failure. It returns
// errOverloaded without any wait when the queue is full. admitted, if not
// nil, is called once the request has a slot (after its queue wait).
func (s *service) do(ctx context.Context, admitted func()) error {
	if err := s.acquire(ctx); err != nil {
		return err
	}
	defer s.release()
	if admitted != nil {
		admitted()
	}
	if d := jittered(s.cfg.Latency, s.cfg.Jitter); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
	fail := s.cfg.ErrorRate > 0 && rand.Float64() < s.cfg.ErrorRate
	s.mu.Lock()
	s.served++
	if fail {
		s.failed++
	}
	s.mu.Unlock()
	if fail {
		return errFailed
	}
	return nil
}

// ServiceStats is a snapshot of one service.
type ServiceStats struct {
	Replicas int `json:"replicas"`
	InFlight int `json:"in_flight"`
	Queued   int `json:"queued"`
	// Utilization is in-flight requests over the replicas' capacity (0-1;
	// 0 for an unlimited service).
	Utilization float64 `json:"utilization"`
	// Demand is (in flight + queued) / capacity: above 1 the service is
	// short of replicas. The autoscaler reads it.
	Demand   float64 `json:"demand"`
	Served   int64   `json:"served"`
	Failed   int64   `json:"failed"`
	Rejected int64   `json:"rejected"`
}

func (s *service) stats() ServiceStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := ServiceStats{Replicas: s.replicas, InFlight: s.inFlight, Queued: len(s.queue),
		Served: s.served, Failed: s.failed, Rejected: s.rejected}
	if slots := s.slotsLocked(); slots > 0 {
		st.Utilization = math.Min(1, float64(s.inFlight)/float64(slots))
		st.Demand = float64(s.inFlight+len(s.queue)) / float64(slots)
	}
	return st
}

// setReplicas changes the replica count (bounded by the config) and lets
// waiters into new slots; it returns the new count.
func (s *service) setReplicas(n int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.replicas = min(max(n, s.cfg.Replicas), s.cfg.MaxReplicas)
	s.admitLocked()
	return s.replicas
}

func jittered(d, jitter time.Duration) time.Duration {
	if jitter > 0 {
		d += rand.N(jitter)
	}
	return d
}
