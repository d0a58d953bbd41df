# SPDX-License-Identifier: BSD-2-Clause
"""The policy store in trouble (issue 10 items 2, 9 and 10; DESIGN 6.10):
the daemon against the test DNS world and nginx, with its store on a
2 MB tmpfs mounted (and always unmounted) by this test.

Disk full while running: freshly fetched enforce policies are answered
`OK secure match=...` (not NOTFOUND), the trouble is logged once, `stats`
counts the deferred writes; when space returns the policies are written
(read back with sqlite3) and survive a restart with DNS unreachable.
Disk full at start-up: the error says "no space left on device" and names
the file. A fresh DANE verdict applies and is written the same way. A
store truncated to 0 bytes, or with garbage in the middle, is
refused at start-up in plain words; --fresh-store moves it aside as
FILE.damaged-TIMESTAMP and starts empty. A store that breaks while the
daemon runs answers TEMP, and those answers are logged (rate-limited)."""
import atexit
import glob
import os
import sqlite3
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lab"))
from tlstest import Daemon, bail, done, is_eq, ok  # noqa: E402
from dnsworld import DNSWorld  # noqa: E402
from httpsworld import HTTPSWorld  # noqa: E402
import pki  # noqa: E402

Z = "insecure.test"
DEAD_DNS = "127.0.0.2@5353"     # nothing listens there
N = 40


def dom(i):
    return "full%d.%s" % (i, Z)


def secure(d):
    return "OK secure match=mx1.%s servername=hostname" % d


w = DNSWorld()
d0 = Daemon(name="store", dane=True, sts=True)
DANE = w.name("dane311")    # a signed domain whose MX has TLSA 3 1 1
tmp = d0.dir
ca = pki.CA(os.path.join(tmp, "ca"))
hw = HTTPSWorld(os.path.join(tmp, "nginx"), ca, addr="127.%d.49.1" % w.slot)
for i in range(N):
    w.add_record(Z, "%s. 300 IN MX 10 mx1.%s." % (dom(i), dom(i)))
    w.add_record(Z, "_mta-sts.%s. 300 IN TXT \"v=STSv1; id=1;\"" % dom(i))
    w.add_record(Z, "mta-sts.%s. 300 IN A %s" % (dom(i), hw.addr))
    hw.policy(dom(i), "version: STSv1\nmode: enforce\nmx: mx1.%s\n"
              "max_age: 86400\n" % dom(i))
hw.start()
w.start()


def config(resolvers=None, memory=None):
    # EXTRA follows [cache] path: a memory_entries line goes there.
    return dict(extra=("memory_entries = %d\n" % memory if memory else "") +
                """
[dns]
resolvers = %s
trust_anchor = %s
timeout = 2
[sts]
ca_file = %s
fetch_timeout = 5
""" % (resolvers or w.resolver, w.trust_anchor, ca.cert_path))


d0.write_config(**config())
state = os.path.dirname(d0.db)
os.makedirs(state, exist_ok=True)
mounted = []


def umount():
    while mounted:
        subprocess.run(["umount", "-l", mounted.pop()], check=False)


atexit.register(umount)
if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2M", "tmpfs",
                   state]).returncode != 0:
    bail("cannot mount a tmpfs on %s (the suite runs as root)" % state)
mounted.append(state)
filler = os.path.join(state, "filler")


def fill():
    n = 0
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for chunk in (65536, 4096, 1):
            try:
                while True:
                    n += os.write(fd, b"F" * chunk)
            except OSError:
                pass
    finally:
        os.close(fd)
    return n


def stats():
    r = d0.jq({"cmd": "stats"})
    return r["cache"] if r else {}


def disk_rows(path):
    con = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=5)
    try:
        return {r[0]: r[1] for r in con.execute(
            "SELECT domain, mode FROM sts_policy")}
    finally:
        con.close()


def log_since(mark):
    return d0.read_log()[mark:]


