#!/usr/bin/env bash
# The container's entrypoint, as the original's: waits for PostgreSQL and Redis (when
# DB_HOST / REDIS_HOST are set), applies the migrations, then runs chatd in the foreground
# (exec: SIGTERM from `docker stop` reaches chatd, which closes sockets with 1001).
#   chatd-entrypoint [serve]          the default command
#   chatd-entrypoint migrate|createsuperuser ...   any chatd command, after the waits
#   chatd-entrypoint bash             anything else runs as given, without waiting
# WAIT_TIMEOUT (seconds, default 60) bounds each wait; past it the container exits 1 with
# the reason. `make test` runs this script directly against real PostgreSQL and Redis.
set -euo pipefail

CHATD=${CHATD:-chatd}
WAIT_TIMEOUT=${WAIT_TIMEOUT:-60}

log() { echo "entrypoint: $*" >&2; }

# Until HOST:PORT accepts a TCP connection (bash's /dev/tcp: no client tools needed).
wait_for_port() {
  local what=$1 host=$2 port=$3 deadline=$((SECONDS + WAIT_TIMEOUT))
  until (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; do
    if ((SECONDS >= deadline)); then
      log "$what at $host:$port did not answer within ${WAIT_TIMEOUT}s"
      exit 1
    fi
    log "waiting for $what at $host:$port"
    sleep 1
  done
  log "$what at $host:$port is up"
}

# PostgreSQL accepts connections a moment before it accepts queries (and restarts once
# after its first initialisation): migrate until it succeeds, within the same bound.
migrate() {
  local deadline=$((SECONDS + WAIT_TIMEOUT))
  until "$CHATD" migrate; do
    if ((SECONDS >= deadline)); then
      log "migrations did not succeed within ${WAIT_TIMEOUT}s"
      exit 1
    fi
    log "migrate failed; retrying"
    sleep 1
  done
}

command=${1:-serve}
case "$command" in
  serve | migrate | createsuperuser) ;;
  -*) set -- serve "$@" ;;  # options only: for `chatd serve`
  *) exec "$@" ;;
esac
[[ $# -eq 0 ]] && set -- serve

# The waits read the environment (compose's env_file and environment). A .env file in the
# working folder is chatd's alone: without DB_HOST here, migrate's retries still cover a
# database that is starting, and chatd reconnects to Redis by itself.
if [[ -n "${DB_HOST:-}" ]]; then
  wait_for_port PostgreSQL "$DB_HOST" "${DB_PORT:-5432}"
fi
if [[ -n "${REDIS_HOST:-}" ]]; then
  wait_for_port Redis "$REDIS_HOST" "${REDIS_PORT:-6379}"
fi
if [[ "$1" == "serve" ]]; then
  migrate
fi
exec "$CHATD" "$@"
