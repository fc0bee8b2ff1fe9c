#!/usr/bin/env bash
# make bench: the load generator against vegeta and wrk on loopback, against
# a trivial keep-alive server (scripts/benchserver).
#
#   1. CPU seconds (user+sys of the generator process) per 10,000 requests
#      at each tool's maximum rate, with the same connection count;
#   2. rate accuracy at 1k, 10k and 30k req/s (ours and vegeta; wrk has no
#      rate control), as the server saw it: (n-1)/(last-first);
#   3. memory: bytes per in-flight request at 10,000 in flight (peak RSS of
#      a run whose requests the server holds 2 s, minus an idle run's);
#   4. 10k in flight: 10,000/s against a target that holds each request
#      1 s (ours, wrk -c10000, vegeta): arrivals started on schedule, p50
#      against 1 s, errors, bytes of RSS per request in flight;
#   5. cold start: 10,000/s against a 5 ms target from the first
#      millisecond (ours, vegeta): the first second's rate and its p99
#      against the median p99 of the later seconds.
#
# Settings (environment):
#   BENCH_SECONDS       duration of each max-rate run (default 10)
#   BENCH_RATE_SECONDS  duration of each rate-accuracy run (default BENCH_SECONDS)
#   BENCH_CONNS         connections / in-flight cap at max rate (default 64)
#   BENCH_RATES         target rates for accuracy (default "1000 10000 30000")
#   BENCH_HOLD_INFLIGHT in-flight requests for the memory run (default 10000)
#   BENCH_INFLIGHT_SECONDS duration of the 10k-in-flight runs (default 60)
#   BENCH_COLD_SECONDS  duration of the cold-start runs (default 10)
#   BENCH_SKIP          sections to skip, any of "max rate tracing memory inflight cold"
#
# Output: a table on stdout, and scripts/bench-out/results.json (plus a
# time-stamped copy). The generator is pinned to CPU 0 and the server to
# CPU 1 when taskset exists and there are 2 CPUs or more.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

SECS=${BENCH_SECONDS:-10}
RATE_SECS=${BENCH_RATE_SECONDS:-$SECS}
CONNS=${BENCH_CONNS:-64}
RATES=${BENCH_RATES:-"1000 10000 30000"}
HOLD_INFLIGHT=${BENCH_HOLD_INFLIGHT:-10000}
HOLD_MS=2000
INFLIGHT_SECS=${BENCH_INFLIGHT_SECONDS:-60}
COLD_SECS=${BENCH_COLD_SECONDS:-10}
SKIP=${BENCH_SKIP:-}
VEGETA_VERSION=v12.13.0

OUT=$ROOT/scripts/bench-out
RUN=$OUT/run # per-run scratch files, replaced each time
BIN=$ROOT/bin

die() { echo "bench: $*" >&2; exit 1; }
note() { echo "bench: $*" >&2; }
isnum() { [[ $1 =~ ^[0-9]+$ ]] && [ "$1" -gt 0 ]; }
isnum "$SECS" || die "BENCH_SECONDS must be a positive integer, not '$SECS'"
isnum "$RATE_SECS" || die "BENCH_RATE_SECONDS must be a positive integer, not '$RATE_SECS'"
isnum "$CONNS" || die "BENCH_CONNS must be a positive integer, not '$CONNS'"
isnum "$INFLIGHT_SECS" || die "BENCH_INFLIGHT_SECONDS must be a positive integer, not '$INFLIGHT_SECS'"
isnum "$COLD_SECS" || die "BENCH_COLD_SECONDS must be a positive integer, not '$COLD_SECS'"
isnum "$HOLD_INFLIGHT" || die "BENCH_HOLD_INFLIGHT must be a positive integer, not '$HOLD_INFLIGHT'"
for r in $RATES; do isnum "$r" || die "BENCH_RATES: '$r' is not a positive integer"; done
skip() { [[ " $SKIP " == *" $1 "* ]]; }

