# SPDX-License-Identifier: BSD-2-Clause
"""Operators' runtime pins in the PostgreSQL policy store (issue 13):
tlspolicy pin / exempt / unpin on host A reach host B through the shared
database within the poll's bound. A real PostgreSQL 15 in a temporary
directory (tests/lab/pgworld.py); both daemons' DNS is silent, so every
answer comes from the store.

1. Daemons A and B share a database holding an MTA-STS row for D; both
   answer it. A pins D (dane-only): B, holding D in memory, answers the
   pin within the poll bound. A unpins D: B answers the learned policy
   again within the bound (an unpin leaves a tombstone row the poll
   reads). A exempts D: B answers NOTFOUND within the bound. Flush on A
   keeps the pin. A pin of a domain B never saw is read on B's miss.
2. Both daemons restarted: the exemption and the pin are still answered.
3. A database of schema 2 is migrated to schema 4 at start: its rows are
   kept and a pin can be set on it.
4. Through the store (tests/lab/storecmd): a record with a change the
   store refused takes another host's pin and unpin from the poll and
   keeps its waiting change, which is written later.
5. With no daemon running, the tool writes pins to the shared store.

Skipped only when the PostgreSQL 15 binaries are absent (install-deps
--test installs them)."""
import os
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lab"))
from tlstest import (TOP_BUILDDIR, Daemon, done, is_eq, ok,  # noqa: E402
                     scrape_unix)
import pgworld  # noqa: E402

pgworld.skip_unless_installed()

STORECMD = os.path.join(TOP_BUILDDIR, "tests", "lab", "storecmd")
DEAD_DNS, POLL_BOUND = pgworld.DEAD_DNS, pgworld.POLL_BOUND
wait_for = pgworld.wait_for
NOW = int(time.time())

tmp, pg = pgworld.temp_world("pgpins-")
pg.start()
pg.psql("CREATE DATABASE tlspolicyd", db="postgres")
URI = pg.uri()

D = "pinned.pg.test"      # has a learned policy; pinned, unpinned, exempted
G = "fresh.pg.test"       # nothing learned; pinned by A, first asked on B
M = "kept.pg.test"        # the row in the schema 2 database
EXTRA = """
[dns]
resolvers = %s
timeout = 1
""" % DEAD_DNS


def daemon(name, uri=URI, metrics=False):
    d = Daemon(name=name, sts=True, extra=EXTRA,
               server_extra="lookup_timeout = 1\n")
    d.db = uri
    server = "lookup_timeout = 1\n"
    if metrics:
        d.metrics = os.path.join(d.dir, "metrics.sock")
        server += "metrics = unix:%s\n" % d.metrics
    d.write_config(extra=EXTRA, server_extra=server)
    return d


def scrape(d):
    """GET /metrics on D's unix socket: the body."""
    return scrape_unix(d.metrics)


def metric(body, name):
    m = re.search(r"^%s (\S+)$" % name, body, re.M)
    return float(m.group(1)) if m else None


def secure(dom):
    return "OK secure match=mx.%s servername=hostname" % dom


def sts_row(dom, db=None):
    pg.psql("INSERT INTO sts_policy (domain, policy_id, mode, mx, max_age,"
            " fetched_at, expires_at) VALUES ('%s', 'p1', 2, 'mx.%s', 86400,"
            " %d, %d)" % (dom, dom, NOW, NOW + 86400), db=db)


def within_bound(d, dom, want, what):
    got, secs = wait_for(lambda: d.ask(dom), want, POLL_BOUND)
    is_eq(got, want, what)
    ok(secs <= POLL_BOUND, "it took %.1f s (bound %d s)" % (secs, POLL_BOUND))


def pin_row(dom, db=None):
    return pg.psql("SELECT exempt, answer, deleted FROM pin WHERE domain ="
                   " '%s'" % dom, db=db)


# --- 1. pin, unpin and exempt on A reach B ---------------------------------

