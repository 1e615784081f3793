#!/usr/bin/env bash
# Starts a PostgreSQL server for the PostgreSQL store tests on a Debian
# machine (run as root), and prints the line to export:
#
#   eval "$(bash .ci/postgres.sh)"   # sets PRESENCE_TEST_POSTGRES
#
# Idempotent: installs the server only if it is missing, creates the
# cluster only if there is none, starts it only if it is down, and
# (re)creates the role and database only if they are missing. Progress goes
# to stderr; stdout carries only the export line.
set -euo pipefail

PG_USER=presence
PG_PASSWORD=presence
PG_DB=presence
PG_PORT=${PRESENCE_PG_PORT:-5432} # override only to run a second server beside one on 5432
CLUSTER=${PRESENCE_PG_CLUSTER:-main} # likewise

log() { echo "postgres.sh: $*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
  log "must run as root (installs packages and runs pg_ctlcluster)"
  exit 1
fi

# 1. The server: Debian's postgresql package (version 15 on bookworm) with
#    postgresql-common's pg_ctlcluster/pg_createcluster wrappers.
if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  log "installing postgresql from the Debian packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
fi
PG_VERSION=$(ls /usr/lib/postgresql | sort -V | tail -n1)
log "PostgreSQL $PG_VERSION"

# 2. The cluster. The package normally creates <version>/main; a machine
#    where it was not created (or was dropped) gets one here.
if ! pg_lsclusters -h | awk -v v="$PG_VERSION" -v c="$CLUSTER" '$1 == v && $2 == c { found = 1 } END { exit !found }'; then
  log "creating cluster $PG_VERSION/$CLUSTER on port $PG_PORT"
  # A minimal container may have no locale configured; C.UTF-8 always exists.
  LANG=C.UTF-8 LC_ALL=C.UTF-8 pg_createcluster --port "$PG_PORT" "$PG_VERSION" "$CLUSTER" >&2
fi
port=$(pg_lsclusters -h | awk -v v="$PG_VERSION" -v c="$CLUSTER" '$1 == v && $2 == c { print $3 }')
if [ "$port" != "$PG_PORT" ]; then
  log "cluster $PG_VERSION/$CLUSTER is configured for port $port; moving it to $PG_PORT"
  pg_ctlcluster "$PG_VERSION" "$CLUSTER" stop >/dev/null 2>&1 || true
  pg_conftool "$PG_VERSION" "$CLUSTER" set port "$PG_PORT" >&2
fi
# Debian's default listen_addresses ('localhost') covers 127.0.0.1, and its
# pg_hba.conf allows password (scram-sha-256) logins from 127.0.0.1/32.

# 3. Start it (pg_ctlcluster run as root starts the server as the postgres
#    user). Without systemd there is nothing else to start it.
mkdir -p /var/run/postgresql
chown postgres:postgres /var/run/postgresql
if ! pg_lsclusters -h | awk -v v="$PG_VERSION" -v c="$CLUSTER" '$1 == v && $2 == c && $4 == "online" { found = 1 } END { exit !found }'; then
  log "starting cluster $PG_VERSION/$CLUSTER"
  pg_ctlcluster "$PG_VERSION" "$CLUSTER" start >&2
fi

# 4. Wait until it accepts connections on the address the tests use.
for i in $(seq 1 60); do
  if pg_isready -q -h 127.0.0.1 -p "$PG_PORT"; then
    break
  fi
  if [ "$i" -eq 60 ]; then
    log "server did not accept connections on 127.0.0.1:$PG_PORT within 30s"
    tail -n 30 "/var/log/postgresql/postgresql-$PG_VERSION-$CLUSTER.log" >&2 || true
    exit 1
  fi
  sleep 0.5
done

# 5. Role and database, over the local socket as the postgres superuser.
psql_admin() { runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$PG_PORT" "$@"; }
psql_admin -d postgres >&2 <<SQL
SELECT 'CREATE ROLE $PG_USER LOGIN'
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_USER') \gexec
ALTER ROLE $PG_USER WITH LOGIN PASSWORD '$PG_PASSWORD';
SELECT 'CREATE DATABASE $PG_DB OWNER $PG_USER'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$PG_DB') \gexec
SQL

URL="postgres://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/$PG_DB?sslmode=disable"

# 6. Check the URL itself works (password auth over TCP).
if ! PGCONNECT_TIMEOUT=5 psql -X -q -d "$URL" -c 'SELECT 1' >/dev/null; then
  log "cannot log in with $URL"
  exit 1
fi
log "ready"
echo "export PRESENCE_TEST_POSTGRES=$URL"
