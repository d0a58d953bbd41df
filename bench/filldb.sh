#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
#
# filldb.sh: make a tlspolicyd store with N MTA-STS policies for the
# benchmark, with the sqlite3 command-line tool and a recursive CTE, and
# (optionally) a key file with K of the domains for bench/loadgen -k.
#
#   filldb.sh [-f] [-D] DB [N [KEYFILE [K]]]
#     -f   replace DB if it exists (and its -wal/-shm files)
#     -D   no DANE rows (by default every domain also gets a fresh
#          "none" DANE verdict so that the daemon can answer from the
#          store alone: without one, SPEC B row D6 needs DNS first)
#     N    policies (default 1000000): domain d<i>.bench.example,
#          policy_id id<i>, mode 2 (enforce), mx "mx1.d<i>.bench.example"
#          and "*.d<i>.bench.example", max_age 604800, fetched now
#     K    domains written to KEYFILE, spread evenly over 1..N
#          (default: all N)
#
# The schema is the daemon's schema version 2 (cache/cache.c), written
# here byte for byte, with PRAGMA user_version = 2 and WAL journal mode,
# so the daemon opens the file without migrating it.
set -eu

force=0
dane=1
while getopts fD opt; do
	case $opt in
	f) force=1 ;;
	D) dane=0 ;;
	*) echo "usage: $0 [-f] [-D] DB [N [KEYFILE [K]]]" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || { echo "usage: $0 [-f] [-D] DB [N [KEYFILE [K]]]" >&2; exit 2; }

db=$1
n=${2:-1000000}
keyfile=${3:-}
k=${4:-$n}

case $n in '' | *[!0-9]*) echo "$0: N must be a number" >&2; exit 2 ;; esac
case $k in '' | *[!0-9]*) echo "$0: K must be a number" >&2; exit 2 ;; esac
[ "$n" -ge 1 ] || { echo "$0: N must be at least 1" >&2; exit 2; }
[ "$k" -le "$n" ] || k=$n

command -v sqlite3 >/dev/null 2>&1 ||
	{ echo "$0: needs the sqlite3 command (apt-get install sqlite3)" >&2; exit 2; }

if [ -e "$db" ]; then
	if [ $force -eq 0 ]; then
		echo "$0: $db exists (use -f to replace it)" >&2
		exit 2
	fi
	rm -f -- "$db" "$db-wal" "$db-shm"
fi

now=$(date +%s)
age=604800

# One transaction, no fsync while filling (a benchmark store, not a live
# one); rows are generated in key order so the WITHOUT ROWID b-tree grows
# at its right edge instead of splitting pages all over the file.
sqlite3 "$db" >/dev/null <<EOF
PRAGMA journal_mode = WAL;
PRAGMA synchronous = OFF;
PRAGMA cache_size = -200000;
BEGIN;
CREATE TABLE sts_policy ( domain TEXT PRIMARY KEY, policy_id TEXT NOT NULL, mode INTEGER NOT NULL, mx TEXT NOT NULL, max_age INTEGER NOT NULL, fetched_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, last_error TEXT NOT NULL DEFAULT '', next_retry INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
CREATE TABLE dane_verdict ( domain TEXT PRIMARY KEY, kind INTEGER NOT NULL, detail TEXT NOT NULL DEFAULT '', checked_at INTEGER NOT NULL, expires_at INTEGER NOT NULL) WITHOUT ROWID;
INSERT INTO sts_policy
  WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < $n)
  SELECT 'd' || i || '.bench.example', 'id' || i, 2,
         'mx1.d' || i || '.bench.example' || char(10) || '*.d' || i || '.bench.example',
         $age, $now, $now + $age, '', 0
  FROM seq ORDER BY 1;
INSERT INTO dane_verdict
  SELECT domain, 0, 'bench: no DANE', $now, $now + $age
  FROM sts_policy WHERE $dane = 1;
PRAGMA user_version = 2;
COMMIT;
PRAGMA wal_checkpoint(TRUNCATE);
EOF

rows=$(sqlite3 "$db" "SELECT count(*) FROM sts_policy")
[ "$rows" -eq "$n" ] || { echo "$0: wrote $rows rows, wanted $n" >&2; exit 1; }

if [ -n "$keyfile" ]; then
	# K domains spread evenly over 1..N, so lookups touch the whole
	# store and not just its first pages.
	awk -v n="$n" -v k="$k" 'BEGIN {
		for (j = 0; j < k; j++)
			printf "d%d.bench.example\n", 1 + int(j * n / k)
	}' >"$keyfile"
fi

echo "filldb: $db: $n policies$( [ $dane -eq 1 ] && echo ' and DANE verdicts'), expires $(date -u -d "@$((now + age))" +%Y-%m-%dT%H:%MZ)${keyfile:+; $k keys in $keyfile}"
