#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
#
# run.sh: the socketmap benchmark, in one run and under the same
# conditions for every server (DESIGN 7):
#
#   1. floor      bench/floor, the fixed-reply server: the machine's floor
#   2. tlspolicyd our daemon, with a store of BENCH_POLICIES policies made
#                 by bench/filldb.sh, keys cycling over BENCH_KEYS of them
#   3. peer       postfix-mta-sts-resolver (mta-sts-daemon), if installed,
#                 with its SQLite cache pre-filled with the same policies
#
# Each server runs on CPU 0 and the load generator on CPU 1 (taskset).
# For each server: start it, time exec -> first answered request, send
# every key once (a cold pass that fills memory caches), then the measured
# closed-loop run (BENCH_CONNS connections, BENCH_WARMUP s warm-up,
# BENCH_DURATION s measured), then read its VmRSS and stop it.
#
# Usage: bench/run.sh [BUILDDIR]   (default: the current directory)
# It builds nothing: run `make bench/loadgen bench/floor tlspolicyd` first.
# Environment: BENCH_POLICIES (1000000), BENCH_KEYS (50000), BENCH_CONNS
# (100), BENCH_DURATION (10), BENCH_WARMUP (2), BENCH_PEER (1; 0 skips the
# peer), BENCH_KEEP (0; 1 keeps the temp directory with the logs).
set -eu

build=$(cd "${1:-.}" && pwd)
src=$(cd "$(dirname "$0")/.." && pwd)
policies=${BENCH_POLICIES:-1000000}
nkeys=${BENCH_KEYS:-50000}
conns=${BENCH_CONNS:-100}
duration=${BENCH_DURATION:-10}
warmup=${BENCH_WARMUP:-2}
peer=${BENCH_PEER:-1}
keep=${BENCH_KEEP:-0}

loadgen=$build/bench/loadgen
floor=$build/bench/floor
daemon=$build/tlspolicyd
for b in "$loadgen" "$floor" "$daemon"; do
	[ -x "$b" ] || {
		echo "run.sh: $b missing: build it first" \
			"(make bench/loadgen bench/floor tlspolicyd)" >&2
		exit 2
	}
done
command -v sqlite3 >/dev/null || { echo "run.sh: needs sqlite3" >&2; exit 2; }

# Pin the server to CPU 0 and the client to CPU 1 when there are two.
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
	on_server="taskset -c 0"
	on_client="taskset -c 1"
	pinning="server on CPU 0, loadgen on CPU 1"
else
	on_server=""
	on_client=""
	pinning="not pinned (needs taskset and 2 CPUs)"
fi

tmp=$(mktemp -d /tmp/tlspolicyd-bench.XXXXXX)
pids=""

