package node_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/loadswarm/loadswarm/node"
)

// cpuTime is this process's CPU time so far, user and system.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkStreamViewers measures what open dashboards cost: the process's
// CPU per second while a 2-node fleet runs a test at 300/s, with no viewer,
// then with 10 viewers of the test's live stream on one node, in the same
// run. The viewers read in this process too, so the difference is an upper
// bound of the node's share. Each iteration measures 2 s of each.
func BenchmarkStreamViewers(b *testing.B) {
	nodes := fleetWith(b, 2, "n", nil)
	ct := newCountingTarget(b)
	c := node.NewClient(nodes[0].APIAddr(), nil)
	id, err := c.Submit(context.Background(), spec(ct.srv.URL, 300, 3600), "")
	if err != nil {
		b.Fatal(err)
	}
	defer c.Stop(context.Background(), id)
	for {
		st, err := c.Test(context.Background(), id, 0, false)
		if err == nil && st.State == node.StateRunning && len(st.Seconds) > 2 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	const window = 2 * time.Second
	measure := func() float64 {
		c0, t0 := cpuTime(b), time.Now()
		time.Sleep(window) // a wall-clock window is what is measured
		return float64(cpuTime(b)-c0) / float64(time.Millisecond) / time.Since(t0).Seconds()
	}
	var none, ten float64
	var bytesRead int64
	var mu sync.Mutex
	b.ResetTimer()
	for range b.N {
		none += measure()
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/v1/stream?test=%s", nodes[0].APIAddr(), id), nil)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return
				}
				defer resp.Body.Close()
				n, _ := io.Copy(io.Discard, resp.Body)
				mu.Lock()
				bytesRead += n
				mu.Unlock()
			}()
		}
		ten += measure()
		cancel()
		wg.Wait()
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(none/n, "cpu-ms/s-0viewers")
	b.ReportMetric(ten/n, "cpu-ms/s-10viewers")
	b.ReportMetric(float64(bytesRead)/n/10/window.Seconds(), "B/s-per-viewer")
}