try:
    # --- disk full while running (item 2) ---------------------------------
    d0.start()
    ok(fill() > 0, "the store's tmpfs is full")
    mark = len(d0.read_log())
    got = {dom(i): d0.ask(dom(i)) for i in range(N)}
    wrong = {k: v for k, v in got.items() if v != secure(k)}
    ok(not wrong, "%d fresh enforce policies on a full disk: OK secure" % N,
       repr(list(wrong.items())[:3]))
    is_eq(d0.ask(DANE), "OK dane-only",
          "a fresh DANE verdict on a full disk applies")
    st = stats()
    ok(st.get("deferred_writes", 0) >= N and
       st.get("pending_writes") == N + 1,
       "stats: the writes are deferred and pending", st)
    again = [d0.ask(dom(i)) for i in range(N)]
    ok(again == [secure(dom(i)) for i in range(N)],
       "answered again from memory")
    time.sleep(6)   # the retry timer runs every 5 s
    log = log_since(mark)
    is_eq(log.count("changes are applied from memory"), 1,
          "the full store is logged once")
    ok("no space left on device" in log and d0.db in log,
       "in words, with the file", log[-800:])
    ok(not [i for i in range(N)
            if "%s: cannot store" % dom(i) in log],
       "no warning per lookup", log[-800:])
    ok(not [k for k in disk_rows(d0.db) if k.startswith("full")],
       "nothing on disk yet")

    os.unlink(filler)
    end = time.time() + 15
    while time.time() < end and stats().get("pending_writes") != 0:
        time.sleep(0.5)
    st = stats()
    ok(st.get("pending_writes") == 0 and st.get("retried_writes", 0) >= N,
       "space back: the pending writes are done", st)
    rows = disk_rows(d0.db)
    is_eq(sorted(k for k in rows if k.startswith("full")),
          sorted(dom(i) for i in range(N)),
          "every policy is on disk (read with sqlite3)")
    ok(all(rows[dom(i)] == 2 for i in range(N)), "stored as enforce")
    con = sqlite3.connect("file:%s?mode=ro" % d0.db, uri=True, timeout=5)
    kind = con.execute("SELECT kind FROM dane_verdict WHERE domain = ?",
                       (DANE,)).fetchone()
    con.close()
    is_eq(kind, (1,), "the DANE verdict is on disk (dane-only)")
    ok("every change kept in memory is written" in log_since(mark),
       "the end of the episode is logged", log_since(mark)[-400:])

    is_eq(d0.stop(), 0, "stopped")
    d0.write_config(**config(resolvers=DEAD_DNS))
    d0.start()
    got = [d0.ask(dom(i)) for i in range(N)]
    ok(got == [secure(dom(i)) for i in range(N)],
       "after a restart with DNS unreachable: still enforced",
       repr(got[:3]))
    is_eq(d0.ask(DANE), "OK dane-only", "and the DANE verdict too")
    is_eq(d0.stop(), 0, "stopped")

    # --- disk full at start-up (item 10) ----------------------------------
    fill()
    good_db = d0.db
    d0.db = os.path.join(state, "new.db")
    d0.write_config(**config())
    mark = len(d0.read_log())
    p = d0.start(wait=False)
    rc = p.wait(30)
    log = log_since(mark)
    ok(rc != 0 and "no space left on device" in log and d0.db in log and
       "disk I/O error" not in log,
       "a new store on a full disk: 'no space left on device' and the "
       "file", log[-600:])
    d0.db = good_db
    os.unlink(filler)
finally:
    d0.stop()
    umount()
ok(not mounted, "the tmpfs is unmounted")

# --- a store truncated to 0 bytes (item 9) ---------------------------------
# From here on the daemon answers from the store alone: no DNS, no
# MTA-STS re-checks (the stored policies still apply).
d0.sts = False
d0.dane = False
d0.write_config(**config(resolvers=DEAD_DNS))
d0.start()
d0.stop()
with open(d0.db, "w"):
    pass
for f in glob.glob(d0.db + "-*"):
    os.unlink(f)
mark = len(d0.read_log())
p = d0.start(wait=False)
rc = p.wait(30)
log = log_since(mark)
ok(rc != 0 and "the file is empty (0 bytes)" in log and d0.db in log and
   "--fresh-store" in log,
   "a 0-byte store is refused, in words, naming the file and the way out",
   log[-600:])
ok(os.path.getsize(d0.db) == 0, "and left as it was")
mark = len(d0.read_log())
d0.start(args=["--fresh-store"])
moved = glob.glob(d0.db + ".damaged-*")
ok(len(moved) == 1 and os.path.getsize(moved[0]) == 0,
   "--fresh-store moved it aside, not deleted", moved)
ok("moved aside to %s" % (moved[0] if moved else "?") in log_since(mark),
   "and says so", log_since(mark)[-400:])
is_eq(d0.ask("example.net"), "NOTFOUND ", "then runs on an empty store")
d0.stop()
for f in moved:
    os.unlink(f)

# --- garbage in the middle (item 9) ----------------------------------------
MANY = 30000
con = sqlite3.connect(d0.db)
con.executemany(
    "INSERT OR REPLACE INTO sts_policy(domain, policy_id, mode, mx, max_age, "
    "fetched_at, expires_at) VALUES (?,?,?,?,?,?,?)",
    [("m%05d.example" % i, "id", 2, "mx.m%05d.example\n%s" % (i, "x" * 200),
      86400, int(time.time()), int(time.time()) + 86400)
     for i in range(MANY)])
con.commit()
con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
con.close()
size = os.path.getsize(d0.db)
ok(size > 4 << 20, "a store of %d bytes" % size)


def garble():
    with open(d0.db, "r+b") as f:
        f.seek(size // 3 // 4096 * 4096)
        f.write(b"\xa5" * (size // 3))


# A small memory index, so that most of these lookups read the store (at
# start-up the daemon reads the first 1,000 rows into memory).
d0.write_config(**config(memory=1000))
d0.start()
garble()   # while it runs: lookups that read the damaged pages fail
mark = len(d0.read_log())
ans = [d0.ask("m%05d.example" % i) for i in range(0, MANY, 100)]
temp = [a for a in ans if a.startswith("TEMP")]
ok(len(temp) >= 10 and not [a for a in ans if a.startswith("NOTFOUND")],
   "a store broken while running answers TEMP, never NOTFOUND "
   "(%d of %d TEMP)" % (len(temp), len(ans)))
log = log_since(mark)
n = log.count("policy store failure, answering TEMP")
ok(1 <= n <= 2, "the TEMP answers are logged, rate-limited (%d lines)" % n,
   log[-600:])
d0.stop()
mark = len(d0.read_log())
p = d0.start(wait=False)
rc = p.wait(60)
log = log_since(mark)
ok(rc != 0 and "the file is damaged (integrity check" in log and
   d0.db in log, "garbage in the middle is refused at start-up", log[-600:])
d0.start(args=["--fresh-store"])
ok(len(glob.glob(d0.db + ".damaged-*")) == 1,
   "--fresh-store moves the damaged store aside")
ok(d0.alive(), "and starts")
d0.stop()
hw.stop()
w.stop()
done()
