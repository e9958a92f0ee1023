#!/usr/bin/env bash
# pec-mcp as a shared service on one machine, without containers: the same topology as compose.yaml, from
# Debian's packages. PostgreSQL 15, a one-shot `pec-mcp migrate`, two `pec-mcp serve --transport http` replicas,
# and nginx in front (deploy/nginx.conf: round robin, no sticky sessions).
#
#   deploy/local.sh start RUN_DIR   start everything; RUN_DIR keeps the database, logs and process ids
#   deploy/local.sh stop RUN_DIR    stop what start started (by its process ids), keep the data
#   deploy/local.sh run RUN_DIR     start, wait for Ctrl-C, stop
#
# Settings come from the environment and from ENV_FILE (default deploy/pec-mcp.env when it exists): the same
# PEC_MCP_* keys as compose.yaml's env_file. PEC_MCP_STORE__URL is set here to the database this script runs; a
# missing PEC_MCP_HTTP__STATE_KEY is made once and kept in RUN_DIR. Ports (loopback): PROXY_PORT (8080),
# REPLICA_PORTS ("8001 8002"), PG_PORT (54329). PEC_MCP (default `pec-mcp`) is the command that runs pec-mcp.
# As root, PostgreSQL runs as the postgres user, which must be able to reach RUN_DIR.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
PROXY_PORT=${PROXY_PORT:-8080}
REPLICA_PORTS=${REPLICA_PORTS:-"8001 8002"}
PG_PORT=${PG_PORT:-54329}
PEC_MCP=${PEC_MCP:-pec-mcp}
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
READY_WITHIN=${READY_WITHIN:-120}  # seconds for each part to start answering, on a loaded machine

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 64; }
fail() { echo "local.sh: $*" >&2; exit 1; }

pg_bin() {
  local dir
  dir=$(pg_config --bindir 2>/dev/null || true)
  for candidate in "$dir" /usr/lib/postgresql/15/bin; do
    [ -n "$candidate" ] && [ -x "$candidate/initdb" ] && { echo "$candidate"; return; }
  done
  fail "PostgreSQL 15 server binaries not found (install the Debian package postgresql-15)"
}

