# SPDX-License-Identifier: BSD-2-Clause
"""The PostgreSQL policy store across a fleet (issue 13): hosts see each
other's newer rows within a bounded time, and a daemon starts while the
database is down. A real PostgreSQL 15 in a temporary directory
(tests/lab/pgworld.py).

1. Daemons A (DNS and HTTPS of the test world) and B (DNS silent) share a
   database and both hold domain D (policy id f1, mx1). The test world
   changes D's policy (id f2, mx2); A flushes D and fetches it again. B
   answers the new policy within the poll interval (10 s) + jitter (1 s)
   + a margin; an older row written by hand never replaces it. Through
   the store itself (tests/lab/storecmd): a newer DANE verdict is taken,
   an older one is not, and 1,200 rows sharing one stamp are all read in
   bounded steps (the walk does not stall on them).
2. The database stopped; daemon C starts all the same (the log says the
   shared store cannot be reached and that it retries), answers a domain
   it fetches, and TEMP for a domain without a policy (what the store
   holds is unknown). The database started: C's fetched policy is in it
   within a bound, and a policy A wrote meanwhile is answered by C with
   the test world's DNS stopped.
3. Configuration errors still stop the start: a wrong password, a schema
   newer than this version knows.

Skipped only when the PostgreSQL 15 binaries are absent (install-deps
--test installs them)."""
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lab"))
from tlstest import TOP_BUILDDIR, Daemon, done, is_eq, ok  # noqa: E402
import pgworld  # noqa: E402

pgworld.skip_unless_installed()
from dnsworld import DNSWorld  # noqa: E402
from httpsworld import HTTPSWorld  # noqa: E402
import pki  # noqa: E402

STORECMD = os.path.join(TOP_BUILDDIR, "tests", "lab", "storecmd")
DEAD_DNS, POLL_BOUND = pgworld.DEAD_DNS, pgworld.POLL_BOUND
wait_for = pgworld.wait_for

tmp, pg = pgworld.temp_world("pgfleet-")
pg.start()
pg.psql("CREATE DATABASE tlspolicyd", db="postgres")
URI = pg.uri()

Z = "insecure.test"
D = "fleet." + Z          # changes its policy
E = "down." + Z           # fetched by C while the database is down
F = "late." + Z           # fetched by A while C cannot reach the database
N = "nopolicy." + Z       # no MTA-STS at all
G = "gone." + Z           # flushed on A: B lets go of it too
w = DNSWorld()
net = "127.%d.49." % w.slot
ca = pki.CA(os.path.join(tmp, "ca"))
hw = HTTPSWorld(os.path.join(tmp, "nginx"), ca, addr=net + "1")


def txt(dom, pid):
    # D's record changes during the test: a TTL of 1 s, so that daemon A's
    # own resolver (libunbound caches validated answers for their TTL)
    # sees the new id after the change, as any resolver would.
    return "_mta-sts.%s. %d IN TXT \"v=STSv1; id=%s;\"" % (
        dom, 1 if dom == D else 300, pid)


def body(dom, mx):
    return "version: STSv1\nmode: enforce\nmx: %s.%s\nmax_age: 86400\n" % (
        mx, dom)


for dom in (D, E, F, G, N):
    w.add_record(Z, "%s. 300 IN MX 10 mx1.%s." % (dom, dom))
for dom in (D, E, F, G):
    w.add_record(Z, txt(dom, "f1"))
    w.add_record(Z, "mta-sts.%s. 300 IN A %s" % (dom, hw.addr))
    hw.policy(dom, body(dom, "mx1"))
hw.start()
w.start()


def config(live):
    return dict(extra="""
[dns]
resolvers = %s
trust_anchor = %s
timeout = %d
[sts]
ca_file = %s
fetch_timeout = 5
""" % (w.resolver if live else DEAD_DNS, w.trust_anchor, 2 if live else 1,
       ca.cert_path), server_extra="" if live else "lookup_timeout = 1\n")


def daemon(name, live=False, uri=URI, dane=False):
    d = Daemon(name=name, dane=dane, sts=True, **config(live))
    d.db = uri
    d.write_config(**config(live))
    return d


def secure(dom, mx="mx1"):
    return "OK secure match=%s.%s servername=hostname" % (mx, dom)


def db_row(dom):
    return pg.psql("SELECT policy_id, mx FROM sts_policy WHERE domain = '%s'"
                   % dom)


def cache_stats(d):
    return d.jq({"cmd": "stats"})["cache"]


# --- 1. a newer row another host wrote, within a bound ---------------------

a = daemon("fla", live=True)
a.start()
b = daemon("flb")
b.start()
is_eq(pg.psql("SELECT version FROM tlspolicyd_schema"), "4",
      "schema version 4 (the change stamps, the pin table, the flushes)")
