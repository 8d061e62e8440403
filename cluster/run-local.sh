#!/usr/bin/env bash
# run-local.sh -- THE run command: one Sockeye node in the foreground, no Redis.
#
# Installs what is missing (cluster/install-deps.sh), builds a Release `sockeye` in
# build/, prints the URL of the chat page and then becomes the node (exec), so Ctrl-C
# and signals reach it directly. With no --redis flag the node uses its in-memory
# adapter. Flags are passed through to `sockeye`; defaults: --host 127.0.0.1 --port 3000.
#
# usage: bash cluster/run-local.sh [--port 3000] [--host 127.0.0.1] [other sockeye flags]
#
# With --cluster (first argument) it runs the docker-compose topology on loopback instead:
# redis-server, 3 nodes and HAProxy on 127.0.0.1:3000 (cluster/run-cluster.sh; the other
# arguments are its flags: --nodes N, --port P, --persist, -- sockeye flags).
#        bash cluster/run-local.sh --cluster [--nodes 3] [--port 3000] [-- sockeye flags]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

say() { printf 'run-local: %s\n' "$*" >&2; }

cluster=0
if [ "${1:-}" = --cluster ]; then
    cluster=1
    shift
fi

bash "$ROOT/cluster/install-deps.sh"

out=$(cmake -S "$ROOT" -B "$ROOT/build" -DCMAKE_BUILD_TYPE=Release -DSOCKEYE_SANITIZE= \
    -DSOCKEYE_FUZZ=OFF 2>&1) || {
    printf '%s\n' "$out" | tail -n 100 >&2
    say "cmake configure failed"
    exit 1
}
say "building build/sockeye (Release)"
out=$(cmake --build "$ROOT/build" -j "$(nproc)" 2>&1) || {
    printf '%s\n' "$out" | tail -n 200 >&2
    say "build failed"
    exit 1
}

if [ "$cluster" -eq 1 ]; then
    SOCKEYE_BIN=$ROOT/build/sockeye exec bash "$ROOT/cluster/run-cluster.sh" "$@"
fi

# Our defaults unless the caller gave them; remember what was asked for the URL.
host="" port=""
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    case ${args[i]} in
    --host) host=${args[i + 1]:-} ;;
    --host=*) host=${args[i]#--host=} ;;
    --port) port=${args[i + 1]:-} ;;
    --port=*) port=${args[i]#--port=} ;;
    esac
done
extra=()
[ -n "$host" ] || {
    host=127.0.0.1
    extra+=(--host "$host")
}
[ -n "$port" ] || {
    port=3000
    extra+=(--port "$port")
}

case $host in
0.0.0.0 | "::" | "[::]") url_host=127.0.0.1 ;;
*:*) url_host="[$host]" ;;
*) url_host=$host ;;
esac
say "chat page: http://$url_host:$port/   (Ctrl-C stops the node)"
exec "$ROOT/build/sockeye" "${extra[@]}" "$@"