# ---------------------------------------------------------------- cleanup
srv_pid=""
gen_pid=""
poll_pid=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  # The generator runs under timeout(1), which leads its own process group.
  [ -n "$gen_pid" ] && kill -TERM -- "-$gen_pid" 2>/dev/null
  [ -n "$poll_pid" ] && kill "$poll_pid" 2>/dev/null
  [ -n "$srv_pid" ] && kill "$srv_pid" 2>/dev/null
  wait 2>/dev/null
  rm -f "$RUN"/*.bin
  exit "$rc"
}
trap cleanup EXIT
trap 'note interrupted; exit 130' INT TERM

# ------------------------------------------------------------------ tools
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo -n "$@"; else return 1; fi; }
apt_install() { # package: install it with apt-get, updating the lists once if needed
  command -v apt-get >/dev/null || return 1
  note "installing Debian package $1"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$1" >"$OUT/apt.log" 2>&1 && return 0
  as_root apt-get update -q >>"$OUT/apt.log" 2>&1 || true
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$1" >>"$OUT/apt.log" 2>&1
}
need() { # command package
  command -v "$1" >/dev/null && return 0
  apt_install "$2" && command -v "$1" >/dev/null ||
    die "$1 is missing and could not be installed (apt-get install $2; log in $OUT/apt.log)"
}

mkdir -p "$OUT" "$RUN"
rm -f "$RUN"/*
command -v go >/dev/null || die "go is missing (the README says: Go 1.26)"
need pgrep procps
need jq jq
need curl curl
need timeout coreutils
need wrk wrk
TIME=/usr/bin/time
if ! [ -x $TIME ]; then
  apt_install time || true
  [ -x $TIME ] || die "/usr/bin/time is missing and could not be installed (apt-get install time)"
fi

[ -x "$BIN/swarm" ] || { note "building bin/swarm"; go build -o "$BIN/swarm" ./cmd/swarm; }
go build -o "$BIN/benchserver" ./scripts/benchserver || die "cannot build scripts/benchserver"
vegeta_ok() { [ -x "$BIN/vegeta" ] && go version -m "$BIN/vegeta" 2>/dev/null | grep -q "vegeta/v12[[:space:]]*$VEGETA_VERSION"; }
if ! vegeta_ok; then
  note "installing vegeta $VEGETA_VERSION into bin/"
  GOBIN=$BIN go install "github.com/tsenart/vegeta/v12@$VEGETA_VERSION" >"$OUT/vegeta-install.log" 2>&1 ||
    die "cannot install vegeta (go install github.com/tsenart/vegeta/v12@$VEGETA_VERSION; log in $OUT/vegeta-install.log)"
  vegeta_ok || die "bin/vegeta is not $VEGETA_VERSION"
fi

# Pinning: the generator on CPU 0, the server on CPU 1.
PIN_GEN=() PIN_SRV=() PINNING="none"
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  PIN_GEN=(taskset -c 0) PIN_SRV=(taskset -c 1)
  PINNING="generator on CPU 0, server on CPU 1 (taskset; Go programs then run with GOMAXPROCS=1)"
elif ! command -v taskset >/dev/null; then
  PINNING="none (no taskset): generator and server share the CPUs"
else
  PINNING="none (1 CPU): generator and server share it"
fi

# 10,000 requests in flight need as many sockets in the generator and in
# the server.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)

# ----------------------------------------------------------------- server
ADDR=""
start_server() {
  "${PIN_SRV[@]}" "$BIN/benchserver" -addr 127.0.0.1:0 >"$RUN/server.out" 2>"$RUN/server.err" &
  srv_pid=$!
  for _ in $(seq 50); do
    ADDR=$(head -n1 "$RUN/server.out" 2>/dev/null || true)
    [ -n "$ADDR" ] && break
    kill -0 "$srv_pid" 2>/dev/null || die "benchserver exited: $(cat "$RUN/server.err")"
    sleep 0.1
  done
  [ -n "$ADDR" ] || die "benchserver did not print its address within 5 s"
  curl -sf --max-time 5 "http://$ADDR/stats" >/dev/null || die "benchserver does not answer on $ADDR"
}
reset_stats() { curl -sf --max-time 5 "http://$ADDR/stats/reset" >/dev/null || die "benchserver: /stats/reset failed"; }
get_stats() { curl -sf --max-time 5 "http://$ADDR/stats" || die "benchserver: /stats failed"; }

# ------------------------------------------------------------ measurement
# measure NAME LIMIT_S CMD... runs CMD pinned, bounded by LIMIT_S seconds,
# under /usr/bin/time; stdout goes to $RUN/NAME.out, stderr to NAME.err, the
# CPU and RSS figures to NAME.time ("elapsed user sys maxrss_kb"). Then the
# server's /stats go to NAME.stats. With POLL_HWM=1, the generator's VmHWM is
# also sampled from /proc every 100 ms into NAME.hwm (the last value seen).
measure() {
  local name=$1 limit=$2; shift 2
  local rc=0 b0 s0
  reset_stats
  b0=$(busy_ticks) s0=$(srv_ticks)
  "${PIN_GEN[@]}" timeout -k 5 "$limit" $TIME -f '%e %U %S %M' -o "$RUN/$name.time" "$@" \
    >"$RUN/$name.out" 2>"$RUN/$name.err" </dev/null &
  gen_pid=$!
  if [ "${POLL_HWM:-0}" = 1 ]; then
    poll_hwm "$gen_pid" "$RUN/$name.hwm" &
    poll_pid=$!
  fi
  wait "$gen_pid" || rc=$?
  gen_pid=""
  echo "$(($(busy_ticks) - b0)) $(($(srv_ticks) - s0))" >"$RUN/$name.sys"
  if [ -n "$poll_pid" ]; then wait "$poll_pid" 2>/dev/null || true; poll_pid=""; fi
  [ "$rc" = 124 ] || [ "$rc" = 137 ] && die "$name: did not finish within $limit s (stderr: $(tail -n3 "$RUN/$name.err"))"
  # swarm: 0 passed, 99 a threshold failed (none here); others: 0.
  [ "$rc" = 0 ] || [ "$rc" = 99 ] || die "$name: exit code $rc (stderr: $(tail -n5 "$RUN/$name.err"))"
  # time(1) writes "Command exited with non-zero status" first on failure.
  tail -n1 "$RUN/$name.time" | grep -Eq '^[0-9.]+ [0-9.]+ [0-9.]+ [0-9]+$' ||
    die "$name: unexpected /usr/bin/time output: $(cat "$RUN/$name.time")"
  sleep 0.2 # stragglers reach the server's counters
  get_stats >"$RUN/$name.stats"
}

# CPU time of the whole machine (all CPUs, without steal) and of the
# server, in clock ticks: what the generator and the server did not use of
# it is other work on the machine during the run (it makes results noisy).
TCK=$(getconf CLK_TCK)
busy_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8; exit}' /proc/stat; }
srv_ticks() { awk '{print $14 + $15}' "/proc/$srv_pid/stat" 2>/dev/null || echo 0; }

# poll_hwm TIMEOUT_PID FILE: samples the generator's VmHWM and its number
# of open sockets (its connections: with HTTP/1.1 one per request in
# flight) every 100 ms; FILE ends up with "hwm_kb max_sockets". The
# generator is the grandchild: timeout -> time -> generator.
poll_hwm() {
  local top=$1 file=$2 mid="" pid="" v n maxn=0
  echo "0 0" >"$file"
  for _ in $(seq 50); do
    mid=$(pgrep -P "$top" | head -n1 || true)
    [ -n "$mid" ] && pid=$(pgrep -P "$mid" | head -n1 || true)
    [ -n "$pid" ] && break
    sleep 0.02
  done
  [ -n "$pid" ] || return 0
  while v=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null) && [ -n "$v" ]; do
    n=$(find "/proc/$pid/fd" -lname 'socket:*' 2>/dev/null | wc -l || true)
    [ "${n:-0}" -gt "$maxn" ] && maxn=$n
    echo "$v $maxn" >"$file"
    sleep 0.1
  done
}

timefield() { tail -n1 "$RUN/$1.time" | awk -v f="$2" '{print $f}'; }

# scenario SRC DST KEY=VALUE...: a copy of a scripts/bench file with
# top-level duration, load.rate and load.max_in_flight rewritten.
scenario() {
  local src=$1 dst=$2; shift 2
  cp "$src" "$dst"
  local kv k v
  for kv in "$@"; do
    k=${kv%%=*} v=${kv#*=}
    case $k in
      duration) sed -i -E "s/^duration: .*/duration: $v/" "$dst" ;;
      rate) sed -i -E "s/^(  rate:) .*/\1 $v/" "$dst" ;;
      max_in_flight) sed -i -E "s/^(  max_in_flight:) .*/\1 $v/" "$dst" ;;
      tracing) echo "tracing: $v" >>"$dst" ;;
    esac
  done
  "$BIN/swarm" validate "$dst" >/dev/null || die "bad bench scenario $dst"
}