is_eq(pg.psql("SELECT count(*) FROM pg_trigger WHERE tgname IN "
              "('sts_policy_changed', 'dane_verdict_changed')"), "2",
      "a trigger stamps each table's inserts and updates")
is_eq(a.ask(D), secure(D), "A fetched D (id f1, mx1)")
is_eq(wait_for(lambda: db_row(D), "f1|mx1." + D, 5)[0], "f1|mx1." + D,
      "A wrote D to the database")
is_eq(b.ask(D), secure(D), "B, DNS silent, holds D from the database")
is_eq(b.ask(D), secure(D), "B answers D from memory")

# The world changes D's policy; A learns it (flush, then a lookup).
zl = w.extra[Z]
zl[zl.index(txt(D, "f1"))] = txt(D, "f2")
hw.policy(D, body(D, "mx2"))
w.reload()
time.sleep(2.5)   # a later fetched_at than f1's; A's cached TXT (TTL 1) expired
is_eq(a.aq({"cmd": "flush", "domain": D}), {"flushed": True, "domain": D},
      "A: flush D")
is_eq(a.ask(D), secure(D, "mx2"), "A fetched D's new policy (id f2, mx2)")
got, _ = wait_for(lambda: db_row(D), "f2|mx2." + D, 5)
is_eq(got, "f2|mx2." + D, "A wrote the new policy to the database")
got, secs = wait_for(lambda: b.ask(D), secure(D, "mx2"), POLL_BOUND)
is_eq(got, secure(D, "mx2"),
      "B, DNS silent, answers D's new policy within %d s" % POLL_BOUND)
ok(secs <= POLL_BOUND, "it took %.1f s (bound %d s)" % (secs, POLL_BOUND))
ok(cache_stats(b)["polled_updates"] >= 1, "B counts the polled update")

# A flush on A reaches B's memory: B lets go of what it held, so its
# next lookup reads the store (and finds nothing) instead of answering
# the flushed policy from memory.
is_eq(a.ask(G), secure(G), "A fetched G")
is_eq(wait_for(lambda: db_row(G), "f1|mx1." + G, 5)[0], "f1|mx1." + G,
      "A wrote G to the database")
is_eq(b.ask(G), secure(G), "B, DNS silent, holds G from the database")
is_eq(b.aq({"cmd": "cache_show", "domain": G})["found"], True,
      "B holds G in memory")
is_eq(a.aq({"cmd": "flush", "domain": G}), {"flushed": True, "domain": G},
      "A: flush G")
is_eq(pg.psql("SELECT count(*) FROM flushed WHERE domain = '%s'" % G), "1",
      "the flush is stamped for the other hosts")
got, secs = wait_for(lambda: b.aq({"cmd": "cache_show", "domain": G})
                     ["found"], False, POLL_BOUND)
is_eq(got, False, "B lets go of G within %d s (%.1f s)" % (POLL_BOUND, secs))

# An older row (written by hand: older fetched_at, another mx) is stamped
# as changed but never replaces B's newer memory entry.
before = cache_stats(b)
pg.psql("UPDATE sts_policy SET policy_id = 'f0', mx = 'mx3.%s', "
        "fetched_at = fetched_at - 3600 WHERE domain = '%s'" % (D, D))
# Two more poll steps: one of them started after the update.
got, _ = wait_for(lambda: cache_stats(b)["polls"] >= before["polls"] + 2,
                  True, 2 * POLL_BOUND)
ok(got, "B polled twice since the older row was written")
is_eq(b.ask(D), secure(D, "mx2"),
      "B keeps the newer policy (an older row never replaces it)")
is_eq(cache_stats(b)["polled_updates"], before["polled_updates"],
      "and the poll changed nothing in memory")
pg.psql("UPDATE sts_policy SET policy_id = 'f2', mx = 'mx2.%s', "
        "fetched_at = fetched_at + 3600 WHERE domain = '%s'" % (D, D))

# Through the store: DANE verdicts, and many rows with one stamp.
st = subprocess.Popen([STORECMD, URI], stdin=subprocess.PIPE,
                      stdout=subprocess.PIPE, text=True)


def cmd(line):
    st.stdin.write(line + "\n")
    st.stdin.flush()
    return st.stdout.readline().strip()


def poll_all():
    """Poll steps until caught up: the number of steps, or -1."""
    for i in range(1, 50):
        r = cmd("poll")
        if r == "0":
            return i
        if r != "1":
            return -1
    return -1


NOW = int(time.time())
is_eq(st.stdout.readline().strip(), "ready", "storecmd opened the store")
pg.psql("INSERT INTO dane_verdict (domain, kind, detail, checked_at, "
        "expires_at) VALUES ('dane.pg.test', 2, 'some', %d, %d)"
        % (NOW - 60, NOW + 3600))
