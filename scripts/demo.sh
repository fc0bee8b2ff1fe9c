#!/usr/bin/env bash
# make demo: start the demo target, run the spike example against it from
# this host, print the report, stop everything.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=./bin/swarm
tmp=$(mktemp -d)
cleanup() { [ -n "${tpid:-}" ] && kill "$tpid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

"$BIN" target --addr 127.0.0.1:0 --latency 2ms --jitter 3ms >"$tmp/target.out" 2>&1 &
tpid=$!
for _ in $(seq 100); do
  url=$(sed -n 's/^target listening on //p' "$tmp/target.out")
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "$url" ] || { echo "demo target did not start:"; cat "$tmp/target.out"; exit 1; }
echo "demo target: $url"
echo "running examples/spike.yaml (15s: 20/s, a x10 spike at 5s)..."
echo
set +e
"$BIN" run --local --target "$url" examples/spike.yaml
code=$?
set -e
echo
echo "exit code $code (0 passed, 99 a threshold failed, 1 error)"
echo "next: swarm run --local --json ... for scripts; swarm validate FILE; see README.md"
