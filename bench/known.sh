#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
#
# known.sh: known answers never wait (DESIGN 6.9), measured in one run.
#
# A store of BENCH_POLICIES MTA-STS enforce policies whose TXT re-checks
# are due (fetched an hour ago) and no DANE verdicts, so every first
# lookup has background work to start. The daemon's resolver is a UDP
# socket on loopback that never answers: DNS is silent, the attack TOFU
# exists for. Then, each a cold pass over every key (loadgen -o,
# BENCH_CONNS connections):
#
#   silent-1   first lookups with DNS silent (re-checks and DANE due)
#   silent-2   the same keys again, re-checks still hanging
#   restart-1  after a restart with the populated store, DNS still silent
#   restart-2  the same keys again
#
# and prints p50/p99 for each and the ratios silent-1/silent-2 and
# restart-1/restart-2 (targets: p99 within 2x). Nothing leaves loopback.
#
# Usage: bench/known.sh [BUILDDIR]   (after make bench/loadgen tlspolicyd)
# Environment: BENCH_POLICIES (2000), BENCH_CONNS (100), BENCH_KEEP (0).
set -eu

build=$(cd "${1:-.}" && pwd)
src=$(cd "$(dirname "$0")/.." && pwd)
n=${BENCH_POLICIES:-2000}
conns=${BENCH_CONNS:-100}
keep=${BENCH_KEEP:-0}
loadgen=$build/bench/loadgen
daemon=$build/tlspolicyd
for b in "$loadgen" "$daemon"; do
	[ -x "$b" ] || { echo "known.sh: $b missing: build it first" >&2; exit 2; }
done

tmp=$(mktemp -d /tmp/tlspolicyd-known.XXXXXX)
pids=""
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	for p in $pids; do wait "$p" 2>/dev/null || true; done
	if [ "$keep" = 1 ]; then echo "known.sh: kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The silent resolver: bound, never read, never answers.
python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
t = socket.socket()
t.bind(("127.0.0.1", s.getsockname()[1]))
t.listen(1)
print(s.getsockname()[1], flush=True)
time.sleep(3600)
' >"$tmp/port" &
pids="$pids $!"
until [ -s "$tmp/port" ]; do sleep 0.1; done
port=$(cat "$tmp/port")

"$src/bench/filldb.sh" -D "$tmp/cache.db" "$n" "$tmp/keys" "$n"
hour_ago=$(($(date +%s) - 3600))
sqlite3 "$tmp/cache.db" "UPDATE sts_policy SET fetched_at = $hour_ago"

cat >"$tmp/tlspolicyd.conf" <<EOF
[server]
socketmap = unix:$tmp/smap.sock
query_socket = unix:$tmp/query.sock
socketmap_group =
user =
lookup_timeout = 10
[dns]
resolvers = 127.0.0.1@$port
timeout = 5
[cache]
path = $tmp/cache.db
EOF

start() {
	"$daemon" -f -c "$tmp/tlspolicyd.conf" >>"$tmp/daemon.log" 2>&1 &
	pid=$!
	pids="$pids $pid"
	"$loadgen" -u "$tmp/smap.sock" -R 30 -k "$tmp/keys" -n 1 >/dev/null || {
		echo "known.sh: the daemon did not answer; its log:" >&2
		tail -n 20 "$tmp/daemon.log" >&2
		exit 1
	}
}
stop() {
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}
pass() { # NAME
	"$loadgen" -u "$tmp/smap.sock" -c "$conns" -o -k "$tmp/keys" -n "$n" \
		-q >"$tmp/$1" || true
	sed -n 's/^RESULT /  '"$1"': /p' "$tmp/$1"
}
p99() { sed -n 's/^RESULT.* p99_us=\([0-9]*\).*/\1/p' "$tmp/$1"; }
ratio() { awk -v a="$(p99 "$1")" -v b="$(p99 "$2")" \
	'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }

echo "== known answers with DNS silent: $n stored enforce policies," \
	"re-checks due, $conns connections, $(date -u +%Y-%m-%dT%H:%MZ)"
start
pass silent-1
pass silent-2
echo "  background work still running: $(printf '{"cmd":"stats"}\n' |
	python3 -c 'import socket,sys,json
s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall(sys.stdin.buffer.read()); r=json.loads(s.makefile().readline())
print(r.get("resolutions"))' "$tmp/query.sock")"
stop
start
pass restart-1
pass restart-2
stop
echo "p99 silent-1 / silent-2:   $(ratio silent-1 silent-2)  (target <= 2)"
echo "p99 restart-1 / restart-2: $(ratio restart-1 restart-2)  (target <= 2)"
