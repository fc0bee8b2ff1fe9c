package testnet

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/loadswarm/loadswarm/node"
	"github.com/loadswarm/loadswarm/swarm/swarmtest"
	"github.com/loadswarm/loadswarm/testnet/browsertest"
)

// screenshot saves a PNG for the README when SWARM_SCREENSHOTS names a
// folder (make screenshots).
func screenshot(t *testing.T, b *browsertest.Browser, name string, fullPage bool) {
	dir := os.Getenv("SWARM_SCREENSHOTS")
	if dir == "" {
		return
	}
	b.Screenshot(t, filepath.Join(dir, name), fullPage)
	t.Logf("screenshot %s", filepath.Join(dir, name))
}

// noProblems fails on any error the pages logged or threw.
func noProblems(t *testing.T, b *browsertest.Browser) {
	t.Helper()
	if p := b.Problems(); len(p) > 0 {
		t.Fatalf("the browser logged errors:\n%s", strings.Join(p, "\n"))
	}
}

// TestEndToEndDashboard is issue 12's live story in a real browser, on a
// 3-node testnet of processes: the page at /ui shows the 3 nodes by
// region, the rate chart gains points every second and per-region series
// appear; a killed node shows dead within 3 s; the stop button stops the
// test on every node (counted at the target); the console stays clean.
// Then the same test's HTML report, opened from disk, makes no request,
// draws every chart, and its totals are those of `swarm results --json`.
func TestEndToEndDashboard(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: a 3-node testnet of processes and a browser")
	}
	if browsertest.Binary() == "" {
		t.Skip(browsertest.SkipReason)
	}
	b := browsertest.Start(t, 1280, 800)
	bin, s := upFleet(t, 3)
	ps := newPerSecond(t)
	viewer := s.Nodes[0]
	c, st := submit(t, viewer, ps, 60, 20)
	id := st.ID
	tr := func(node string) string { return fmt.Sprintf(`document.querySelector('tr[data-node=%q]')`, node) }

	b.Do(t, 15*time.Second, chromedp.Navigate("http://"+viewer.API+"/ui#test="+id))
	b.WaitFor(t, 10*time.Second, "the first render", `document.body.dataset.ready == "1"`, "document.body.innerText.slice(0, 300)")

	// The fleet: 3 nodes, each alive, each under its region.
	for _, n := range s.Nodes {
		b.WaitFor(t, 5*time.Second, n.Name+" alive", tr(n.Name)+`?.querySelector('td.state')?.textContent.includes('alive')`, tr(n.Name)+`?.textContent`)
		if !browsertest.Eval[bool](t, b, fmt.Sprintf(`document.querySelector('#fleet').innerText.includes(%q)`, n.Region)) {
			t.Errorf("the fleet does not show region %s", n.Region)
		}
	}
	// The rate chart gains points while the test runs, and the regions
	// have their series.
	points := func() int {
		return browsertest.Eval[int](t, b, `+(document.querySelector('#rate-chart')?.dataset.points || 0)`)
	}
	p0 := points()
	b.WaitFor(t, 5*time.Second, "two more points on the rate chart",
		fmt.Sprintf(`+(document.querySelector('#rate-chart')?.dataset.points || 0) >= %d`, p0+2), `document.querySelector('#rate-chart')?.dataset.points`)
	b.WaitFor(t, 5*time.Second, "a series per region",
		`['eu-west', 'us-east'].every(r => (document.querySelector('#region-chart')?.dataset.series || '').split(',').includes(r))`,
		`document.querySelector('#region-chart')?.dataset.series`)
	if os.Getenv("SWARM_SCREENSHOTS") != "" {
		// A picture with a few seconds on its charts.
		b.WaitFor(t, 15*time.Second, "ten points for the picture", `+(document.querySelector('#rate-chart')?.dataset.points || 0) >= 10`, "")
		screenshot(t, b, "dashboard.png", false)
		browsertest.Eval[bool](t, b, `(document.querySelector('#charts')?.scrollIntoView(), true)`)
		screenshot(t, b, "dashboard-charts.png", false)
		browsertest.Eval[bool](t, b, `(window.scrollTo(0, 0), true)`)
	}

	// Kill a node other than the one the page is on: dead within 3 s.
	victim := s.Nodes[2]
	if _, err := s.Kill(victim.Name); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	b.WaitFor(t, 3*time.Second, victim.Name+" shown dead", tr(victim.Name)+`?.querySelector('td.state')?.textContent.includes('dead')`, tr(victim.Name)+`?.textContent`)
	t.Logf("%s shown dead %s after the kill", victim.Name, time.Since(killed).Round(10*time.Millisecond))

	// The stop button stops the test on every node.
	b.Do(t, 5*time.Second, chromedp.Click(chromedp.ID("stop")))
	clicked := time.Now()
	b.WaitFor(t, 10*time.Second, "the page says stopped", `document.querySelector('#test-state')?.textContent.includes('stopped')`, `document.querySelector('#test-state')?.textContent`)
	for _, n := range s.Nodes[:2] {
		nc := node.NewClient(n.API, nil)
		swarmtest.WaitFor(t, 10*time.Second, n.Name+" stopped the test", func() (bool, string) {
			st, err := nc.Test(context.Background(), id, 0, false)
			return err == nil && st.State == node.StateStopped, fmt.Sprint(st.State, err)
		})
	}
	after := int64(clicked.Sub(*st.Start)/time.Second) + 2 // a second in flight, a second of clock skew
	time.Sleep(1500 * time.Millisecond)                    // wall-clock: what the target gets after the stop
	for sec, n := range ps.snapshot() {
		if sec > after && n > 0 {
			t.Errorf("the target got %d requests in second %d, after the stop in second %d", n, sec, after-2)
		}
	}
	noProblems(t, b)

	// The report of the stopped run, and of a full run with it as baseline.
	c2, st2 := submit(t, viewer, ps, 40, 6)
	waitDone(t, c2, st2.ID, 30*time.Second)
	dir := t.TempDir()
	file := filepath.Join(dir, "report.html")
	if code, out, errOut := runSwarm(t, bin, "report", st2.ID, "--api", viewer.API, "-o", file, "--baseline", id); code != 0 {
		t.Fatalf("swarm report: exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, errOut := runSwarm(t, bin, "results", st2.ID, "--api", s.Nodes[1].API, "--json", "--by", "region,node,step")
	if code != 0 {
		t.Fatalf("swarm results: exit %d\n%s", code, errOut)
	}
	var res node.Results
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}

	before := len(b.Requests())
	b.Do(t, 15*time.Second, chromedp.Navigate("file://"+file))
	b.WaitFor(t, 10*time.Second, "the report renders", `document.body.dataset.ready == "1"`, "document.body.innerText.slice(0, 300)")
	for _, u := range b.Requests()[before:] {
		if u != "file://"+file && !strings.HasPrefix(u, "data:") {
			t.Errorf("the report asked for %s", u)
		}
	}
	// Every chart is drawn: a canvas with pixels, and points.
	charts := browsertest.Eval[[]string](t, b, `[...document.querySelectorAll('.chart')].map(c => c.id + ':' + (c.dataset.points || 0) + ':' + (c.querySelector('canvas')?.width || 0))`)
	want := map[string]bool{"rate-chart": true, "latency-chart": true, "errors-chart": true, "region-chart": true, "node-chart": true}
	for _, ch := range charts {
		f := strings.Split(ch, ":")
		if f[1] == "0" || f[2] == "0" {
			t.Errorf("chart %s is empty (points %s, canvas width %s)", f[0], f[1], f[2])
		}
		delete(want, f[0])
	}
	if len(want) > 0 {
		t.Errorf("charts missing: %v (have %v)", want, charts)
	}
	// The latency bars by step: one step, its three quantiles with widths.
	if bars := browsertest.Eval[int](t, b, `[...document.querySelectorAll('#step-bars .bar')].filter(e => e.getBoundingClientRect().width > 0).length`); bars != 3 {
		t.Errorf("step bars drawn: %d, want 3", bars)
	}
	// Its totals are swarm results' own.
	totals := browsertest.Eval[map[string]string](t, b, `Object.fromEntries([...document.querySelectorAll('#totals [data-k]')].map(e => [e.dataset.k, e.dataset.v]))`)
	for k, v := range map[string]float64{
		"requests": float64(res.Requests), "arrivals": float64(res.Arrivals), "errors": float64(res.Errors), "dropped": float64(res.Dropped),
		"planned": float64(res.Planned), "rate.achieved": res.Rate.Achieved, "latency.p50": res.Latency.P50,
		"latency.p95": res.Latency.P95, "latency.p99": res.Latency.P99, "latency.max": res.Latency.Max,
	} {
		got, err := strconv.ParseFloat(totals[k], 64)
		if err != nil || got != v {
			t.Errorf("report total %s = %q, swarm results says %v", k, totals[k], v)
		}
	}
	if res.Requests == 0 {
		t.Fatal("the run sent nothing")
	}
	if !browsertest.Eval[bool](t, b, `document.body.innerText.includes('Baseline') && document.body.innerText.includes(`+strconv.Quote(id)+`)`) {
		t.Error("the report does not show its baseline")
	}
	screenshot(t, b, "report.png", false)
	if os.Getenv("SWARM_SCREENSHOTS") != "" {
		browsertest.Eval[bool](t, b, `(document.querySelector('#charts')?.scrollIntoView(), true)`)
		screenshot(t, b, "report-charts.png", false)
	}
	noProblems(t, b)

	// A link to a test this node does not know says so, and the fleet
	// still shows.
	b.Do(t, 15*time.Second, chromedp.Navigate("http://"+viewer.API+"/ui#test=0123456789abcdef"))
	b.WaitFor(t, 10*time.Second, "the page says the test is unknown",
		`(document.querySelector('#test-none')?.textContent || '').includes('does not know') && !!document.querySelector('tr[data-node]')`,
		`document.querySelector('#test')?.textContent`)

	// The two stored runs compared by id, asked of another node than the submitter.
	if code, out, errOut := runSwarm(t, bin, "compare", id, st2.ID, "--api", s.Nodes[1].API); code != 0 || !strings.Contains(out, "total") || !strings.Contains(out, "p95") {
		t.Errorf("swarm compare: exit %d\n%s\n%s", code, out, errOut)
	}

	// Bad input, each refused with the reason.
	c3 := node.NewClient(viewer.API, nil)
	other, err := c3.Submit(context.Background(), []byte(fmt.Sprintf("name: other\ntarget: %s\nduration: 30s\nload: {rate: 5}\nrequests: [{name: a}]\n", ps.srv.URL)), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c3.Stop(context.Background(), other); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"report", "0123456789ab"}, "not known"},
		{[]string{"report", other}, "no results"},
		{[]string{"report", st2.ID, "--baseline", other}, `a run of test "other"`},
		{[]string{"report", st2.ID, "--baseline", st2.ID}, "same run"},
		{[]string{"report", st2.ID, "--baseline", filepath.Join(dir, "nothing.json")}, "not known"},
	} {
		args := append(tc.args, "--api", viewer.API, "-o", filepath.Join(dir, "bad.html"))
		code, _, errOut := runSwarm(t, bin, args...)
		if code == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("swarm %s: exit %d, %q; want an error with %q", strings.Join(tc.args, " "), code, errOut, tc.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "bad.html")); err == nil {
		t.Error("a refused report left a file behind")
	}
	_ = c
}
