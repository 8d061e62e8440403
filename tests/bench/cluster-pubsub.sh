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

BENCH_NAME=cluster-pubsub BENCH_COMMAND="MODE=${MODE:-pubsub} bash tests/bench/cluster-pubsub.sh"
# shellcheck source=tests/bench/lib.sh
. "$ROOT/tests/bench/lib.sh"

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

bench_find_anchors
bench_build_sockeye
bench_prepare_harness

# ---- one run of the harness per cluster, same steps, same ports, one after the other
SOCKEYE_ARGS="--host 127.0.0.1 --port {port} --redis redis://{redis}$RECOVERY_FLAG"
for s in $SERVERS; do
    case $s in
    ref) bench_run ref "" "$MODE" ;;
    sockeye) bench_run sockeye "$(printf '%q' "${SOCKEYE_BIN:-}") $SOCKEYE_ARGS" "$MODE" ;;
    before) bench_run before "$(bench_before_bin) $SOCKEYE_ARGS" "$MODE" ;;
    *) die "unknown server '$s' (ref sockeye before)" ;;
    esac
done

# ---- the table
bench_table "cluster-$MODE" "Cluster (Redis, $MODE): Sockeye vs the Node.js reference" <<EOT
Loadgen, both nodes and redis-server share these cores; loopback, ports $PORTS.
Reference: \`run-baseline.sh $MODE\`: 2 × \`node ref-server.js --adapter $MODE\`
(socket.io 4.8.4, $REF_DESC, node-redis 4.7.1).
Sockeye: 2 × \`sockeye --host 127.0.0.1 --port {port} --redis redis://{redis}$RECOVERY_FLAG\`.${SOCKEYE_BEFORE_BIN:+
Before: \`$SOCKEYE_BEFORE_BIN\`, the same flags.}
Fan-out: $FANOUT_SUBS subs over both nodes, $ROOMS rooms, $PUBS pubs, $FANOUT_RATE msgs/s for
$FANOUT_S s; sweep: $SWEEP_RATES msgs/s, $SWEEP_S s each; event $EVENT on $NSP.
EOT
