#!/usr/bin/env bash
# Starts (or stops) the throwaway PostgreSQL cluster and Redis server the tests use: both
# on 127.0.0.1, on free ports, with their data in a temporary folder. PostgreSQL refuses
# to run as root, so the cluster belongs to the `postgres` user.
#   start DIR   -> writes DIR/services.env with the CHATD_TEST_* variables
#   stop DIR
#
# The cluster's settings (port included) live in its postgresql.conf, so a test may stop,
# start or restart it with plain `pg_ctl -D $CHATD_TEST_PG_DATA ...` (as the postgres user)
# and it comes back on the same port. The role `chat` may create databases: the
# integration tests give every chatd deployment a fresh database of its own.
set -euo pipefail
cmd=${1:?start|stop}
dir=${2:?folder}
pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

case "$cmd" in
start)
  mkdir -p "$dir"
  chmod 755 "$dir"
  pg_port=$(free_port)
  redis_port=$(free_port)
  install -d -o postgres -g postgres -m 700 "$dir/pg"
  runuser -u postgres -- "$pg_bin/initdb" -D "$dir/pg/data" -A trust -U postgres -E UTF8 --locale=C.UTF-8 --no-sync >"$dir/pg/initdb.log"
  # Durability is not under test here: fsync off makes the suite fast. Several chatd nodes
  # and a test database per server need more connections than the default 100.
  cat >>"$dir/pg/data/postgresql.conf" <<CONF

# Test cluster (scripts/test-services.sh)
listen_addresses = '127.0.0.1'
port = $pg_port
unix_socket_directories = '$dir/pg'
fsync = off
full_page_writes = off
synchronous_commit = off
max_connections = 300
CONF
  runuser -u postgres -- "$pg_bin/pg_ctl" -D "$dir/pg/data" -l "$dir/pg/server.log" -w -t 60 start >/dev/null
  runuser -u postgres -- "$pg_bin/psql" -q -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres \
    -c "CREATE ROLE chat LOGIN CREATEDB PASSWORD 'chat'" -c "CREATE DATABASE chat OWNER chat" >/dev/null
  redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no --daemonize yes \
    --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --dir "$dir"
  for _ in $(seq 50); do redis-cli -h 127.0.0.1 -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  cat >"$dir/services.env" <<ENV
export CHATD_TEST_PG="host=127.0.0.1 port=$pg_port dbname=chat user=chat password=chat"
export CHATD_TEST_PG_PORT=$pg_port
export CHATD_TEST_PG_BIN=$pg_bin
export CHATD_TEST_PG_DATA=$dir/pg/data
export CHATD_TEST_PG_LOG=$dir/pg/server.log
export CHATD_TEST_REDIS_PORT=$redis_port
export CHATD_TEST_REDIS_PIDFILE=$dir/redis.pid
ENV
  echo "PostgreSQL on 127.0.0.1:$pg_port, Redis on 127.0.0.1:$redis_port"
  ;;
stop)
  if [[ -d "$dir/pg/data" ]]; then
    runuser -u postgres -- "$pg_bin/pg_ctl" -D "$dir/pg/data" -m immediate stop >/dev/null 2>&1 || true
  fi
  if [[ -f "$dir/redis.pid" ]]; then kill "$(cat "$dir/redis.pid")" 2>/dev/null || true; fi
  rm -rf "$dir"
  ;;
esac
