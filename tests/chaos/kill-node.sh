#!/usr/bin/env bash
# Chaos benchmark: 1,000 official socket.io-client clients on a node that is SIGKILLed under a
# steady publish rate (driver: kill-node.js), on a 3-node Sockeye cluster and, in the same
# run, on the Node.js reference cluster (shared/anchors/ref-server.js --adapter streams:
# socket.io 4.8.4 + @socket.io/redis-streams-adapter 0.3.1, recovery 120 s). Both use one
# fresh redis-server (FLUSHALL between runs). Reports loss, duplicates, order violations and
# time to recover (p50/p99) side by side.
#
# usage: tests/chaos/kill-node.sh [sockeye|ref|both]      (default both)
# env:   SOCKEYE_BIN (default build/sockeye), ANCHORS (a copy of shared/anchors with its
#        node_modules: `cp -r shared/anchors /tmp/anchors && (cd /tmp/anchors && npm ci)`),
#        CLIENTS=1000 ROOMS=10 RATE=100 (events/s in total) BEFORE=5 AFTER=10 DRAIN=15,
#        PORTS="5301 5302 5303", RUNS=1 (repeats per server), RESULTS (default
#        tests/chaos/results)
# Writes RESULTS/kill-node-<server>[-<run>].json and RESULTS/kill-node.md. Everything started
# here is stopped on exit, by PID.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
WHICH=${1:-both}
BIN=${SOCKEYE_BIN:-$HERE/../../build/sockeye}
ANCHORS=${ANCHORS:-/tmp/anchors}
CLIENTS=${CLIENTS:-1000} ROOMS=${ROOMS:-10} RATE=${RATE:-100}
BEFORE=${BEFORE:-5} AFTER=${AFTER:-10} DRAIN=${DRAIN:-15} RUNS=${RUNS:-1}
read -r -a PORTS <<< "${PORTS:-5301 5302 5303}"
RESULTS=${RESULTS:-$HERE/results}
command -v redis-server > /dev/null || { echo "redis-server not on PATH" >&2; exit 2; }
case "$WHICH" in sockeye | both) [ -x "$BIN" ] || { echo "no sockeye at $BIN" >&2; exit 2; } ;; esac
case "$WHICH" in ref | both) [ -d "$ANCHORS/node_modules" ] || { echo "no $ANCHORS/node_modules" >&2; exit 2; } ;; esac
[ -d "$HERE/../node_modules/socket.io-client" ] || { echo "run npm ci in tests/" >&2; exit 2; }
ulimit -n "$(ulimit -Hn)" 2> /dev/null || true
mkdir -p "$RESULTS"

WORK=$(mktemp -d /tmp/sockeye-chaos.XXXX)
REDIS_PID="" NODE_PIDS=()
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
# shellcheck source=tests/chaos/lib.sh
. "$HERE/lib.sh"
stop_nodes() { local p; for p in "${NODE_PIDS[@]}"; do stop_pid "$p"; done; NODE_PIDS=(); }
cleanup() { stop_nodes; [ -n "$REDIS_PID" ] && stop_pid "$REDIS_PID"; rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

start_redis 200
# Starts one node of kind $1 on port $2; its PID (the server itself, through exec in a
# subshell that hides the job status line of its SIGKILL) is appended to NODE_PIDS.
start_node() {
  local kind=$1 port=$2 pidfile="$WORK/node-$2.pid"
  if [ "$kind" = sockeye ]; then
    ( "$BIN" --host 127.0.0.1 --port "$port" --redis "redis://127.0.0.1:$REDIS_PORT" \
        --log-level warn >> "$WORK/$kind-$port.log" 2>&1 &
      echo $! > "$pidfile"; wait ) 2> /dev/null &
  else
    ( cd "$ANCHORS" || exit 1
      node ref-server.js --port "$port" --redis "127.0.0.1:$REDIS_PORT" \
        --adapter streams >> "$WORK/$kind-$port.log" 2>&1 &
      echo $! > "$pidfile"; wait ) 2> /dev/null &
  fi
  wait_port "$port" 200
  NODE_PIDS+=("$(cat "$pidfile")")
}

run_one() { # $1 kind, $2 run index
  local kind=$1 run=$2 out
  out="$RESULTS/kill-node-$kind$([ "$RUNS" -gt 1 ] && echo "-$run" || true).json"
  redis-cli -p "$REDIS_PORT" FLUSHALL > /dev/null
  for p in "${PORTS[@]}"; do start_node "$kind" "$p"; done
  log "$kind run $run: nodes ${NODE_PIDS[*]} up; $CLIENTS clients on :${PORTS[0]}, SIGKILL after ${BEFORE}s"
  node "$HERE/kill-node.js" --victim "127.0.0.1:${PORTS[0]}" \
    --others "127.0.0.1:${PORTS[1]},127.0.0.1:${PORTS[2]}" --victim-pid "${NODE_PIDS[0]}" \
    --clients "$CLIENTS" --rooms "$ROOMS" --rate "$RATE" --before "$BEFORE" --after "$AFTER" \
    --drain "$DRAIN" --label "$kind" --out "$out" || log "$kind run $run: driver failed"
  stop_nodes
  sleep 1
}

kinds=()
case "$WHICH" in both) kinds=(sockeye ref) ;; *) kinds=("$WHICH") ;; esac
for r in $(seq "$RUNS"); do for k in "${kinds[@]}"; do run_one "$k" "$r"; done; done

# side-by-side table of every result file of this run
node - "$RESULTS" "${kinds[@]}" << 'EOF' | tee "$RESULTS/kill-node.md"
const fs = require("fs");
const [dir, ...kinds] = process.argv.slice(2);
const files = fs.readdirSync(dir).filter((f) => /^kill-node-.*\.json$/.test(f) &&
  kinds.some((k) => f.startsWith(`kill-node-${k}`))).sort();
const rows = files.map((f) => JSON.parse(fs.readFileSync(`${dir}/${f}`, "utf8")));
const cols = [
  ["server", (r) => r.label], ["clients", (r) => r.clients], ["rate/s", (r) => r.rate],
  ["published", (r) => r.published], ["expected deliveries", (r) => r.expected_deliveries],
  ["recovered", (r) => r.recovered], ["fresh session", (r) => r.fresh_sessions],
  ["never back", (r) => r.never_reconnected], ["lost", (r) => r.lost],
  ["clients with loss", (r) => r.clients_with_loss], ["duplicates", (r) => r.duplicates],
  ["order violations", (r) => r.order_violations],
  ["recover p50 ms", (r) => r.recover_ms.p50], ["recover p99 ms", (r) => r.recover_ms.p99],
  ["recover max ms", (r) => r.recover_ms.max],
  ["reconnect p50 ms (all)", (r) => r.reconnect_ms.p50], ["reconnect p99 ms (all)", (r) => r.reconnect_ms.p99],
];
console.log(`| ${cols.map((c) => c[0]).join(" | ")} |`);
console.log(`|${cols.map(() => "---").join("|")}|`);
for (const r of rows) console.log(`| ${cols.map((c) => c[1](r) ?? "-").join(" | ")} |`);
EOF