a = daemon("ppa")
a.start()
b = daemon("ppb", metrics=True)
b.start()
is_eq(pg.psql("SELECT version FROM tlspolicyd_schema"), "4",
      "schema version 4 (the pin table, the flushes)")
is_eq(pg.psql("SELECT count(*) FROM pg_trigger WHERE tgname = "
              "'pin_changed'"), "1", "a trigger stamps the pin table")
sts_row(D)
is_eq(a.ask(D), secure(D), "A answers D's learned policy from the store")
is_eq(b.ask(D), secure(D), "B answers D's learned policy from the store")
is_eq(b.ask(D), secure(D), "B holds D in memory")

rc, out, err = a.tool("pin", D, "dane-only")
ok(rc == 0 and out == "%s: pinned\n" % D, "A: tlspolicy pin D dane-only",
   out + err)
is_eq(pin_row(D), "0|dane-only|f", "the pin is in the database")
is_eq(a.ask(D), "OK dane-only", "A answers the pin at once")
within_bound(b, D, "OK dane-only",
             "B (DNS silent) answers A's pin within %d s" % POLL_BOUND)
r = b.jq({"domain": D})
is_eq((r.get("source"), r.get("rule")), ("pin", "pin"),
      "B: the answer's source is the pin")

rc, out, err = a.tool("pin", G, "encrypt")
ok(rc == 0, "A: tlspolicy pin G encrypt", out + err)
is_eq(b.ask(G), "OK encrypt", "B reads a pin of a domain it never saw")

# Flush keeps the pin, on the database too.
is_eq(a.aq({"cmd": "flush", "domain": D}), {"flushed": True, "domain": D},
      "A: flush D")
is_eq(pin_row(D), "0|dane-only|f", "flush leaves the pin in the database")
is_eq(pg.psql("SELECT count(*) FROM sts_policy WHERE domain = '%s'" % D),
      "0", "flush removed the learned row")
is_eq(a.ask(D), "OK dane-only", "A still answers the pin after the flush")
sts_row(D)    # learned again (by hand: the DNS is silent)

rc, out, err = a.tool("unpin", D)
ok(rc == 0 and out == "%s: unpinned\n" % D, "A: tlspolicy unpin D",
   out + err)
is_eq(pin_row(D), "0|dane-only|t", "the unpin leaves a tombstone row")
# A's memory held only the pin after the flush; the row written by hand
# meanwhile reaches it by its own poll.
within_bound(a, D, secure(D), "A answers the learned policy again")
within_bound(b, D, secure(D),
             "B stops answering the pin within %d s" % POLL_BOUND)
rc, out, err = a.tool("unpin", D)
ok(rc == 1 and "was not pinned" in out, "unpin again: not pinned",
   out + err)

rc, out, err = a.tool("exempt", D)
ok(rc == 0 and "%s: exempted" % D in out, "A: tlspolicy exempt D",
   out + err)
is_eq(pin_row(D), "1||f", "the exemption revives the row")
is_eq(a.ask(D), "NOTFOUND ", "A: exempted, NOTFOUND at once")
within_bound(b, D, "NOTFOUND ",
             "B answers the exemption within %d s" % POLL_BOUND)
# An unpin on B reaches A the same way.
is_eq(a.ask(G), "OK encrypt", "A holds G's pin in memory")
rc, out, err = b.tool("unpin", G)
ok(rc == 0, "B: tlspolicy unpin G", out + err)
within_bound(a, G, "NOTFOUND ", "A stops answering G's pin (NOTFOUND: "
             "nothing learned) within %d s" % POLL_BOUND)
cs = b.jq({"cmd": "stats"})["cache"]
ok(cs["polled_updates"] >= 2, "B counts the polled pin changes", cs)

