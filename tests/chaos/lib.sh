# lib.sh -- what the chaos scripts share (sourced after WORK is set): stopping our own
# processes by PID, free and open ports, and a throwaway redis-server on loopback.
# shellcheck shell=bash

stop_pid() { # SIGTERM, 3 s grace, SIGKILL; our own children only
  local pid=$1 i
  [ -n "$pid" ] || return 0
  kill -0 "$pid" 2> /dev/null || { wait "$pid" 2> /dev/null || true; return 0; }
  kill -TERM "$pid" 2> /dev/null || true
  for i in $(seq 30); do kill -0 "$pid" 2> /dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2> /dev/null || true
  wait "$pid" 2> /dev/null || true
}

free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }

wait_port() { # $1 port, $2 tries of 50 ms (default 100): bounded
  local i
  for i in $(seq "${2:-100}"); do (exec 3<> "/dev/tcp/127.0.0.1/$1") 2> /dev/null && return 0; sleep 0.05; done
  echo "port $1 never opened" >&2; return 1
}

# A redis-server without persistence in $WORK on a free port, waited for with $1 tries
# (see wait_port): sets REDIS_PORT, REDIS_PID (for stop_pid) and REDIS (its URL).
start_redis() {
  REDIS_PORT=$(free_port)
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK" \
    > "$WORK/redis.log" 2>&1 &
  REDIS_PID=$!
  wait_port "$REDIS_PORT" "${1:-100}"
  REDIS="redis://127.0.0.1:$REDIS_PORT"
}
