package node

import (
	"context"
	"fmt"
	"time"
)

// abortIfLeading evaluates the test's abort thresholds on the fleet's
// merged numbers, once per second the whole fleet has reported, and stops
// the test on every node when one fails. Only the scheduler does: the
// nodes' stats reach it as they reach everyone, and the stop it publishes
// is one that every node accepts from it. It runs in the test's loop.
func (t *loadTest) abortIfLeading(leading bool) {
	if !leading || !hasAbort(t) {
		return
	}
	t.mu.Lock()
	if t.state != StateRunning || t.aborted != "" || t.plan == nil {
		t.mu.Unlock()
		return
	}
	through := t.completeThroughLocked()
	if through < 0 || through <= t.abortSeen {
		t.mu.Unlock()
		return
	}
	t.abortSeen = through
	rep, err := t.reportLocked() // a running test's report covers the seconds through `through`
	t.mu.Unlock()
	if err != nil {
		t.log.Warn("could not evaluate the abort thresholds", "error", err)
		return
	}
	r, stop := t.sc.ShouldAbort(rep.ThresholdEnv(t.sc), time.Duration(through+1)*time.Second)
	if !stop {
		return
	}
	reason := fmt.Sprintf("aborted: threshold %q failed at %ds", r.Expr, through+1)
	if r.Error != "" {
		reason += " (" + r.Error + ")"
	}
	t.log.Warn("abort threshold failed: stopping the test on every node", "threshold", r.Expr, "second", through)
	ctx, cancel := context.WithTimeout(t.ctx, 2*time.Second)
	defer cancel()
	if err := t.reg.abort(ctx, t, r.Expr, reason); err != nil {
		t.log.Warn("could not publish the abort", "error", err)
	}
}

func hasAbort(t *loadTest) bool {
	for _, th := range t.sc.Thresholds {
		if th.Abort {
			return true
		}
	}
	return false
}
