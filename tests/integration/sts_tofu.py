# SPDX-License-Identifier: BSD-2-Clause
"""MTA-STS trust on first use over time (SPEC A6, RFC 8461 §3.3): the
daemon against the test DNS world and nginx, with its clock moved by
TLSPOLICYD_CLOCK_OFFSET across restarts (the store keeps the policies).

A valid policy keeps being enforced after its TXT record disappears,
while the policy host fails (garbage body, wrong certificate) and after
a restart with DNS unreachable, until max_age; the same TXT id causes no
HTTPS fetch, a new id one fetch; a failed fetch for a new id keeps the
old policy and is not retried within 5 minutes; a new `mode: none` or a
shorter max_age takes effect at once; a clock stepped back extends
nothing; 200 simultaneous queries for a cold domain make one TXT query
and one HTTPS request. [dane] is off: DANE would otherwise decide while
DNS is down (SPEC B D6). Requests are counted in nginx's access log."""
import atexit
import os
import shutil
import signal
import socket
import sqlite3
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lab"))
import tlstest  # noqa: E402
from tlstest import (Daemon, bail, done, is_eq, netstring, ok,  # noqa: E402
                     read_netstring)
from dnsworld import DNSWorld  # noqa: E402
from httpsworld import HTTPSWorld  # noqa: E402
from hostile_https import Hostile  # noqa: E402
import pki  # noqa: E402

Z = "insecure.test"
DEAD_DNS = "127.0.0.2@5353"     # nothing listens there


class LoggedHTTPS(HTTPSWorld):
    """HTTPSWorld with an access log: one "host status" line a request."""

    def _config(self):
        self.access = os.path.join(self.dir, "access.log")
        return super()._config().replace(
            "access_log off;", "log_format sts \"$host $status\";\n"
            "  access_log %s sts;" % self.access)

    def count(self, domain):
        try:
            with open(self.access) as f:
                return sum(1 for ln in f
                           if ln.split(" ")[0] == self.host(domain))
        except FileNotFoundError:
            return 0


def dom(label):
    return "%s.%s" % (label, Z)


def pol(mode="enforce", mx=(), max_age=86400):
    return "".join(["version: STSv1\n", "mode: %s\n" % mode] +
                   ["mx: %s\n" % m for m in mx] + ["max_age: %d\n" % max_age])


def secure(*patterns):
    return "OK secure match=%s servername=hostname" % ":".join(patterns)


tmp = tempfile.mkdtemp(prefix="sts-tofu-")
if not os.environ.get("KEEP_TMP"):
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
w = DNSWorld(log_queries=True)
net = "127.%d.48." % w.slot
for a in (net + "1", net + "10"):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((a, 443))
    except OSError as e:
        bail("%s:443 busy: %s" % (a, e))
    finally:
        s.close()
ca = pki.CA(os.path.join(tmp, "ca"))
hw = LoggedHTTPS(os.path.join(tmp, "nginx"), ca, addr=net + "1")
bad = Hostile(os.path.join(tmp, "hostile"), ca, base_addr=net + "10",
              suffix="h." + Z, cases=("wrongname",))

# The world's records for our domains: label -> TXT id (None: no TXT)
# and the policy host's address.
LABELS = ("keep", "idchg", "down", "short", "back", "sf")
txt = {lb: "1" for lb in LABELS}
host_addr = {lb: hw.addr for lb in LABELS}
for lb in LABELS:
    w.add_record(Z, "%s. 300 IN MX 10 mx1.%s." % (dom(lb), dom(lb)))
base_records = list(w.extra[Z])


def set_dns(reload=True):
    recs = list(base_records)
    for lb in LABELS:
        if txt[lb] is not None:
            recs.append("_mta-sts.%s. 300 IN TXT \"v=STSv1; id=%s;\"" %
                        (dom(lb), txt[lb]))
        recs.append("mta-sts.%s. 300 IN A %s" % (dom(lb), host_addr[lb]))
    w.extra[Z] = recs
    if reload:
        w.reload()


