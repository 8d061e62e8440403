#!/usr/bin/env bash
# queue.sh -- durable queues: push -> deliver -> ack throughput and latency, Redis commands
# per message, on one node and across two nodes, at fixed rates and at saturation.
#
# A private redis-server (free port from 6400, no persistence) and Release `sockeye` nodes on
# loopback; tests/bench/queue-load.js (the official client) as producers and consumers of one
# group, every message acknowledged at once. Each step runs on fresh nodes. The node CPU is
# read from /proc (utime + stime) around each step. Everything started is stopped by PID.
#
# usage: bash tests/bench/queue.sh
# env:   RATES="1000 10000 40000"   offered msgs/s per step (the last one is past saturation
#                                   on 2 cores: what is achieved there is the saturation)
#        SECONDS_PER_STEP=10  PRODUCERS=10  CONSUMERS=10  PREFETCH=100
#        NODES_SET="1 2"            one node, then two nodes (producers and consumers split)
#        SOCKEYE_BIN=build/sockeye  (built Release in build/ when not given)
#        QUICK=1                    smoke run: 3 s steps at 1000 msgs/s only
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
BENCH_NAME=queue
log() { printf '[%s] %s: %s\n' "$(date +%H:%M:%S)" "$BENCH_NAME" "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

RATES=${RATES:-1000 10000 40000}
SECONDS_PER_STEP=${SECONDS_PER_STEP:-10}
PRODUCERS=${PRODUCERS:-10}
CONSUMERS=${CONSUMERS:-10}
PREFETCH=${PREFETCH:-100}
NODES_SET=${NODES_SET:-1 2}
if [ -n "${QUICK:-}" ]; then
    RATES=1000
    SECONDS_PER_STEP=3
fi

command -v node >/dev/null || die "node not found (bash cluster/install-deps.sh)"
command -v redis-server >/dev/null || die "redis-server not found"
[ -d tests/node_modules/socket.io-client ] || die "tests/node_modules missing (npm ci in tests/)"
if [ -z "${SOCKEYE_BIN:-}" ]; then
    log "building build/sockeye (Release)"
    cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DSOCKEYE_SANITIZE= -DSOCKEYE_FUZZ=OFF >/dev/null
    cmake --build build -j "$(nproc)" --target sockeye >/dev/null
    SOCKEYE_BIN=$ROOT/build/sockeye
fi

PIDS=()
WORK=$(mktemp -d /tmp/sockeye-qbench.XXXXXX)
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    if [ -n "${KEEP_WORK:-}" ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
    local p=$1
    while port_busy "$p"; do p=$((p + 1)); done
    echo "$p"
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

RPORT=$(free_port 6400)
redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK" \
    --logfile "$WORK/redis.log" &
PIDS+=($!)
for _ in $(seq 50); do redis-cli -p "$RPORT" ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done

results=$WORK/results.jsonl
: >"$results"
for nodes in $NODES_SET; do
    for rate in $RATES; do
        urls=()
        npids=()
        for i in $(seq "$nodes"); do
            port=$(free_port $((5020 + i)))
            "$SOCKEYE_BIN" --host 127.0.0.1 --port "$port" --redis "redis://127.0.0.1:$RPORT" \
                --log-level warn >"$WORK/node-$nodes-$rate-$i.log" 2>&1 &
            npids+=($!)
            PIDS+=($!)
            for _ in $(seq 100); do port_busy "$port" && break; sleep 0.05; done
            urls+=("http://127.0.0.1:$port")
        done
        t0=0
        for p in "${npids[@]}"; do t0=$((t0 + $(cpu_ticks "$p"))); done
        rc0=$(redis-cli -p "$RPORT" info cpu | awk -F: '/used_cpu_(sys|user):/ {s += $2} END {print s}')
        log "$nodes node(s), $rate msgs/s offered for $SECONDS_PER_STEP s"
        line=$(timeout 120 node tests/bench/queue-load.js --urls "$(IFS=,; echo "${urls[*]}")" \
            --rate "$rate" --seconds "$SECONDS_PER_STEP" --producers "$PRODUCERS" \
            --consumers "$CONSUMERS" --prefetch "$PREFETCH" --redis-port "$RPORT") ||
            die "load generator failed (node logs in $WORK)"
        t1=0
        for p in "${npids[@]}"; do t1=$((t1 + $(cpu_ticks "$p"))); done
        rc1=$(redis-cli -p "$RPORT" info cpu | awk -F: '/used_cpu_(sys|user):/ {s += $2} END {print s}')
        hz=$(getconf CLK_TCK)
        node_cpu=$(awk -v a="$t0" -v b="$t1" -v hz="$hz" 'BEGIN {printf "%.2f", (b - a) / hz}')
        redis_cpu=$(awk -v a="$rc0" -v b="$rc1" 'BEGIN {printf "%.2f", b - a}')
        echo "$line" | node -e '
            const r = JSON.parse(require("fs").readFileSync(0, "utf8"));
            Object.assign(r, { nodes: +process.argv[1], node_cpu_s: +process.argv[2], redis_cpu_s: +process.argv[3] });
            console.log(JSON.stringify(r));' "$nodes" "$node_cpu" "$redis_cpu" | tee -a "$results" >&2
        for p in "${npids[@]}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    done
done

stamp=$(date +%Y-%m-%d)
out=tests/bench/results/queue-$stamp.md
mkdir -p tests/bench/results
cp "$results" "tests/bench/results/queue-$stamp.jsonl"
{
    echo "# Durable queues: push -> deliver -> ack ($stamp)"
    echo
    echo "Produced by \`bash tests/bench/queue.sh\` at commit $(git rev-parse --short HEAD) on $(nproc) cores."
    echo "Loadgen (tests/bench/queue-load.js, official client, $PRODUCERS producers, $CONSUMERS consumers"
    echo "of one group, prefetch $PREFETCH, every message acknowledged at once), the nodes and one"
    echo "redis-server share these cores; ${SECONDS_PER_STEP} s per step. Raw: queue-$stamp.jsonl."
    echo
    echo "| nodes | offered/s | pushed/s | delivered/s | lost | dup | delivery p50 / p99 ms | push ack p99 ms | node CPU s | Redis CPU s | loadgen CPU s | Redis cmds/msg |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
    node -e '
        for (const l of require("fs").readFileSync(process.argv[1], "utf8").split("\n").filter(Boolean)) {
            const r = JSON.parse(l);
            console.log(`| ${r.nodes} | ${r.rate_offered} | ${r.pushed_per_s} | ${r.delivered_per_s} | ${r.lost} | ${r.duplicates} | ${r.delivery_ms.p50} / ${r.delivery_ms.p99} | ${r.push_ack_ms.p99} | ${r.node_cpu_s} | ${r.redis_cpu_s} | ${r.loadgen_cpu_s} | ${r.redis_commands_per_message} |`);
        }' "$results"
} >"$out"
log "table -> $out"
cat "$out"
