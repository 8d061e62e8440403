#!/usr/bin/env bash
# Chaos run for durable queues (README "Queues"): a consumer's node SIGKILLed mid-stream,
# repeated. Each repetition: a fresh redis-server state (FLUSHALL), 3 Sockeye nodes with a
# short --queue-ack-timeout, a producer pushing MESSAGES numbered messages with queue:push at
# RATE/s, 3 consumers (official socket.io-client, prefetch PREFETCH) on the three nodes
# acknowledging after a little simulated work; once half are pushed the first consumer's node
# gets SIGKILL and that consumer reconnects to the third node (driver: queue-kill.js). Counts
# per repetition: pushed, processed distinct, lost (must be 0), duplicates (reported, and
# checked against PREFETCH x the consumers of the killed node), time to complete.
#
# usage: tests/chaos/queue-kill.sh [--reps N]      (default 10; env REPS)
# env:   SOCKEYE_BIN (default build/sockeye), CTL_BIN (default build/sockeye-ctl, optional),
#        MESSAGES=2000 RATE=200 PREFETCH=50 WORK_MS=100 (ack delay at most) ACK_TIMEOUT=2000
#        DRAIN=60 (s, the wait for the last messages) PORTS="P1 P2 P3" (default: free ones), OUT (a file that
#        gets the JSON lines and the summary too)
# Prints one JSON line per repetition, then a summary line; exits 1 when any repetition lost
# a message, crashed a surviving node or broke, 0 otherwise. A repetition with a loss leaves
# its nodes' logs and `sockeye-ctl queue` output on stderr. Everything started here is
# stopped on exit, by PID.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPS=${REPS:-10}
while [ $# -gt 0 ]; do
  case "$1" in
    --reps) REPS=$2; shift 2 ;;
    *) echo "usage: $0 [--reps N]" >&2; exit 2 ;;
  esac
done
BIN=${SOCKEYE_BIN:-$HERE/../../build/sockeye}
CTL=${CTL_BIN:-$HERE/../../build/sockeye-ctl}
MESSAGES=${MESSAGES:-2000} RATE=${RATE:-200} PREFETCH=${PREFETCH:-50} WORK_MS=${WORK_MS:-100}
ACK_TIMEOUT=${ACK_TIMEOUT:-2000} DRAIN=${DRAIN:-60}
PORTS_ENV=${PORTS:-}
OUT=${OUT:-}
command -v redis-server > /dev/null || { echo "redis-server not on PATH" >&2; exit 2; }
[ -x "$BIN" ] || { echo "no sockeye at $BIN" >&2; exit 2; }
[ -d "$HERE/../node_modules/socket.io-client" ] || { echo "run npm ci in tests/" >&2; exit 2; }
if ! [[ "$REPS" =~ ^[0-9]+$ ]] || [ "$REPS" -lt 1 ] || [ "$REPS" -gt 1000 ]; then
  echo "--reps must be 1..1000" >&2; exit 2
fi

