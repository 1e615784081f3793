#!/usr/bin/env bash
# Reconnect storm on three presenced processes on loopback (BENCHMARKS.md,
# "Reconnect storm"): start the nodes, wait until they form a cluster,
# run `presencectl bench --scenario storm` draining node 1 (SIGTERM), stop
# the other two.
#
#   deploy/bench-storm.sh PRESENCED PRESENCECTL STORE OUT.json [bench flags...]
#
# STORE is "memory" or a PostgreSQL URL; for PostgreSQL a fresh schema
# (storm_<unix time>) is created for the nodes and dropped at the end
# (STORM_KEEP_SCHEMA=1 keeps it). The bench flags are
# added to (and may override) the defaults below. The nodes' logs stay in
# $STORM_DIR (default: a new temporary directory), printed at the end.
# STORM_PROFILE_AT=S also takes a 15 s CPU profile of node 2, S seconds
# after the bench starts.
set -euo pipefail
[ $# -ge 4 ] || { sed -n 2,16p "$0"; exit 2; }
bin=$1 ctl=$2 store=$3 out=$4
shift 4
secret=bench-secret-0123456789abcdef0123
dir=${STORM_DIR:-$(mktemp -d -t storm.XXXXXX)}
base=${STORM_PORT_BASE:-18700} # HTTP base+i, gossip base+10+i, remoting base+20+i, pprof base+30+i

pgbase=$store # the URL without the schema, to drop it at the end
if [ "$store" != memory ]; then
	schema=storm_$(date +%s)
	psql -q "$store" -c "CREATE SCHEMA $schema"
	case $store in *\?*) store="$store&search_path=$schema" ;; *) store="$store?search_path=$schema" ;; esac
fi

pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	if [ -n "${schema:-}" ] && [ -z "${STORM_KEEP_SCHEMA:-}" ]; then
		psql -q "$pgbase" -c "DROP SCHEMA $schema CASCADE" || true
	fi
}
trap cleanup EXIT
urls=()
for i in 1 2 3; do
	mkdir -p "$dir/data$i"
	env PRESENCE_STORE="$store" PRESENCE_JWT_SECRET=$secret PRESENCE_WRITE_RATE=-1 \
		PRESENCE_NODE_NAME=storm$i PRESENCE_SEEDS=127.0.0.1:$((base + 11)) \
		PRESENCE_HTTP_ADDR=127.0.0.1:$((base + i)) PRESENCE_GOSSIP_ADDR=127.0.0.1:$((base + 10 + i)) \
		PRESENCE_REMOTE_ADDR=127.0.0.1:$((base + 20 + i)) PRESENCE_PPROF_ADDR=127.0.0.1:$((base + 30 + i)) \
		PRESENCE_DATA_DIR="$dir/data$i" "$bin" >"$dir/node$i.log" 2>&1 &
	pids+=($!)
	urls+=("http://127.0.0.1:$((base + i))")
done
list=$(IFS=,; echo "${urls[*]}")

# Formed: every node answers /readyz and sees three alive members.
for _ in $(seq 60); do
	formed=1
	for u in "${urls[@]}"; do
		n=$("$ctl" cluster --url "$u" --secret $secret --json 2>/dev/null | grep -o '"status":"alive"' | wc -l || true)
		[ "$n" = 3 ] || formed=0
	done
	[ $formed = 1 ] && break
	sleep 1
done
[ $formed = 1 ] || { echo "cluster did not form; logs in $dir" >&2; exit 1; }

echo "nodes: ${pids[*]} (node 1 drains); logs in $dir; load: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
if [ -n "${STORM_PROFILE_AT:-}" ]; then
	# A 15 s CPU profile of node 2 from STORM_PROFILE_AT seconds after the
	# bench starts (ramp + settle + --drain-after: the drain).
	(sleep "$STORM_PROFILE_AT"; curl -s -o "$dir/node2.cpu.pprof" "http://127.0.0.1:$((base + 32))/debug/pprof/profile?seconds=15") &
fi
rc=0
"$ctl" bench --scenario storm --url "$list" --drain-url "${urls[0]}" --drain-pid "${pids[0]}" --pid "$(IFS=,; echo "${pids[*]}")" --secret $secret \
	--user-base 6000000 --users 15000 --contacts 10 --heartbeat-rate 100 --change-rate 100 \
	--ramp 20s --duration 25s --drain-after 5s --grace 3s --json "$out" "$@" || rc=$?
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg); logs in $dir" >&2
exit $rc
