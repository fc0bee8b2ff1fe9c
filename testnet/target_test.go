package testnet

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/loadswarm/loadswarm/swarm/swarmtest"
)

func TestTargetConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(c *TargetConfig)
		want []string // substrings of the error; none: valid
	}{
		{"zero value", func(c *TargetConfig) { *c = TargetConfig{} }, nil},
		{"defaults", func(c *TargetConfig) {}, nil},
		{"bad error rate", func(c *TargetConfig) { c.Payments.ErrorRate = 1.5 }, []string{"payments: error rate 1.5"}},
		{"negative capacity", func(c *TargetConfig) { c.Cart.Capacity = -1 }, []string{"cart: capacity"}},
		{"max below replicas", func(c *TargetConfig) { c.Catalog.Replicas, c.Catalog.MaxReplicas = 4, 2 }, []string{"catalog: max replicas 2 is below replicas 4"}},
		{"too many retries", func(c *TargetConfig) { c.Retry.Retries = 11 }, []string{"retries 11"}},
		{"autoscale thresholds crossed", func(c *TargetConfig) { c.Autoscale.UpAt, c.Autoscale.DownAt = 0.5, 0.6 }, []string{"down-at 0.6 must be below up-at 0.5"}},
		{"every problem at once", func(c *TargetConfig) { c.ErrorRate, c.Cart.Latency = 2, -time.Second },
			[]string{"error rate 2", "cart: latency"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultTargetConfig()
			tc.edit(&c)
			err := c.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestTargetConfigSet(t *testing.T) {
	for _, tc := range []struct {
		kv    string
		check func(c TargetConfig) bool
		err   string
	}{
		{"payments.error-rate=0.3", func(c TargetConfig) bool { return c.Payments.ErrorRate == 0.3 }, ""},
		{"catalog.latency=25ms", func(c TargetConfig) bool { return c.Catalog.Latency == 25*time.Millisecond }, ""},
		{"all.capacity=0", func(c TargetConfig) bool {
			return c.Catalog.Capacity == 0 && c.Cart.Capacity == 0 && c.Payments.Capacity == 0
		}, ""},
		{"cart.replicas=20", func(c TargetConfig) bool { return c.Cart.Replicas == 20 && c.Cart.MaxReplicas == 20 }, ""},
		{"nope.latency=1s", nil, `no service "nope"`},
		{"cart.colour=red", nil, `no field "colour"`},
		{"cart.latency", nil, "want SERVICE.FIELD=VALUE"},
		{"cart.queue=many", nil, "invalid syntax"},
	} {
		t.Run(tc.kv, func(t *testing.T) {
			c := DefaultTargetConfig()
			err := c.Set(tc.kv)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || !tc.check(c) {
				t.Fatalf("err %v, config %+v", err, c)
			}
		})
	}
}

func get(t *testing.T, h http.Handler, method, path, token string) (int, string) {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

// TestTargetRoutes: the routes of the old target still answer the same way
// through the gateway.
func TestTargetRoutes(t *testing.T) {
	tg, err := NewTarget(DefaultTargetConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	code, body := get(t, tg, "POST", "/login", "")
	var login struct{ Token string }
	if code != 200 || json.Unmarshal([]byte(body), &login) != nil || login.Token == "" {
		t.Fatalf("login: %d %s", code, body)
	}
	for _, tc := range []struct {
		method, path, token string
		code                int
		body                string
	}{
		{"GET", "/health", "", 200, "ok"},
		{"GET", "/items", "", 200, `"total":100`},
		{"GET", "/items/7", "", 200, `"id":7`},
		{"GET", "/items/1000", "", 404, "no such item"},
		{"POST", "/cart", "", 401, "log in first"},
		{"POST", "/cart", login.Token, 201, `"ok":true`},
		{"POST", "/checkout", login.Token, 201, `"order"`},
		{"GET", "/nowhere", "", 404, "not found"},
		{"GET", "/stats", "", 200, `"catalog":{"replicas":2`},
	} {
		code, body := get(t, tg, tc.method, tc.path, tc.token)
		if code != tc.code || !strings.Contains(body, tc.body) {
			t.Errorf("%s %s: %d %q, want %d with %q", tc.method, tc.path, code, body, tc.code, tc.body)
		}
	}
}

// TestQueueingLatency: past capacity, requests wait for a free replica, so
// latency grows with the number in flight. One replica of capacity 2 at
// 100ms each: n requests at once finish in ceil(n/2) × 100ms.
func TestQueueingLatency(t *testing.T) {
	for _, tc := range []struct {
		name    string
		n       int
		slowest time.Duration
		refused int
	}{
		{"within capacity", 2, 100 * time.Millisecond, 0},         // 2 at once: no wait
		{"twice capacity", 4, 200 * time.Millisecond, 0},          // 2 wait one round
		{"four times capacity", 8, 400 * time.Millisecond, 0},     // 6 wait, up to 3 rounds
		{"past the queue", 14, 600 * time.Millisecond, 2},         // 2 run, 10 queue, 2 refused at once
		{"unlimited (capacity 0)", 14, 100 * time.Millisecond, 0}, // never waits
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg := TargetConfig{Catalog: ServiceConfig{Latency: 100 * time.Millisecond, Capacity: 2, Queue: 10}}
				if strings.HasPrefix(tc.name, "unlimited") {
					cfg.Catalog.Capacity = 0
				}
				tg, err := NewTarget(cfg)
				if err != nil {
					t.Fatal(err)
				}
				defer tg.Close()
				start := time.Now()
				var mu sync.Mutex
				var slowest time.Duration
				refused := 0
				var wg sync.WaitGroup
				for range tc.n {
					wg.Go(func() {
						code, _ := get(t, tg, "GET", "/items/1", "")
						mu.Lock()
						defer mu.Unlock()
						if code == http.StatusServiceUnavailable {
							refused++
							return
						}
						slowest = max(slowest, time.Since(start))
					})
				}
				wg.Wait()
				if slowest != tc.slowest || refused != tc.refused {
					t.Fatalf("slowest %s, refused %d; want %s, %d", slowest, refused, tc.slowest, tc.refused)
				}
			})
		})
	}
}

// TestAutoscalerAddsReplicasAfterDelay: demand stays at 3 replicas' worth;
// the autoscaler waits UpDelay, then sizes for Aim.
func TestAutoscalerAddsReplicasAfterDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := TargetConfig{
			Catalog:   ServiceConfig{Latency: time.Hour, Capacity: 1, Queue: 10, Replicas: 1, MaxReplicas: 8},
			Autoscale: AutoscaleConfig{Enabled: true, Every: 100 * time.Millisecond, UpDelay: 2 * time.Second, Aim: 0.75},
		}
		tg, err := NewTarget(cfg)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for range 3 {
			wg.Go(func() { get(t, tg, "GET", "/items", "") })
		}
		synctest.Wait()
		start := time.Now()
		replicas := func() int { return tg.Stats().Services[Catalog].Replicas }
		for replicas() == 1 {
			time.Sleep(100 * time.Millisecond) // virtual time: the bubble's clock
		}
		// Demand 3 (1 in flight, 2 queued) for the 2 s delay (first seen at
		// the first tick, 100ms in), then ceil(1 × 3 / 0.75) = 4 replicas.
		if took := time.Since(start); took < 2*time.Second || took > 2200*time.Millisecond {
			t.Errorf("scaled after %s, want 2s after demand was first seen", took)
		}
		if got := replicas(); got != 4 {
			t.Errorf("%d replicas, want 4", got)
		}
		if st := tg.Stats().Services[Catalog]; st.InFlight != 3 || st.Queued != 0 {
			t.Errorf("after scaling: %+v, want all 3 in flight", st)
		}
		tg.Close() // ends the hour-long requests
		wg.Wait()
	})
}