is_eq(cmd("getdane dane.pg.test"), "dane %d" % (NOW - 60),
      "storecmd holds the DANE verdict")
pg.psql("UPDATE dane_verdict SET kind = 1, checked_at = %d "
        "WHERE domain = 'dane.pg.test'" % NOW)
ok(poll_all() > 0, "poll")
is_eq(cmd("getdane dane.pg.test"), "dane-only %d" % NOW,
      "a newer DANE verdict another host wrote is taken")
pg.psql("UPDATE dane_verdict SET kind = 3, checked_at = %d "
        "WHERE domain = 'dane.pg.test'" % (NOW - 600))
ok(poll_all() > 0, "poll")
is_eq(cmd("getdane dane.pg.test"), "dane-only %d" % NOW,
      "an older DANE verdict is not")

# The same fetch time: the greater policy id wins, in the database and
# in memory alike.
is_eq(cmd("put tie.pg.test b2 %d" % NOW), "ok", "put id b2")
is_eq(cmd("put tie.pg.test a1 %d" % NOW), "ok", "put id a1, same time")
is_eq(pg.psql("SELECT policy_id FROM sts_policy WHERE domain = "
              "'tie.pg.test'"), "b2", "the database keeps b2")
is_eq(cmd("get tie.pg.test"), "b2 %d" % NOW, "the store answers b2")
is_eq(cmd("put tie.pg.test c3 %d" % NOW), "ok", "put id c3, same time")
is_eq(cmd("get tie.pg.test"), "c3 %d" % NOW, "c3 replaces b2")

# 1,200 rows with one stamp (the trigger off, so they share it); the
# last one in key order is held in memory as "no row" beforehand.
is_eq(cmd("get zz1199.many.pg.test"), "none", "storecmd: no row yet")
pg.psql("ALTER TABLE sts_policy DISABLE TRIGGER sts_policy_changed; "
        "INSERT INTO sts_policy SELECT 'zz' || lpad(i::text, 4, '0') || "
        "'.many.pg.test', 'm1', 2, 'mx1.many.pg.test', 86400, %d, %d, '', "
        "0, now() FROM generate_series(0, 1199) AS i; "
        "ALTER TABLE sts_policy ENABLE TRIGGER sts_policy_changed" %
        (NOW, NOW + 86400))
is_eq(pg.psql("SELECT count(DISTINCT changed) FROM sts_policy "
              "WHERE domain LIKE '%.many.pg.test'"), "1",
      "1,200 rows share one stamp")
steps = poll_all()
ok(steps >= 3, "read in bounded steps (%d; at most 500 rows each)" % steps)
is_eq(cmd("get zz1199.many.pg.test"), "m1 %d" % NOW,
      "the last of them replaced the memory's \"no row\"")

# The database restarts between two calls: the broken connection is
# opened again by the call itself, which goes through (no deferral).
pg.stop()
pg.start()
is_eq(cmd("get zz0001.many.pg.test"), "m1 %d" % NOW,
      "after a database restart, the first read goes through")
pg.stop()
pg.start()
is_eq(cmd("put restart.pg.test r1 %d" % NOW), "ok",
      "after a database restart, the first write goes through")
is_eq(cmd("get restart.pg.test"), "r1 %d" % NOW, "and is in the database")
st.stdin.close()
is_eq(st.wait(timeout=10), 0, "storecmd exits cleanly")

# A database of schema 1 (the first release) is migrated at open: its rows
# stay, get the stamp column and the triggers, and changes are polled.
pg.psql("CREATE DATABASE v1", db="postgres")
pg.psql("CREATE TABLE tlspolicyd_schema (store TEXT PRIMARY KEY,"
        " version INTEGER NOT NULL);"
        "CREATE TABLE sts_policy (domain TEXT PRIMARY KEY,"
        " policy_id TEXT NOT NULL, mode INTEGER NOT NULL, mx TEXT NOT NULL,"
        " max_age BIGINT NOT NULL, fetched_at BIGINT NOT NULL,"
        " expires_at BIGINT NOT NULL, last_error TEXT NOT NULL DEFAULT '',"
        " next_retry BIGINT NOT NULL DEFAULT 0);"
        "CREATE TABLE dane_verdict (domain TEXT PRIMARY KEY,"
        " kind INTEGER NOT NULL, detail TEXT NOT NULL DEFAULT '',"
        " checked_at BIGINT NOT NULL, expires_at BIGINT NOT NULL);"
        "INSERT INTO tlspolicyd_schema VALUES ('policy', 1);"
        "INSERT INTO sts_policy VALUES ('old.pg.test', 'o1', 2,"
        " 'mx1.old.pg.test', 86400, %d, %d, '', 0)" % (NOW, NOW + 86400),
        db="v1")
