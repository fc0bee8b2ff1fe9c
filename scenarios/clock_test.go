package scenarios

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/loadswarm/loadswarm/storage"
)

// fakeTarget is an in-memory target: it records which arrival each request
// belongs to (the path is "/{{ arrival }}") and when it came, and answers
// 200 at once. Inside a synctest bubble "when" is the fake clock.
type fakeTarget struct {
	mu   sync.Mutex
	sent map[uint64]time.Time
}

func newFakeTarget() *fakeTarget { return &fakeTarget{sent: map[uint64]time.Time{}} }

func (f *fakeTarget) RoundTrip(r *http.Request) (*http.Response, error) {
	n, err := strconv.ParseUint(strings.TrimPrefix(r.URL.Path, "/"), 10, 64)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.sent[n] = time.Now()
	f.mu.Unlock()
	return &http.Response{StatusCode: 200, Body: http.NoBody, Header: http.Header{}, Request: r}, nil
}

// schedule lists every arrival's scheduled time (since start) as a fresh
// pacer with the same kind, profile and seed draws it: the reference the
// executor is checked against.
func schedule(sc *Scenario) []time.Duration {
	p := NewPacer(sc.Arrivals, sc.Profile, sc.Seed)
	var out []time.Duration
	for n := uint64(0); ; n++ {
		w, stop := p.Pace(0, n)
		if stop {
			return out
		}
		out = append(out, w)
	}
}

// secondsLog keeps the seconds OnSecond hands over and when.
type secondsLog struct {
	mu   sync.Mutex
	secs []*storage.Second
	at   []time.Time
}

func (l *secondsLog) add(s *storage.Second) {
	l.mu.Lock()
	l.secs = append(l.secs, s.Clone())
	l.at = append(l.at, time.Now())
	l.mu.Unlock()
}

// counts sums a second's planned arrivals and its missed ones.
func counts(s *storage.Second) (planned, missed, sent int64) {
	for d, b := range s.Buckets {
		planned += b.Planned
		sent += b.Arrivals
		if d.Error == ErrMissed {
			missed += b.Dropped
		}
	}
	return
}

// checkAccounting asserts that the arrivals the target saw are exactly the
// ones want keeps, that each of them was sent at most maxLate after its
// scheduled time, and that every second handed over counts the arrivals
// scheduled in it, planned and missed, in that very second.
func checkAccounting(t *testing.T, sched []time.Duration, start time.Time, tgt *fakeTarget, log *secondsLog, want func(at time.Duration) bool, maxLate time.Duration) {
	t.Helper()
	wantPlanned, wantMissed := map[int64]int64{}, map[int64]int64{}
	for n, at := range sched {
		sec := int64(at / time.Second)
		wantPlanned[sec]++
		sentAt, sent := tgt.sent[uint64(n)]
		switch {
		case want(at) && !sent:
			t.Fatalf("arrival %d (scheduled at %s) was not sent", n, at)
		case !want(at) && sent:
			t.Fatalf("arrival %d (scheduled at %s) was sent at %s: it should have been missed", n, at, sentAt.Sub(start))
		case !sent:
			wantMissed[sec]++
		case sentAt.Sub(start)-at > maxLate:
			t.Fatalf("arrival %d (scheduled at %s) was sent %s late", n, at, sentAt.Sub(start)-at)
		}
	}
	if len(tgt.sent) != len(sched)-int(sum(wantMissed)) {
		t.Fatalf("target saw %d requests, want %d", len(tgt.sent), len(sched)-int(sum(wantMissed)))
	}
	var got []int64
	for _, s := range log.secs {
		got = append(got, s.T)
		planned, missed, _ := counts(s)
		if planned != wantPlanned[s.T] || missed != wantMissed[s.T] {
			t.Errorf("second %d: planned %d missed %d; want planned %d missed %d", s.T, planned, missed, wantPlanned[s.T], wantMissed[s.T])
		}
	}
	if !slices.IsSorted(got) || len(got) < len(wantPlanned) {
		t.Errorf("seconds handed over: %v; want every second in order", got)
	}
}

func sum(m map[int64]int64) (n int64) {
	for _, v := range m {
		n += v
	}
	return n
}