# row NAME JQ-ARGS... FILTER: writes one result row as JSON to $RUN/rows.
ROWN=0
row() {
  ROWN=$((ROWN + 1))
  jq -n "$@" >"$RUN/row-$(printf %03d $ROWN).json" || die "cannot build result row"
}

# Fields every row computes from the time and stats files.
CARGS=()
common_args() { # NAME: sets CARGS
  local name=$1
  CARGS=(--arg elapsed "$(timefield "$name" 1)" --arg user "$(timefield "$name" 2)"
    --arg sys "$(timefield "$name" 3)" --arg rss "$(timefield "$name" 4)"
    --slurpfile st "$RUN/$name.stats" --arg tck "$TCK"
    --arg busy "$(awk '{print $1}' "$RUN/$name.sys")" --arg srvt "$(awk '{print $2}' "$RUN/$name.sys")")
}
# jq definitions shared by the filters.
JQDEFS='
def r(n): (. * pow(10; n) | round) / pow(10; n);
def srv: $st[0] | {server_requests: .requests,
  server_rate: (if .requests > 1 and .last_unix_nano > .first_unix_nano
    then (.requests - 1) / ((.last_unix_nano - .first_unix_nano) / 1e9) else 0 end),
  server_max_in_flight: .max_in_flight};
def cpu: (($user|tonumber) + ($sys|tonumber)) as $g | (($srvt|tonumber) / ($tck|tonumber)) as $sv |
  {elapsed_s: ($elapsed|tonumber), user_s: ($user|tonumber), sys_s: ($sys|tonumber),
   cpu_s: $g, max_rss_kb: ($rss|tonumber), server_cpu_s: $sv,
   other_cores: (if ($elapsed|tonumber) > 0
     then ([(($busy|tonumber) / ($tck|tonumber) - $g - $sv) / ($elapsed|tonumber), 0] | max) else null end)};
def per10k(req): if req > 0 then .cpu_s / req * 10000 else null end;
'

echo "Loadswarm bench: $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc --all) CPUs ($(nproc) usable), $(uname -sr)"
LOAD0=$(cut -d" " -f1-3 /proc/loadavg)
echo "pinning: $PINNING; open files limit $NOFILE; load average at start: $LOAD0"
echo "swarm $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet 2>/dev/null || echo '+dirty'), vegeta $VEGETA_VERSION ($(go version -m "$BIN/vegeta" | awk 'NR==1{print $2}')), $(wrk -v 2>&1 | head -n1 | awk '{print $1, $2}')"
echo

start_server
echo "server: http://$ADDR (scripts/benchserver)"
echo "GET http://$ADDR/" >"$RUN/targets-root.txt"
echo "GET http://$ADDR/hold?ms=$HOLD_MS" >"$RUN/targets-hold.txt"

# ------------------------------------------------------------ 1. max rate
if ! skip max; then
  echo "1. max rate: ${SECS}s each, $CONNS connections / in flight"
  LIMIT=$((SECS + 60))

  scenario scripts/bench/max-rate.yaml "$RUN/max-rate.yaml" "duration=${SECS}s" "max_in_flight=$CONNS"
  echo "   ours:   swarm run --local --json -q (rate 100000/s, max_in_flight $CONNS, check status == 200)"
  measure ours-max "$LIMIT" "$BIN/swarm" run --local --json -q --target "http://$ADDR" "$RUN/max-rate.yaml"
  common_args ours-max
  row "${CARGS[@]}" --slurpfile rep "$RUN/ours-max.out" --arg conns "$CONNS" --arg secs "$SECS" \
    "$JQDEFS"'$rep[0] as $r | {section: "max_rate", tool: "ours", conns: ($conns|tonumber), seconds: ($secs|tonumber),
      requests: $r.requests, errors: $r.errors, dropped: $r.dropped} + srv + cpu
      | .cpu_per_10k = per10k(.requests) | .core_util = (.cpu_s / .elapsed_s)'

  echo "   vegeta: vegeta attack -rate=0 -workers=$CONNS -max-workers=$CONNS"
  measure vegeta-max "$LIMIT" "$BIN/vegeta" attack -targets="$RUN/targets-root.txt" -rate=0 \
    -workers="$CONNS" -max-workers="$CONNS" -duration="${SECS}s" -timeout=10s -output="$RUN/vegeta-max.bin"
  "$BIN/vegeta" report -type=json "$RUN/vegeta-max.bin" >"$RUN/vegeta-max.report" || die "vegeta report failed"
  rm -f "$RUN/vegeta-max.bin"
  common_args vegeta-max
  row "${CARGS[@]}" --slurpfile rep "$RUN/vegeta-max.report" --arg conns "$CONNS" --arg secs "$SECS" \
    "$JQDEFS"'$rep[0] as $r | {section: "max_rate", tool: "vegeta", conns: ($conns|tonumber), seconds: ($secs|tonumber),
      requests: $r.requests, errors: ($r.requests - ($r.requests * $r.success | round)), dropped: 0} + srv + cpu
      | .cpu_per_10k = per10k(.requests) | .core_util = (.cpu_s / .elapsed_s)'

  echo "   wrk:    wrk -t1 -c$CONNS"
  measure wrk-max "$LIMIT" wrk -t1 -c"$CONNS" -d"${SECS}s" "http://$ADDR/"
  wrk_req=$(awk '/requests in/ {print $1}' "$RUN/wrk-max.out")
  [ -n "$wrk_req" ] || die "cannot read wrk's request count: $(cat "$RUN/wrk-max.out")"
  wrk_err=$(awk '/Non-2xx/ {n+=$NF} /Socket errors/ {gsub(/,/,""); n+=$4+$6+$8+$10} END {print n+0}' "$RUN/wrk-max.out")
  common_args wrk-max
  row "${CARGS[@]}" --arg req "$wrk_req" --arg err "$wrk_err" --arg conns "$CONNS" --arg secs "$SECS" \
    "$JQDEFS"'{section: "max_rate", tool: "wrk", conns: ($conns|tonumber), seconds: ($secs|tonumber),
      requests: ($req|tonumber), errors: ($err|tonumber), dropped: 0} + srv + cpu
      | .cpu_per_10k = per10k(.requests) | .core_util = (.cpu_s / .elapsed_s)'
  echo