WORK=$(mktemp -d /tmp/sockeye-qchaos.XXXX) # lib.sh's start_redis writes there too
REDIS_PID="" NODE_PIDS=()
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
emit() { echo "$*"; [ -z "$OUT" ] || echo "$*" >> "$OUT"; }
# shellcheck source=tests/chaos/lib.sh
. "$HERE/lib.sh"
stop_nodes() { local p; for p in "${NODE_PIDS[@]}"; do stop_pid "$p"; done; NODE_PIDS=(); }
cleanup() { stop_nodes; [ -n "$REDIS_PID" ] && stop_pid "$REDIS_PID"; rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
[ -z "$OUT" ] || : > "$OUT"

start_redis 200
if [ -n "$PORTS_ENV" ]; then read -r -a PORTS <<< "$PORTS_ENV"; else
  for _ in $(seq 10); do # three distinct free ports, bounded tries
    PORTS=("$(free_port)" "$(free_port)" "$(free_port)")
    [ "$(printf '%s\n' "${PORTS[@]}" "$REDIS_PORT" | sort -u | wc -l)" = 4 ] && break
  done
fi
# One node on port $1 (its PID, the server itself through exec in a subshell that hides the
# job status line of its SIGKILL, is appended to NODE_PIDS).
start_node() {
  local port=$1 pidfile="$WORK/node-$1.pid"
  ( "$BIN" --host 127.0.0.1 --port "$port" --redis "$REDIS" --queue-ack-timeout "$ACK_TIMEOUT" \
      --log-level info >> "$WORK/node-$port.log" 2>&1 &
    echo $! > "$pidfile"; wait ) 2> /dev/null &
  wait_port "$port" 200
  NODE_PIDS+=("$(cat "$pidfile")")
}

failed=0 lossy=0 broken=0 crashed=0
results="$WORK/results.jsonl"
: > "$results"
for rep in $(seq "$REPS"); do
  redis-cli -p "$REDIS_PORT" FLUSHALL > /dev/null
  for p in "${PORTS[@]}"; do : > "$WORK/node-$p.log"; start_node "$p"; done
  log "rep $rep/$REPS: nodes ${NODE_PIDS[*]} up; SIGKILL of ${NODE_PIDS[0]} (:${PORTS[0]}) at half"
  line=""
  if line=$(timeout $((DRAIN + MESSAGES / RATE + 60)) node "$HERE/queue-kill.js" \
      --nodes "127.0.0.1:${PORTS[0]},127.0.0.1:${PORTS[1]},127.0.0.1:${PORTS[2]}" \
      --victim-pid "${NODE_PIDS[0]}" --messages "$MESSAGES" --rate "$RATE" \
      --prefetch "$PREFETCH" --work "$WORK_MS" --drain "$DRAIN" --rep "$rep"); then :; else
    log "rep $rep: driver failed (status $?)"
  fi
  # the two other nodes must have survived
  alive=1
  for k in 1 2; do kill -0 "${NODE_PIDS[$k]}" 2> /dev/null || alive=0; done
  if [ -z "$line" ]; then
    broken=$((broken + 1)); failed=1
    emit "{\"rep\":$rep,\"error\":\"driver produced no result\"}"
  else
    emit "$line"
    echo "$line" >> "$results"
    if ! node -e 'const r=JSON.parse(process.argv[1]); process.exit(r.lost===0&&r.complete?0:1)' "$line"; then
      lossy=$((lossy + 1)); failed=1
      log "rep $rep: LOSS or incomplete; the queue and the nodes' logs follow"
      if [ -x "$CTL" ]; then "$CTL" --redis "$REDIS" queue chaos >&2 || true; fi
      for p in "${PORTS[@]}"; do echo "--- node :$p" >&2; tail -n 40 "$WORK/node-$p.log" >&2; done
    fi
  fi
  if [ "$alive" = 0 ]; then
    crashed=$((crashed + 1)); failed=1
    log "rep $rep: a surviving node died; its log:"
    for p in "${PORTS[1]}" "${PORTS[2]}"; do echo "--- node :$p" >&2; tail -n 40 "$WORK/node-$p.log" >&2; done
  fi
  grep -h -i -E 'error|assert|abort' "$WORK"/node-*.log | head -n 5 >&2 || true
  stop_nodes
done

summary=$(node - "$results" "$REPS" "$broken" "$crashed" << 'EOF'
const fs = require("fs");
const [file, reps, broken, crashed] = process.argv.slice(2);
const rows = fs.readFileSync(file, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
const sum = (f) => rows.reduce((a, r) => a + f(r), 0);
const done = rows.filter((r) => r.complete).map((r) => r.complete_ms).sort((a, b) => a - b);
const after = rows.filter((r) => r.complete).map((r) => r.after_kill_ms).sort((a, b) => a - b);
const pct = (a, p) => a.length ? a[Math.min(a.length - 1, Math.ceil((p / 100) * a.length) - 1)] : null;
console.log(JSON.stringify({
  summary: true, reps: Number(reps), results: rows.length, driver_broken: Number(broken),
  surviving_node_crashes: Number(crashed),
  pushed: sum((r) => r.pushed), push_failed: sum((r) => r.push_failed),
  processed: sum((r) => r.processed), distinct: sum((r) => r.distinct),
  lost: sum((r) => r.lost), reps_with_loss: rows.filter((r) => r.lost > 0 || !r.complete).length,
  duplicates: sum((r) => r.duplicates),
  duplicates_per_rep: rows.map((r) => r.duplicates),
  max_duplicates: rows.length ? Math.max(...rows.map((r) => r.duplicates)) : null,
  duplicate_bound: rows.length ? rows[0].duplicate_bound : null,
  reps_over_duplicate_bound: rows.filter((r) => r.duplicates > r.duplicate_bound).length,
  victim_recovered: rows.filter((r) => r.victim.recovered === true).length,
  complete_ms: { min: done[0] ?? null, p50: pct(done, 50), max: done[done.length - 1] ?? null },
  after_kill_ms: { min: after[0] ?? null, p50: pct(after, 50), max: after[after.length - 1] ?? null },
}));
EOF
)
emit "$summary"
exit "$failed"
