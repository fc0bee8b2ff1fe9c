package swarm

import (
	"math"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// bucket is a token bucket: it holds up to burst tokens and gains rate
// tokens per second. The zero value is full.
type bucket struct {
	tokens float64
	last   time.Time // zero: never used, so full
}

// refill brings the bucket to now. A clock that went back adds nothing.
func (b *bucket) refill(now time.Time, rate float64, burst int) {
	if b.last.IsZero() {
		b.tokens, b.last = float64(burst), now
		return
	}
	if el := now.Sub(b.last); el > 0 {
		b.tokens = math.Min(float64(burst), b.tokens+el.Seconds()*rate)
		b.last = now
	}
}

// take spends a token if there is one.
func (b *bucket) take(now time.Time, rate float64, burst int) bool {
	b.refill(now, rate, burst)
	if b.tokens >= 1 {
		b.tokens--
		return true
	}
	return false
}

// full reports whether the bucket is as a new one would be.
func (b *bucket) full(now time.Time, rate float64, burst int) bool {
	if b.last.IsZero() {
		return true
	}
	return b.tokens+now.Sub(b.last).Seconds()*rate >= float64(burst)
}

// Penalties. A refusal that only a broken or hostile sender earns
// (malformed, forged, wrong kind) costs penaltyCertain; one that an honest
// node of another version or config may earn (unknown type, over a type's
// size or rate, over our decoder's depth or lengths) costs penaltyMaybe.
// GossipSub drops every RPC of a peer whose penalty is above
// graylistPenalty before it even verifies a signature (see newPubSub):
// five certain refusals, or about 4,000 doubtful ones, within a minute or
// so. Penalties halve every penaltyHalfLife.
const (
	penaltyCertain  = 10
	penaltyMaybe    = 0.01
	penaltyHalfLife = time.Minute
	gossipPenalty   = 10 // above: no gossip (IHAVE/IWANT) with the peer
	publishPenalty  = 20 // above: not flood-published to
	graylistPenalty = 40 // above: everything it sends is dropped unread
	scoreFloor      = 1  // below: no effect at all (see limiter.score)

	// logEvery is how often a hostile sender gets a log line.
	logEvery = time.Minute
	// sweepEvery is how often a full table looks for idle entries.
	sweepEvery = time.Second
)

// sender is the state kept about one peer that sends us messages: its
// token buckets per gossip type, its decayed penalty and when it was last
// logged.
type sender struct {
	buckets   map[Type]*bucket
	penalty   float64 // as of penaltyAt
	penaltyAt time.Time
	logged    time.Time // the last log line about it
	quiet     int       // refusals since that line
}

func (se *sender) penaltyAtTime(now time.Time) float64 {
	if se.penalty == 0 {
		return 0
	}
	return se.penalty * math.Exp2(-now.Sub(se.penaltyAt).Seconds()/penaltyHalfLife.Seconds())
}

// idle reports whether the entry holds nothing a fresh one would not:
// evicting it changes no decision.
func (se *sender) idle(now time.Time, reg *Registry) bool {
	if se.penaltyAtTime(now) > 0.01 || se.quiet > 0 || now.Sub(se.logged) < logEvery {
		return false
	}
	for t, b := range se.buckets {
		spec := reg.specs[t]
		if !b.full(now, spec.RatePerSec, spec.Burst) {
			return false
		}
	}
	return true
}

// limiter keeps the per-sender state of gossip: token buckets, penalties
// and log pacing. Its table is bounded: only members get an entry of their
// own (a fleet member can mint peer ids at will, but each needs a
// memberlist entry to count as a member), at most max of them; everyone
// else shares one entry, so a flood of new sender ids neither grows the
// table nor gains a fresh burst per id. It is safe for concurrent use, and
// never calls out while holding its lock.
type limiter struct {
	reg  *Registry
	max  int
	self peer.ID

	mu        sync.Mutex
	members   map[peer.ID]int // peer ids that members declare (count of names)
	senders   map[peer.ID]*sender
	others    sender // strangers, and members that found the table full
	own       sender // this node's own messages
	lastSweep time.Time
}

func newLimiter(reg *Registry, max int, self peer.ID) *limiter {
	return &limiter{reg: reg, max: max, self: self, members: map[peer.ID]int{}, senders: map[peer.ID]*sender{}}
}

// member counts a member's peer id in (delta 1) or out (-1).
func (l *limiter) member(p peer.ID, delta int) {
	if p == "" {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := l.members[p] + delta; n > 0 {
		l.members[p] = n
	} else {
		delete(l.members, p)
	}
}

// entryLocked returns p's entry, making one if p is a member and the table
// has room (after evicting idle entries, at most once per sweepEvery).
func (l *limiter) entryLocked(p peer.ID, now time.Time) *sender {
	if p == l.self {
		return &l.own
	}
	if se, ok := l.senders[p]; ok {
		return se
	}
	if l.members[p] == 0 {
		return &l.others
	}
	if len(l.senders) >= l.max && now.Sub(l.lastSweep) >= sweepEvery {
		l.lastSweep = now
		for q, se := range l.senders {
			if se.idle(now, l.reg) {
				delete(l.senders, q)
			}
		}
	}
	if len(l.senders) >= l.max {
		return &l.others
	}
	se := &sender{}
	l.senders[p] = se
	return se
}

// take spends one of p's tokens for gossip type t; false means p is over
// the type's rate. Types that are not gossip types have no rate here.
func (l *limiter) take(p peer.ID, t Type, now time.Time) bool {
	spec, ok := l.reg.specs[t]
	if !ok || spec.Kind&KindGossip == 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	se := l.entryLocked(p, now)
	b := se.buckets[t]
	if b == nil {
		if se.buckets == nil {
			se.buckets = map[Type]*bucket{}
		}
		b = &bucket{}
		se.buckets[t] = b
	}
	return b.take(now, spec.RatePerSec, spec.Burst)
}

// refused records a refusal of p's message that costs penalty, and says
// whether to log it now and how many refusals went unlogged before it: one
// line per sender per logEvery.
func (l *limiter) refused(p peer.ID, penalty float64, now time.Time) (logIt bool, unlogged int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	se := l.entryLocked(p, now)
	if se != &l.others {
		se.penalty = se.penaltyAtTime(now) + penalty
		se.penaltyAt = now
	}
	if now.Sub(se.logged) < logEvery && !se.logged.IsZero() {
		se.quiet++
		return false, 0
	}
	unlogged = se.quiet
	se.logged, se.quiet = now, 0
	return true, unlogged
}

// score is GossipSub's application-specific score of a peer: minus its
// penalty, from scoreFloor up. Below the floor it is 0, because GossipSub
// keeps any peer with a negative score out of its mesh: a node of another
// version that sent a few doubtful messages keeps its place, and a decayed
// penalty does not linger as a tiny negative score forever. Peers that
// share the others entry score 0: one of them must not pay for the rest.
func (l *limiter) score(p peer.ID, now time.Time) float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	se, ok := l.senders[p]
	if !ok {
		return 0
	}
	if pen := se.penaltyAtTime(now); pen >= scoreFloor {
		return -pen
	}
	return 0
}

// counts returns the number of entries and of peers above the graylist
// penalty.
func (l *limiter) counts(now time.Time) (senders, graylisted int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, se := range l.senders {
		if se.penaltyAtTime(now) > graylistPenalty {
			graylisted++
		}
	}
	return len(l.senders), graylisted
}