for lb in LABELS:
    hw.policy(dom(lb), pol(mx=["mx1." + dom(lb)],
                           max_age={"keep": 7200, "back": 6400}.get(lb,
                                                                    86400)))
set_dns(reload=False)
hw.start()
bad.start()
w.start()


def config(resolvers=None, dns_timeout=2, server=""):
    return dict(extra="""
[dns]
resolvers = %s
trust_anchor = %s
timeout = %d
[sts]
ca_file = %s
fetch_timeout = 5
""" % (resolvers or w.resolver, w.trust_anchor, dns_timeout, ca.cert_path),
        server_extra=server)


d = Daemon(name="ststofu", dane=False, sts=True, **config())
clock = 0


def restart(offset, **kw):
    """Restart the daemon with its clock OFFSET seconds ahead."""
    global clock
    is_eq(d.stop(), 0, "daemon stopped cleanly at +%d" % clock)
    clock = offset
    os.environ["TLSPOLICYD_CLOCK_OFFSET"] = str(offset)
    d.write_config(**config(**kw))
    d.start()


def row(label):
    """The stored policy of LABEL as a dict, or None."""
    con = sqlite3.connect("file:%s?mode=ro" % d.db, uri=True, timeout=5)
    con.row_factory = sqlite3.Row
    try:
        r = con.execute("SELECT * FROM sts_policy WHERE domain = ?",
                        (dom(label),)).fetchone()
    finally:
        con.close()
    return dict(r) if r is not None else None


def now():
    return int(time.time()) + clock


def asks(want, what):
    """Ask each label; WANT maps label -> answer. A stored policy is
    answered at once and re-checked in the background (DESIGN 6.9), so
    each label is asked once, the background work is let finish, and
    then the answers are checked."""
    for lb in want:
        d.ask(dom(lb))
    d.settle()
    for lb, ans in want.items():
        t0 = time.monotonic()
        got = d.ask(dom(lb))
        ok(got == ans, "%s at +%ds: %s" % (dom(lb), clock, what[lb]),
           "got  %r\nwant %r\nafter %.1fs" % (got, ans,
                                              time.monotonic() - t0))


def fetches(expect, what):
    got = {lb: hw.count(dom(lb)) for lb in expect}
    is_eq(got, expect, "HTTPS requests so far: " + what)


ENF = {lb: secure("mx1." + dom(lb)) for lb in LABELS}
os.environ["TLSPOLICYD_CLOCK_OFFSET"] = "0"
d.start()

# --- single-flight: one cold domain, 200 clients at once ----------------
N = 200
conns = [d.connect() for _ in range(N)]
results = [None] * N


def burst(lo, hi):
    for i in range(lo, hi):
        conns[i].sendall(netstring("postfix " + dom("sf")))
    for i in range(lo, hi):
        try:
            results[i] = read_netstring(conns[i], timeout=20)
        except Exception as e:  # noqa: BLE001
            results[i] = repr(e)


ts = [threading.Thread(target=burst, args=(i, i + 20))
      for i in range(0, N, 20)]
for t in ts:
    t.start()
for t in ts:
    t.join()
for c in conns:
    c.close()
wrong = [x for x in results if x != ENF["sf"]]
ok(not wrong, "%d simultaneous queries for a cold domain: enforce" % N,
   "%d wrong: %r" % (len(wrong), wrong[:3]))
is_eq(hw.count(dom("sf")), 1, "single-flight: one HTTPS request")
q = [x for x in w.query_log() if x[1] == "_mta-sts.%s." % dom("sf")
     and x[2] == "TXT"]
is_eq(len(q), 1, "single-flight: one TXT query at the resolver")
q = [x for x in w.query_log() if x[1] == "mta-sts.%s." % dom("sf")
     and x[2] == "A"]
is_eq(len(q), 1, "single-flight: one A query for the policy host")

