#!/usr/bin/env bash
# `make bench`: chatbench's scenarios against a fresh chatd, the server pinned to core 0
# and chatbench to core 1 (taskset), on loopback only. Writes bench/results/<name>.json,
# prints a table, and draws the latency distributions (bench/results/latency.svg).
#   bench/run.sh BUILD_DIR [SCENARIO...]
#     scenarios: fanout relay ingest ingest-pg history search idle reconnect
set -euo pipefail
build=$(cd "${1:?build folder}" && pwd)
shift || true
root=$(cd "$(dirname "$0")/.." && pwd)
results="$root/bench/results"
mkdir -p "$results"
work=$(mktemp -d /tmp/chatd-bench.XXXXXX)
server_pid=""
services=""

cleanup() {
  stop_server
  if [ -n "$services" ]; then "$root/scripts/test-services.sh" stop "$services" || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# Sockets need file descriptors on both sides (this machine allows 20,000 per process).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
ulimit -n 20000 2>/dev/null || true
fds=$(ulimit -n)

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# start_server NAME [VAR=value ...]: a fresh chatd on core 0 with one I/O thread.
start_server() {
  local name=$1
  shift
  port=$(free_port)
  mkdir -p "$work/$name"
  (
    cd "$work/$name"
    env SECRET_KEY="bench-$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" \
      BIND=127.0.0.1 PORT="$port" THREADS=1 LOG_LEVEL=warn \
      PASSWORD_HASH_MEMORY_KIB=8 PASSWORD_HASH_OPS=1 ACCESS_TOKEN_LIFETIME=3600 \
      WS_EVENTS_PER_SECOND=100000 WS_EVENT_BURST=1000000 WS_MAX_QUEUED_FRAMES=1000000 WS_MAX_QUEUED_BYTES=1073741824 \
      WS_MAX_SOCKETS_PER_USER=10000 "$@" \
      taskset -c 0 "$build/chatd" serve >"$work/$name/chatd.log" 2>&1 &
    echo $! >"$work/$name/pid"
  )
  server_pid=$(cat "$work/$name/pid")
  for _ in $(seq 1 100); do
    if python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/healthz', timeout=1)" 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  echo "chatd did not start:" >&2
  cat "$work/$name/chatd.log" >&2
  exit 1
}

# SIGTERM, then up to 15 s for the graceful shutdown (chatd is not this shell's child, so
# `wait` cannot be used); a server still running after that is reported and killed.
stop_server() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 150); do
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$server_pid" 2>/dev/null; then
      echo "chatd (pid $server_pid) did not stop within 15 s of SIGTERM; killed" >&2
      kill -9 "$server_pid" 2>/dev/null || true
    fi
    server_pid=""
  fi
}

# start_relay: chatbench's bare WebSocket relay on core 0, in chatd's place.
start_relay() {
  port=$(free_port)
  mkdir -p "$work/relay"
  taskset -c 0 "$build/chatbench" relay --port "$port" >"$work/relay/relay.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 50); do
    grep -q listening "$work/relay/relay.log" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "the relay did not start" >&2
  exit 1
}

# bench NAME SCENARIO [chatbench options...]
bench() {
  local name=$1
  shift
  echo "== $name"
  # A failed delivery check (exit 3) still leaves its report, which the table shows.
  local status=0
  timeout 900 taskset -c 1 "$build/chatbench" "$@" --port "$port" --server-pid "$server_pid" \
    --sources 8 --out "$results/$name.json" >/dev/null || status=$?
  if [ "$status" -ne 0 ] && [ "$status" -ne 3 ]; then
    echo "chatbench $name failed with status $status" >&2
    exit 1
  fi
}