fi

# -------------------------------------------------------- 2. rate accuracy
if ! skip rate; then
  echo "2. rate accuracy: ${RATE_SECS}s each at $RATES req/s (ours: max_in_flight 1000; vegeta: -max-workers=1000)"
  LIMIT=$((RATE_SECS + 60))
  for rate in $RATES; do
    scenario scripts/bench/rate.yaml "$RUN/rate-$rate.yaml" "duration=${RATE_SECS}s" "rate=$rate" "max_in_flight=1000"
    echo "   ours   @ $rate/s"
    measure "ours-rate-$rate" "$LIMIT" "$BIN/swarm" run --local --json -q --target "http://$ADDR" "$RUN/rate-$rate.yaml"
    common_args "ours-rate-$rate"
    row "${CARGS[@]}" --slurpfile rep "$RUN/ours-rate-$rate.out" --arg rate "$rate" --arg secs "$RATE_SECS" \
      "$JQDEFS"'$rep[0] as $r | ($rate|tonumber) as $t | ($secs|tonumber) as $s |
        {section: "rate", tool: "ours", target_rate: $t, seconds: $s, planned: ($t * $s),
         requests: $r.requests, errors: $r.errors, dropped: $r.dropped,
         own_rate: $r.rate.achieved, p50_ms: $r.latency_ms.p50, p99_ms: $r.latency_ms.p99} + srv + cpu
        | .ratio = (.server_rate / $t) | .missing = (.planned - .server_requests)
        | .cpu_per_10k = per10k(.requests)'

    echo "   vegeta @ $rate/s"
    measure "vegeta-rate-$rate" "$LIMIT" "$BIN/vegeta" attack -targets="$RUN/targets-root.txt" -rate="$rate" \
      -max-workers=1000 -duration="${RATE_SECS}s" -timeout=10s -output="$RUN/vegeta-rate.bin"
    "$BIN/vegeta" report -type=json "$RUN/vegeta-rate.bin" >"$RUN/vegeta-rate-$rate.report" || die "vegeta report failed"
    rm -f "$RUN/vegeta-rate.bin"
    common_args "vegeta-rate-$rate"
    row "${CARGS[@]}" --slurpfile rep "$RUN/vegeta-rate-$rate.report" --arg rate "$rate" --arg secs "$RATE_SECS" \
      "$JQDEFS"'$rep[0] as $r | ($rate|tonumber) as $t | ($secs|tonumber) as $s |
        {section: "rate", tool: "vegeta", target_rate: $t, seconds: $s, planned: ($t * $s),
         requests: $r.requests, errors: ($r.requests - ($r.requests * $r.success | round)), dropped: 0,
         own_rate: $r.rate, p50_ms: ($r.latencies["50th"] / 1e6), p99_ms: ($r.latencies["99th"] / 1e6)} + srv + cpu
        | .ratio = (.server_rate / $t) | .missing = (.planned - .server_requests)
        | .cpu_per_10k = per10k(.requests)'
  done
  echo
fi

# ------------------------------------------------------- 2b. tracing overhead
# The generator's CPU per request at 10k/s with trace context off, on (the
# default: a traceparent on every request, 1% sampled, exemplars kept) and
# on with every request sampled: issue 11 wants < 5% for the default.
if ! skip tracing; then
  TRATE=${BENCH_TRACING_RATE:-10000}
  echo "2b. tracing overhead: ${RATE_SECS}s each at $TRATE req/s, tracing false / {sample: 0.01} / {sample: 1}"
  LIMIT=$((RATE_SECS + 60))
  for tr in off on-1pct on-100pct; do
    case $tr in off) v=false ;; on-1pct) v="{sample: 0.01}" ;; on-100pct) v="{sample: 1}" ;; esac
    scenario scripts/bench/rate.yaml "$RUN/tracing-$tr.yaml" "duration=${RATE_SECS}s" "rate=$TRATE" "max_in_flight=1000" "tracing=$v"
    echo "   ours   tracing $tr"
    measure "ours-tracing-$tr" "$LIMIT" "$BIN/swarm" run --local --json -q --target "http://$ADDR" "$RUN/tracing-$tr.yaml"
    common_args "ours-tracing-$tr"
    row "${CARGS[@]}" --slurpfile rep "$RUN/ours-tracing-$tr.out" --arg tr "$tr" \
      "$JQDEFS"'$rep[0] as $r | {section: "tracing", tool: "ours", tracing: $tr, requests: $r.requests,
         dropped: $r.dropped, p99_ms: $r.latency_ms.p99} + srv + cpu | .cpu_per_10k = per10k(.requests)'
  done
  echo