# --- +0: first fetch -------------------------------------------------------
asks({lb: ENF[lb] for lb in ("keep", "idchg", "down", "short", "back")},
     {lb: "first fetch, enforce" for lb in LABELS})
fetches({"keep": 1, "idchg": 1, "down": 1}, "one each")
r = row("keep")
ok(r is not None and r["policy_id"] == "1" and r["mode"] == 2 and
   r["max_age"] == 7200 and abs(r["fetched_at"] - now()) < 5 and
   r["expires_at"] == r["fetched_at"] + 7200,
   "stored: id, mode, max_age, fetched_at, expires_at = fetched_at + "
   "max_age", r)
keep_expires = r["expires_at"] if r else 0
back_row = row("back")

# --- +1000: TXT gone; same id; new mode none; shorter max_age --------------
txt["keep"] = None
txt["back"] = None
txt["down"] = "2"
hw.policy(dom("down"), pol("none"))
txt["short"] = "2"
hw.policy(dom("short"), pol(mx=["mx1." + dom("short")], max_age=600))
set_dns()
restart(1000)
asks({"keep": ENF["keep"], "idchg": ENF["idchg"], "down": "NOTFOUND ",
      "short": ENF["short"]},
     {"keep": "TXT gone (NXDOMAIN): the cached policy applies",
      "idchg": "same TXT id", "down": "new id, mode none replaces enforce",
      "short": "new id, max_age 600"})
fetches({"keep": 1, "idchg": 1, "down": 2, "short": 2},
        "no fetch for a vanished TXT or the same id; one for a new id")
r = row("down")
ok(r is not None and r["mode"] == 0 and r["policy_id"] == "2",
   "mode none stored over enforce", r)
r = row("short")
ok(r is not None and r["max_age"] == 600 and
   r["expires_at"] == r["fetched_at"] + 600,
   "the shorter max_age is stored at once", r)

# --- +2000: new id, garbage body; new id, good body; short expired --------
txt["keep"] = "2"
hw.policy(dom("keep"), "garbage\n")
txt["idchg"] = "2"
hw.policy(dom("idchg"), pol(mx=["mx2." + dom("idchg")]))
txt["short"] = None
set_dns()
restart(2000)
asks({"keep": ENF["keep"], "idchg": secure("mx2." + dom("idchg")),
      "short": "NOTFOUND "},
     {"keep": "new id, garbage body: the old policy is kept",
      "idchg": "new id: the new policy",
      "short": "expired by the shorter max_age (no TXT)"})
fetches({"keep": 2, "idchg": 2, "short": 2}, "one fetch per new id")
r = row("keep")
ok(r is not None and r["policy_id"] == "1" and
   r["expires_at"] == keep_expires and r["last_error"] != "" and
   0 < r["next_retry"] - now() <= 300,
   "failed fetch: old row kept, error and next retry (5 min) stored", r)
ok("keep.insecure.test: MTA-STS refresh failed" in d.read_log(),
   "the failed refresh of an enforce policy is logged", d.read_log()[-600:])
# Issue 12: one line per policy change.
ok("%s: MTA-STS policy updated: id 2, mode enforce (was id 1, mode "
   "enforce)" % dom("idchg") in d.read_log(),
   "the new id is logged as a policy update", d.read_log()[-1500:])
ok("%s: MTA-STS policy updated: id 2, mode none" % dom("down")
   in d.read_log(), "enforce to none is logged as an update")

# --- +3000: a host with a wrong certificate; a failing new id ------------
txt["keep"] = "3"
host_addr["keep"] = bad.addr("wrongname")[0]
txt["idchg"] = "3"
hw.policy(dom("idchg"), "garbage\n")
set_dns()
restart(3000)
asks({"keep": ENF["keep"], "idchg": secure("mx2." + dom("idchg"))},
     {"keep": "policy host with a wrong certificate: still enforced",
      "idchg": "new id, fetch fails: the previous policy is kept"})
