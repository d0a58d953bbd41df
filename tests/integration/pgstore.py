# SPDX-License-Identifier: BSD-2-Clause
"""The policy store in PostgreSQL (issue 13, first slice): a real
PostgreSQL 15 started here in a temporary directory (initdb, pg_ctl, a Unix
socket in that directory, run as nobody; stopped at the end), reached with
a password from a libpq passfile.

Two daemons with the same `[cache] path` URI: a policy daemon A fetched
from the test world (DNS and HTTPS) is answered by daemon B, whose DNS is
silent; a policy written to the database with SQL is answered by both (each memory index reads it on
a miss), and again after both restart (TOFU across restarts). The database
stopped mid-run: known domains are still answered from memory. Through the
store itself (tests/lab/storecmd): a write while the database is down is
kept in memory (deferred) and written by the retry once it is back; an
older policy never replaces a newer one in the database.

Skipped only when the PostgreSQL 15 binaries are absent (install-deps
--test installs them)."""
import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lab"))
from tlstest import TOP_BUILDDIR, Daemon, done, is_eq, ok  # noqa: E402
from dnsworld import DNSWorld  # noqa: E402
from httpsworld import HTTPSWorld  # noqa: E402
import pki  # noqa: E402

PGBIN = "/usr/lib/postgresql/15/bin"
if not os.path.exists(os.path.join(PGBIN, "initdb")):
    print("1..0 # SKIP PostgreSQL 15 is not installed (postgresql-15)")
    sys.exit(0)

DEAD_DNS = "127.0.0.2@5353"     # nothing listens there
STORECMD = os.path.join(TOP_BUILDDIR, "tests", "lab", "storecmd")

tmp = tempfile.mkdtemp(prefix="pgstore-")
os.chmod(tmp, 0o755)
pgdir = os.path.join(tmp, "pg")
os.mkdir(pgdir)
shutil.chown(pgdir, "nobody", "nogroup")
data = os.path.join(pgdir, "data")
sock = pgdir
pwfile = os.path.join(pgdir, "pw")
with open(pwfile, "w") as f:
    f.write("s3cret\n")
shutil.chown(pwfile, "nobody", "nogroup")
passfile = os.path.join(tmp, "pgpass")
with open(passfile, "w") as f:
    f.write("*:*:*:tlspolicyd:s3cret\n")
os.chmod(passfile, 0o600)
URI = ("postgresql:///tlspolicyd?host=%s&user=tlspolicyd&passfile=%s"
       "&connect_timeout=2" % (sock, passfile))


def as_nobody(*args, check=True):
    return subprocess.run(["runuser", "-u", "nobody", "--"] + list(args),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          cwd=pgdir, check=check)


def pg_start():
    as_nobody(os.path.join(PGBIN, "pg_ctl"), "-D", data, "-w", "-s",
              "-l", os.path.join(pgdir, "log"), "-o",
              "-k %s -c listen_addresses=''" % sock, "start")


def pg_stop():
    as_nobody(os.path.join(PGBIN, "pg_ctl"), "-D", data, "-w", "-s",
              "-m", "fast", "stop", check=False)


def cleanup():
    pg_stop()
    if not os.environ.get("KEEP_TMP"):
        shutil.rmtree(tmp, ignore_errors=True)


as_nobody(os.path.join(PGBIN, "initdb"), "-D", data, "-U", "tlspolicyd",
          "--auth=scram-sha-256", "--pwfile=" + pwfile, "-E", "UTF8")
atexit.register(cleanup)
pg_start()


