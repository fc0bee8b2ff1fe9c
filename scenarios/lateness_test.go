package scenarios

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// TestPaceLateness measures how late the pace loop sends arrivals: the
// data behind DefaultMaxLate. Four runs (four in-process nodes) share one
// in-process target, as in the testnet. It only reports; run it with
//
//	LOADSWARM_MEASURE_LATENESS=50 go test -count=1 -race -run PaceLateness -v ./scenarios/
//
// (the value is each node's rate per second) alone, and again with both
// cores busy (e.g. `yes >/dev/null & yes >/dev/null &`).
func TestPaceLateness(t *testing.T) {
	rate, _ := strconv.Atoi(os.Getenv("LOADSWARM_MEASURE_LATENESS"))
	if rate <= 0 {
		t.Skip("set LOADSWARM_MEASURE_LATENESS to a rate per node to measure")
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"ok":true}`)) }))
	defer srv.Close()
	const nodes, secs = 4, 20
	sc := mustParse(t, fmt.Sprintf("name: late\ntarget: %s\nduration: %ds\nload: {rate: %d, arrivals: poisson}\nrequests: [{name: a, path: '/{{ arrival }}', check: 'json.ok == true'}]\n", srv.URL, secs, rate))
	var mu sync.Mutex
	var late []time.Duration
	var wg sync.WaitGroup
	start := time.Now().Add(100 * time.Millisecond)
	for range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// MaxLate is set high so that nothing is skipped: this
			// measures the loop, it does not apply the rule.
			Run(context.Background(), RunConfig{Scenario: sc, Start: start, MaxLate: time.Hour, onLate: func(d time.Duration) {
				mu.Lock()
				late = append(late, d)
				mu.Unlock()
			}})
		}()
	}
	wg.Wait()
	slices.Sort(late)
	q := func(f float64) time.Duration { return late[min(int(f*float64(len(late))), len(late)-1)] }
	over := func(d time.Duration) int {
		i, _ := slices.BinarySearch(late, d+1)
		return len(late) - i
	}
	t.Logf("%d arrivals: p50 %s p90 %s p99 %s p99.9 %s p99.99 %s max %s; over 10ms %d, over 20ms %d, over 50ms %d",
		len(late), q(0.5), q(0.9), q(0.99), q(0.999), q(0.9999), late[len(late)-1], over(10*time.Millisecond), over(20*time.Millisecond), over(50*time.Millisecond))
}