func TestAutoscaleDecide(t *testing.T) {
	c := AutoscaleConfig{}.withDefaults() // up at 0.8, down below 0.3, aim 0.6, 10s / 30s
	t0 := time.Unix(1000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	for _, tc := range []struct {
		name   string
		now    time.Time
		st     ServiceStats
		s      scaleState
		want   int
		highAt time.Time
	}{
		{"high, first seen", at(0), ServiceStats{Replicas: 2, Demand: 1.2}, scaleState{}, 2, at(0)},                      // starts the clock
		{"high, not long enough", at(9), ServiceStats{Replicas: 2, Demand: 1.2}, scaleState{highSince: at(0)}, 2, at(0)}, // 9s < 10s
		{"high for the delay", at(10), ServiceStats{Replicas: 2, Demand: 1.2}, scaleState{highSince: at(0)}, 4, at(10)},  // ceil(2×1.2/0.6) = 4
		{"just over: one more", at(10), ServiceStats{Replicas: 4, Demand: 0.8}, scaleState{highSince: at(0)}, 6, at(10)}, // ceil(4×0.8/0.6) = 6
		{"normal resets", at(10), ServiceStats{Replicas: 2, Demand: 0.5}, scaleState{highSince: at(0)}, 2, time.Time{}},
		{"low for the delay", at(30), ServiceStats{Replicas: 3, Demand: 0.1}, scaleState{lowSince: at(0)}, 2, time.Time{}}, // one fewer
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, s := c.decide(tc.now, tc.st, tc.s)
			if got != tc.want || !s.highSince.Equal(tc.highAt) {
				t.Fatalf("decide = %d (high since %v), want %d (%v)", got, s.highSince, tc.want, tc.highAt)
			}
		})
	}
}

