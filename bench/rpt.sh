#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
#
# rpt.sh: the TLS-RPT benchmark (issue 5, issue 10 item 15). Never part of
# `make check`.
#
#   1. ingest   bench/rptsend -b (blocking senders, nothing lost) sends
#               BENCH_INGEST datagrams as fast as the daemon takes them:
#               the daemon's datagram ingest rate (target >= 100,000/s);
#   2. steady   BENCH_SENDERS non-blocking senders (MSG_DONTWAIT, like
#               libtlsrpt in Postfix's smtp processes) at a steady
#               BENCH_RATE per second for BENCH_SECS seconds while
#               bench/loadgen keeps the daemon's loop busy with socketmap
#               lookups (100 connections, closed loop): datagrams refused
#               by the kernel are lost (target: none at 50,000/s), run
#               once with Linux's default net.unix.max_dgram_qlen (10)
#               and once with 512 (what systemd machines set);
#   3. aggregate bench/rptagg: a day of BENCH_SESSIONS sessions over
#               BENCH_DOMAINS domains in a fresh report store, then every
#               domain's report built (JSON + gzip) as the sender does
#               (target <= 60 s for 10,000,000 over 100,000).
#
# The daemon runs in a network namespace of its own (unshare -n: nothing
# can leave the machine, and max_dgram_qlen, a per-namespace setting, is
# changed there only), with [dane] and [sts] off (no lookups) and the
# TLS-RPT collector on. Run as root from a configured build directory:
#   make tlspolicyd tlspolicy bench/rptsend bench/rptagg bench/loadgen
#   ../bench/rpt.sh .
# Needs the sqlite3 CLI (package sqlite3) to read the store.
# Environment: BENCH_INGEST (1000000), BENCH_RATE (50000), BENCH_SECS (10),
# BENCH_SENDERS (8), BENCH_SESSIONS (10000000), BENCH_DOMAINS (100000),
# BENCH_AGG (1; 0 skips step 3), BENCH_KEEP (0; 1 keeps the temp dir).
#
# BENCH_PG=1 runs only the store comparison instead (issue 13): step 1
# (net.unix.max_dgram_qlen 512) once with the SQLite store and once with
# a PostgreSQL store ([tlsrpt] store = a URI; a PostgreSQL 15 started as
# nobody in the temp dir, Unix socket only), each timed until every
# session is committed in its store -- for PostgreSQL, until the pushes
# from the spool have added them to the shared tables -- and prints the
# ratio. Needs /usr/lib/postgresql/15/bin.
set -eu

build=$(cd "${1:-.}" && pwd)
ingest=${BENCH_INGEST:-1000000}
rate=${BENCH_RATE:-50000}
secs=${BENCH_SECS:-10}
senders=${BENCH_SENDERS:-8}
sessions=${BENCH_SESSIONS:-10000000}
domains=${BENCH_DOMAINS:-100000}
agg=${BENCH_AGG:-1}
keep=${BENCH_KEEP:-0}
[ "${BENCH_PG:-0}" = 0 ] || agg=0

for b in tlspolicyd tlspolicy bench/rptsend bench/rptagg bench/loadgen; do
	[ -x "$build/$b" ] || {
		echo "rpt.sh: $build/$b missing (make $b)" >&2
		exit 1
	}
done

if [ "${RPT_SH_INNER:-}" = "" ]; then
	[ "$(id -u)" = 0 ] || {
		echo "rpt.sh: run as root (unshare -n)" >&2
		exit 1
	}
	tmp=$(mktemp -d /tmp/rpt-bench.XXXXXX)
	chmod 755 "$tmp"
	[ "$keep" = 1 ] || trap 'rm -rf "$tmp"' EXIT
	echo "rpt.sh: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
	RPT_SH_INNER=1 RPT_SH_TMP=$tmp unshare -n "$0" "$build"
	if [ "$agg" = 1 ]; then
		echo "aggregate: $sessions sessions over $domains domains"
		"$build/bench/rptagg" "$tmp/agg.db" "$sessions" "$domains" |
			sed 's/^/  /'
	fi
	exit 0
