package swarm

import (
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

func TestBucket(t *testing.T) {
	var b bucket
	const rate, burst = 2, 3
	for i, tc := range []struct {
		at   time.Duration
		want bool
	}{
		{0, true},                       // a new bucket is full: 3 tokens
		{0, true},                       // 2 left
		{0, true},                       // 1 left
		{0, false},                      // empty
		{400 * time.Millisecond, false}, // 0.8 tokens: not yet one
		{500 * time.Millisecond, true},  // 1.0 token
		{-time.Hour, false},             // a clock that went back adds nothing
		{time.Hour, true},               // an hour later: full, not 7200 tokens
		{time.Hour, true},
		{time.Hour, true},
		{time.Hour, false},
	} {
		if got := b.take(at(tc.at), rate, burst); got != tc.want {
			t.Fatalf("step %d at %v: got %v, want %v", i, tc.at, got, tc.want)
		}
	}
}

func testLimiter(t *testing.T, max int) *limiter {
	r, err := NewRegistry(testTypes())
	if err != nil {
		t.Fatal(err)
	}
	return newLimiter(r, max, "self")
}

// member ids for tests; peer.ID is a string of bytes.
func pid(s string) peer.ID { return peer.ID(s) }

func TestLimiterPerSender(t *testing.T) {
	l := testLimiter(t, 10)
	a, b := pid("a"), pid("b")
	l.member(a, 1)
	l.member(b, 1)
	// chat: 2.5/s, burst 3.
	for i := range 3 {
		if !l.take(a, tGossip, t0) {
			t.Fatalf("a's message %d refused within the burst", i)
		}
	}
	if l.take(a, tGossip, t0) {
		t.Fatal("a's 4th message within the same instant accepted")
	}
	if !l.take(b, tGossip, t0) {
		t.Fatal("b pays for a")
	}
	if !l.take(a, tRequest, t0) {
		t.Fatal("a request type has no gossip rate")
	}
	if !l.take(a, tGossip, at(400*time.Millisecond)) {
		t.Fatal("a's token after 0.4 s (2.5/s) refused")
	}
	// Our own messages have their own bucket, whatever the table holds.
	for range 3 {
		if !l.take("self", tGossip, t0) {
			t.Fatal("own message refused within the burst")
		}
	}
}

func TestLimiterBoundedAgainstMintedIDs(t *testing.T) {
	l := testLimiter(t, 8)
	for i := range 8 {
		l.member(pid(fmt.Sprint("m", i)), 1)
		l.take(pid(fmt.Sprint("m", i)), tGossip, t0)
	}
	// 10,000 new signers that are no members: no entry each, and one
	// shared bucket, so they get one burst between them, not one each.
	accepted := 0
	for i := range 10000 {
		if l.take(pid(fmt.Sprint("minted", i)), tGossip, t0) {
			accepted++
		}
		l.refused(pid(fmt.Sprint("minted", i)), penaltyCertain, t0)
	}
	if n, _ := l.counts(t0); n != 8 || accepted != 3 {
		t.Fatalf("table %d entries (want 8), minted ids got %d messages through (want the burst, 3)", n, accepted)
	}
	// A ninth member finds the table full: it shares too, until the
	// others have been idle long enough to be forgotten.
	m8 := pid("m8")
	l.member(m8, 1)
	l.take(m8, tGossip, t0)
	if _, own := l.senders[m8]; own {
		t.Fatal("a full table grew")
	}
	later := at(time.Hour) // every bucket refilled, nothing to remember
	l.take(m8, tGossip, later)
	if _, own := l.senders[m8]; !own {
		t.Fatal("idle entries were not evicted for a new member")
	}
	if n, _ := l.counts(later); n > 8 {
		t.Fatalf("table has %d entries, max 8", n)
	}
}

func TestLimiterPenaltyAndScore(t *testing.T) {
	l := testLimiter(t, 10)
	rogue, honest := pid("rogue"), pid("honest")
	l.member(rogue, 1)
	l.member(honest, 1)
	for range 4 {
		l.refused(rogue, penaltyCertain, t0)
	}
	if _, grey := l.counts(t0); grey != 0 {
		t.Fatal("graylisted after 4 malformed messages")
	}
	l.refused(rogue, penaltyCertain, t0) // the fifth
	for range 1000 {
		l.refused(honest, penaltyMaybe, t0) // a newer type, say, a thousand times
	}
	if s := l.score(rogue, t0); s != -50 {
		t.Fatalf("rogue scores %v after 5 malformed messages, want -50", s)
	}
	if s := l.score(honest, t0); s < -publishPenalty {
		t.Fatalf("honest node scores %v for a thousand doubtful messages", s)
	}
	// A few doubtful messages do not score at all: GossipSub keeps a peer
	// with any negative score out of its mesh.
	few := pid("few")
	l.member(few, 1)
	for range 99 {
		l.refused(few, penaltyMaybe, t0)
	}
	if s := l.score(few, t0); s != 0 {
		t.Fatalf("99 doubtful messages score %v", s)
	}
	if _, grey := l.counts(t0); grey != 1 {
		t.Fatalf("%d graylisted, want 1", grey)
	}
	// The penalty halves every penaltyHalfLife: the rogue is back after a
	// while, and must misbehave again to be cut off again.
	if s := l.score(rogue, at(penaltyHalfLife)); s != -25 {
		t.Fatalf("after a half-life: %v, want -25", s)
	}
	if _, grey := l.counts(at(penaltyHalfLife)); grey != 0 {
		t.Fatal("still graylisted after a half-life")
	}
	// Strangers share an entry: none of them is scored for the others.
	l.refused(pid("stranger"), 1000, t0)
	if s := l.score(pid("stranger"), t0); s != 0 {
		t.Fatalf("stranger scores %v", s)
	}
}

func TestLimiterLogsOncePerMinute(t *testing.T) {
	l := testLimiter(t, 10)
	p := pid("p")
	l.member(p, 1)
	for i, tc := range []struct {
		at       time.Duration
		log      bool
		unlogged int
	}{
		{0, true, 0},                  // the first refusal is logged
		{time.Second, false, 0},       // then quiet
		{30 * time.Second, false, 0},  // still quiet
		{61 * time.Second, true, 2},   // a minute later: logged, with the two quiet ones
		{62 * time.Second, false, 0},  // quiet again
		{200 * time.Second, true, 1},  // and so on
		{200 * time.Second, false, 0}, // the same instant: quiet
	} {
		logIt, n := l.refused(p, 0, at(tc.at))
		if logIt != tc.log || n != tc.unlogged {
			t.Fatalf("step %d at %v: log %v with %d unlogged, want %v with %d", i, tc.at, logIt, n, tc.log, tc.unlogged)
		}
	}
}

func TestValidateQueueSize(t *testing.T) {
	for _, tc := range []struct {
		maxGossip, want int
	}{
		{4 << 10, 4096},      // small messages: thousands, capped at 4096
		{60 << 10, 1024},     // 64 KiB with framing: 1024 of them in 64 MiB
		{1<<20 + 64<<10, 60}, // the node's announcement: 60 in 64 MiB
		{16 << 20, 32},       // the largest gossip type: GossipSub's default
		{0, 4096},            // no gossip type at all
	} {
		if got := validateQueueSize(tc.maxGossip); got != tc.want {
			t.Errorf("max gossip %d: queue %d, want %d", tc.maxGossip, got, tc.want)
		}
	}
}