# The poll's counters as Prometheus metrics (the same numbers).
body = scrape(b)
cs = b.jq({"cmd": "stats"})["cache"]
promtool = shutil.which("promtool")
ok(promtool is not None, "promtool is installed (package prometheus)")
if promtool is not None:
    p = subprocess.run([promtool, "check", "metrics"], input=body.encode(),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    ok(p.returncode == 0, "promtool check metrics passes", p.stdout.decode())
polls = metric(body, "tlspolicyd_store_polls_total")
ok(polls is not None and cs["polls"] - 1 <= polls <= cs["polls"]
   and polls >= 3,
   "tlspolicyd_store_polls_total counts B's polls", (polls, cs["polls"]))
is_eq(metric(body, "tlspolicyd_store_polled_updates_total"),
      float(cs["polled_updates"]),
      "tlspolicyd_store_polled_updates_total counts the polled updates")

# Tombstones are bounded: one older than 7 days goes at the next unpin.
pg.psql("ALTER TABLE pin DISABLE TRIGGER pin_changed;"
        "INSERT INTO pin (domain, exempt, answer, pinned_at, deleted, changed)"
        " VALUES ('old.pg.test', 1, '', 0, true, now() - interval '8 days'),"
        " ('recent.pg.test', 1, '', 0, true, now() - interval '6 days');"
        "ALTER TABLE pin ENABLE TRIGGER pin_changed")
rc, out, err = a.tool("pin", "x.pg.test", "encrypt")
rc, out, err = a.tool("unpin", "x.pg.test")
ok(rc == 0, "A: pin and unpin another domain", out + err)
is_eq(pg.psql("SELECT string_agg(domain, ',' ORDER BY domain) FROM pin"
              " WHERE deleted"), "%s,recent.pg.test,x.pg.test" % G,
      "the unpin removed the tombstone older than 7 days, kept the others")

# --- 2. restarts of both ---------------------------------------------------

rc, out, err = a.tool("pin", G, "encrypt")
ok(rc == 0, "A: pin G encrypt again", out + err)
is_eq(a.stop(), 0, "A stopped")
is_eq(b.stop(), 0, "B stopped")
a.start()
b.start()
for d, name in ((a, "A"), (b, "B")):
    is_eq(d.ask(D), "NOTFOUND ", "%s after the restart: D is exempt" % name)
    is_eq(d.ask(G), "OK encrypt", "%s after the restart: G is pinned" % name)
rc, out, err = b.tool("cache", "list")
ok(rc == 0 and G in out and D in out, "cache list shows the pins",
   out + err)

# --- 3. schema 2 -> 3 ------------------------------------------------------

pg.psql("CREATE DATABASE v2", db="postgres")
pg.psql("CREATE TABLE tlspolicyd_schema (store TEXT PRIMARY KEY,"
        " version INTEGER NOT NULL);"
        "CREATE TABLE sts_policy (domain TEXT PRIMARY KEY,"
        " policy_id TEXT NOT NULL, mode INTEGER NOT NULL, mx TEXT NOT NULL,"
        " max_age BIGINT NOT NULL, fetched_at BIGINT NOT NULL,"
        " expires_at BIGINT NOT NULL, last_error TEXT NOT NULL DEFAULT '',"
        " next_retry BIGINT NOT NULL DEFAULT 0,"
        " changed TIMESTAMPTZ NOT NULL DEFAULT now());"
        "CREATE TABLE dane_verdict (domain TEXT PRIMARY KEY,"
        " kind INTEGER NOT NULL, detail TEXT NOT NULL DEFAULT '',"
        " checked_at BIGINT NOT NULL, expires_at BIGINT NOT NULL,"
        " changed TIMESTAMPTZ NOT NULL DEFAULT now());"
        "CREATE FUNCTION tlspolicyd_changed() RETURNS trigger"
        " LANGUAGE plpgsql AS"
        " 'BEGIN NEW.changed := clock_timestamp(); RETURN NEW; END';"
        "CREATE TRIGGER sts_policy_changed BEFORE INSERT OR UPDATE"
        " ON sts_policy FOR EACH ROW EXECUTE FUNCTION tlspolicyd_changed();"
        "CREATE TRIGGER dane_verdict_changed BEFORE INSERT OR UPDATE"
        " ON dane_verdict FOR EACH ROW EXECUTE FUNCTION"
        " tlspolicyd_changed();"
        "CREATE INDEX sts_policy_changed_idx ON sts_policy (changed, domain);"
        "CREATE INDEX dane_verdict_changed_idx ON dane_verdict"
        " (changed, domain);"
        "INSERT INTO tlspolicyd_schema VALUES ('policy', 2);"
        "INSERT INTO dane_verdict VALUES ('%s', 1, '', %d, %d)"
        % (M, NOW, NOW + 86400), db="v2")
sts_row(M, db="v2")
c = daemon("ppc", uri=pg.uri(db="v2"))
c.start()
is_eq(pg.psql("SELECT version FROM tlspolicyd_schema", db="v2"), "4",
      "a schema 2 database is migrated to schema 4")
is_eq(pg.psql("SELECT policy_id, mx FROM sts_policy", db="v2"),
      "p1|mx." + M, "its MTA-STS row is kept")
is_eq(pg.psql("SELECT kind FROM dane_verdict", db="v2"), "1",
      "its DANE row is kept")
is_eq(c.ask(M), "OK dane-only",
      "C answers the migrated rows (the DANE verdict first)")
rc, out, err = c.tool("pin", M, "encrypt")
ok(rc == 0, "C: pin on the migrated database", out + err)
is_eq(pin_row(M, db="v2"), "0|encrypt|f", "the pin is in the pin table")
is_eq(c.ask(M), "OK encrypt", "C answers the pin")

# --- 4. a waiting change keeps its half, the pin is the store's ------------

X = "dirty.pg.test"
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


is_eq(st.stdout.readline().strip(), "ready", "storecmd opened the store")
# The store refuses this one write (a constraint): it waits in memory.
pg.psql("ALTER TABLE sts_policy ADD CONSTRAINT no_bad"
        " CHECK (policy_id <> 'bad')")
is_eq(cmd("put %s bad %d" % (X, NOW)),
      "kept in memory, written to the store later",
      "a refused write waits in memory")
is_eq(cmd("get %s" % X), "bad %d" % NOW, "and answers from there")
pg.psql("INSERT INTO pin (domain, exempt, answer, pinned_at) VALUES"
        " ('%s', 0, 'encrypt', %d)" % (X, NOW))
ok(poll_all() > 0, "poll")
is_eq(cmd("getpin %s" % X), "pin encrypt",
      "the waiting record took another host's pin from the poll")
is_eq(cmd("get %s" % X), "bad %d" % NOW, "and kept its waiting change")
pg.psql("UPDATE pin SET deleted = true WHERE domain = '%s'" % X)
ok(poll_all() > 0, "poll")
is_eq(cmd("getpin %s" % X), "none", "it took the unpin too")
pg.psql("ALTER TABLE sts_policy DROP CONSTRAINT no_bad")
is_eq(cmd("retry"), "ok", "the waiting change is written later")
is_eq(pg.psql("SELECT policy_id FROM sts_policy WHERE domain = '%s'" % X),
      "bad", "and is in the database")
st.stdin.close()
is_eq(st.wait(timeout=10), 0, "storecmd exits cleanly")

for d, name in ((a, "A"), (b, "B"), (c, "C")):
    is_eq(d.stop(), 0, "daemon %s stopped cleanly" % name)

# With no daemon listening, the tool writes the shared store itself.
rc, out, err = a.tool("pin", "offline.pg.test", "dane-only")
ok(rc == 0, "tlspolicy pin with no daemon running", out + err)
is_eq(pin_row("offline.pg.test"), "0|dane-only|f",
      "the tool wrote the pin to the database")
rc, out, err = a.tool("unpin", "offline.pg.test")
ok(rc == 0, "tlspolicy unpin with no daemon running", out + err)
is_eq(pin_row("offline.pg.test"), "0|dane-only|t",
      "the tool left a tombstone in the database")
done()