fi

# --- inside the network namespace -------------------------------------
tmp=$RPT_SH_TMP
pid=
stop() {
	if [ -n "$pid" ]; then
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	pid=
}
trap stop EXIT

i=0
while [ $i -lt 1000 ]; do
	echo "d$i.bench.example"
	i=$((i + 1))
done >"$tmp/keys"

# total: sessions counted in the store (all domains, all days); the
# committed ones, read with the sqlite3 CLI (WAL: no lock on the daemon).
total() {
	if [ -n "${pguri:-}" ]; then
		"$pgbin/psql" -X -q -t -A -c "SELECT coalesce(sum(total), 0) \
			FROM tlsrpt_policies" "$pguri" 2>/dev/null || echo 0
		return
	fi
	sqlite3 "$tmp/state/tlsrpt.db" \
		"SELECT coalesce(sum(total), 0) FROM policies" 2>/dev/null ||
		echo 0
}

counter() {
	sqlite3 "$tmp/state/tlsrpt.db" "SELECT coalesce(sum(value), 0) \
		FROM counters WHERE name = '$1'" 2>/dev/null || echo 0
}

# start QLEN: a fresh daemon and store with net.unix.max_dgram_qlen QLEN.
start() {
	stop
	echo "$1" >/proc/sys/net/unix/max_dgram_qlen
	rm -rf "$tmp/state" "$tmp/run"
	mkdir -p "$tmp/state"
	cat >"$tmp/conf" <<-EOF
	[server]
	socketmap = unix:$tmp/smap.sock
	socketmap_group =
	query_socket = unix:$tmp/query.sock
	user =
	[dane]
	enabled = no
	[sts]
	enabled = no
	[cache]
	path = $tmp/state/cache.db
	[tlsrpt]
	enabled = yes
	socket = $tmp/run/tlsrpt.sock
	socket_group =
	grace = 86400
	store = ${pguri:-}
	organization = Bench Org
	contact = mailto:tlsrpt@bench.example
	submitter = bench.example
	from = tlsrpt@bench.example
	EOF
	"$build/tlspolicyd" -f -c "$tmp/conf" >"$tmp/daemon-$1.log" 2>&1 &
	pid=$!
	"$build/bench/loadgen" -u "$tmp/smap.sock" -R 10 -k "$tmp/keys" \
		-n 1 >/dev/null
}

# settle N: wait until N sessions are in the store (commits every tick),
# at most 120 s. Polled every half second: a reader that never stops
# keeps SQLite from checkpointing the daemon's WAL and slows it down.
settle() {
	t=0
	while [ "$(total)" -lt "$1" ] && [ $t -lt 240 ]; do
		sleep 0.5
		t=$((t + 1))
	done
}

# ingest_rate: step 1 with qlen 512 into the store of $pguri (empty:
# SQLite); prints the line, leaves the rate in $rate_out.
ingest_rate() {
	start 512
	t0=$(date +%s.%N)
	"$build/bench/rptsend" -s "$tmp/run/tlsrpt.sock" -n "$ingest" -p 2 \
		-b -d 1000 | sed 's/^/  /'
	settle "$ingest"
	t1=$(date +%s.%N)
	rate_out=$(echo "$t0 $t1 $ingest" |
		awk '{ printf "%.0f", $3 / ($2 - $1) }')
	echo "  counted: $(total) of $ingest; until committed:" \
		"$(echo "$t0 $t1" | awk '{ printf "%.1f s", $2 - $1 }')," \
		"$rate_out/s"
}

