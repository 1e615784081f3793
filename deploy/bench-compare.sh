#!/usr/bin/env bash
# Two builds of presenced side by side with the bare Fiber baseline
# (BENCHMARKS.md): REST throughput (wrk: heartbeat, single read, batch of
# 50) and one change to 10,000 WebSocket subscribers, in alternating
# rounds, every server running for the whole comparison. The fan-out also
# runs against the write floor (the baseline with --serve-fanout direct:
# one send(2) per subscriber in a loop, what the frames cost the kernel and
# nothing more).
#
#   deploy/bench-compare.sh OLD_BIN_DIR NEW_BIN_DIR OUT_DIR [ROUNDS] [http|fanout|both]
#
# Each BIN_DIR holds presenced (and NEW_BIN_DIR presencectl, which drives
# every run). GOMAXPROCS, when set, applies to the three servers. Results:
# OUT_DIR/http.txt (round, route, target 1=baseline 2=old 3=new, req/s,
# the server's CPU ticks during the run, load average) and
# OUT_DIR/fanout.txt (the load generator's reports; target 8714 is the
# write floor, 8711 the bare broadcast server, 8712 old, 8713 new).
#
# PIN=1 runs the three servers on CPU 0 and the load generator and wrk on
# CPU 1. STEER=1 (as root; implies PIN=1) also steers loopback receive
# processing to CPU 1 (RPS: rps_cpus=2) and raises the receive backlog to
# 30,000 packets for the run, restoring both at the end: the clients' side
# of every TCP segment is then processed on the clients' CPU, as it would
# be on a client host, instead of being charged to the server that wrote
# it. Without the larger backlog CPU 1's queue of 1,000 packets overflows
# under a fan-out and the drops show up as 200 ms retransmissions
# (BENCHMARKS.md, "Session 5").
set -u
[ $# -ge 3 ] || { sed -n 2,27p "$0"; exit 2; }
OLD=$1 NEW=$2 OUT=$3 ROUNDS=${4:-3} WHAT=${5:-both}
CTL=$NEW/presencectl
S=bench-secret-0123456789abcdef0123
B="PRESENCE_STORE=memory PRESENCE_JWT_SECRET=$S PRESENCE_STANDALONE=true PRESENCE_WRITE_RATE=1e9"
mkdir -p "$OUT"
RPS=/sys/class/net/lo/queues/rx-0/rps_cpus
RESTORE=:
if [ "${STEER:-0}" = 1 ]; then
	PIN=1
	RESTORE="echo $(cat $RPS) >$RPS; sysctl -qw net.core.netdev_max_backlog=$(sysctl -n net.core.netdev_max_backlog)"
	echo 2 >$RPS && sysctl -qw net.core.netdev_max_backlog=30000 || { echo "STEER=1 needs root" >&2; exit 1; }
fi
SRV= LDG=
if [ "${PIN:-0}" = 1 ]; then SRV="taskset -c 0" LDG="taskset -c 1"; fi
echo "pin=${PIN:-0} lo_rps_cpus=$(cat $RPS 2>/dev/null) netdev_max_backlog=$(sysctl -n net.core.netdev_max_backlog 2>/dev/null) GOMAXPROCS=${GOMAXPROCS:-unset}" >"$OUT/setup.txt"
tmp=$(mktemp -d -t compare.XXXXXX)
$SRV $CTL bench --serve-baseline 127.0.0.1:8711 --serve-for 60m >"$OUT/baseline.log" 2>&1 &
BASE=$!
$SRV $CTL bench --serve-baseline 127.0.0.1:8714 --serve-fanout direct --serve-for 60m >"$OUT/floor.log" 2>&1 &
FLOOR=$!
env $B PRESENCE_HTTP_ADDR=127.0.0.1:8712 PRESENCE_PPROF_ADDR=127.0.0.1:6712 PRESENCE_DATA_DIR=$tmp/old $SRV "$OLD/presenced" >"$OUT/old.log" 2>&1 &
OLDP=$!
env $B PRESENCE_HTTP_ADDR=127.0.0.1:8713 PRESENCE_PPROF_ADDR=127.0.0.1:6713 PRESENCE_DATA_DIR=$tmp/new $SRV "$NEW/presenced" >"$OUT/new.log" 2>&1 &
NEWP=$!
trap 'kill $BASE $FLOOR $OLDP $NEWP 2>/dev/null; rm -rf "$tmp"; eval "$RESTORE"' EXIT
sleep 3
cpu() { awk '{print $14+$15}' /proc/$1/stat; }
load() { cut -d' ' -f1 /proc/loadavg; }

if [ "$WHAT" != fanout ]; then
	for n in 2 3; do $CTL bench --wrk-scripts $tmp/s$n --users 1000 --secret $S --url http://127.0.0.1:871$n >/dev/null; done
	echo "round route target reqs cpu_ticks load" >"$OUT/http.txt"
	for r in $(seq 1 "$ROUNDS"); do
		for s in heartbeat presence batch; do
			order="1 2 3"
			[ $((r % 2)) = 0 ] && order="1 3 2"
			for n in $order; do
				pid=$BASE sc=$tmp/s2
				[ $n = 2 ] && pid=$OLDP
				[ $n = 3 ] && pid=$NEWP sc=$tmp/s3
				c0=$(cpu $pid)
				rps=$($LDG wrk -t2 -c50 -d5s -s $sc/$s.lua http://127.0.0.1:871$n 2>/dev/null | awk '/Requests\/sec/ {print $2}')
				echo "$r $s $n $rps $(($(cpu $pid) - c0)) $(load)" >>"$OUT/http.txt"
			done
		done
	done
fi
if [ "$WHAT" != http ]; then
	k=0
	for r in $(seq 1 "$ROUNDS"); do
		for t in "8714 $FLOOR 8714" "8711 $BASE 8711" "8712 $OLDP 6712" "8713 $NEWP 6713"; do
			set -- $t
			k=$((k + 1))
			echo "== round $r target $1 load $(load) $(date +%T)" >>"$OUT/fanout.txt"
			$LDG $CTL bench --url http://127.0.0.1:$1 --secret $S --user-base $((7000000 + k * 100000)) \
				--users 10001 --contacts 0 --hot 1 --heartbeat-rate 0 --change-rate 2 --ramp 10s --duration 15s \
				--pprof-url http://127.0.0.1:$3 --pid $2 >>"$OUT/fanout.txt" 2>&1
		done
	done
fi