// TestRetryStorm: every payments call fails and the gateway retries 3
// times: one checkout costs payments 4 requests.
func TestRetryStorm(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := TargetConfig{
			Payments: ServiceConfig{Latency: 10 * time.Millisecond, ErrorRate: 1},
			Retry:    RetryPolicy{Retries: 3, Backoff: 10 * time.Millisecond},
		}
		tg, err := NewTarget(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer tg.Close()
		_, body := get(t, tg, "POST", "/login", "")
		var login struct{ Token string }
		_ = json.Unmarshal([]byte(body), &login)
		start := time.Now()
		code, body := get(t, tg, "POST", "/checkout", login.Token)
		// 4 attempts of 10ms, backoff 10+20+40ms.
		if code != 503 || !strings.Contains(body, "payments: failed") || time.Since(start) != 110*time.Millisecond {
			t.Fatalf("%d %q after %s", code, body, time.Since(start))
		}
		st := tg.Stats()
		if st.Services[Payments].Served != 4 || st.Retries != 3 || st.Services[Cart].Served != 2 {
			t.Fatalf("stats %+v", st)
		}
	})
}

// TestTimeoutKeepsWork: a timed-out call is retried while the first one
// goes on in the service: the work piles up.
func TestTimeoutKeepsWork(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := TargetConfig{
			Catalog: ServiceConfig{Latency: time.Second},
			Retry:   RetryPolicy{Retries: 1, Timeout: 100 * time.Millisecond},
		}
		tg, err := NewTarget(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer tg.Close()
		code, body := get(t, tg, "GET", "/items", "")
		if code != 504 || !strings.Contains(body, "no answer within 100ms") {
			t.Fatalf("%d %q", code, body)
		}
		if st := tg.Stats().Services[Catalog]; st.InFlight != 2 {
			t.Fatalf("in flight %d, want both attempts still working", st.InFlight)
		}
	})
}

// TestTargetOverHTTP: the real server, its metrics, and the autoscaler in
// real time with a short delay (polled, never slept on).
func TestTargetOverHTTP(t *testing.T) {
	cfg := TargetConfig{
		Catalog:   ServiceConfig{Latency: time.Minute, Capacity: 1, Queue: 5, Replicas: 1, MaxReplicas: 3},
		Autoscale: AutoscaleConfig{Enabled: true, Every: 20 * time.Millisecond, UpDelay: 200 * time.Millisecond},
	}
	tg, err := NewTarget(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(tg)
	defer srv.Close()
	defer tg.Close() // before srv.Close: ends the minute-long requests
	began := time.Now()
	for range 2 {
		go func() {
			resp, err := http.Get(srv.URL + "/items")
			if err == nil {
				resp.Body.Close()
			}
		}()
	}
	swarmtest.WaitFor(t, 5*time.Second, "autoscaler adds a replica", func() (bool, string) {
		st := tg.Stats().Services[Catalog]
		return st.Replicas > 1, fmt.Sprintf("%+v", st)
	})
	if took := time.Since(began); took < 200*time.Millisecond {
		t.Fatalf("scaled after %s, before the 200ms delay", took)
	}
	if resp, err := http.Get(srv.URL + "/health"); err == nil {
		resp.Body.Close()
	}
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`shop_replicas{service="catalog"} 3`, `shop_in_flight{service="catalog"} 2`, `shop_queue_length{service="catalog"} 0`,
		`shop_utilization{service="catalog"} 0.666`, `shop_scale_events_total{direction="up",service="catalog"} 1`,
		`shop_requests_total{code="200",service="gateway"} 1`, `shop_gateway_duration_seconds_bucket`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
