#!/usr/bin/env bash
# make demo: start a 3-region testnet (3 node processes and the demo shop)
# on this machine, run the Black-Friday example from one node, print the
# merged report by region, and stop everything, whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=./bin/swarm
EXAMPLE=${EXAMPLE:-examples/black-friday.yaml}
dir=$(mktemp -d)
cleanup() {
  echo
  echo "== stopping the testnet"
  "$BIN" testnet down --dir "$dir" --purge || true
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== starting a testnet: 3 nodes in 3 simulated regions, and the demo shop"
"$BIN" testnet up --nodes 3 --regions eu-west,us-east,ap-south --dir "$dir"

# The state file names the first node's API and the target's URL.
api=$(sed -n 's/^ *"api": "\(.*\)",*$/\1/p' "$dir/testnet.json" | head -n1)
url=$(sed -n 's/^ *"url": "\(.*\)",*$/\1/p' "$dir/testnet.json" | head -n1)

echo
echo "== running $EXAMPLE from the node at $api against $url"
echo "   Every node sends its share of the rate; the shop's traffic goes x10 at 10s."
echo "   One line per second (fleet-wide): watch latency and errors after ~17s,"
echo "   until the shop's autoscaler adds replicas about 10s later. The test's"
echo "   scheduler reads the shop's /metrics (observe:) meanwhile: the report ends"
echo "   with the story in numbers (replicas, scale lag, when p95 came back)."
echo "   Watch it live in a browser: http://$api/ui (any node's API serves it)."
echo
report="$(pwd)/bin/demo-report.html"
set +e
"$BIN" run --api "$api" --target "$url" --report "$report" "$EXAMPLE" 2> >(tee "$dir/run.err" >&2)
code=$?
set -e
id=$(sed -n 's/^test \([0-9a-f]*\) submitted.*/\1/p' "$dir/run.err" | head -n1)

if [ -n "$id" ]; then
  echo
  echo "== the slowest requests, with their trace ids (swarm results $id --exemplars --slowest 6)"
  echo "   Every request carried a W3C traceparent; paste an id into Jaeger or Tempo."
  "$BIN" results "$id" --api "$api" --exemplars --slowest 6 || true
  if [ -f "$report" ]; then
    echo
    echo "== the HTML report (charts by region and node, one file, opens offline): $report"
  fi
fi

echo
echo "== what the shop's autoscaler did (from its log)"
grep -h 'autoscaler' "$dir/target.log" | sed 's/^.*msg=/  /' || echo "  nothing: the load stayed within capacity"

echo
case $code in
  0)  echo "exit code 0: every threshold passed" ;;
  99) echo "exit code 99: a threshold failed. Here that is the story: the shop misses its"
      echo "SLO (p95 < 500ms, errors < 1%) during the autoscaling lag, though it copes"
      echo "once the new replicas are up. Latency by region differs by each region's"
      echo "simulated distance to the shop (eu-west 15ms, us-east 80ms, ap-south 180ms)." ;;
  *)  echo "exit code $code: the run failed (see above)"; exit "$code" ;;
esac
cat <<'NEXT'

Where to look next:
  swarm testnet up                  keep a testnet running (./.testnet), then
  swarm testnet status              its nodes and the fleet as they see it
  swarm run --api ADDR --target URL examples/slow-region.yaml   (or cascade.yaml)
  swarm testnet kill us-east-1      a node crashes mid-test: the others take its share
  curl URL/metrics                  the shop's replicas, queues and utilization
  swarm testnet down                stop it all
NEXT
