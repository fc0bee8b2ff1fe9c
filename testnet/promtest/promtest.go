// Package promtest runs a real Prometheus server for Go tests: the
// prometheus binary (Debian's package: apt-get install prometheus) with a
// scrape job per target, scraping every second, on a free 127.0.0.1 port,
// its data in t.TempDir(), stopped in t.Cleanup.
//
//	p := promtest.Start(t, map[string]string{"shop": "127.0.0.1:8080"})
//	if err := p.WaitForTargetsUp(ctx); err != nil { t.Fatal(err) }
//	v, err := p.Query(ctx, `sum(shop_replicas)`, time.Now())
//
// Where the binary is missing, Start skips the test and says why. It is
// for tests only: it imports package testing.
package promtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"
)

// SkipReason is what a test that needs Prometheus says where it is missing.
const SkipReason = "prometheus not installed: apt-get install prometheus (the CI script does)"

// DefaultBinary is where Debian's package puts the server.
const DefaultBinary = "/usr/bin/prometheus"

// Server is a running Prometheus.
type Server struct {
	url     string
	api     v1.API
	jobs    int
	startup time.Duration
	log     string // its stdout and stderr
}

type config struct {
	metricsPath string
	interval    time.Duration
}

// Option changes how Start configures the server.
type Option func(*config)

// MetricsPath sets the path every job scrapes. Default /metrics.
func MetricsPath(path string) Option { return func(c *config) { c.metricsPath = path } }

// ScrapeInterval sets the global scrape and evaluation interval. Default 1s.
func ScrapeInterval(d time.Duration) Option { return func(c *config) { c.interval = d } }

// Binary returns the prometheus binary to run: DefaultBinary, else
// prometheus on PATH; "" when there is none.
func Binary() string {
	if _, err := os.Stat(DefaultBinary); err == nil {
		return DefaultBinary
	}
	if p, err := exec.LookPath("prometheus"); err == nil {
		return p
	}
	return ""
}

