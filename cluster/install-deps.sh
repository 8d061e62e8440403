#!/usr/bin/env bash
# install-deps.sh -- everything Sockeye needs to build, test and run, on Debian 12.
#
# Idempotent and quiet: it asks apt only when a package is missing (so a machine that
# already has everything makes no network call), and runs `npm ci` in tests/ only when
# tests/package-lock.json changed since the last install. It starts no service: the
# scripts that need redis-server start their own on a free loopback port.
#
# usage: bash cluster/install-deps.sh        (as root, or with everything already there)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

say() { printf 'install-deps: %s\n' "$*" >&2; }
die() {
    say "error: $*"
    exit 1
}

# Build toolchain, the libraries in CMakeLists.txt, and the test tools. libclang-rt-14-dev
# is only a Recommends of clang, but libFuzzer and the sanitizer runtimes live in it.
# python3-redis and python3-msgpack: the Python example worker (examples/workers/) and its
# test (tests/integration/workers.test.js).
PACKAGES=(
    build-essential cmake pkg-config clang libclang-rt-14-dev
    libwebsockets-dev libuv1-dev libhiredis-dev libcmocka-dev libmsgpack-dev libcjson-dev
    libssl-dev zlib1g-dev
    redis-server valgrind haproxy
    python3-redis python3-msgpack
)

is_installed() {
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]
}

missing=()
for p in "${PACKAGES[@]}"; do
    is_installed "$p" || missing+=("$p")
done
# A newer Node (>= 20) is usually already on PATH from elsewhere; Debian's nodejs/npm
# only fill the gap so the end-to-end tests can run at all.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)

if [ "${#missing[@]}" -gt 0 ]; then
    command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and no apt-get (Debian 12 expected)"
    [ "$(id -u)" -eq 0 ] || die "missing ${missing[*]}: run this script as root"
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    log=$(mktemp /tmp/install-deps.XXXXXX)
    if ! apt-get update -qq >"$log" 2>&1 ||
        ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >>"$log" 2>&1; then
        tail -n 30 "$log" >&2
        die "apt-get failed (full log: $log)"
    fi
    rm -f "$log"
    for p in "${PACKAGES[@]}"; do
        is_installed "$p" || die "$p still not installed after apt-get"
    done
fi

command -v node >/dev/null 2>&1 || die "node not found after install"
command -v npm >/dev/null 2>&1 || die "npm not found after install"

# The pinned official client for the end-to-end tests. The stamp holds the lock file's
# hash and the node version, so a changed lock or a different node reinstalls.
TESTS=$ROOT/tests
if [ -f "$TESTS/package.json" ]; then
    stamp=$TESTS/node_modules/.sockeye-deps-stamp
    if [ ! -f "$TESTS/package-lock.json" ]; then
        say "tests/package-lock.json missing: creating it with npm install"
        (cd "$TESTS" && npm install --no-audit --no-fund --loglevel=error >/dev/null) ||
            die "npm install in tests/ failed"
    fi
    want="$(sha256sum "$TESTS/package-lock.json" | cut -d' ' -f1) $(node --version)"
    if [ ! -d "$TESTS/node_modules" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        say "npm ci in tests/"
        out=$(cd "$TESTS" && npm ci --no-audit --no-fund --loglevel=error 2>&1) || {
            printf '%s\n' "$out" >&2
            die "npm ci in tests/ failed"
        }
        printf '%s\n' "$want" >"$stamp"
    fi
fi