fi

# ---------------------------------------------------------------- 3. memory
if ! skip memory; then
  if [ "$NOFILE" -lt $((HOLD_INFLIGHT + 1000)) ]; then
    note "memory: skipped, the open files limit ($NOFILE) is below $((HOLD_INFLIGHT + 1000))"
  else
    # Arrivals at 1.25x the rate that fills the cap in one hold time, for
    # twice the hold time: the cap is reached after 0.8 hold times, then
    # held (and the excess dropped, for ours).
    HOLD_RATE=$((HOLD_INFLIGHT * 1000 * 5 / 4 / HOLD_MS))
    HOLD_SECS=$((2 * HOLD_MS / 1000))
    LIMIT=$((HOLD_SECS + 60))
    echo "3. memory: /hold?ms=$HOLD_MS at $HOLD_RATE/s for ${HOLD_SECS}s, cap $HOLD_INFLIGHT in flight; baseline: 5/s"
    scenario scripts/bench/hold-idle.yaml "$RUN/hold-idle.yaml" "duration=${HOLD_SECS}s" "max_in_flight=$HOLD_INFLIGHT"
    scenario scripts/bench/hold.yaml "$RUN/hold.yaml" "duration=${HOLD_SECS}s" "rate=$HOLD_RATE" "max_in_flight=$HOLD_INFLIGHT"
    POLL_HWM=1
    echo "   ours:   baseline, then $HOLD_INFLIGHT in flight"
    measure ours-idle "$LIMIT" "$BIN/swarm" run --local --json -q --target "http://$ADDR" "$RUN/hold-idle.yaml"
    measure ours-hold "$LIMIT" "$BIN/swarm" run --local --json -q --target "http://$ADDR" "$RUN/hold.yaml"
    echo "   vegeta: baseline, then -rate=$HOLD_RATE -max-workers=$HOLD_INFLIGHT"
    measure vegeta-idle "$LIMIT" "$BIN/vegeta" attack -targets="$RUN/targets-hold.txt" -rate=5 \
      -max-workers="$HOLD_INFLIGHT" -duration="${HOLD_SECS}s" -timeout=10s -output=/dev/null
    measure vegeta-hold "$LIMIT" "$BIN/vegeta" attack -targets="$RUN/targets-hold.txt" -rate="$HOLD_RATE" \
      -max-workers="$HOLD_INFLIGHT" -duration="${HOLD_SECS}s" -timeout=10s -output=/dev/null
    POLL_HWM=0
    for tool in ours vegeta; do
      read -r hwm socks <"$RUN/$tool-hold.hwm" || true
      read -r ihwm _ <"$RUN/$tool-idle.hwm" || true
      rep=null
      [ "$tool" = ours ] && rep=$(jq -c '{requests, errors, dropped}' "$RUN/ours-hold.out")
      common_args "$tool-hold"
      row "${CARGS[@]}" --slurpfile idle "$RUN/$tool-idle.stats" \
        --arg ihwm "${ihwm:-0}" --arg hwm "${hwm:-0}" --arg socks "${socks:-0}" --arg irss "$(timefield "$tool-idle" 4)" \
        --arg tool "$tool" --argjson rep "$rep" --arg rate "$HOLD_RATE" --arg secs "$HOLD_SECS" --arg cap "$HOLD_INFLIGHT" \
        "$JQDEFS"'($rate|tonumber) as $t | ($secs|tonumber) as $s | srv + cpu
          | {section: "memory", tool: $tool, target_rate: $t, seconds: $s, planned: ($t * $s), cap: ($cap|tonumber),
             # In-flight requests of the generator: its peak number of open
             # sockets (HTTP/1.1: one connection per request in flight, dialing
             # or waiting), sampled every 100 ms; the server sees fewer, as
             # requests still being dialed or sent are not in its handler yet.
             in_flight: ($socks|tonumber), server_in_flight: .server_max_in_flight, server_requests,
             other_cores, server_cpu_s,
             requests: (if $rep then $rep.requests else .server_requests end),
             errors: (if $rep then $rep.errors else null end),
             dropped: (if $rep then $rep.dropped else null end),
             # VmHWM sampled from /proc; ru_maxrss (time %M) when sampling missed the process.
             peak_rss_kb: (if ($hwm|tonumber) > 0 then ($hwm|tonumber) else .max_rss_kb end),
             idle_rss_kb: (if ($ihwm|tonumber) > 0 then ($ihwm|tonumber) else ($irss|tonumber) end),
             ru_maxrss_kb: .max_rss_kb, idle_ru_maxrss_kb: ($irss|tonumber)}
          | .missing = (.planned - .server_requests)
          | .bytes_per_in_flight = (if .in_flight > 0 then (.peak_rss_kb - .idle_rss_kb) * 1024 / .in_flight else null end)'
    done
    echo
  fi
fi

