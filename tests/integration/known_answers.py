# SPDX-License-Identifier: BSD-2-Clause
"""A known answer never waits (DESIGN 6.9), against the test DNS world:

- with the resolver silent (unbound stopped), stored MTA-STS enforce
  policies are answered at once, and the daemon's own counters show the
  re-checks behind them still running;
- after a restart, the stored policies are read into memory at start-up
  and the first lookups of stored domains come from there (no client
  waited on DNS, none read the store);
- a DANE verdict in the last tenth of its lifetime is answered at once
  and refreshed in the background before it expires (prefetch);
- a domain with no usable state still waits, and gets its answer.
Functional, not timed: every check is on answers, counters and rows."""
import os
import signal
import sqlite3
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lab"))
from tlstest import Daemon, done, is_eq, ok  # noqa: E402
from dnsworld import DNSWorld  # noqa: E402

w = DNSWorld()
w.start()
N = 40
DOMS = ["k%d.insecure.test" % i for i in range(N)]
# Re-checks are due: the policies were fetched an hour ago.
HOUR_AGO = int(time.time()) - 3600


def secure(d):
    return "OK secure match=mx.%s servername=hostname" % d


d = Daemon(name="known", dane=True, sts=True, extra="""
[dns]
resolvers = %s
trust_anchor = %s
timeout = 3
""" % (w.resolver, w.trust_anchor), server_extra="lookup_timeout = 6\n")
d.start()
d.stop()
for dom in DOMS:
    d.put_sts(dom, "enforce", ["mx." + dom], fetched_at=HOUR_AGO)
# A verdict with 10 s of its hour left: due for a prefetch.
target = w.name("dane311")
d.put_dane(target, "dane-only", ttl=3600,
           checked_at=int(time.time()) - 3590)


def stats():
    return d.jq({"cmd": "stats"}).get("resolutions", {})


def stored_dane(domain):
    con = sqlite3.connect("file:%s?mode=ro" % d.db, uri=True, timeout=5)
    try:
        return con.execute("SELECT checked_at, expires_at FROM "
                           "dane_verdict WHERE domain = ?",
                           (domain,)).fetchone()
    finally:
        con.close()


# --- the resolver silent: stored answers at once, re-checks behind them --
d.start()
unbound = w.procs["unbound"].pid
os.kill(unbound, signal.SIGSTOP)
try:
    got = {dom: d.ask(dom) for dom in DOMS}
    st = stats()
finally:
    os.kill(unbound, signal.SIGCONT)
wrong = {k: v for k, v in got.items() if v != secure(k)}
ok(not wrong, "DNS silent: all %d stored enforce policies answered" % N,
   repr(list(wrong.items())[:3]))
is_eq(st.get("waited"), 0, "DNS silent: no client waited on DNS")
ok(st.get("active", 0) > 0 and st.get("background_started", 0) >= N,
   "DNS silent: the re-checks are still running behind the answers", st)
st = d.settle()
is_eq(st.get("resolutions", {}).get("active"), 0,
      "the re-checks finish once DNS answers again")
again = {dom: d.ask(dom) for dom in DOMS}
ok(all(v == secure(k) for k, v in again.items()),
   "after the re-checks (no TXT record): the policies still apply (TOFU)")

# --- restart with a populated store: the first answers from the store ----
is_eq(d.stop(), 0, "stop")
d.start()
# The stored policies are read into memory at start-up, before the daemon
# is ready (a small store fits in the first quarter of a second): the
# first lookups need no store read.
since = d.read_log()[d.log_mark:]
read_at = since.find("%d stored policies read into memory" % N)
ok(0 <= read_at < since.find("ready:"),
   "after a restart: the %d stored policies read into memory before the "
   "daemon said it was ready" % N, since[-600:])
is_eq(d.jq({"cmd": "stats"})["cache"]["entries"] >= N, True,
      "after a restart: they are in memory before the first lookup")
before_reads = d.jq({"cmd": "stats"})["cache"]["db_reads"]
first = {dom: d.ask(dom) for dom in DOMS}
ok(all(v == secure(k) for k, v in first.items()),
   "after a restart: the first lookups answer from the store")
is_eq(stats().get("waited"), 0, "after a restart: no first lookup waited")
is_eq(d.jq({"cmd": "stats"})["cache"]["db_reads"] - before_reads, 0,
      "after a restart: the first lookups were answered from memory")
d.settle()

# --- prefetch: a verdict near its end is refreshed while in use -----------
before = stored_dane(target)
is_eq(d.ask(target), "OK dane-only",
      "a verdict with 10 s left is answered at once")
d.settle()
after = stored_dane(target)
ok(before and after and after[0] > before[0] and
   after[1] > int(time.time()) + 30,
   "it was refreshed in the background before it expired", (before, after))
is_eq(stats().get("waited"), 0, "the prefetch made nobody wait")

# --- a domain with nothing usable stored still waits for its answer ------
is_eq(d.ask(w.name("dane201")), "OK dane-only",
      "a cold domain is resolved while the client waits")
ok(stats().get("waited") == 1, "and it is the one lookup that waited")

ok(d.alive(), "daemon alive")
is_eq(d.stop(), 0, "stop")
w.stop()
done()