// TestFrozenPacerSkips: a pacer frozen for 6 s wakes to a gap, not a burst.
// The freeze is simulated in a synctest bubble (fake clock) by a hook that
// blocks the pace loop while the flush loop keeps running: the harder case,
// since the flush loop must not hand over the frozen seconds before the
// pacer has counted what it missed in them.
func TestFrozenPacerSkips(t *testing.T) {
	for _, kind := range []string{ArrivalsUniform, ArrivalsPoisson} {
		t.Run(kind, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const freezeAt, freeze = 2000, 6 * time.Second // arrival number, length
				sc := mustParse(t, "name: freeze\ntarget: http://fake\nduration: 10s\n"+
					"load: {rate: 1000, arrivals: "+kind+", seed: 7}\nrequests: [{name: a, path: '/{{ arrival }}'}]\n")
				sched := schedule(sc)
				tgt := newFakeTarget()
				var log secondsLog
				var frozen atomic.Bool
				start := time.Now()
				res, err := Run(context.Background(), RunConfig{Scenario: sc, Transport: tgt, Start: start, OnSecond: log.add,
					hookPace: func(next uint64) {
						if next == freezeAt && !frozen.Swap(true) {
							time.Sleep(freeze) // the fake clock jumps; the flush loop runs meanwhile
						}
					}})
				if err != nil {
					t.Fatal(err)
				}
				// The freeze began right after arrival freezeAt-1 was sent,
				// at its scheduled time: the fake clock does not move while
				// goroutines run.
				wake := sched[freezeAt-1] + freeze
				keep := func(at time.Duration) bool { return at < sched[freezeAt] || at >= wake-DefaultMaxLate }
				checkAccounting(t, sched, start, tgt, &log, keep, DefaultMaxLate)
				// Sending resumed on schedule: after the short catch-up,
				// every arrival went at its scheduled time exactly.
				for n, at := range sched {
					if at >= wake {
						if got := tgt.sent[uint64(n)].Sub(start); got != at {
							t.Fatalf("arrival %d scheduled at %s sent at %s", n, at, got)
						}
					}
				}
				sum := storage.Summarize(res.Series, nil)
				if sum.Planned != int64(len(sched)) || sum.Arrivals+sum.Dropped != sum.Planned {
					t.Fatalf("planned %d arrivals %d dropped %d; want %d planned, each sent or missed", sum.Planned, sum.Arrivals, sum.Dropped, len(sched))
				}
			})
		})
	}
}

// TestSkipIsCheap: a 6 s gap at 10,000/s (60,000 missed arrivals) costs a
// pacer step per arrival and a few allocations per second, not one per
// arrival.
func TestSkipIsCheap(t *testing.T) {
	sc := mustParse(t, okHead+"duration: 10s\nload: {rate: 10000}\nrequests: [{name: a}]\n")
	var skipped uint64
	allocs := testing.AllocsPerRun(3, func() {
		e := &executor{sc: sc, rec: newRecorder(time.Now()), maxLate: DefaultMaxLate, progress: make(chan struct{}, 1), firstStep: "a"}
		skipped = e.skip(UniformPacer{Profile: sc.Profile}, 6*time.Second+DefaultMaxLate, 0)
		planned, missed, _ := counts(e.rec.flush(1 << 62)[5])
		if planned != 10000 || missed != 10000 {
			t.Fatalf("second 5: planned %d missed %d, want 10000 each", planned, missed)
		}
	})
	if skipped != 60000 {
		t.Fatalf("skipped %d arrivals, want 60000", skipped)
	}
	if allocs > 100 {
		t.Fatalf("%v allocations to skip 60,000 arrivals", allocs)
	}
}

