package node

import (
	"context"
	"fmt"
	"time"

	"github.com/loadswarm/loadswarm/scenarios"
	"github.com/loadswarm/loadswarm/scheduler"
	"github.com/loadswarm/loadswarm/storage"
)

// startRun starts this node's share (the follower's ActStart): the
// executor runs the follower's profile from the plan's start, held open so
// that a pause or a new plan can change it, and never past the lease's end.
// Called from the loop.
func (t *loadTest) startRun(a scheduler.Action) {
	ctx, cancel := context.WithCancel(t.ctx)
	ctl := scenarios.NewControl()
	ctl.Hold(true)
	ctl.SetDeadline(a.Deadline)
	t.ctl = ctl
	t.mu.Lock()
	t.runCancel = cancel
	t.mu.Unlock()

	prof := a.Profile
	start := a.Plan.Start
	self := t.reg.self
	name, region := t.reg.n.cfg.Name, t.reg.n.cfg.Region
	if sh, ok := a.Plan.Share(self); ok && sh.Region != "" {
		region = sh.Region
	}
	t.mu.Lock()
	t.node(self).Name = name
	t.mu.Unlock()
	tr := t.reg.n.transport(t.sc)
	// The share's metrics (Prometheus, and OTLP when configured): its
	// series are resolved now, and go metricsGrace after the run ends.
	sm := t.reg.n.metrics.startShare(t.id, t.sc.Name, region, t.sc)
	sm.setInFlight(ctl.InFlight)
	cfg := scenarios.RunConfig{
		Scenario: t.sc, Profile: &prof, Start: start, Seed: a.Seed, Control: ctl, Transport: tr, MaxLate: t.reg.n.cfg.MaxLate,
		OnSecond: func(sec *storage.Second) {
			sm.OnSecond(sec)
			b, err := storage.EncodeSecond(sec)
			if err != nil {
				t.log.Warn("encode second", "error", err)
				return
			}
			// Encoded once: the same bytes are published, kept here and
			// kept by the replicas.
			t.keep(self, sec.T, b)
			t.mu.Lock()
			t.record(self, &Stats{Name: name, Region: region}, sec.Clone())
			t.mu.Unlock()
			t.publish(TypeStats, Stats{Name: name, Region: region, Second: b, Plan: t.followedDigest()})
			t.lastPub.Store(time.Now().UnixNano())
		},
		OnRequest: sm.OnRequest,
	}
	t.log.Info("this node's share starts", "epoch", a.Plan.Epoch, "scheduler", a.Plan.Scheduler, "in", time.Until(start).Round(time.Millisecond).String())
	t.reg.wg.Add(1)
	go func() {
		defer t.reg.wg.Done()
		defer cancel()
		defer sm.end()
		if d := time.Until(start); d < -time.Second {
			t.log.Warn("plan arrived after the test's start", "late", (-d).String())
		}
		var skew time.Duration
		cfg.OnStart = func(at time.Time) { skew = at.Sub(start) }
		res, err := scenarios.Run(ctx, cfg)
		tr.CloseIdleConnections()
		t.mu.Lock()
		why := t.gaveUp
		t.mu.Unlock()
		if err != nil {
			t.log.Warn("share failed", "error", err)
			why = err.Error()
		}
		var samples map[string][]string
		if res != nil {
			samples = res.Series.Samples
		}
		final := Stats{Name: name, Region: region, Done: true, Stopped: why, Samples: samples, StartSkew: max(skew, 0), Plan: t.followedDigest()}
		if len(samples) > 0 {
			if err := t.reg.n.store.PutSamples(t.id, self, samples); err != nil {
				t.log.Warn("could not store samples", "error", err)
			}
		}
		t.mu.Lock()
		t.record(self, &final, nil)
		t.mu.Unlock()
		t.publish(TypeStats, final)
		t.log.Info("share finished", "stopped", why)
		select {
		case t.inbox <- event{kind: scheduler.InRunEnded}:
		case <-t.ctx.Done():
		}
	}()
}

// giveUp ends this node's share for good (the follower's ActGiveUp): the
// run ends once in-flight requests finish, and the test hears why, so that
// its scheduler moves the share.
func (t *loadTest) giveUp(why string) {
	if t.ctl != nil {
		t.ctl.Hold(false)
	}
	name, region := t.reg.n.cfg.Name, t.reg.n.cfg.Region
	t.mu.Lock()
	t.gaveUp = why
	ns := t.node(t.reg.self)
	ns.Name = name
	if ns.Stopped == "" {
		t.eventLocked("stopped", fmt.Sprintf("%s stopped its share: %s", name, why))
	}
	ns.Stopped = why
	t.mu.Unlock()
	t.log.Warn("this node's share ends", "why", why)
	t.publish(TypeStats, Stats{Name: name, Region: region, Stopped: why})
}

// followedDigest is the digest of the plan this node follows, for its
// stats (nil before the first).
func (t *loadTest) followedDigest() []byte {
	if d := t.following.Load(); d != nil {
		return d[:]
	}
	return nil
}