scenarios=${*:-fanout relay ingest ingest-pg history search idle reconnect}
# Fan-out as fast as it goes: ten senders, eight messages in flight each.
fanout_max="--members 1000 --senders 10 --rate 0 --window 8 --warmup 2 --seconds 5 --runs 3"
for s in $scenarios; do
  case $s in
    fanout)
      start_server fanout
      # shellcheck disable=SC2086
      bench fanout-max fanout $fanout_max
      stop_server
      # Open loop: at a rate the server keeps up with, and at the target's 500,000/s.
      start_server fanout-paced-100k
      bench fanout-paced-100k fanout --members 1000 --senders 10 --rate 100000 --warmup 2 --seconds 5 --runs 3
      stop_server
      start_server fanout-paced
      bench fanout-paced fanout --members 1000 --senders 10 --rate 500000 --warmup 2 --seconds 5 --runs 3
      stop_server
      ;;
    relay)
      # The same fan-out through a bare relay on the same core: what the transport allows.
      start_relay
      # shellcheck disable=SC2086
      bench relay-max fanout --relay $fanout_max
      stop_server
      start_relay
      bench relay-paced fanout --relay --members 1000 --senders 10 --rate 500000 --warmup 2 --seconds 5 --runs 3
      stop_server
      ;;
    ingest)
      start_server ingest
      bench ingest-sqlite ingest --senders 1000 --rate 0 --window 1 --warmup 2 --seconds 5 --runs 3
      stop_server
      # Open loop: commit latency at fixed rates below what the server sustains (a closed
      # loop of 1,000 senders measures only 1,000 / throughput, by Little's law).
      for rate in 3000 5000; do
        start_server "ingest-paced-$rate"
        bench "ingest-sqlite-paced-$((rate / 1000))k" ingest --senders 1000 --rate "$rate" --warmup 2 --seconds 5 --runs 3
        stop_server
      done
      ;;
    ingest-pg)
      services=$(mktemp -d /tmp/chatd-bench-services.XXXXXX)
      "$root/scripts/test-services.sh" start "$services" >/dev/null
      # shellcheck source=/dev/null
      source "$services/services.env"
      runuser -u postgres -- "$CHATD_TEST_PG_BIN/psql" -h 127.0.0.1 -p "$CHATD_TEST_PG_PORT" -U postgres \
        -qc "CREATE DATABASE bench OWNER chat" >/dev/null
      # The test cluster runs with fsync and full-page writes off; a benchmark of commits
      # runs with a production server's durability (chatd itself asks for synchronous_commit).
      runuser -u postgres -- "$CHATD_TEST_PG_BIN/psql" -h 127.0.0.1 -p "$CHATD_TEST_PG_PORT" -U postgres \
        -qc "ALTER SYSTEM SET fsync = on" -c "ALTER SYSTEM SET full_page_writes = on" \
        -c "SELECT pg_reload_conf()" >/dev/null
      start_server ingest-pg DB_HOST=127.0.0.1 DB_PORT="$CHATD_TEST_PG_PORT" DB_NAME=bench DB_USER=chat \
        DB_PASSWORD=chat REDIS_HOST=127.0.0.1 REDIS_PORT="$CHATD_TEST_REDIS_PORT" REDIS_PREFIX=bench:
      bench ingest-postgres ingest --senders 1000 --rate 0 --window 1 --warmup 2 --seconds 5 --runs 3
      stop_server
      # The paced run starts on a quiet cluster: without this, the checkpoint and autovacuum
      # of the closed loop's writes ran during it (p99 51.9 ms against 14-20 ms on a cluster
      # of its own).
      runuser -u postgres -- "$CHATD_TEST_PG_BIN/psql" -h 127.0.0.1 -p "$CHATD_TEST_PG_PORT" -U postgres \
        -qc "DROP DATABASE bench" -c "CHECKPOINT" >/dev/null
      runuser -u postgres -- "$CHATD_TEST_PG_BIN/psql" -h 127.0.0.1 -p "$CHATD_TEST_PG_PORT" -U postgres \
        -qc "CREATE DATABASE bench_paced OWNER chat" >/dev/null
      start_server ingest-pg-paced DB_HOST=127.0.0.1 DB_PORT="$CHATD_TEST_PG_PORT" DB_NAME=bench_paced \
        DB_USER=chat DB_PASSWORD=chat REDIS_HOST=127.0.0.1 REDIS_PORT="$CHATD_TEST_REDIS_PORT" \
        REDIS_PREFIX=bench_paced:
      bench ingest-postgres-paced-3k ingest --senders 1000 --rate 3000 --warmup 2 --seconds 5 --runs 3
      stop_server
      "$root/scripts/test-services.sh" stop "$services" >/dev/null
      services=""
      ;;
    history)
      # A chat of a million messages, filled through the API first (a few minutes).
      start_server history
      bench history history --history-messages 1000000 --http-connections 32 --warmup 2 --seconds 5 --runs 3
      stop_server
      ;;
    search)
      # 10,000 messages of 200 words each, every word an "a" and six random letters, in a
      # chat the searcher is not in; then prefixes of 1, 2 and 3 letters and a whole word.
      start_server search
      bench search search --search-messages 10000 --search-words 200 --http-connections 8 --warmup 1 --seconds 3 --runs 3
      stop_server
      # The same by a searcher in 100 groups of its own, the match in the first.
      start_server search-100-chats
      bench search-100-chats search --search-chats 100 --search-messages 10000 --search-words 200 --http-connections 8 --warmup 1 --seconds 3 --runs 3
      stop_server
      ;;
    reconnect)
      sockets=$(( fds - 500 < 19000 ? fds - 500 : 19000 ))
      start_server reconnect
      bench reconnect reconnect --sockets "$sockets" --storm-seconds 5 --runs 3 --setup-connections 32
      stop_server
      # The same clients back twice as fast as the server can take them: its capacity.
      start_server reconnect-burst
      bench reconnect-burst reconnect --sockets "$sockets" --storm-seconds 2 --runs 3 --setup-connections 32
      stop_server
      ;;
    idle)
      # Both processes need a descriptor per socket, plus some to spare.
      sockets=$(( fds - 500 < 19000 ? fds - 500 : 19000 ))
      start_server idle WS_IDLE_TIMEOUT=20
      bench idle idle --sockets "$sockets" --idle-seconds 20 --setup-connections 32
      stop_server
      ;;
    *)
      echo "unknown scenario: $s" >&2
      exit 2
      ;;
  esac
done
python3 "$root/bench/report.py" "$results"
