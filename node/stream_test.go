package node_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/loadswarm/loadswarm/node"
)

// sseEvent is one server-sent event.
type sseEvent struct {
	name string
	data string
}

// readEvents reads server-sent events from a stream until stop says so.
func readEvents(t *testing.T, url string, timeout time.Duration, stop func(sseEvent) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("GET %s: %s, %s", url, resp.Status, resp.Header.Get("Content-Type"))
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	var ev sseEvent
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			ev.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			ev.data = strings.TrimPrefix(line, "data: ")
		case line == "" && ev.name != "":
			if stop(ev) {
				return
			}
			ev = sseEvent{}
		}
	}
	t.Fatalf("stream %s ended before the test saw what it waited for: %v", url, sc.Err())
}

// TestStream: the dashboard's stream pushes the fleet once a second and,
// for a chosen test, its status with the report so far and its plan events.
func TestStream(t *testing.T) {
	nodes := fleet(t, 2)
	ct := newCountingTarget(t)
	c := node.NewClient(nodes[1].APIAddr(), nil)
	id, err := c.Submit(context.Background(), spec(ct.srv.URL, 40, 6), "")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + nodes[0].APIAddr()

	// Bad input: an unknown test is refused before the stream starts.
	resp, err := http.Get(base + "/v1/stream?test=nope")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("stream of an unknown test: %s", resp.Status)
	}
	// A page on another site may not read it.
	req, _ := http.NewRequest(http.MethodGet, base+"/v1/stream", nil)
	req.Header.Set("Origin", "http://evil.example")
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site stream: %s", resp.Status)
	}

	waitStart(t, c, id)
	fleets, lastTime := 0, time.Time{}
	var live *node.TestStatus
	readEvents(t, base+"/v1/stream?test="+id, 20*time.Second, func(ev sseEvent) bool {
		switch ev.name {
		case "fleet":
			var f node.FleetFrame
			if err := json.Unmarshal([]byte(ev.data), &f); err != nil {
				t.Fatalf("fleet event: %v: %s", err, ev.data)
			}
			if len(f.Peers) != 2 || f.Self != "n0" || len(f.Participants[id]) != 2 {
				t.Fatalf("fleet event: %d peers, self %q, participants %v", len(f.Peers), f.Self, f.Participants)
			}
			if !f.Time.After(lastTime) {
				t.Fatalf("fleet event time %v after %v", f.Time, lastTime)
			}
			lastTime = f.Time
			fleets++
		case "test":
			var st node.TestStatus
			if err := json.Unmarshal([]byte(ev.data), &st); err != nil {
				t.Fatalf("test event: %v", err)
			}
			if st.State == node.StateRunning && st.Report != nil && len(st.Report.Series) > 0 {
				live = &st
			}
		default:
			t.Fatalf("unexpected event %q: %s", ev.name, ev.data)
		}
		return fleets >= 3 && live != nil
	})
	if len(live.Events) == 0 || live.Events[0].Kind != "plan" || !strings.Contains(live.Events[0].Text, "2 node(s)") {
		t.Fatalf("events: %+v", live.Events)
	}
	if len(live.Report.SeriesByNode) == 0 || len(live.Report.Stages) != 1 {
		t.Fatalf("live report: %d node series, stages %+v", len(live.Report.SeriesByNode), live.Report.Stages)
	}
}

// TestDashboardServed: /ui is the dashboard page, from the binary.
func TestDashboardServed(t *testing.T) {
	n := fleet(t, 1)[0]
	for path, ctype := range map[string]string{"/ui": "text/html", "/ui/app.js": "javascript", "/ui/uPlot.iife.min.js": "javascript"} {
		resp, err := http.Get("http://" + n.APIAddr() + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Content-Type"), ctype) {
			t.Errorf("GET %s: %s, %q", path, resp.Status, resp.Header.Get("Content-Type"))
		}
	}
	// The guard covers the page too: a rebinding host name is refused.
	req, _ := http.NewRequest(http.MethodGet, "http://"+n.APIAddr()+"/ui", nil)
	req.Host = "evil.example"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("/ui with Host evil.example: %s", resp.Status)
	}
}
