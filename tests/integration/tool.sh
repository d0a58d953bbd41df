#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
#
# tlspolicy(1) against a store built with the sqlite3 CLI (schema of
# cache/cache.c, user_version 1): cache list/show/flush offline, flush
# falling back to the store when the socket is missing or refuses, and
# query/flush through a fake daemon (a few lines of Python on a unix
# socket in the test directory). TAP output.

set -u

: "${top_builddir:=.}"
TOOL=$top_builddir/tlspolicy
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

n=0
failed=0
ok() { # COND-EXIT-STATUS NAME
	n=$((n + 1))
	if [ "$1" -eq 0 ]; then
		echo "ok $n - $2"
	else
		echo "not ok $n - $2"
		failed=$((failed + 1))
	fi
}
# is GOT WANT NAME
is() {
	if [ "$1" = "$2" ]; then
		ok 0 "$3"
	else
		ok 1 "$3"
		printf '#   got:  %s\n' "$1"
		printf '#   want: %s\n' "$2"
	fi
}

dir=$(mktemp -d "${TMPDIR:-/tmp}/tool-test.XXXXXX") || exit 1
fakepid=
cleanup() {
	[ -n "$fakepid" ] && kill "$fakepid" 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT INT TERM

db=$dir/cache.db
nosock=$dir/none.sock
# No config file: built-in defaults, with -d and -s overriding.
T() { "$TOOL" -c /dev/null -d "$db" -s "$nosock" "$@"; }

if [ ! -x "$TOOL" ]; then
	echo "Bail out! $TOOL not built"
	exit 1
fi

sqlite3 "$db" <<'EOF'
CREATE TABLE sts_policy (domain TEXT PRIMARY KEY, policy_id TEXT NOT NULL,
  mode INTEGER NOT NULL, mx TEXT NOT NULL, max_age INTEGER NOT NULL,
  fetched_at INTEGER NOT NULL, expires_at INTEGER NOT NULL,
  last_error TEXT NOT NULL DEFAULT '', next_retry INTEGER NOT NULL DEFAULT 0)
  WITHOUT ROWID;
CREATE TABLE dane_verdict (domain TEXT PRIMARY KEY, verdict TEXT NOT NULL,
  detail TEXT NOT NULL DEFAULT '', checked_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL) WITHOUT ROWID;
PRAGMA user_version = 1;
INSERT INTO sts_policy VALUES ('sts.example', '20240101', 2,
  'mx1.sts.example' || char(10) || '*.sts.example', 604800, 1795514400,
  1796119200, 'fetch failed: timeout', 1795514700);
INSERT INTO sts_policy VALUES ('both.example', 'b1', 1, 'mx.both.example',
  86400, 1795514400, 1795600800, '', 0);
INSERT INTO dane_verdict VALUES ('both.example', 'dane-only',
  'all MX have usable TLSA', 1795514400, 1795518000);
INSERT INTO dane_verdict (domain, verdict, checked_at, expires_at)
  VALUES ('a-dane.example', 'dane', 1795514400, 1795514700);
EOF
ok $? "store made with sqlite3"

# --- cache list ---
out=$(T cache list); rc=$?
ok $rc "cache list exits 0"
is "$(echo "$out" | awk '{print $1}' | tr '\n' ' ')" \
	"a-dane.example both.example sts.example " "list: name order"
is "$(echo "$out" | grep '^both.example' | awk '{print $2, $3, $4, $5}')" \
	"testing 2026-11-25T10:00:00Z dane-only 2026-11-24T11:00:00Z" \
	"list: both rows of one domain"
is "$(echo "$out" | grep '^a-dane.example' | awk '{print $2, $3, $4}')" \
	"- - dane" "list: missing STS row shown as -"
out=$(T -j cache list); rc=$?
ok $rc "cache list -j exits 0"
is "$(echo "$out" | wc -l | tr -d ' ')" 3 "list -j: one object per domain"
echo "$out" | grep -q '^{"domain":"sts.example","sts":{.*"mx":\["mx1.sts.example","\*.sts.example"\]' 
ok $? "list -j: mx as an array"

# --- cache show ---
out=$(T cache show sts.example); rc=$?
ok $rc "cache show exits 0"
is "$(echo "$out" | grep '^sts.mx:' | sed 's/^sts.mx: *//')" \
	"mx1.sts.example, *.sts.example" "show: mx patterns"
is "$(echo "$out" | grep '^sts.mode:' | awk '{print $2}')" enforce \
	"show: mode"
is "$(echo "$out" | grep '^sts.last_error:' | sed 's/^[^:]*: *//')" \
	"fetch failed: timeout" "show: last error"
is "$(echo "$out" | grep '^sts.expires_at:' | sed 's/^[^:]*: *//')" \
	"2026-12-01 10:00:00 UTC (1796119200)" "show: expiry"
is "$(echo "$out" | grep '^dane:' | sed 's/^[^:]*: *//')" "none stored" \
	"show: no DANE row"
out=$(T cache show 'BOTH.Example.'); rc=$?
ok $rc "show normalises the domain (case, trailing dot)"
is "$(echo "$out" | grep '^dane.detail:' | sed 's/^[^:]*: *//')" \
	"all MX have usable TLSA" "show: DANE detail"
T cache show '[both.example]:25' >/dev/null
ok $? "show: [host]:port names the host"
T -j cache show both.example | grep -q '"dane":{"verdict":"dane-only"'
ok $? "show -j"
T cache show nothing.example >/dev/null 2>&1
is $? 1 "show: nothing stored exits 1"
T cache show .example.com >/dev/null 2>&1
is $? 2 "show: a parent-domain probe is an error (2)"

# --- errors opening the store ---
"$TOOL" -c /dev/null -d "$dir/missing.db" cache list >/dev/null 2>&1
is $? 2 "missing store: exit 2"
[ ! -e "$dir/missing.db" ]
ok $? "missing store: not created"
printf 'this is not a database, just some text long enough to matter.\n' \
	>"$dir/garbage.db"
err=$("$TOOL" -c /dev/null -d "$dir/garbage.db" cache list 2>&1 >/dev/null)
is $? 2 "garbage store: exit 2"
echo "$err" | grep -q 'not a database'
ok $? "garbage store: message says why"
sqlite3 "$dir/newer.db" 'PRAGMA user_version = 9'
err=$("$TOOL" -c /dev/null -d "$dir/newer.db" cache list 2>&1 >/dev/null)
echo "$err" | grep -q 'newer tlspolicyd'
ok $? "newer store refused"

# --- cache flush without a daemon ---
out=$(T cache flush sts.example); rc=$?
is $rc 0 "flush (no socket): exit 0"
is "$out" "sts.example: flushed (in the store)" "flush: message"
is "$(sqlite3 "$db" "SELECT count(*) FROM sts_policy WHERE domain='sts.example'")" \
	0 "flush: row gone from the store"
out=$(T cache flush sts.example); rc=$?
is $rc 1 "flush again: nothing stored, exit 1"
T -j cache flush both.example | grep -q '^{"flushed":true,"domain":"both.example"}$'
ok $? "flush -j: JSON result"
is "$(sqlite3 "$db" "SELECT count(*) FROM dane_verdict WHERE domain='both.example'")" \
	0 "flush removes the DANE row too"

# A stale socket file nobody listens on: ECONNREFUSED, use the store.
stale=$dir/stale.sock
"$PY" -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])' "$stale"
"$TOOL" -c /dev/null -d "$db" -a "unix:$stale" cache flush a-dane.example >/dev/null
is $? 0 "flush with a stale socket falls back to the store"

