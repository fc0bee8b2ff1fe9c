package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/loadswarm/loadswarm/testnet"
)

// TargetOptions are the flags of `swarm target`.
type TargetOptions struct {
	IO     IO
	Addr   string
	Config testnet.TargetConfig
	// Sets are --set SERVICE.FIELD=VALUE changes, applied in order.
	Sets        []string
	NoAutoscale bool
}

// NewCmdTarget parses `swarm target`.
func NewCmdTarget(ios IO, runF func(context.Context, *TargetOptions) error) *cobra.Command {
	opts := &TargetOptions{IO: ios, Config: testnet.DefaultTargetConfig()}
	d := opts.Config
	cmd := &cobra.Command{
		Use:   "target",
		Short: "Serve the demo system under test (a small shop API)",
		Long: `Serve a small shop to aim tests at. A gateway answers every request and
calls one of three services behind it:

  GET  /items, /items/{id}   catalog
  POST /login                cart (returns a token)
  POST /cart                 cart (needs "Authorization: Bearer TOKEN")
  POST /checkout             cart, then payments (needs the token)
  GET  /health               the gateway alone
  GET  /stats, /metrics      the shop's state as JSON, and Prometheus metrics

Each service has replicas; a replica works on a few requests at once (its
capacity) and the rest wait in a queue, so latency grows as soon as the
load passes the capacity, and a full queue answers 503. An autoscaler adds
replicas once demand has stayed high for --scale-up-delay (10s): the lag a
sudden spike falls into. The gateway retries failed calls (--retries), which
multiplies the load on a failing service: a retry storm.

Defaults: catalog 2 replicas x 2 in flight at ~12.5ms (about 300 requests/s),
cart 2 x 2 at ~10ms, payments 1 x 8 at ~40ms; queues of 50 per replica; up
to 12 replicas. Change a service with --set SERVICE.FIELD=VALUE (fields:
latency, jitter, error-rate, capacity, queue, replicas, max-replicas, and
autoscale.delay: that service's scale-up delay, overriding --scale-up-delay;
SERVICE: catalog, cart, payments or all).

--latency, --jitter, --error-rate and --stall-* act at the gateway, on every
request. Stops on Ctrl-C.

Autoscaler changes are logged on stderr, one line each:

  time=... level=INFO msg=scaled service=catalog from=2 to=4 at=2026-11-27T19:00:01.234Z direction=up demand=1.20 queued=30 component=autoscaler

(at: when the replicas changed, UTC with milliseconds).

Tracing: the gateway continues the W3C trace context of each request
(traceparent, tracestate): a server span per request, and under it a span
per call to catalog, cart or payments (one per attempt when it retries, with
shop.service, shop.attempt, shop.queue_wait_ms and shop.outcome), so a trace
shows which service was slow. A request without a traceparent starts a new
trace. Spans are exported with --otlp-endpoint only (OTLP over gRPC,
plaintext); without it the tracer is a no-op. Sampling is parent-based: the
caller's sampled flag decides (requests without a traceparent are
recorded); --trace-all records every request whatever the flag, as a
tail-sampling collector needs. Export never holds up a request: spans are
batched, and dropped if the receiver cannot keep up. Whatever the flags,
shop_traceparent_total{state="sampled|unsampled|absent|invalid"} on
/metrics (and "traceparent" in /stats) counts what requests arrived with
(all but /health, /stats and /metrics).`,
		Example: `  swarm target --addr 127.0.0.1:8080

  # a failing payments service, and the gateway retrying 3 times
  swarm target --set payments.error-rate=0.3 --retries 3

  # plenty of capacity: a fast target that never queues
  swarm target --set all.capacity=0 --no-autoscale

  # freeze for 1s every 5s, to see coordinated omission corrected
  swarm target --stall-every 5s --stall-for 1s

  # a catalog that takes 30s to scale up
  swarm target --set catalog.autoscale.delay=30s

  # spans to a local collector or Jaeger, every request recorded
  swarm target --otlp-endpoint 127.0.0.1:4317 --trace-all`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, kv := range opts.Sets {
				if err := opts.Config.Set(kv); err != nil {
					return err
				}
			}
			if opts.NoAutoscale {
				opts.Config.Autoscale.Enabled = false
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return targetRun(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Addr, "addr", "127.0.0.1:8080", "address to listen on (port 0 picks a free one)")
	f.DurationVar(&opts.Config.Latency, "latency", 0, "latency the gateway adds to every response")
	f.DurationVar(&opts.Config.Jitter, "jitter", 0, "random extra gateway latency, uniform in 0..jitter")
	f.Float64Var(&opts.Config.ErrorRate, "error-rate", 0, "fraction of requests the gateway answers 503 (0-1)")
	f.DurationVar(&opts.Config.StallEvery, "stall-every", 0, "freeze the gateway once per this period")
	f.DurationVar(&opts.Config.StallFor, "stall-for", 0, "how long each freeze lasts")
	f.IntVar(&opts.Config.Items, "items", d.Items, "catalog size")
	f.StringArrayVar(&opts.Sets, "set", nil, "change a service: SERVICE.FIELD=VALUE, e.g. payments.error-rate=0.3 (repeatable)")
	f.IntVar(&opts.Config.Retry.Retries, "retries", d.Retry.Retries, "times the gateway retries a failed or timed-out call")
	f.DurationVar(&opts.Config.Retry.Backoff, "retry-backoff", d.Retry.Backoff, "wait before the first retry (doubles each time)")
	f.DurationVar(&opts.Config.Retry.Timeout, "call-timeout", d.Retry.Timeout, "how long the gateway waits for a service (0: forever)")
	f.BoolVar(&opts.NoAutoscale, "no-autoscale", false, "keep every service at its starting replicas")
	f.DurationVar(&opts.Config.Autoscale.UpDelay, "scale-up-delay", d.Autoscale.UpDelay, "how long demand must stay high before replicas are added")
	f.DurationVar(&opts.Config.Autoscale.DownDelay, "scale-down-delay", d.Autoscale.DownDelay, "how long demand must stay low before a replica is removed")
	f.StringVar(&opts.Config.OTLPEndpoint, "otlp-endpoint", "", "export spans over OTLP/gRPC (plaintext) to this host:port, e.g. 127.0.0.1:4317 (default: no export)")
	f.BoolVar(&opts.Config.TraceAll, "trace-all", false, "record every request's spans, whatever its traceparent's sampled flag (default: follow the caller's flag); needs --otlp-endpoint")
	return cmd
}

func targetRun(ctx context.Context, opts *TargetOptions) error {
	cfg := opts.Config
	cfg.Logger = slog.New(slog.NewTextHandler(opts.IO.ErrOut, nil))
	t, err := testnet.NewTarget(cfg)
	if err != nil {
		return err
	}
	defer t.Close()
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return fmt.Errorf("target: %w", err)
	}
	srv := &http.Server{Handler: t, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(opts.IO.Out, "target listening on http://%s\n", ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	fmt.Fprintf(opts.IO.ErrOut, "target served %d requests\n", t.Requests())
	return nil
}