if [ "${BENCH_PG:-0}" = 1 ]; then
	pgbin=/usr/lib/postgresql/15/bin
	mkdir "$tmp/pg"
	chown nobody:nogroup "$tmp/pg"
	runuser -u nobody -- "$pgbin/initdb" -D "$tmp/pg/data" -A trust \
		-U tlspolicyd >/dev/null
	runuser -u nobody -- "$pgbin/pg_ctl" -D "$tmp/pg/data" -w -s \
		-l "$tmp/pg/log" -o "-k $tmp/pg -c listen_addresses=''" start
	trap 'stop; runuser -u nobody -- "$pgbin/pg_ctl" -D "$tmp/pg/data" \
		-w -s -m fast stop' EXIT
	"$pgbin/psql" -X -q -c "CREATE DATABASE tlspolicyd" \
		"postgresql:///postgres?host=$tmp/pg&user=tlspolicyd"
	echo "ingest into SQLite: $ingest datagrams, 2 blocking senders"
	pguri=
	ingest_rate
	r_sqlite=$rate_out
	echo "ingest into PostgreSQL (spool, pushed every 2 s): $ingest" \
		"datagrams, 2 blocking senders"
	pguri="postgresql:///tlspolicyd?host=$tmp/pg&user=tlspolicyd"
	ingest_rate
	echo "  PostgreSQL / SQLite: $(echo "$rate_out $r_sqlite" |
		awk '{ printf "%.2f", $1 / $2 }')"
	exit 0
fi

for q in 10 512; do
	start "$q"
	echo "ingest: $ingest datagrams, 2 blocking senders," \
		"net.unix.max_dgram_qlen $q"
	t0=$(date +%s.%N)
	"$build/bench/rptsend" -s "$tmp/run/tlsrpt.sock" -n "$ingest" -p 2 \
		-b -d 1000 | sed 's/^/  /'
	settle "$ingest"
	t1=$(date +%s.%N)
	echo "  counted: $(total) of $ingest; until committed:" \
		"$(echo "$t0 $t1 $ingest" |
			awk '{ printf "%.1f s, %.0f/s", $2 - $1,
				$3 / ($2 - $1) }')"
done

n=$((rate * secs))
for q in 10 512; do
	for conns in 0 100; do
		start "$q"
		echo "steady: $rate/s for $secs s ($n datagrams, $senders" \
			"non-blocking senders), net.unix.max_dgram_qlen $q," \
			"socketmap load: $conns connections"
		lg=
		if [ "$conns" -gt 0 ]; then
			"$build/bench/loadgen" -u "$tmp/smap.sock" -c "$conns" \
				-d $((secs + 2)) -w 0 -k "$tmp/keys" -n 1000 \
				-q >"$tmp/load-$q.out" 2>&1 &
			lg=$!
			sleep 1
		fi
		"$build/bench/rptsend" -s "$tmp/run/tlsrpt.sock" -n "$n" \
			-p "$senders" -r "$rate" -d 1000 >"$tmp/send-$q.out"
		[ -z "$lg" ] || wait "$lg" || true
		sed 's/^/  /' "$tmp/send-$q.out"
		sent=$(sed -n 's/^RESULT sent=\([0-9]*\).*/\1/p' \
			"$tmp/send-$q.out")
		settle "$sent"
		echo "  counted: $(total) of $sent sent; queue-full wakes:" \
			"$(counter queue-full)"
		[ -z "$lg" ] ||
			sed -n 's/^RESULT /  socketmap meanwhile: /p' \
				"$tmp/load-$q.out"
	done
done

# Worst case for the coalescing: every datagram distinct.
start 512
echo "ingest, all distinct: 200000 datagrams over 200000 domains," \
	"2 blocking senders, net.unix.max_dgram_qlen 512"
t0=$(date +%s.%N)
"$build/bench/rptsend" -s "$tmp/run/tlsrpt.sock" -n 200000 -p 2 -b \
	-d 200000 | sed 's/^/  /'
settle 200000
t1=$(date +%s.%N)
echo "  counted: $(total) of 200000; until committed:" \
	"$(echo "$t0 $t1 200000" |
		awk '{ printf "%.1f s, %.0f/s", $2 - $1, $3 / ($2 - $1) }')"
stop
