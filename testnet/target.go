package testnet

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// TargetConfig shapes the demo target's behaviour. The zero value is a
// fast, healthy service.
type TargetConfig struct {
	// Latency is added to every response. Default: 0.
	Latency time.Duration
	// Jitter adds a uniform random 0..Jitter on top. Default: 0.
	Jitter time.Duration
	// ErrorRate is the fraction (0-1) of requests answered 503. Default: 0.
	ErrorRate float64
	// StallEvery and StallFor make the service freeze (like a long GC pause
	// or a failover) for StallFor at the start of every StallEvery: requests
	// arriving in the window wait until it ends. Default: never.
	StallEvery, StallFor time.Duration
	// Items is the catalog size. Default: 100.
	Items int
}

// Validate reports every bad field.
func (c TargetConfig) Validate() error {
	var errs []error
	if c.Latency < 0 || c.Jitter < 0 {
		errs = append(errs, errors.New("latency and jitter must be >= 0"))
	}
	if c.ErrorRate < 0 || c.ErrorRate > 1 {
		errs = append(errs, fmt.Errorf("error rate %g: must be 0..1", c.ErrorRate))
	}
	if c.StallFor < 0 || c.StallEvery < 0 || (c.StallFor > 0 && c.StallFor >= c.StallEvery) {
		errs = append(errs, errors.New("stall: need 0 < stall-for < stall-every"))
	}
	if c.Items < 0 || c.Items > 1_000_000 {
		errs = append(errs, errors.New("items must be 0..1000000"))
	}
	return errors.Join(errs...)
}

// Target is the demo system under test: a tiny shop API.
//
//	GET  /health            200 ok
//	GET  /items             {"items":[{"id":1,"name":"item-1","price":..}, ...]} (first 20)
//	GET  /items/{id}        one item, 404 if unknown
//	POST /login             {"token":"..."}
//	POST /cart              201 with "Authorization: Bearer <token>", else 401
//	GET  /stats             {"requests":N}
type Target struct {
	cfg      TargetConfig
	start    time.Time
	requests atomic.Int64
	mu       sync.Mutex
	tokens   map[string]bool
	items    []byte // pre-encoded /items body
}

// NewTarget builds the handler.
func NewTarget(cfg TargetConfig) (*Target, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("target: %w", err)
	}
	if cfg.Items == 0 {
		cfg.Items = 100
	}
	t := &Target{cfg: cfg, start: time.Now(), tokens: map[string]bool{}}
	type item struct {
		ID    int     `json:"id"`
		Name  string  `json:"name"`
		Price float64 `json:"price"`
	}
	var list []item
	for i := 1; i <= min(cfg.Items, 20); i++ {
		list = append(list, item{ID: i, Name: fmt.Sprintf("item-%d", i), Price: float64(i) * 1.5})
	}
	t.items, _ = json.Marshal(map[string]any{"items": list, "total": cfg.Items})
	return t, nil
}

// Requests is how many requests the target has served.
func (t *Target) Requests() int64 { return t.requests.Load() }

func (t *Target) delay() {
	d := t.cfg.Latency
	if t.cfg.Jitter > 0 {
		d += rand.N(t.cfg.Jitter)
	}
	if t.cfg.StallEvery > 0 {
		into := time.Since(t.start) % t.cfg.StallEvery
		if into < t.cfg.StallFor {
			d += t.cfg.StallFor - into
		}
	}
	if d > 0 {
		time.Sleep(d)
	}
}

// ServeHTTP implements http.Handler.
func (t *Target) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t.requests.Add(1)
	t.delay()
	if t.cfg.ErrorRate > 0 && rand.Float64() < t.cfg.ErrorRate {
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	switch p := r.URL.Path; {
	case p == "/" || p == "/health":
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("ok\n"))
	case p == "/items" && r.Method == http.MethodGet:
		_, _ = w.Write(t.items)
	case strings.HasPrefix(p, "/items/") && r.Method == http.MethodGet:
		id, err := strconv.Atoi(strings.TrimPrefix(p, "/items/"))
		if err != nil || id < 1 || id > t.cfg.Items {
			http.Error(w, `{"error":"no such item"}`, http.StatusNotFound)
			return
		}
		fmt.Fprintf(w, `{"id":%d,"name":"item-%d","price":%.2f,"stock":%d}`, id, id, float64(id)*1.5, id%7)
	case p == "/login" && r.Method == http.MethodPost:
		tok := strconv.FormatUint(rand.Uint64(), 36)
		t.mu.Lock()
		if len(t.tokens) > 100_000 {
			clear(t.tokens) // a demo: keep memory bounded over long runs
		}
		t.tokens[tok] = true
		t.mu.Unlock()
		fmt.Fprintf(w, `{"token":%q}`, tok)
	case p == "/cart" && r.Method == http.MethodPost:
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		t.mu.Lock()
		ok := t.tokens[tok]
		t.mu.Unlock()
		if !ok {
			http.Error(w, `{"error":"log in first"}`, http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"ok":true}`))
	case p == "/stats":
		fmt.Fprintf(w, `{"requests":%d}`, t.requests.Load())
	default:
		http.Error(w, `{"error":"not found"}`, http.StatusNotFound)
	}
}