# ---------------------------------------------------------------- results
if ! skip inflight; then
  if [ "$NOFILE" -lt 12000 ]; then
    note "inflight: skipped, the open files limit ($NOFILE) is below 12000"
  else
    echo "4. 10k in flight: /hold?ms=1000 at 10000/s for ${INFLIGHT_SECS}s"
    # The memory runs left thousands of sockets in TIME-WAIT, holding local
    # ports (one per connection to the server): let them go first, so
    # that every tool starts with the port range free.
    for _ in $(seq 70); do
      tw=$(ss -tan state time-wait 2>/dev/null | wc -l)
      [ "$tw" -lt 1000 ] && break
      sleep 1
    done
    LIMIT=$((INFLIGHT_SECS + 90))
    echo "GET http://$ADDR/hold?ms=1000" >"$RUN/targets-1s.txt"
    scenario scripts/bench/inflight.yaml "$RUN/inflight.yaml" "duration=${INFLIGHT_SECS}s"
    scenario scripts/bench/hold-idle.yaml "$RUN/inflight-idle.yaml" "duration=4s"
    POLL_HWM=1
    echo "   ours:   baseline (5/s), then swarm run --local (max_in_flight 20000)"
    measure ours-inflight-idle "$LIMIT" "$BIN/swarm" run --local --json -q --target "http://$ADDR" "$RUN/inflight-idle.yaml"
    measure ours-inflight "$LIMIT" "$BIN/swarm" run --local --json -q --target "http://$ADDR" "$RUN/inflight.yaml"
    echo "   wrk:    wrk -t1 -c10000 --latency --timeout 10s"
    measure wrk-inflight "$LIMIT" wrk -t1 -c10000 -d"${INFLIGHT_SECS}s" --latency --timeout 10s "http://$ADDR/hold?ms=1000"
    echo "   vegeta: -rate=10000 -max-workers=20000"
    measure vegeta-inflight "$LIMIT" "$BIN/vegeta" attack -targets="$RUN/targets-1s.txt" -rate=10000 \
      -max-workers=20000 -duration="${INFLIGHT_SECS}s" -timeout=10s -output="$RUN/vegeta-inflight.bin"
    POLL_HWM=0
    "$BIN/vegeta" report -type=json "$RUN/vegeta-inflight.bin" >"$RUN/vegeta-inflight.report" || die "vegeta report failed"
    rm -f "$RUN/vegeta-inflight.bin"
    read -r ihwm _ <"$RUN/ours-inflight-idle.hwm" || true
    for tool in ours wrk vegeta; do
      read -r hwm socks <"$RUN/$tool-inflight.hwm" || true
      case $tool in
        ours) rep=$(jq -c '{requests, errors, dropped, planned, started: .arrivals, errors_by_class,
                p50_ms: .latency_ms.p50, p99_ms: .latency_ms.p99}' "$RUN/ours-inflight.out") ;;
        vegeta) rep=$(jq -c --arg s "$INFLIGHT_SECS" '{requests, errors: (.requests - (.requests * .success | round)),
                dropped: null, planned: (10000 * ($s|tonumber)), started: .requests, errors_by_class: .errors,
                p50_ms: (.latencies["50th"] / 1e6), p99_ms: (.latencies["99th"] / 1e6)}' "$RUN/vegeta-inflight.report") ;;
        wrk) req=$(awk '/requests in/ {print $1}' "$RUN/wrk-inflight.out")
             ms() { awk -v k="$1" '$1 == k {v=$2; if (v ~ /ms$/) {sub(/ms/,"",v); print v} else if (v ~ /us$/) {sub(/us/,"",v); print v/1000} else {sub(/s/,"",v); print v*1000}}' "$RUN/wrk-inflight.out"; }
             err=$(awk '/Non-2xx/ {n+=$NF} /Socket errors/ {gsub(/,/,""); n+=$4+$6+$8+$10} END {print n+0}' "$RUN/wrk-inflight.out")
             rep=$(jq -n -c --arg r "${req:-0}" --arg e "$err" --arg p50 "$(ms 50%)" --arg p99 "$(ms 99%)" \
               '{requests: ($r|tonumber), errors: ($e|tonumber), dropped: null, planned: null, started: null,
                 errors_by_class: null, p50_ms: ($p50|tonumber? // null), p99_ms: ($p99|tonumber? // null)}') ;;
      esac
      common_args "$tool-inflight"
      row "${CARGS[@]}" --arg hwm "${hwm:-0}" --arg socks "${socks:-0}" --arg ihwm "${ihwm:-0}" \
        --arg tool "$tool" --argjson rep "$rep" --arg secs "$INFLIGHT_SECS" \
        "$JQDEFS"'srv + cpu + $rep | {section: "inflight", tool: $tool, seconds: ($secs|tonumber),
           in_flight: ($socks|tonumber), server_in_flight: .server_max_in_flight, server_requests,
           requests, errors, dropped, planned, started, errors_by_class, p50_ms, p99_ms,
           peak_rss_kb: ($hwm|tonumber), idle_rss_kb: ($ihwm|tonumber), cpu_s, other_cores}
         | .on_schedule = (if .planned then .started / .planned else null end)
         | .p50_over_1s = (if .p50_ms then .p50_ms / 1000 else null end)
         | .bytes_per_in_flight = (if .in_flight > 0 then (.peak_rss_kb - (if $tool == "ours" then .idle_rss_kb else 0 end)) * 1024 / .in_flight else null end)'
    done
    echo
  fi
fi

if ! skip cold; then
  echo "5. cold start: /hold?ms=5 at 10000/s for ${COLD_SECS}s from the first millisecond"
  LIMIT=$((COLD_SECS + 60))
  echo "GET http://$ADDR/hold?ms=5" >"$RUN/targets-5ms.txt"
  scenario scripts/bench/cold.yaml "$RUN/cold.yaml" "duration=${COLD_SECS}s"
  echo "   ours:   swarm run --local (max_in_flight 1000)"
  measure ours-cold "$LIMIT" "$BIN/swarm" run --local --json -q --target "http://$ADDR" "$RUN/cold.yaml"
  echo "   vegeta: -rate=10000 -max-workers=1000"
  measure vegeta-cold "$LIMIT" "$BIN/vegeta" attack -targets="$RUN/targets-5ms.txt" -rate=10000 \
    -max-workers=1000 -duration="${COLD_SECS}s" -timeout=10s -output="$RUN/vegeta-cold.bin"
  # vegeta's per-second p99 and count, by when each request was sent.
  "$BIN/vegeta" encode -to csv "$RUN/vegeta-cold.bin" | sort -t, -k1,1n |
    awk -F, 'NR == 1 {t0 = $1} {s = int(($1 - t0) / 1e9); print s, $3 / 1e6}' |
    sort -k1,1n -k2,2n | awk '{n[$1]++; v[$1, n[$1]] = $2} END {
      for (s in n) { i = int(n[s] * 0.99); if (i < 1) i = 1; printf "{\"t\":%d,\"achieved\":%d,\"p99_ms\":%s}\n", s, n[s], v[s, i] } }' |
    jq -s 'sort_by(.t)' >"$RUN/vegeta-cold.series"
  rm -f "$RUN/vegeta-cold.bin"
  for tool in ours vegeta; do
    if [ $tool = ours ]; then series=$(jq -c '[.series[] | {t, achieved, p99_ms}]' "$RUN/ours-cold.out")
    else series=$(cat "$RUN/vegeta-cold.series"); fi
    common_args "$tool-cold"
    row "${CARGS[@]}" --arg tool "$tool" --argjson series "$series" --arg secs "$COLD_SECS" \
      "$JQDEFS"'($series | map(select(.t >= 1 and .t < ($secs|tonumber))) | map(.p99_ms) | sort) as $steady |
        {section: "cold", tool: $tool, seconds: ($secs|tonumber),
         first_second: $series[0].achieved, first_second_ratio: ($series[0].achieved / 10000),
         first_p99_ms: $series[0].p99_ms, steady_p99_ms: $steady[($steady | length) / 2 | floor]}
        | .p99_over_steady = (if .steady_p99_ms > 0 then .first_p99_ms / .steady_p99_ms else null end)'
  done
  echo
