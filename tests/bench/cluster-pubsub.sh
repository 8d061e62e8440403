#!/usr/bin/env bash
# cluster-pubsub.sh -- two Sockeye nodes on Redis pub/sub against the Node.js reference
# cluster (socket.io 4.8.4 on @socket.io/redis-adapter 8.3.0), in the same run.
#
# Both clusters are measured by the shared harness (shared/anchors: loadgen.js,
# run-baseline.sh, summarize.js) with the same steps, one after the other, on the same
# two loopback ports and a fresh redis-server each: the reference is `run-baseline.sh
# pubsub` as it stands; Sockeye runs `sockeye --redis redis://{redis} --recovery off`
# (the classic pub/sub path: the reference pubsub adapter has no recovery either, so
# neither side pays for storing). Subscribers are spread over both nodes and each
# message goes to a room with members on both, so most deliveries cross Redis.
# Steps: fan-out (1000 subs, 10 rooms, 10 pubs, 1000 msgs/s, 20 s) and a rate sweep.
# The table (summarize.js, ratio column = sockeye/ref) goes to
# tests/bench/results/cluster-pubsub-<date>.md, the raw JSON lines beside it.
#
# The harness folder is read-only and its node_modules is not committed: it is copied to
# a scratch dir under /tmp and `npm ci` runs there (cached by lock-file hash).
# run-baseline.sh starts its redis-server (free port from 6390) and the nodes, and
# stops them by PID on exit.
#
# MODE=streams measures the recoverable path instead: the reference on
# @socket.io/redis-streams-adapter (`run-baseline.sh streams`), Sockeye with recovery on
# (every broadcast is one FCALL sockeye_publish: stored in its streams, then published).
# That table goes to tests/bench/results/cluster-streams-<date>.md.
#
# usage: bash tests/bench/cluster-pubsub.sh
# env:   MODE=pubsub                pubsub (classic adapters) or streams (recovery on)
#        SERVERS="ref sockeye"   which halves to run (the table needs both)
#        PORTS="5011 5012"       the two nodes' ports
#        QUICK=1                 smoke run: 3 s fan-out, one 3 s sweep step
#        SWEEP_RATES="2000 3000 5000 10000"  FANOUT_S=20  SWEEP_S=10
#        SOCKEYE_BIN=build/sockeye (built Release in build/ when it is not given)
#        ANCHORS=<repo>/../shared/anchors
#        STEP_TIMEOUT=1200       seconds one cluster's whole run may take before it is stopped
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

log() { printf '[%s] cluster-pubsub: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

SERVERS=${SERVERS:-ref sockeye}
MODE=${MODE:-pubsub}
case $MODE in
pubsub) RECOVERY_FLAG=" --recovery off" REF_DESC="@socket.io/redis-adapter 8.3.0" ;;
streams) RECOVERY_FLAG="" REF_DESC="@socket.io/redis-streams-adapter 0.3.1, recovery on" ;;
*) die "MODE must be pubsub or streams" ;;
esac
PORTS=${PORTS:-5011 5012}
STEP_TIMEOUT=${STEP_TIMEOUT:-1200}
if [ -n "${QUICK:-}" ]; then
    : "${FANOUT_S:=3}" "${SWEEP_RATES:=2000}" "${SWEEP_S:=3}"
fi
export FANOUT_SUBS=${FANOUT_SUBS:-1000} ROOMS=${ROOMS:-10} PUBS=${PUBS:-10}
export FANOUT_RATE=${FANOUT_RATE:-1000} FANOUT_S=${FANOUT_S:-20}
export SWEEP_RATES=${SWEEP_RATES:-2000 3000 5000 10000} SWEEP_S=${SWEEP_S:-10}
export EVENT=${EVENT:-bcast} NSP=${NSP:-/}
export HOST=127.0.0.1 PORTS STEPS="fanout sweep"

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

# ---- one run of the harness per cluster, same steps, same ports, one after the other
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
run_cluster() { # $1 label, $2 NODE_CMD template ("" = the reference's own)
    local label=$1 cmd=$2 rc=0 p
    for p in $PORTS; do
        port_busy "$p" && die "port $p is in use (set PORTS)"
    done
    log "$label: ${cmd:-run-baseline.sh $MODE (reference)}  (steps: $STEPS; sweep $SWEEP_RATES)"
    # run-baseline.sh stops its nodes and redis by PID on exit, also on SIGTERM from timeout
    LABEL=$label OUT="$WORK/results/$label.jsonl" NODE_CMD=$cmd \
        timeout --kill-after=10 "$STEP_TIMEOUT" bash "$WORK/run-baseline.sh" "$MODE" \
        >"$WORK/$label.table.md" 2>"$WORK/$label.log" || rc=$?
    grep -E '^\[|  (fanout|sweep)-' "$WORK/$label.log" >&2 || true
    [ "$rc" -eq 0 ] || die "$label run failed (exit $rc); see $WORK/$label.log"
}

SOCKEYE_CMD="$(printf '%q' "${SOCKEYE_BIN:-}") --host 127.0.0.1 --port {port} --redis redis://{redis}$RECOVERY_FLAG"
for s in $SERVERS; do
    case $s in
    ref) run_cluster ref "" ;;
    sockeye) run_cluster sockeye "$SOCKEYE_CMD" ;;
    *) die "unknown server '$s' (ref sockeye)" ;;
    esac
done

# ---- the table
OUTDIR=$ROOT/tests/bench/results
mkdir -p "$OUTDIR"
stamp=$(date +%Y-%m-%d)
md=$OUTDIR/cluster-$MODE-$stamp.md
files=()
for s in $SERVERS; do
    cp "$WORK/results/$s.jsonl" "$OUTDIR/cluster-$MODE-$stamp.$s.jsonl"
    files+=("$s.jsonl")
done
commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
{
    echo "# Cluster (Redis, $MODE): Sockeye vs the Node.js reference ($stamp)"
    echo
    echo "Produced by \`MODE=$MODE bash tests/bench/cluster-pubsub.sh\` at commit $commit on $(nproc) cores"
    echo "($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'))."
    echo "Loadgen, both nodes and redis-server share these cores; loopback, ports $PORTS."
    echo "Reference: \`run-baseline.sh $MODE\`: 2 × \`node ref-server.js --adapter $MODE\`"
    echo "(socket.io 4.8.4, $REF_DESC, node-redis 4.7.1)."
    echo "Sockeye: 2 × \`sockeye --host 127.0.0.1 --port {port} --redis redis://{redis}$RECOVERY_FLAG\`."
    echo "Fan-out: $FANOUT_SUBS subs over both nodes, $ROOMS rooms, $PUBS pubs, $FANOUT_RATE msgs/s for"
    echo "$FANOUT_S s; sweep: $SWEEP_RATES msgs/s, $SWEEP_S s each; event $EVENT on $NSP."
    echo "Raw results: cluster-$MODE-$stamp.<server>.jsonl beside this file."
    echo
    (cd "$WORK/results" && node "$WORK/summarize.js" "${files[@]}")
} >"$md"
log "table -> ${md#"$ROOT"/}"
cat "$md"
rm -rf "$WORK"
