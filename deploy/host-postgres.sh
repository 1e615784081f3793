#!/usr/bin/env bash
# Opens a PostgreSQL server on this Debian host to containers, for
# docker-compose.host-postgres.yml (and the container test suite), and
# prints the lines to export:
#
#   vars=$(sudo bash deploy/host-postgres.sh) && eval "$vars"
#   # PRESENCE_STORE          the URL containers use (host.docker.internal)
#   # PRESENCE_CT_HOST_STORE  the same database from the host (127.0.0.1)
#
# (Assign first, then eval: `eval "$(...)"` returns 0 even when the script
# or sudo failed.) With --env-file FILE it prints nothing and writes
# PRESENCE_STORE=... into FILE instead (replacing an earlier line), so
# compose finds it in deploy/.env with nothing exported:
#
#   sudo bash deploy/host-postgres.sh --env-file deploy/.env
#
# It starts (installing if needed) the server with .ci/postgres.sh: role and
# database presence/presence, cluster PRESENCE_PG_CLUSTER (default main) on
# port PRESENCE_PG_PORT (default 5432). Then it makes the server listen on the
# Docker bridge gateway as well as on localhost (containers reach the host
# there: `extra_hosts: host.docker.internal:host-gateway`) and lets the
# presence role log in with its password from Docker's address pools
# (172.16.0.0/12 and 192.168.0.0/16; private to this machine). Idempotent:
# it restarts the server only when listen_addresses changed and reloads it
# only when pg_hba.conf changed. Progress goes to stderr.
#
# The container suite (make test-containers) runs it with
# PRESENCE_PG_CLUSTER=containers PRESENCE_PG_PORT=5433, a second cluster, so
# the 5432 one that `make test` uses is never restarted under other tests.
set -euo pipefail
cd "$(dirname "$0")/.."

PG_PORT=${PRESENCE_PG_PORT:-5432}
CLUSTER=${PRESENCE_PG_CLUSTER:-main}
export PRESENCE_PG_PORT=$PG_PORT PRESENCE_PG_CLUSTER=$CLUSTER

log() { echo "host-postgres.sh: $*" >&2; }

env_file=
case "${1:-}" in
  --env-file)
    env_file=${2:?--env-file needs a file name}
    ;;
  "") ;;
  *)
    log "unknown argument $1 (want --env-file FILE or nothing)"
    exit 2
    ;;
esac

if [ "$(id -u)" -ne 0 ]; then
  log "must run as root (configures and restarts PostgreSQL)"
  exit 1
fi
if ! command -v docker >/dev/null 2>&1; then
  log "docker is not installed"
  exit 1
fi

# 1. The server, role and database (installs, creates and starts as needed).
host_url=$(bash .ci/postgres.sh | sed -n 's/^export PRESENCE_TEST_POSTGRES=//p')
if [ -z "$host_url" ]; then
  log ".ci/postgres.sh printed no URL"
  exit 1
fi
PG_VERSION=$(ls /usr/lib/postgresql | sort -V | tail -n1)
CONF_DIR=/etc/postgresql/$PG_VERSION/$CLUSTER
HBA=$CONF_DIR/pg_hba.conf

# 2. The address containers reach the host at: the gateway of Docker's default
#    bridge, which is what "host-gateway" in extra_hosts resolves to.
gateway=$(docker network inspect bridge -f '{{range .IPAM.Config}}{{.Gateway}} {{end}}' | awk '{print $1}')
if [ -z "$gateway" ]; then
  # The default bridge often lists only its subnet: read its interface.
  bridge_if=$(docker network inspect bridge -f '{{index .Options "com.docker.network.bridge.name"}}' 2>/dev/null || true)
  gateway=$(ip -4 -o addr show "${bridge_if:-docker0}" 2>/dev/null | awk '{split($4, a, "/"); print a[1]; exit}')
fi
if [ -z "$gateway" ]; then
  log "cannot find the gateway of Docker's bridge network"
  exit 1
fi

# 3. listen_addresses: localhost and the gateway (never '*').
want_listen="localhost,$gateway"
have_listen=$(pg_conftool -s "$PG_VERSION" "$CLUSTER" show listen_addresses 2>/dev/null || echo localhost)
have_listen=${have_listen//\'/}
restart=no
if [ "$have_listen" != "$want_listen" ]; then
  log "listen_addresses: '$have_listen' -> '$want_listen'"
  pg_conftool "$PG_VERSION" "$CLUSTER" set listen_addresses "$want_listen" >&2
  restart=yes
fi

# 4. pg_hba.conf: password logins of the presence role from Docker networks.
reload=no
marker="# presence: containers (deploy/host-postgres.sh)"
if ! grep -qF "$marker" "$HBA"; then
  log "allowing presence logins from Docker networks in $HBA"
  {
    echo "$marker"
    echo "host    presence    presence    172.16.0.0/12     scram-sha-256"
    echo "host    presence    presence    192.168.0.0/16    scram-sha-256"
  } >>"$HBA"
  reload=yes
fi

if [ "$restart" = yes ]; then
  log "restarting cluster $PG_VERSION/$CLUSTER"
  pg_ctlcluster "$PG_VERSION" "$CLUSTER" restart >&2
elif [ "$reload" = yes ]; then
  pg_ctlcluster "$PG_VERSION" "$CLUSTER" reload >&2
fi

# 5. Check it answers on the gateway address. (Only the listener: a login
#    from the host itself may come from an address outside the Docker pools;
#    the container suite checks a login from a container.)
for i in $(seq 1 60); do
  if pg_isready -q -h "$gateway" -p "$PG_PORT"; then
    break
  fi
  if [ "$i" -eq 60 ]; then
    log "the server does not answer at $gateway:$PG_PORT"
    exit 1
  fi
  sleep 0.5
done
log "ready: containers use host.docker.internal:$PG_PORT ($gateway)"
container_url=${host_url/@127.0.0.1:/@host.docker.internal:}
if [ -n "$env_file" ]; then
  # Rewritten through cat so an existing file keeps its owner and mode.
  tmp=$(mktemp)
  { grep -v '^PRESENCE_STORE=' "$env_file" 2>/dev/null || true; echo "PRESENCE_STORE=$container_url"; } >"$tmp"
  new=no
  [ -e "$env_file" ] || new=yes
  cat "$tmp" >"$env_file"
  rm -f "$tmp"
  if [ "$new" = yes ] && [ -n "${SUDO_UID:-}" ]; then
    chown "$SUDO_UID:${SUDO_GID:-$SUDO_UID}" "$env_file"
  fi
  log "wrote PRESENCE_STORE to $env_file"
  exit 0
fi
echo "export PRESENCE_STORE='$container_url'"
echo "export PRESENCE_CT_HOST_STORE='$host_url'"