fi

ls "$RUN"/row-*.json >/dev/null 2>&1 || die "no results (every section skipped?)"
jq -s --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --arg cpus "$(nproc --all)" --arg kernel "$(uname -sr)" \
  --arg pinning "$PINNING" --arg load0 "$LOAD0" --arg load1 "$(cut -d" " -f1-3 /proc/loadavg)" --arg secs "$SECS" --arg rsecs "$RATE_SECS" --arg conns "$CONNS" \
  --arg cpu_model "$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)" '
  def ratio(a; b): if a != null and b != null and b > 0 then a / b else null end;
  (map(select(.section == "max_rate")) | map({(.tool): .}) | add // {}) as $m |
  {date: $date, host: {cpus: ($cpus|tonumber), cpu_model: $cpu_model, kernel: $kernel,
     load_average_start: $load0, load_average_end: $load1}, pinning: $pinning,
   settings: {max_rate_seconds: ($secs|tonumber), rate_seconds: ($rsecs|tonumber), conns: ($conns|tonumber)},
   max_rate: map(select(.section == "max_rate")),
   ratios: {ours_over_vegeta: ratio($m.ours.cpu_per_10k; $m.vegeta.cpu_per_10k),
            ours_over_wrk: ratio($m.ours.cpu_per_10k; $m.wrk.cpu_per_10k)},
   rate_accuracy: map(select(.section == "rate")),
   tracing: map(select(.section == "tracing")),
   memory: map(select(.section == "memory")),
   inflight: map(select(.section == "inflight")),
   cold: map(select(.section == "cold"))}' "$RUN"/row-*.json >"$OUT/results.json" ||
  die "cannot assemble results.json"
cp "$OUT/results.json" "$OUT/results-$(date -u +%Y%m%dT%H%M%SZ).json"

# ------------------------------------------------------------------ tables
R="$OUT/results.json"
if [ "$(jq '.max_rate | length' "$R")" -gt 0 ]; then
  echo "== CPU per 10,000 requests at max rate (${SECS}s, $CONNS connections; generator CPU = user+sys of its process)"
  printf '%-7s %9s %9s %7s %7s %6s %6s %5s %10s %7s %6s %6s %s\n' \
    tool requests server req/s user_s sys_s cpu_s core% cpu-s/10k srv/10k rss_MB other notes
  jq -r '.max_rate[] | [.tool, .requests, .server_requests, (.server_rate|round), .user_s, .sys_s,
      (.cpu_s*100|round/100), (.core_util*100|round), (.cpu_per_10k*1000|round/1000),
      (.server_cpu_s / .server_requests * 10000 * 1000 | round/1000), (.max_rss_kb/1024|round), (.other_cores*100|round/100),
      ((if .dropped > 0 then "dropped \(.dropped) " else "" end) + (if .errors > 0 then "errors \(.errors)" else "" end) + "-")] | @tsv' "$R" |
    while IFS=$'\t' read -r t n s rs u sy c cu p sv m o notes; do
      printf '%-7s %9s %9s %7s %7s %6s %6s %5s %10s %7s %6s %6s %s\n' "$t" "$n" "$s" "$rs" "$u" "$sy" "$c" "$cu" "$p" "$sv" "$m" "$o" "${notes%-}"
    done
  jq -r '.ratios | "ratios (same run): ours / vegeta = \(if .ours_over_vegeta then (.ours_over_vegeta*100|round/100|tostring) + "x" else "n/a" end), ours / wrk = \(if .ours_over_wrk then (.ours_over_wrk*100|round/100|tostring) + "x" else "n/a" end)"' "$R"
  echo "(requests: completed, as the tool reports them; server: what the server counted; req/s: server-side"
  echo " rate; core%: generator CPU / wall time; srv/10k: the server's CPU-s per 10k; other: CPU cores used by"
  echo " other work on the machine during the run, from /proc/stat - noise indicator)"
  echo