st = subprocess.Popen([STORECMD, pg.uri(db="v1")], stdin=subprocess.PIPE,
                      stdout=subprocess.PIPE, text=True)
is_eq(st.stdout.readline().strip(), "ready", "storecmd opened schema 1")
is_eq(pg.psql("SELECT version FROM tlspolicyd_schema", db="v1"), "4",
      "migrated to schema 4")
is_eq(cmd("get old.pg.test"), "o1 %d" % NOW, "the schema 1 row is kept")
pg.psql("UPDATE sts_policy SET policy_id = 'o2', fetched_at = %d "
        "WHERE domain = 'old.pg.test'" % (NOW + 5), db="v1")
ok(poll_all() > 0, "poll")
is_eq(cmd("get old.pg.test"), "o2 %d" % (NOW + 5),
      "an update of a migrated row is stamped and polled")
st.stdin.close()
is_eq(st.wait(timeout=10), 0, "storecmd exits cleanly")

# --- 2. starting while the database is down --------------------------------

badpass = os.path.join(tmp, "badpass")
with open(badpass, "w") as f:
    f.write("*:*:*:tlspolicyd:wrong\n")
os.chmod(badpass, 0o600)

pg.stop()
# C runs DANE too: a DANE verdict of "none" learned during the outage
# must not turn a domain without a fetched policy into "no policy".
c = daemon("flc", live=True, dane=True)
c.start()
# Started during the outage with a wrong password: only when the server
# answers does the refusal show; the daemon runs on and says why.
r = daemon("flr", uri=pg.uri(badpass))
r.start()
log = c.read_log()
ok("the shared store cannot be reached" in log and
   "starting anyway" in log and "trying to connect again" in log,
   "C started with the database down, and says so plainly",
   [ln for ln in log.splitlines() if "store" in ln])
is_eq(c.ask(E), secure(E), "C answers a domain it fetched (database down)")
got = c.ask(N)
ok(got.startswith("TEMP"),
   "C: a domain without a policy is TEMP while the store is out of reach",
   got)
is_eq(c.jq({"cmd": "stats"})["resolutions"]["waited"], 2,
      "both lookups waited for a resolution (none was answered from "
      "nothing)")
ok("MTA-STS refresh" not in c.read_log(),
   "the outage is not logged again by every refresh step")
ok(c.alive(), "C runs on")
pg.start()
# A reconnects (it held the connection before) and writes F.
is_eq(a.ask(F), secure(F), "A fetched F once the database was back (C had not read F)")
got, secs = wait_for(lambda: db_row(E), "f1|mx1." + E, 70)
is_eq(got, "f1|mx1." + E,
      "C's policy fetched while the database was down is in it")
ok(secs <= 70, "within %.1f s of the database's start (the retry delay "
   "doubles up to 60 s)" % secs)
ok("the shared store is reachable again" in c.read_log(),
   "C logs that the shared store is back")
got, _ = wait_for(lambda: "refuses this connection" in r.read_log(), True,
                  70)
ok(got and r.alive(), "a daemon started during the outage with a wrong "
   "password logs the refusal once the server answers, and runs on",
   r.read_log()[-600:])
is_eq(r.stop(), 0, "it stops cleanly")
# A's own write of F may have waited for A's reconnection.
got, _ = wait_for(lambda: db_row(F), "f1|mx1." + F, 70)
is_eq(got, "f1|mx1." + F, "A's row for F is in the database")
w.stop()                        # the test world's DNS is silent now
is_eq(c.ask(F), secure(F),
      "C, DNS stopped, answers F from the row A wrote meanwhile")
is_eq(c.ask(N), "NOTFOUND ",
      "C, store back: the domain without a policy is NOTFOUND again")

# --- 3. configuration errors stop the start --------------------------------

x = daemon("flx", uri=pg.uri(badpass))
x.start(wait=False)
rc = x.proc.wait(timeout=20)
ok(rc != 0 and "refuses this connection" in x.read_log(),
   "a wrong password stops the start, with a clear message",
   x.read_log()[-600:])
pg.psql("UPDATE tlspolicyd_schema SET version = 99")
y = daemon("fly")
y.start(wait=False)
rc = y.proc.wait(timeout=20)
ok(rc != 0 and "schema version 99 is newer" in y.read_log(),
   "a newer schema stops the start", y.read_log()[-600:])
pg.psql("UPDATE tlspolicyd_schema SET version = 4")

for d, name in ((a, "A"), (b, "B"), (c, "C")):
    is_eq(d.stop(), 0, "daemon %s stopped cleanly" % name)
done()