def psql(sql, db="tlspolicyd"):
    r = subprocess.run(
        [os.path.join(PGBIN, "psql"), "-X", "-q", "-t", "-A", "-v",
         "ON_ERROR_STOP=1", "-c", sql,
         "postgresql:///%s?host=%s&user=tlspolicyd&passfile=%s" %
         (db, sock, passfile)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        raise RuntimeError("psql %s: %s" % (sql, r.stdout))
    return r.stdout.strip()


psql("CREATE DATABASE tlspolicyd", db="postgres")

NOW = int(time.time())


# The test world: daemon A resolves and fetches from it.
Z = "insecure.test"
FETCHED = "fetched." + Z
w = DNSWorld()
net = "127.%d.48." % w.slot
ca = pki.CA(os.path.join(tmp, "ca"))
hw = HTTPSWorld(os.path.join(tmp, "nginx"), ca, addr=net + "1")
w.add_record(Z, "%s. 300 IN MX 10 mx1.%s." % (FETCHED, FETCHED))
w.add_record(Z, "_mta-sts.%s. 300 IN TXT \"v=STSv1; id=w1;\"" % FETCHED)
w.add_record(Z, "mta-sts.%s. 300 IN A %s" % (FETCHED, hw.addr))
hw.policy(FETCHED, "version: STSv1\nmode: enforce\nmx: mx1.%s\n"
          "max_age: 86400\n" % FETCHED)
hw.start()
w.start()


def config(live=False):
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


def daemon(name, live=False):
    d = Daemon(name=name, dane=False, sts=True, **config(live))
    d.db = URI
    d.write_config(**config(live))
    return d


def secure(*patterns):
    return "OK secure match=%s servername=hostname" % ":".join(patterns)


a = daemon("pga", live=True)
a.start()
ok("s3cret" not in a.read_log() and "NOTICE" not in a.read_log(),
   "the log names no password and has no server notices")
is_eq(psql("SELECT version FROM tlspolicyd_schema WHERE store = 'policy'"),
      "4", "daemon A created the schema, version 4")
b = daemon("pgb")
# B names its password in the URI: the log shows it as ***.
b.db = URI + "&password=s3cret"
b.write_config(**config())
b.start()
ready = [ln for ln in b.read_log().splitlines() if "ready:" in ln]
ok("s3cret" not in b.read_log() and ready and "password=***" in ready[0],
   "a password in the URI is not in the log", ready)

# Daemon A fetches a policy (TXT, HTTPS) and writes it to the database;
# daemon B, its DNS silent, answers with it.
is_eq(a.ask(FETCHED), secure("mx1." + FETCHED),
      "daemon A fetched the policy from the test world")
row = ""
for _ in range(50):
    row = psql("SELECT policy_id, mode, mx FROM sts_policy "
               "WHERE domain = '%s'" % FETCHED)
    if row:
        break
    time.sleep(0.1)
is_eq(row, "w1|2|mx1." + FETCHED, "daemon A wrote it to the database")
is_eq(b.ask(FETCHED), secure("mx1." + FETCHED),
      "daemon B, DNS silent: daemon A's policy from the database")

# A policy one host learned: written to the shared database (here with SQL,
# the columns of the SQLite store's sts_policy).
for d in ("one.pg.test", "two.pg.test"):
    psql("INSERT INTO sts_policy VALUES ('%s', 'id1', 2, 'mx1.%s', 86400, "
         "%d, %d, '', 0)" % (d, d, NOW, NOW + 86400))
want = secure("mx1.one.pg.test")
is_eq(b.ask("one.pg.test"), want,
      "daemon B, DNS silent: the policy from the shared database")
is_eq(a.ask("one.pg.test"), want, "daemon A: the same policy")
is_eq(a.ask("two.pg.test"), secure("mx1.two.pg.test"),
      "daemon A: the second policy")

# TOFU across restarts of both.
is_eq(a.stop(), 0, "daemon A stopped cleanly")
is_eq(b.stop(), 0, "daemon B stopped cleanly")
a.start()
b.start()
is_eq(b.ask("one.pg.test"), want, "after restarts, B: the policy")
is_eq(b.ask(FETCHED), secure("mx1." + FETCHED),
      "after restarts, B, DNS silent: daemon A's fetched policy")
is_eq(a.ask("two.pg.test"), secure("mx1.two.pg.test"),
      "after restarts, A: the policy")
is_eq(b.ask("two.pg.test"), secure("mx1.two.pg.test"),
      "after restarts, B: the second policy")
is_eq(a.ask("one.pg.test"), want, "after restarts, A: the first policy")

# The database stops mid-run: known domains come from memory.
st = subprocess.Popen([STORECMD, URI], stdin=subprocess.PIPE,
                      stdout=subprocess.PIPE, text=True)


def cmd(line):
    st.stdin.write(line + "\n")
    st.stdin.flush()
    return st.stdout.readline().strip()


is_eq(st.stdout.readline().strip(), "ready", "storecmd opened the store")
is_eq(cmd("get one.pg.test"), "id1 %d" % NOW, "the store reads the row")
pg_stop()
for d, n in (("one.pg.test", "mx1.one.pg.test"),
             ("two.pg.test", "mx1.two.pg.test")):
    is_eq(a.ask(d), secure(n), "database down, A: %s from memory" % d)
    is_eq(b.ask(d), secure(n), "database down, B: %s from memory" % d)
is_eq(cmd("get one.pg.test"), "id1 %d" % NOW,
      "database down: the memory index answers")
is_eq(cmd("put three.pg.test id3 %d" % NOW),
      "kept in memory, written to the store later",
      "database down: a write is deferred")
is_eq(cmd("get three.pg.test"), "id3 %d" % NOW,
      "the deferred write answers from memory")
is_eq(cmd("retry"), "kept in memory, written to the store later",
      "database still down: the retry keeps it waiting")
ok(a.alive() and b.alive(), "both daemons run on through the outage")
pg_start()
is_eq(cmd("retry"), "kept in memory, written to the store later",
      "database back but not reconnected: the retry waits (no call "
      "retries the connection on its own once it failed)")
is_eq(cmd("reconnect"), "ok", "database back: the store connects again")
is_eq(cmd("retry"), "ok", "database back: the retry writes it")
is_eq(psql("SELECT policy_id, fetched_at FROM sts_policy "
           "WHERE domain = 'three.pg.test'"), "id3|%d" % NOW,
      "the deferred write is in the database")
is_eq(b.ask("one.pg.test"), want, "database back, B answers")

# An older policy never replaces a newer one.
is_eq(cmd("put one.pg.test old %d" % (NOW - 100)), "ok",
      "a put of an older policy")
is_eq(psql("SELECT policy_id FROM sts_policy WHERE domain = 'one.pg.test'"),
      "id1", "the newer row stays in the database")
is_eq(cmd("get one.pg.test"), "id1 %d" % NOW,
      "the store reads the newer row back, not the older put")
is_eq(cmd("put one.pg.test id2 %d" % (NOW + 10)), "ok",
      "a put of a newer policy")
is_eq(psql("SELECT policy_id FROM sts_policy WHERE domain = 'one.pg.test'"),
      "id2", "the newer put replaces the row")
st.stdin.close()
is_eq(st.wait(timeout=10), 0, "storecmd exits cleanly")

is_eq(a.stop(), 0, "daemon A stopped cleanly at the end")
is_eq(b.stop(), 0, "daemon B stopped cleanly at the end")
done()