// Start runs Prometheus scraping scrapeTargets (job name -> host:port)
// and waits until it is ready (up to 30s). The test is skipped where
// prometheus is not installed, and fails if it does not start.
func Start(t testing.TB, scrapeTargets map[string]string, opts ...Option) *Server {
	t.Helper()
	bin := Binary()
	if bin == "" {
		t.Skip(SkipReason)
	}
	cfg := config{metricsPath: "/metrics", interval: time.Second}
	for _, o := range opts {
		o(&cfg)
	}
	dir := t.TempDir()
	confFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(confFile, configYAML(scrapeTargets, cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	// The port is picked free and then handed over, so another process may
	// take it in between: then Prometheus exits at once, and we try again.
	// --scrape.discovery-reload-interval (hidden; 5s by default) makes
	// the first scrape come within about a second of the start rather
	// than 5s; a Prometheus that lacks the flag runs without it.
	extra := []string{fastReloadFlag}
	var lastErr error
	for try := range 4 {
		s, err := start(t, bin, confFile, filepath.Join(dir, fmt.Sprintf("data%d", try)), filepath.Join(dir, fmt.Sprintf("prometheus%d.log", try)), extra)
		if err == nil {
			s.jobs = len(scrapeTargets)
			return s
		}
		lastErr = err
		switch {
		case errors.Is(err, errUnknownFlag) && len(extra) > 0:
			extra = nil
		case errors.Is(err, errAddrInUse):
		default:
			t.Fatalf("promtest: %v", err)
		}
	}
	t.Fatalf("promtest: %v", lastErr)
	return nil
}

var (
	errAddrInUse   = errors.New("address already in use")
	errUnknownFlag = errors.New("unknown flag")
)

const fastReloadFlag = "--scrape.discovery-reload-interval=100ms"

func start(t testing.TB, bin, confFile, dataDir, logFile string, extra []string) (*Server, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(bin, append([]string{
		"--config.file=" + confFile,
		"--storage.tsdb.path=" + dataDir,
		"--web.listen-address=" + addr,
		"--log.level=warn",                 // quiet: only trouble in the log
		"--storage.tsdb.retention.time=1h", // a test's worth
	}, extra...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	began := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	s := &Server{url: "http://" + addr, log: logFile}
	client, err := api.NewClient(api.Config{Address: s.url})
	if err != nil {
		stop()
		return nil, err
	}
	s.api = v1.NewAPI(client)

	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-exited:
			tail := s.logTail()
			if strings.Contains(tail, "address already in use") {
				return nil, fmt.Errorf("%w: %s", errAddrInUse, addr)
			}
			if strings.Contains(tail, "unknown long flag") {
				return nil, fmt.Errorf("%w: %s", errUnknownFlag, tail)
			}
			return nil, fmt.Errorf("prometheus exited while starting (%v); its log:\n%s", err, tail)
		default:
		}
		if ready(s.url) {
			break
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("prometheus not ready on %s after 30s; its log:\n%s", addr, s.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.startup = time.Since(began)
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("promtest: the end of prometheus's log (%s):\n%s", s.log, s.logTail())
		}
	})
	return s, nil
}

// configYAML is the prometheus.yml: one job per target, sorted by name.
func configYAML(targets map[string]string, cfg config) []byte {
	type staticConfig struct {
		Targets []string `yaml:"targets"`
	}
	type job struct {
		JobName       string         `yaml:"job_name"`
		MetricsPath   string         `yaml:"metrics_path"`
		StaticConfigs []staticConfig `yaml:"static_configs"`
	}
	var conf struct {
		Global struct {
			ScrapeInterval     string `yaml:"scrape_interval"`
			EvaluationInterval string `yaml:"evaluation_interval"`
			ScrapeTimeout      string `yaml:"scrape_timeout"`
		} `yaml:"global"`
		ScrapeConfigs []job `yaml:"scrape_configs"`
	}
	iv := model.Duration(cfg.interval).String()
	conf.Global.ScrapeInterval, conf.Global.EvaluationInterval, conf.Global.ScrapeTimeout = iv, iv, iv
	for _, name := range slices.Sorted(maps.Keys(targets)) {
		conf.ScrapeConfigs = append(conf.ScrapeConfigs, job{JobName: name, MetricsPath: cfg.metricsPath,
			StaticConfigs: []staticConfig{{Targets: []string{targets[name]}}}})
	}
	b, err := yaml.Marshal(&conf)
	if err != nil {
		panic(err) // plain structs of strings
	}
	return b
}

// freeAddr picks a free port on 127.0.0.1.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func ready(url string) bool {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(url + "/-/ready")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(s.log)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(bytes.TrimSpace(b))
}

// URL is the server's base URL, http://127.0.0.1:PORT.
func (s *Server) URL() string { return s.url }

// API is the client_golang API client of the server, for what Query and
// WaitForTargetsUp do not cover.
func (s *Server) API() v1.API { return s.api }

// StartupTime is how long the server took from exec to ready.
func (s *Server) StartupTime() time.Duration { return s.startup }

// Query evaluates an instant PromQL query at a time. Warnings and infos are dropped.
func (s *Server) Query(ctx context.Context, promql string, at time.Time) (model.Value, error) {
	v, _, _, err := s.api.Query(ctx, promql, at)
	return v, err
}

// WaitForTargetsUp polls the server's targets until every job's target is
// up (scraped successfully at least once), or ctx ends (default: 30s).
func (s *Server) WaitForTargetsUp(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
	}
	var state string
	for {
		res, err := s.api.Targets(ctx)
		if err == nil {
			up := 0
			var not []string
			for _, tg := range res.Active {
				if tg.Health == v1.HealthGood {
					up++
				} else {
					not = append(not, fmt.Sprintf("%s %s: %s %s", tg.ScrapePool, tg.ScrapeURL, tg.Health, tg.LastError))
				}
			}
			if up >= s.jobs && len(not) == 0 {
				return nil
			}
			state = fmt.Sprintf("%d of %d targets up; %s", up, s.jobs, strings.Join(not, "; "))
		} else {
			state = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("promtest: targets not up: %s", state)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
