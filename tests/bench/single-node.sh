#!/usr/bin/env bash
# single-node.sh -- one Sockeye node against the Node.js reference node, in the same run.
#
# Both servers are measured by the shared harness (shared/anchors: loadgen.js,
# run-baseline.sh, summarize.js) with the same steps, one after the other, on one
# loopback port, with no Redis in the path: the reference runs `ref-server.js
# --adapter memory`, Sockeye runs with its in-memory adapter (no --redis flag).
# Steps: fan-out (1000 subs, 10 rooms, 10 pubs, 1000 msgs/s, 20 s), a short rate sweep,
# idle memory (5000 connections). The table (summarize.js, ratio column = sockeye/ref)
# goes to tests/bench/results/single-node-<date>.md, the raw JSON lines beside it.
#
# The harness folder is read-only and its node_modules is not committed: it is copied to
# a scratch dir under /tmp and `npm ci` runs there (cached by lock-file hash).
# run-baseline.sh also starts a redis-server of its own (free port from 6390) that no
# server here uses; it stops it, and every node, by PID on exit.
#
# usage: bash tests/bench/single-node.sh
# env:   SERVERS="ref sockeye"   which halves to run (the table needs both)
#        PORT=5001               the one port the server under test listens on
#        QUICK=1                 smoke run: 3 s fan-out, one 3 s sweep step, 500 idle conns
#        SWEEP_RATES="2000 3000 5000 10000"  FANOUT_S=20  SWEEP_S=10  IDLE_CONNS=5000
#        SOCKEYE_BIN=build/sockeye (built Release in build/ when it is not given)
#        ANCHORS=<repo>/../shared/anchors
#        STEP_TIMEOUT=1200       seconds one server's whole run may take before it is stopped
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