fi
if [ "$(jq '.rate_accuracy | length' "$R")" -gt 0 ]; then
  echo "== Rate accuracy (${RATE_SECS}s each; server rate = (n-1)/(last-first) at the server)"
  printf '%-7s %6s %8s %8s %9s %8s %7s %7s %9s %7s %8s %9s %6s\n' \
    tool target planned server server/s achieved missing dropped tool-rate p50_ms p99_ms cpu-s/10k other
  jq -r '.rate_accuracy[] | [.tool, .target_rate, .planned, .server_requests, (.server_rate*10|round/10),
      ((.ratio*10000|round/100|tostring) + "%"), .missing, .dropped, (.own_rate*10|round/10),
      (.p50_ms*1000|round/1000), (.p99_ms*1000|round/1000), (.cpu_per_10k*1000|round/1000), (.other_cores*100|round/100)] | @tsv' "$R" |
    while IFS=$'\t' read -r t r pl s sr a mi d o p50 p99 c ot; do
      printf '%-7s %6s %8s %8s %9s %8s %7s %7s %9s %7s %8s %9s %6s\n' "$t" "$r" "$pl" "$s" "$sr" "$a" "$mi" "$d" "$o" "$p50" "$p99" "$c" "$ot"
    done
  echo "(achieved = server rate / target; missing = planned - server count; dropped = ours' own count of"
  echo " arrivals refused by max_in_flight; tool-rate = the rate the tool itself reports)"
  echo
fi
if [ "$(jq '.tracing | length' "$R")" -gt 0 ]; then
  echo "== Tracing overhead (generator CPU-s per 10k requests; same run, one after the other)"
  jq -r '(.tracing | map({(.tracing): .cpu_per_10k}) | add) as $c | .tracing[] |
      "\(.tracing)\t\(.requests)\t\(.cpu_per_10k*1000|round/1000)\t\(if $c.off then ((.cpu_per_10k / $c.off * 1000 | round) / 1000 | tostring) + "x" else "-" end)\t\(.other_cores*100|round/100)"' "$R" |
    while IFS=$'\t' read -r tr n c x o; do printf '%-10s %9s %9s %8s %6s\n' "$tr" "$n" "$c" "$x" "$o"; done
  echo "(columns: tracing, requests, cpu-s/10k, ratio to off, other cores busy)"
  echo
fi
if [ "$(jq '.memory | length' "$R")" -gt 0 ]; then
  echo "== Memory per in-flight request (server holds each request ${HOLD_MS}ms; peak VmHWM minus an idle run's)"
  printf '%-7s %9s %9s %8s %8s %9s %10s %8s %8s %6s\n' tool in_flight srv_held peak_MB idle_MB delta_MB bytes/req dropped missing other
  jq -r '.memory[] | [.tool, .in_flight, .server_in_flight, (.peak_rss_kb/1024*10|round/10), (.idle_rss_kb/1024*10|round/10),
      ((.peak_rss_kb - .idle_rss_kb)/1024*10|round/10), (.bytes_per_in_flight // 0 | round),
      (.dropped // "-"), .missing, (.other_cores*100|round/100)] | @tsv' "$R" |
    while IFS=$'\t' read -r t f sh pk id dl b d mi o; do
      printf '%-7s %9s %9s %8s %8s %9s %10s %8s %8s %6s\n' "$t" "$f" "$sh" "$pk" "$id" "$dl" "$b" "$d" "$mi" "$o"
    done
  echo "(in_flight: the generator's peak open connections = requests in flight; srv_held: the most the server"
  echo " held at once; peak/idle: VmHWM of this run and of a 5/s run; bytes/req = delta / in_flight; dropped:"
  echo " ours' arrivals refused at the cap; missing: planned - received by the server (vegeta: sent late/never))"
  echo
fi
echo "results: scripts/bench-out/results.json"

if [ "$(jq '.inflight | length' "$R")" -gt 0 ]; then
  echo "== 10k in flight (server holds each request 1 s; 10000/s; ${INFLIGHT_SECS}s)"
  printf '%-7s %9s %9s %9s %8s %8s %8s %9s %10s %6s\n' tool requests on_sched p50_ms p50/1s p99_ms errors in_flight bytes/req cpu_s
  jq -r '.inflight[] | [.tool, .requests, (if .on_schedule then (.on_schedule*10000|round/100|tostring)+"%" else "-" end),
      (.p50_ms // "-"), (if .p50_over_1s then (.p50_over_1s*1000|round/1000) else "-" end), (.p99_ms // "-"), .errors,
      .in_flight, (.bytes_per_in_flight // 0 | round), (.cpu_s*100|round/100)] | @tsv' "$R" |
    while IFS=$'\t' read -r t n o p5 pr p9 e f b c; do
      printf '%-7s %9s %9s %9s %8s %8s %8s %9s %10s %6s\n' "$t" "$n" "$o" "$p5" "$pr" "$p9" "$e" "$f" "$b" "$c"
    done
  echo "(on_sched: arrivals started / planned (wrk has no schedule); in_flight: peak open sockets; bytes/req:"
  echo " peak VmHWM (ours: minus a 5/s run's) / in_flight)"
  echo
fi

if [ "$(jq '.cold | length' "$R")" -gt 0 ]; then
  echo "== Cold start (10000/s against a 5 ms target, ${COLD_SECS}s)"
  printf '%-7s %12s %8s %13s %14s %10s\n' tool first_second ratio first_p99_ms steady_p99_ms p99_ratio
  jq -r '.cold[] | [.tool, .first_second, (.first_second_ratio*1000|round/1000), .first_p99_ms, .steady_p99_ms,
      (.p99_over_steady // 0 | .*100|round/100)] | @tsv' "$R" |
    while IFS=$'\t' read -r t f r p s q; do
      printf '%-7s %12s %8s %13s %14s %10s\n' "$t" "$f" "$r" "$p" "$s" "$q"
    done
  echo "(first_second: requests achieved in second 0 (ours: arrivals started; vegeta: requests sent);"
  echo " steady: the median of the later seconds' p99)"
  echo
fi