# Stop exactly the processes this script started, then clean up.
cleanup() {
	for p in $pids; do
		kill "$p" 2>/dev/null || true
	done
	for p in $pids; do
		wait "$p" 2>/dev/null || true
	done
	if [ "$keep" = 1 ]; then
		echo "run.sh: logs kept in $tmp" >&2
	else
		rm -rf "$tmp"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now_ns() {
	date +%s%N
}

# start NAME SOCKET CMD...: start a server pinned to the server CPU, wait
# until it answers one request, and set $pid and $ready_ms.
start() {
	name=$1
	sock=$2
	shift 2
	t0=$(now_ns)
	$on_server "$@" >"$tmp/$name.log" 2>&1 &
	pid=$!
	pids="$pids $pid"
	tries=0
	until out=$("$loadgen" -u "$sock" -R 1 -k "$tmp/keys" -n 1); do
		tries=$((tries + 1))
		if ! kill -0 "$pid" 2>/dev/null || [ $tries -ge 30 ]; then
			echo "run.sh: $name did not answer (exited, or 30 s" \
				"passed); its log:" >&2
			tail -n 20 "$tmp/$name.log" >&2
			exit 1
		fi
	done
	t1=$(echo "$out" | sed -n 's/^READY realtime_ns=\([0-9]*\).*/\1/p')
	ready_ms=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", (b - a) / 1e6 }')
	echo "$name: ready after $ready_ms ms: $(echo "$out" | sed -n 's/.*reply=//p')"
}

# stop: stop the server started last.
stop() {
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	pids=$(echo "$pids" | sed "s/ $pid\$//; s/ $pid / /")
}

# field NAME KEY [FILE]: a value from the RESULT line saved for NAME
# (the measured run; FILE "cold" for the cold pass).
field() {
	sed -n "s/^RESULT.*[ ]$2=\([0-9.]*\).*/\1/p" "$tmp/$1.${3:-result}"
}

# measure NAME SOCKET: cold pass over the keys, then the measured run.
measure() {
	echo "$1: cold pass over $nkeys keys"
	$on_client "$loadgen" -u "$2" -c "$conns" -o -k "$tmp/keys" \
		-n "$nkeys" -q >"$tmp/$1.cold" || true
	sed -n 's/^RESULT /  /p' "$tmp/$1.cold"
	echo "$1: $conns connections, ${warmup} s warm-up, ${duration} s measured"
	$on_client "$loadgen" -u "$2" -c "$conns" -d "$duration" \
		-w "$warmup" -k "$tmp/keys" -n "$nkeys" >"$tmp/$1.out" || true
	sed 's/^/  /' "$tmp/$1.out"
	grep '^RESULT ' "$tmp/$1.out" >"$tmp/$1.result" || {
		echo "run.sh: $1: no RESULT from loadgen" >&2
		exit 1
	}
	rss_kib=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status")
	hwm_kib=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status")
	echo "$1: VmRSS $rss_kib KiB (peak $hwm_kib KiB)"
	echo "$rss_kib $hwm_kib $ready_ms" >"$tmp/$1.mem"
}

# busy: percent of all CPU time used during one second (by anyone), so
# a run on a machine that is not quiet says so.
busy() {
	s1=$(head -n 1 /proc/stat)
	sleep 1
	s2=$(head -n 1 /proc/stat)
	echo "$s1 $s2" | awk '{
		for (i = 2; i <= 11; i++) { t1 += $i; t2 += $(i + 11) }
		idle1 = $5 + $6; idle2 = $16 + $17
		d = t2 - t1
		printf "%.0f", (d > 0 ? 100 * (1 - (idle2 - idle1) / d) : 0)
	}'
}

echo "== tlspolicyd socketmap benchmark, $(date -u +%Y-%m-%dT%H:%MZ)"
echo "   $(nproc) CPUs ($(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n 1)), $pinning"
echo "   $policies policies, $nkeys keys, $conns connections"

"$src/bench/filldb.sh" "$tmp/cache.db" "$policies" "$tmp/keys" "$nkeys"
load_before=$(busy)
echo "   CPU busy before the runs: $load_before % (should be near 0)"

# 1. The floor.
start floor "$tmp/floor.sock" "$floor" -u "$tmp/floor.sock"
measure floor "$tmp/floor.sock"
stop

# 2. tlspolicyd at default settings (DESIGN 5), on the filled store. No
# DNS is reachable here, so live DANE / MTA-STS resolution is off: this
# measures the cached-lookup path (memory index, store), which is what
# serves nearly every lookup of a running daemon.
cat >"$tmp/tlspolicyd.conf" <<EOF
[server]
socketmap = unix:$tmp/smap.sock
query_socket = unix:$tmp/query.sock
admin_socket = unix:$tmp/admin.sock
socketmap_group =
user =
[dane]
enabled = no
[sts]
enabled = no
[cache]
path = $tmp/cache.db
EOF
start tlspolicyd "$tmp/smap.sock" "$daemon" -f -c "$tmp/tlspolicyd.conf"
measure tlspolicyd "$tmp/smap.sock"
stop

# 3. The peer named by DESIGN 7. Its SQLite cache gets the same policies,
# stamped now, and cache_grace is longer than the run, so every answer
# comes from its cache and no DNS is needed (none is reachable here).
peer_ran=0
if [ "$peer" = 1 ] && command -v mta-sts-daemon >/dev/null; then
	now=$(date +%s)
	sqlite3 "$tmp/peer.db" >/dev/null <<EOF