as_pg() {  # PostgreSQL refuses to run as root
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {  # port, pid file (the process must stay alive), name
  local waited=0
  until listening "$1"; do
    if [ -n "$2" ] && ! kill -0 "$(cat "$2")" 2>/dev/null; then
      fail "$3 stopped while starting: see $RUN/logs/$3.log"
    fi
    sleep 0.2
    waited=$((waited + 1))
    [ "$waited" -lt $((READY_WITHIN * 5)) ] || fail "$3 did not answer on port $1 within ${READY_WITHIN}s"
  done
}

settings() {
  if [ -n "${ENV_FILE:-}" ] || [ -f "$HERE/pec-mcp.env" ]; then
    set -a
    # shellcheck disable=SC1090
    . "${ENV_FILE:-$HERE/pec-mcp.env}"
    set +a
  fi
  [ -f "$RUN/secrets/db_password" ] || fail "$RUN has no database: run start first"
  export PEC_MCP_STORE__URL="postgresql://pec:$(cat "$RUN/secrets/db_password")@127.0.0.1:$PG_PORT/pec"
  [ -n "${PEC_MCP_HTTP__STATE_KEY:-}" ] || PEC_MCP_HTTP__STATE_KEY=$(cat "$RUN/secrets/state_key")
  export PEC_MCP_HTTP__STATE_KEY
}

start_db() {
  local bin
  bin=$(pg_bin)
  mkdir -p "$RUN/postgres" "$RUN/secrets"
  chmod 700 "$RUN/secrets"
  if [ ! -f "$RUN/secrets/db_password" ]; then
    (umask 077; head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$RUN/secrets/db_password")
    (umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$RUN/secrets/state_key")
  fi
  [ "$(id -u)" = 0 ] && chown postgres "$RUN/postgres"
  if [ ! -f "$RUN/postgres/data/PG_VERSION" ]; then
    install -m 600 "$RUN/secrets/db_password" "$RUN/postgres/pwfile"
    [ "$(id -u)" = 0 ] && chown postgres "$RUN/postgres/pwfile"
    as_pg "$bin/initdb" -D "$RUN/postgres/data" -U pec --pwfile "$RUN/postgres/pwfile" --auth scram-sha-256 \
      -E UTF8 --locale C >"$RUN/logs/initdb.log" 2>&1 || fail "initdb failed: see $RUN/logs/initdb.log"
    rm -f "$RUN/postgres/pwfile"
  fi
  as_pg "$bin/pg_ctl" -D "$RUN/postgres/data" -l "$RUN/postgres/server.log" -w -t "$READY_WITHIN" \
    -o "-p $PG_PORT -k $RUN/postgres -c listen_addresses=127.0.0.1" start >/dev/null \
    || fail "PostgreSQL did not start: see $RUN/postgres/server.log"
  if ! PGPASSWORD=$(cat "$RUN/secrets/db_password") "$bin/psql" -h 127.0.0.1 -p "$PG_PORT" -U pec -d postgres \
      -tAc "SELECT 1 FROM pg_database WHERE datname = 'pec'" | grep -q 1; then
    PGPASSWORD=$(cat "$RUN/secrets/db_password") "$bin/createdb" -h 127.0.0.1 -p "$PG_PORT" -U pec pec
  fi
}

start_replicas() {
  local port
  for port in $REPLICA_PORTS; do
    # shellcheck disable=SC2086
    nohup $PEC_MCP serve --transport http --host 127.0.0.1 --port "$port" </dev/null \
      >"$RUN/logs/replica-$port.log" 2>&1 &
    echo $! >"$RUN/pids/replica-$port"
  done
  for port in $REPLICA_PORTS; do
    wait_port "$port" "$RUN/pids/replica-$port" "replica-$port"
  done
}

start_proxy() {
  local conf="$RUN/nginx/nginx.conf" first second
  read -r first second <<<"$REPLICA_PORTS"
  mkdir -p "$RUN/nginx/logs" "$RUN/nginx/tmp"
  sed -e "s/127\.0\.0\.1:8080;/127.0.0.1:$PROXY_PORT;/" -e "s/127\.0\.0\.1:8001;/127.0.0.1:$first;/" \
      -e "s/127\.0\.0\.1:8002;/127.0.0.1:$second;/" "$HERE/nginx.conf" >"$conf"
  "$NGINX" -p "$RUN/nginx" -c "$conf" -e "$RUN/nginx/logs/error.log" \
    || fail "nginx did not start: see $RUN/nginx/logs/error.log"
  wait_port "$PROXY_PORT" "" nginx
}

start() {
  command -v "$NGINX" >/dev/null 2>&1 || fail "nginx not found (install the Debian package nginx-light)"
  mkdir -p "$RUN/logs" "$RUN/pids"
  start_db
  settings
  # shellcheck disable=SC2086
  $PEC_MCP migrate >"$RUN/logs/migrate.log" 2>&1 || fail "pec-mcp migrate failed: see $RUN/logs/migrate.log"
  start_replicas
  start_proxy
  echo "pec-mcp is served at http://127.0.0.1:$PROXY_PORT/mcp (dashboard: /dashboard)"
}

stop() {
  local pidfile pid
  if [ -f "$RUN/nginx/nginx.pid" ]; then
    "$NGINX" -p "$RUN/nginx" -c "$RUN/nginx/nginx.conf" -e "$RUN/nginx/logs/error.log" -s quit || true
  fi
  for pidfile in "$RUN"/pids/replica-*; do
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    if kill "$pid" 2>/dev/null; then
      for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
  done
  if [ -f "$RUN/postgres/data/postmaster.pid" ]; then
    as_pg "$(pg_bin)/pg_ctl" -D "$RUN/postgres/data" -m fast -w stop >/dev/null || true
  fi
  for _ in $(seq 1 50); do [ -f "$RUN/nginx/nginx.pid" ] || break; sleep 0.1; done
}

[ $# -eq 2 ] || usage
mkdir -p "$2"
RUN=$(cd "$2" && pwd)
case "$1" in
  start) start ;;
  stop) stop ;;
  run)
    trap stop EXIT
    start
    echo "Ctrl-C stops it." >&2
    while sleep 3600; do :; done
    ;;
  *) usage ;;
esac
