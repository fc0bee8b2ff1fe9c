package node

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/loadswarm/loadswarm/scheduler"
)

// TestEvent is something that happened to a test, for the dashboard's time
// axis: a new plan (nodes joining, leaving, shares moving) or a node
// stopping its share.
type TestEvent struct {
	T    float64 `json:"t"`    // seconds since the test's start
	Kind string  `json:"kind"` // "plan" or "stopped"
	Text string  `json:"text"`
}

// maxEvents bounds a test's events: a fleet that churns for an hour keeps
// the latest.
const maxEvents = 200

// eventLocked records an event now; the caller holds t.mu.
func (t *loadTest) eventLocked(kind, text string) {
	at := 0.0
	if t.plan != nil {
		at = max(time.Since(t.plan.Start).Seconds(), 0)
	}
	t.addEventLocked(TestEvent{T: at, Kind: kind, Text: text})
}

func (t *loadTest) addEventLocked(ev TestEvent) {
	if len(t.events) >= maxEvents {
		t.events = append(t.events[:0], t.events[len(t.events)-maxEvents+1:]...)
	}
	t.events = append(t.events, ev)
}

// planEventLocked records a new plan: who joined and left since the one
// before, and why those left. The caller holds t.mu.
func (t *loadTest) planEventLocked(old, p *scheduler.Plan) {
	had := map[string]bool{}
	if old != nil {
		for _, s := range old.Shares {
			had[s.Node] = true
		}
	}
	now := map[string]bool{}
	var joined, left []string
	for _, s := range p.Shares {
		now[s.Node] = true
		if !had[s.Node] {
			joined = append(joined, t.nameOfLocked(s.Node))
		}
	}
	for id := range had {
		if !now[id] {
			why := p.Excluded[id]
			if why == "" {
				why = "no share"
			}
			left = append(left, fmt.Sprintf("%s (%s)", t.nameOfLocked(id), why))
		}
	}
	// Members that take no part now and did not before: declined, no
	// capacity, not selected. Those that left are listed as left.
	var excluded []string
	for id, why := range p.Excluded {
		if had[id] {
			continue
		}
		if old != nil {
			if _, was := old.Excluded[id]; was {
				continue
			}
		}
		excluded = append(excluded, fmt.Sprintf("%s (%s)", t.nameOfLocked(id), why))
	}
	sort.Strings(joined)
	sort.Strings(left)
	sort.Strings(excluded)
	var b strings.Builder
	fmt.Fprintf(&b, "plan %d by %s: %d node(s)", p.Epoch, t.nameOfLocked(p.Scheduler), len(p.Shares))
	if old != nil && len(joined) > 0 {
		fmt.Fprintf(&b, "; joined %s", strings.Join(joined, ", "))
	}
	if len(left) > 0 {
		fmt.Fprintf(&b, "; left %s", strings.Join(left, ", "))
	}
	if len(excluded) > 0 {
		fmt.Fprintf(&b, "; without %s", strings.Join(excluded, ", "))
	}
	if old != nil && len(joined) == 0 && len(left) == 0 && len(excluded) == 0 {
		b.WriteString("; shares moved")
	}
	t.addEventLocked(TestEvent{T: p.Effective.Seconds(), Kind: "plan", Text: b.String()})
}