PRAGMA journal_mode = WAL;
PRAGMA synchronous = OFF;
BEGIN;
CREATE TABLE IF NOT EXISTS proactive_fetch_ts (id integer primary key, last_fetch_ts integer);
CREATE TABLE IF NOT EXISTS sts_policy_cache (domain text, ts integer, pol_id text, pol_body text);
INSERT INTO sts_policy_cache
  WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < $policies)
  SELECT 'd' || i || '.bench.example', $now, 'id' || i,
    '{"version": "STSv1", "mode": "enforce", "mx": ["mx1.d' || i ||
    '.bench.example", "*.d' || i || '.bench.example"], "max_age": 604800}'
  FROM seq;
CREATE UNIQUE INDEX IF NOT EXISTS sts_policy_domain ON sts_policy_cache (domain);
CREATE INDEX IF NOT EXISTS sts_policy_domain_ts ON sts_policy_cache (domain, ts);
COMMIT;
PRAGMA wal_checkpoint(TRUNCATE);
EOF
	cat >"$tmp/peer.yml" <<EOF
path: "$tmp/peer.sock"
mode: 0600
cache_grace: 604800
cache:
  type: sqlite
  options:
    filename: "$tmp/peer.db"
default_zone:
  strict_testing: false
  timeout: 4
proactive_policy_fetching:
  enabled: false
EOF
	start mta-sts-daemon "$tmp/peer.sock" mta-sts-daemon -c "$tmp/peer.yml" -v warn
	measure mta-sts-daemon "$tmp/peer.sock"
	stop
	peer_ran=1
fi

# Summary: throughput as a ratio of the floor measured in this same run.
floor_rps=$(field floor rps)
echo
echo "== summary: ratio = requests/s relative to the floor in this run;"
echo "   cold_rps = the first pass over the keys (store, not memory)"
printf '%-15s %9s %6s %7s %7s %8s %8s %8s %7s %9s %s\n' server rps ratio \
	p50_us p99_us p999_us rss_MiB ready_ms errors cold_rps replies
servers="floor tlspolicyd"
[ $peer_ran = 1 ] && servers="$servers mta-sts-daemon"
for s in $servers; do
	read -r rss hwm rdy <"$tmp/$s.mem"
	printf '%-15s %9s %6s %7s %7s %8s %8s %8s %7s %9s ok=%s nf=%s temp=%s other=%s\n' \
		"$s" "$(field $s rps)" \
		"$(awk -v a="$(field $s rps)" -v b="$floor_rps" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')" \
		"$(field $s p50_us)" "$(field $s p99_us)" "$(field $s p999_us)" \
		"$(awk -v k="$rss" 'BEGIN { printf "%.1f", k / 1024 }')" \
		"$rdy" "$(field $s errors)" "$(field $s rps cold)" "$(field $s ok)" \
		"$(field $s notfound)" "$(field $s temp)" "$(field $s other)"
done
if [ $peer_ran = 0 ]; then
	echo "(postfix-mta-sts-resolver not run: not installed or BENCH_PEER=0)"
fi
load_after=$(busy)
echo "CPU busy before/after the runs: $load_before % / $load_after %"
if [ "$load_before" -gt 10 ] || [ "$load_after" -gt 10 ]; then
	echo "warning: the machine was not quiet; the figures are noisy"
fi

# The targets of the foundation issue, for tlspolicyd.
read -r rss hwm rdy <"$tmp/tlspolicyd.mem"
verdict() {
	if [ "$1" = 1 ]; then echo met; else echo MISSED; fi
}
echo
echo "== tlspolicyd targets ($policies policies, default settings)"
echo "throughput >= 0.50 x floor: $(verdict "$(awk -v a="$(field tlspolicyd rps)" -v b="$floor_rps" 'BEGIN { print (b > 0 && a / b >= 0.5) }')")"
echo "p99 <= 1000 us:             $(verdict "$(awk -v a="$(field tlspolicyd p99_us)" 'BEGIN { print (a <= 1000) }')")"
echo "RSS <= 64 MiB:              $(verdict "$(awk -v a="$rss" 'BEGIN { print (a <= 65536) }')")"
echo "start-up to ready <= 1 s:   $(verdict "$(awk -v a="$rdy" 'BEGIN { print (a <= 1000) }')")"
if [ "$(field tlspolicyd ok)" != "$(field tlspolicyd total)" ]; then
	echo "warning: not every tlspolicyd answer was OK: the store did not" \
		"serve every key, so the figures do not measure the cached path"
fi