fetches({"keep": 2, "idchg": 3}, "the failing new id was fetched once")
ok("mismatch" in (row("keep") or {}).get("last_error", ""),
   "the certificate failure is stored as last_error", row("keep"))

# --- +3200: within 5 minutes of the failure: no retry ---------------------
restart(3200)
asks({"idchg": secure("mx2." + dom("idchg"))},
     {"idchg": "200 s after a failed fetch"})
fetches({"idchg": 3}, "no retry of a failed id within 5 minutes")

# --- +3400: past 5 minutes: retried, and the host is fixed ---------------
hw.policy(dom("idchg"), pol(mx=["mx3." + dom("idchg")]))
restart(3400)
asks({"idchg": secure("mx3." + dom("idchg"))},
     {"idchg": "400 s after a failed fetch: retried, new policy"})
fetches({"idchg": 4}, "one retry after 5 minutes")
r = row("idchg")
ok(r is not None and r["policy_id"] == "3" and r["last_error"] == "" and
   r["next_retry"] == 0, "the retried id is stored, error cleared", r)

# --- +4000: restart with DNS unreachable ---------------------------------
restart(4000, resolvers=DEAD_DNS, dns_timeout=1)
ok("answering from the store" in d.read_log()[-2000:],
   "started with DNS unreachable, answering from the store",
   d.read_log()[-400:])
asks({"keep": ENF["keep"], "idchg": secure("mx3." + dom("idchg")),
      "down": "NOTFOUND "},
     {"keep": "restarted with DNS unreachable: cached policy",
      "idchg": "restarted with DNS unreachable: cached policy",
      "down": "restarted with DNS unreachable: mode none"})

# --- +7300: past keep's max_age, DNS still unreachable --------------------
restart(7300, resolvers=DEAD_DNS, dns_timeout=1)
asks({"keep": "NOTFOUND ", "idchg": secure("mx3." + dom("idchg"))},
     {"keep": "past max_age: expired, NOTFOUND",
      "idchg": "still within max_age"})

# --- +7400: DNS stops answering while the daemon runs; the lookup budget
# runs out before DNS gives up: with [dane] off the cached policy applies
# (SPEC B: "with a usable cache, answer from the cache").
restart(7400, dns_timeout=4, server="lookup_timeout = 1\n")
unbound = w.procs["unbound"].pid
os.kill(unbound, signal.SIGSTOP)
try:
    t0 = time.monotonic()
    got = d.ask(dom("idchg"))
    el = time.monotonic() - t0
finally:
    os.kill(unbound, signal.SIGCONT)
ok(el < 2.5, "DNS silent: answered within the lookup budget",
   "%.1fs" % el)
ok(got == secure("mx3." + dom("idchg")),
   "DNS silent past lookup_timeout, [dane] off: the cached policy",
   "got %r" % got)

# --- clock stepped back, then forward again ------------------------------
keep_before = row("keep")
# Back to +1000: the policies are a re-check interval old there, so the
# first lookups re-check them (in the background) against a next_retry
# that now lies more than 5 minutes ahead.
restart(1000)
asks({"back": ENF["back"], "keep": ENF["keep"]},
     {"back": "clock stepped back: the stored row still applies",
      "keep": "clock stepped back: the stored row still applies"})
r = row("back")
ok(r is not None and back_row is not None and
   (r["fetched_at"], r["expires_at"]) ==
   (back_row["fetched_at"], back_row["expires_at"]),
   "a step back rewrites no fetched_at or expires_at", (back_row, r))
r = row("keep")
ok(r is not None and r["expires_at"] == keep_expires and
   0 < r["next_retry"] - now() <= 300,
   "a next_retry far ahead (clock stepped back) is ignored, not waited "
   "for", (keep_before, r))
fetches({"back": 1}, "no fetch after the step back")
restart(6500)
asks({"back": "NOTFOUND "}, {"back": "forward past the stored expiry"})
ok(d.alive(), "daemon alive")
is_eq(d.stop(), 0, "stop")
bad.stop()
hw.stop()
w.stop()
done()