// TestFrozenPacerAtTheTarget: a real run against a counting server, with
// the pace loop stalled for 2 s. No second at the server gets more than
// 105% of the rate, and the arrivals of the stall are counted missed in
// their own seconds.
func TestFrozenPacerAtTheTarget(t *testing.T) {
	const rate = 200
	var mu sync.Mutex
	var seen []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, time.Now())
		mu.Unlock()
	}))
	defer srv.Close()
	sc := mustParse(t, fmt.Sprintf("name: stall\ntarget: %s\nduration: 3s\nload: {rate: %d}\nrequests: [{name: a}]\n", srv.URL, rate))
	start := time.Now().Add(50 * time.Millisecond)
	var stalled atomic.Bool
	var log secondsLog
	res, err := Run(context.Background(), RunConfig{Scenario: sc, Start: start, OnSecond: log.add,
		hookPace: func(next uint64) {
			// Frozen from arrival 100 (0.5 s) to 2.5 s: the wake-up
			// lands mid-second, with the regular arrivals.
			if next == rate/2 && !stalled.Swap(true) {
				<-time.After(time.Until(start.Add(2500 * time.Millisecond)))
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	perSec := map[int64]int{}
	mu.Lock()
	for _, at := range seen {
		perSec[int64(at.Sub(start)/time.Second)]++
	}
	mu.Unlock()
	for s, n := range perSec {
		if n > rate*105/100 {
			t.Errorf("second %d: the target got %d requests, over 105%% of %d/s", s, n, rate)
		}
	}
	// Missed: [0.5 s, 2.5 s - MaxLate) at 200/s, about 390, each in its
	// own second (0, 1 or 2), each second still planning its 200. (Only
	// lower bounds: a starved test machine may add a few misses.)
	sum := storage.Summarize(res.Series, nil)
	if sum.Planned != 3*rate || sum.Dropped < 370 || sum.Arrivals+sum.Dropped != sum.Planned {
		t.Fatalf("planned %d arrivals %d dropped %d; want 600 planned, about 390 missed", sum.Planned, sum.Arrivals, sum.Dropped)
	}
	if len(log.secs) < 3 || log.secs[2].T != 2 {
		t.Fatalf("%d seconds handed over, want 0, 1, 2 (and maybe the responses of 3)", len(log.secs))
	}
	for _, s := range log.secs[:3] {
		planned, missed, _ := counts(s)
		if least := []int64{95, 200, 80}[s.T]; planned != rate || missed < least {
			t.Errorf("second %d: planned %d missed %d; want planned %d, missed at least %d", s.T, planned, missed, rate, least)
		}
	}
}

func TestMaxLateValidated(t *testing.T) {
	sc := mustParse(t, okHead+"duration: 1s\nload: {rate: 1}\nrequests: [{name: a}]\n")
	_, err := Run(context.Background(), RunConfig{Scenario: sc, MaxLate: -time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "max late -1ms: must be >= 0") {
		t.Fatalf("negative MaxLate: %v", err)
	}
}

// TestDeadline: a share stops sending at its deadline by itself, and a
// later deadline resumes it without a burst. Fake clock: 1000/s for 6 s,
// deadline at 1 s, moved to 4 s at 2.5 s and never again.
func TestDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sc := mustParse(t, "name: lease\ntarget: http://fake\nduration: 6s\nload: {rate: 1000}\nrequests: [{name: a, path: '/{{ arrival }}'}]\n")
		sched := schedule(sc)
		tgt := newFakeTarget()
		var log secondsLog
		ctl := NewControl()
		start := time.Now()
		ctl.SetDeadline(start.Add(time.Second))
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan *Result, 1)
		go func() {
			res, err := Run(ctx, RunConfig{Scenario: sc, Transport: tgt, Start: start, OnSecond: log.add, Control: ctl})
			if err != nil {
				t.Error(err)
			}
			done <- res
		}()
		// On failure, end the run so that the bubble can exit.
		var res *Result
		defer func() {
			cancel()
			if res == nil {
				<-done
			}
		}()
		time.Sleep(2500 * time.Millisecond)
		tgt.mu.Lock()
		n := len(tgt.sent)
		tgt.mu.Unlock()
		if n != 1000 {
			t.Fatalf("%d requests by 2.5 s, want the 1000 scheduled before the 1 s deadline", n)
		}
		// Waiting at the deadline does not hold back the seconds.
		log.mu.Lock()
		if len(log.secs) < 2 || log.secs[1].T != 1 {
			t.Fatalf("second 1 not handed over while waiting at the deadline")
		}
		log.mu.Unlock()
		ctl.SetDeadline(start.Add(4 * time.Second))
		if got := ctl.Deadline(); !got.Equal(start.Add(4 * time.Second)) {
			t.Fatalf("Deadline() = %v", got)
		}
		res = <-done // the profile ends while the run waits at 4 s: it returns
		keep := func(at time.Duration) bool {
			return at < time.Second || (at >= 2500*time.Millisecond-DefaultMaxLate && at < 4*time.Second)
		}
		checkAccounting(t, sched, start, tgt, &log, keep, DefaultMaxLate)
		if res.Canceled {
			t.Fatal("run marked canceled")
		}
	})
}

// TestDeadlineAtTheTarget: the same with a real server and clock: 200/s
// for 3 s, deadline at 1 s, extended at 1.5 s.
func TestDeadlineAtTheTarget(t *testing.T) {
	const rate = 200
	var mu sync.Mutex
	var seen []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, time.Now())
		mu.Unlock()
	}))
	defer srv.Close()
	sc := mustParse(t, fmt.Sprintf("name: lease\ntarget: %s\nduration: 3s\nload: {rate: %d}\nrequests: [{name: a}]\n", srv.URL, rate))
	start := time.Now().Add(50 * time.Millisecond)
	deadline := start.Add(time.Second)
	ctl := NewControl()
	ctl.SetDeadline(deadline)
	done := make(chan *Result)
	go func() {
		res, _ := Run(context.Background(), RunConfig{Scenario: sc, Start: start, Control: ctl})
		done <- res
	}()
	<-time.After(time.Until(start.Add(1500 * time.Millisecond)))
	extended := time.Now()
	ctl.SetDeadline(time.Time{}) // no deadline: the lease was renewed
	res := <-done
	mu.Lock()
	defer mu.Unlock()
	perSec := map[int64]int{}
	before := 0
	for _, at := range seen {
		perSec[int64(at.Sub(start)/time.Second)]++
		switch {
		case at.Before(deadline.Add(DefaultMaxLate + 50*time.Millisecond)):
			before++
		case at.Before(extended):
			t.Errorf("a request reached the target %s after the deadline, before it was extended", at.Sub(deadline))
		}
	}
	if before > rate || before < rate*9/10 {
		t.Errorf("%d requests before the deadline, want the %d scheduled before it", before, rate)
	}
	for s, n := range perSec {
		if n > rate*105/100 {
			t.Errorf("second %d: the target got %d requests, over 105%% of %d/s", s, n, rate)
		}
	}
	// About 0.45 s of arrivals missed (1 s to 1.5 s - MaxLate), 90.
	sum := storage.Summarize(res.Series, nil)
	if sum.Planned != 3*rate || sum.Dropped < 80 {
		t.Fatalf("planned %d arrivals %d dropped %d; want 600 planned, about 90 missed", sum.Planned, sum.Arrivals, sum.Dropped)
	}
}