# --- through a (fake) daemon ---
sock=$dir/q.sock
cat >"$dir/fake.py" <<'EOF'
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
s.listen(8)
log = open(sys.argv[2], "a")
while True:
    c, _ = s.accept()
    f = c.makefile("rb")
    line = f.readline()
    log.write(line.decode()); log.flush()
    req = json.loads(line)
    d = req.get("domain", "")
    if d == "error.example":
        rep = {"error": "no policy domain"}
    elif req.get("cmd") == "flush":
        rep = {"flushed": d == "held.example", "domain": d}
    else:
        rep = {"key": d, "answer": "OK secure match=mx1.sts.example",
               "result": "OK", "policy": "secure match=mx1.sts.example",
               "source": "sts", "domain": d, "reason": "stored policy",
               "mode": "enforce", "mx": ["mx1.sts.example", "*.sts.example"],
               "expires": 1796119200}
    c.sendall(json.dumps(rep, separators=(",", ":")).encode() + b"\n")
    f.close()
    c.close()
EOF
"$PY" "$dir/fake.py" "$sock" "$dir/requests.log" &
fakepid=$!
i=0
while [ ! -S "$sock" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done

out=$("$TOOL" -c /dev/null -s "$sock" query sts.example); rc=$?
ok $rc "query exits 0"
is "$(echo "$out" | grep '^answer:' | sed 's/^[^:]*: *//')" \
	"OK secure match=mx1.sts.example" "query: answer"
is "$(echo "$out" | grep '^mx:' | sed 's/^[^:]*: *//')" \
	"mx1.sts.example, *.sts.example" "query: mx joined"
is "$(echo "$out" | grep '^expires:' | sed 's/^[^:]*: *//')" \
	"2026-12-01 10:00:00 UTC" "query: expiry in UTC"
is "$(tail -n 1 "$dir/requests.log")" \
	'{"cmd":"query","domain":"sts.example"}' "query: request line"
out=$("$TOOL" -c /dev/null -j -s "unix:$sock" query sts.example)
is "$(echo "$out" | cut -c1-30)" '{"key":"sts.example","answer":' \
	"query -j: raw reply line"
"$TOOL" -c /dev/null -s "$sock" query error.example >/dev/null 2>&1
is $? 1 "query: daemon error reply exits 1"
"$TOOL" -c /dev/null -s "$nosock" query sts.example >/dev/null 2>&1
is $? 2 "query: no daemon exits 2"
out=$("$TOOL" -c /dev/null -d "$db" -a "$sock" cache flush HELD.example)
is $? 0 "flush through the daemon: exit 0"
is "$out" "held.example: flushed (by the daemon)" "flush: daemon message"
is "$(tail -n 1 "$dir/requests.log")" \
	'{"cmd":"flush","domain":"held.example"}' "flush: normalised domain sent"
"$TOOL" -c /dev/null -d "$db" -a "$sock" cache flush other.example >/dev/null
is $? 1 "flush through the daemon: nothing stored exits 1"

# --- usage ---
"$TOOL" -c /dev/null -d "$dir/none/cache.db" report list >/dev/null 2>&1
is $? 2 "report list: no report store (2)"
"$TOOL" -c /dev/null report show --day 2024-02-30 --domain a.example \
	>/dev/null 2>&1
is $? 2 "report show: bad day (2)"
"$TOOL" -c /dev/null report frobnicate >/dev/null 2>&1
is $? 2 "report: unknown subcommand (2)"
"$TOOL" frobnicate >/dev/null 2>&1
is $? 2 "unknown command (2)"
"$TOOL" -V | grep -q '^tlspolicy [0-9]'
ok $? "-V prints the version"
"$TOOL" --help | grep -q 'cache flush DOMAIN'
ok $? "--help lists the commands"

echo "1..$n"
[ $failed -eq 0 ]