log() { printf '[%s] single-node: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

SERVERS=${SERVERS:-ref sockeye}
PORT=${PORT:-5001}
STEP_TIMEOUT=${STEP_TIMEOUT:-1200}
if [ -n "${QUICK:-}" ]; then
    : "${FANOUT_S:=3}" "${SWEEP_RATES:=2000}" "${SWEEP_S:=3}" "${IDLE_CONNS:=500}"
fi
export FANOUT_SUBS=${FANOUT_SUBS:-1000} ROOMS=${ROOMS:-10} PUBS=${PUBS:-10}
export FANOUT_RATE=${FANOUT_RATE:-1000} FANOUT_S=${FANOUT_S:-20}
export SWEEP_RATES=${SWEEP_RATES:-2000 3000 5000 10000} SWEEP_S=${SWEEP_S:-10}
export IDLE_CONNS=${IDLE_CONNS:-5000} EVENT=${EVENT:-bcast} NSP=${NSP:-/}
export HOST=127.0.0.1 PORTS=$PORT STEPS="fanout sweep idle"

ANCHORS=${ANCHORS:-}
if [ -z "$ANCHORS" ]; then
    for d in "$ROOT/../shared/anchors" /work/shared/anchors; do
        [ -f "$d/run-baseline.sh" ] && ANCHORS=$(cd "$d" && pwd) && break
    done
fi
if [ -z "$ANCHORS" ] || [ ! -f "$ANCHORS/run-baseline.sh" ]; then
    die "shared/anchors not found (set ANCHORS)"
fi
command -v node >/dev/null || die "node not found (bash cluster/install-deps.sh)"
command -v redis-server >/dev/null || die "redis-server not found (bash cluster/install-deps.sh)"

# ---- the server under test, built for speed unless one is given
if [[ " $SERVERS " == *" sockeye "* ]]; then
    if [ -z "${SOCKEYE_BIN:-}" ]; then
        log "building build/sockeye (Release)"
        out=$(cmake -S "$ROOT" -B "$ROOT/build" -DCMAKE_BUILD_TYPE=Release -DSOCKEYE_SANITIZE= \
            -DSOCKEYE_FUZZ=OFF 2>&1 && cmake --build "$ROOT/build" -j "$(nproc)" --target sockeye 2>&1) || {
            printf '%s\n' "$out" | tail -n 100 >&2
            die "build failed"
        }
        SOCKEYE_BIN=$ROOT/build/sockeye
    fi
    SOCKEYE_BIN=$(realpath "$SOCKEYE_BIN")
    [ -x "$SOCKEYE_BIN" ] || die "$SOCKEYE_BIN is not an executable"
fi

# ---- a writable copy of the harness, node_modules cached by lock-file hash
WORK=$(mktemp -d /tmp/sockeye-bench.XXXXXX)
cp -r "$ANCHORS/." "$WORK/"
chmod -R u+w "$WORK"
rm -rf "$WORK/node_modules" "$WORK/results"
mkdir -p "$WORK/results"
CACHE=/tmp/sockeye-anchors-modules/$(sha256sum "$ANCHORS/package-lock.json" | cut -c1-16)
if [ ! -f "$CACHE/.done" ]; then
    log "npm ci for the harness in $CACHE"
    rm -rf "$CACHE"
    mkdir -p "$CACHE"
    cp "$ANCHORS/package.json" "$ANCHORS/package-lock.json" "$CACHE/"
    (cd "$CACHE" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) || die "npm ci failed"
    touch "$CACHE/.done"
fi
ln -s "$CACHE/node_modules" "$WORK/node_modules"

# ---- one run of the harness per server, same steps, same port, one after the other
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
run_server() { # $1 label, $2 NODE_CMD template
    local label=$1 cmd=$2 rc=0
    port_busy "$PORT" && die "port $PORT is in use (set PORT)"
    log "$label: $cmd  (steps: $STEPS; sweep $SWEEP_RATES)"
    # run-baseline.sh stops its nodes and redis by PID on exit, also on SIGTERM from timeout
    LABEL=$label OUT="$WORK/results/$label.jsonl" NODE_CMD=$cmd \
        timeout --kill-after=10 "$STEP_TIMEOUT" bash "$WORK/run-baseline.sh" memory \
        >"$WORK/$label.table.md" 2>"$WORK/$label.log" || rc=$?
    grep -E '^\[|  (fanout|sweep|idle)-' "$WORK/$label.log" >&2 || true
    [ "$rc" -eq 0 ] || die "$label run failed (exit $rc); see $WORK/$label.log"
}

for s in $SERVERS; do
    case $s in
    ref) run_server ref "node ref-server.js --host 127.0.0.1 --port {port} --adapter memory" ;;
    sockeye) run_server sockeye "$(printf '%q' "$SOCKEYE_BIN") --host 127.0.0.1 --port {port}" ;;
    *) die "unknown server '$s' (ref sockeye)" ;;
    esac
done

# ---- the table
OUTDIR=$ROOT/tests/bench/results
mkdir -p "$OUTDIR"
stamp=$(date +%Y-%m-%d)
md=$OUTDIR/single-node-$stamp.md
files=()
for s in $SERVERS; do
    cp "$WORK/results/$s.jsonl" "$OUTDIR/single-node-$stamp.$s.jsonl"
    files+=("$s.jsonl")
done
commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
{
    echo "# Single node: Sockeye vs the Node.js reference ($stamp)"
    echo
    echo "Produced by \`bash tests/bench/single-node.sh\` at commit $commit on $(nproc) cores"
    echo "($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'))."
    echo "Loadgen, the server and an unused redis-server share these cores; loopback, port $PORT."
    echo "Reference: \`node ref-server.js --adapter memory\` (socket.io 4.8.4, in-memory recovery)."
    echo "Sockeye: \`${SOCKEYE_BIN:-build/sockeye} --host 127.0.0.1 --port $PORT\` (in-memory adapter)."
    echo "Fan-out: $FANOUT_SUBS subs, $ROOMS rooms, $PUBS pubs, $FANOUT_RATE msgs/s for $FANOUT_S s;"
    echo "sweep: $SWEEP_RATES msgs/s, $SWEEP_S s each; idle: $IDLE_CONNS connections; event $EVENT on $NSP."
    echo "Raw results: single-node-$stamp.<server>.jsonl beside this file."
    echo
    (cd "$WORK/results" && node "$WORK/summarize.js" "${files[@]}")
} >"$md"
log "table -> ${md#"$ROOT"/}"
cat "$md"
rm -rf "$WORK"
