# SPDX-License-Identifier: BSD-2-Clause
"""The datagram socket against libtlsrpt's non-blocking senders (issue 10
item 15).

libtlsrpt sends with MSG_DONTWAIT, and Linux queues only
net.unix.max_dgram_qlen datagrams per unix datagram socket (10 by default;
a per network namespace setting): whatever finds the queue full is lost by
the sender. The test runs in a network namespace of its own (unshare -n),
where it sets the sysctl without touching the machine's:

  - with 10, the daemon warns at start-up, in plain words, naming the
    sysctl and the value to set;
  - a blocking burst of 30,000 datagrams over 12,000 domains (more
    distinct datagrams than one coalescing table holds, and many copies)
    is counted exactly: every session, every domain, the exact failures;
  - bench/rptsend at full speed without blocking, qlen 10: senders are
    refused, the daemon sees full queues and counts them ("queue-full"),
    and every datagram that was sent is counted;
  - with 512, no start-up warning, and 100,000 datagrams at a steady
    20,000 per second while a thread keeps the loop busy with socketmap
    lookups: every datagram sent is counted (refusals, if the machine
    starves the daemon, are matched by queue-full counts);
  - with 512 and the loop stuck for seconds in a store commit (another
    process holds the report store's lock): none of 15,000 datagrams at
    10,000/s is refused, and all are counted once the store is free
    (the receiver thread empties the socket whatever the loop does).
"""
import json
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time

if os.environ.get("TLSRPT_INGEST_NETNS") != "1":
    env = dict(os.environ, TLSRPT_INGEST_NETNS="1")
    os.execvpe("unshare", ["unshare", "-n", sys.executable,
                           os.path.abspath(__file__)], env)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tlstest import (TOP_BUILDDIR, Daemon, bail, done, is_eq,  # noqa: E402
                     netstring, ok, read_netstring)

RPTSEND = os.path.join(TOP_BUILDDIR, "bench", "rptsend")
QLEN = "/proc/sys/net/unix/max_dgram_qlen"
if not os.access(RPTSEND, os.X_OK):
    bail("%s missing (make bench/rptsend)" % RPTSEND)


def set_qlen(n):
    with open(QLEN, "w") as f:
        f.write("%d\n" % n)


def daemon(name):
    d = Daemon(name=name)
    rsock = os.path.join(d.dir, "run", "tlsrpt.sock")
    d.write_config(extra=("[tlsrpt]\n"
                          "enabled = yes\n"
                          "socket = %s\n"
                          "socket_group =\n"
                          "grace = 86400\n"
                          "organization = Test Org\n"
                          "contact = mailto:tlsrpt@sender.test\n"
                          "submitter = sender.test\n"
                          "from = tlsrpt-noreply@sender.test\n" % rsock))
    d.start()
    return d, rsock


def store(d, sql):
    con = sqlite3.connect(os.path.join(d.dir, "state", "tlsrpt.db"),
                          timeout=10)
    try:
        return con.execute(sql).fetchone()
    finally:
        con.close()


def settle(d, n, secs=30):
    end = time.time() + secs
    got = 0
    while time.time() < end:
        got = store(d, "SELECT coalesce(sum(total), 0) FROM policies")[0]
        if got >= n:
            break
        time.sleep(0.3)
    return got


def counter(d, name):
    return store(d, "SELECT coalesce(sum(value), 0) FROM counters WHERE "
                 "name = '%s'" % name)[0]


def rptsend(rsock, *args):
    p = subprocess.run([RPTSEND, "-s", rsock] + list(args),
                       capture_output=True, timeout=120)
    out = p.stdout.decode()
    r = dict(kv.split("=") for kv in out.split()[1:]) \
        if out.startswith("RESULT ") else {}
    return int(r.get("sent", -1)), int(r.get("refused", -1))


# --- qlen 10 ----------------------------------------------------------------
set_qlen(10)
d, rsock = daemon("tlsrpt-ingest10")
log = d.read_log()
ok("net.unix.max_dgram_qlen is 10" in log and
   "set it to 512 or more" in log, "start-up warning about the sysctl")

# Exact counts through the coalescing: 12,000 domains, 30,000 datagrams.
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.connect(rsock)
N, NDOM = 30000, 12000
for i in range(N):
    dom = "c%d.ingest.example" % (i % NDOM)
    pol = {"policy-type": 1, "policy-domain": "mx." + dom,
           "policy-string": ["3 1 1 ABCD"], "t": 0, "f": 0}
    if i % 7 == 0:
        pol.update(f=1, t=1, **{"failure-details": [
            {"c": 204, "r": "198.51.100.%d" % (i % 3)}]})
    s.send(json.dumps({"dpv": "1", "d": dom, "policies": [pol]}).encode())
s.close()
is_eq(settle(d, N), N, "every session of the burst counted")
is_eq(store(d, "SELECT count(DISTINCT domain) FROM policies")[0], NDOM,
      "every domain")
is_eq(store(d, "SELECT sum(failure) FROM policies")[0],
      len(range(0, N, 7)), "exact failures")
is_eq(store(d, "SELECT sum(count) FROM failures")[0], len(range(0, N, 7)),
      "exact failure details")
is_eq(store(d, "SELECT total, failure FROM policies WHERE domain = "
          "'c0.ingest.example'"), (3, 1), "one domain's exact counts")
is_eq(counter(d, "malformed"), 0, "nothing mangled on the way")

# Full speed, non-blocking, qlen 10: refusals, and the daemon notices.
before = settle(d, N)
sent, refused = rptsend(rsock, "-n", "200000", "-p", "2", "-d", "1000")
ok(sent > 0 and refused > 0, "qlen 10: non-blocking senders refused",
   "sent %d refused %d" % (sent, refused))
is_eq(settle(d, before + sent) - before, sent, "every datagram sent counted")
ok(counter(d, "queue-full") > 0, "full queues counted",
   counter(d, "queue-full"))
d.stop()

# --- qlen 512, busy loop --------------------------------------------------
set_qlen(512)
d, rsock = daemon("tlsrpt-ingest512")
ok("max_dgram_qlen" not in d.read_log(), "no warning with 512")
stop = threading.Event()
answered = [0]


def busy():
    c = d.connect()
    while not stop.is_set():
        c.sendall(netstring("postfix busy%d.example" % answered[0]))
        read_netstring(c)
        answered[0] += 1
    c.close()


threads = [threading.Thread(target=busy) for _ in range(4)]
for t in threads:
    t.start()
sent, refused = rptsend(rsock, "-n", "100000", "-p", "4", "-r", "20000",
                        "-d", "1000")
stop.set()
for t in threads:
    t.join()
ok(answered[0] > 1000, "socketmap served meanwhile", answered[0])
is_eq(sent + refused, 100000, "100,000 datagrams at 20,000/s")
is_eq(settle(d, sent), sent, "every datagram sent counted (busy loop)")
full = counter(d, "queue-full")
ok(refused == 0 or full > 0, "no refusal the daemon did not see",
   "refused %d, queue-full %d" % (refused, full))
print("# qlen 512, 20,000/s, busy: refused %d of 100000, queue-full %d" %
      (refused, full))
d.stop()

# --- the loop stuck for seconds -------------------------------------------
# Another process holds the report store's write lock, so the daemon's
# next commit waits (up to its 5 s busy timeout) with the loop inside it.
# The datagrams sent meanwhile must still be taken off the socket at once
# (the receiver thread), not refused once the 512-datagram queue is full,
# and counted when the store is free again.
d, rsock = daemon("tlsrpt-stuck")
is_eq(rptsend(rsock, "-n", "1", "-b", "-d", "1"), (1, 0), "first datagram")
is_eq(settle(d, 1), 1, "the store exists")
lock = sqlite3.connect(os.path.join(d.dir, "state", "tlsrpt.db"),
                       isolation_level=None, timeout=10)
lock.execute("BEGIN EXCLUSIVE")
is_eq(rptsend(rsock, "-n", "1", "-b", "-d", "1"), (1, 0),
      "a datagram that makes the next tick write")
time.sleep(0.8)                         # the tick is now waiting for the lock
c = d.connect()
c.sendall(netstring("postfix stuck.example"))
try:
    read_netstring(c, timeout=0.5)
    stuck = False
except socket.timeout:
    stuck = True
ok(stuck, "the loop is stuck in the store (socketmap has no answer)")
sent, refused = rptsend(rsock, "-n", "15000", "-p", "2", "-r", "10000",
                        "-d", "1000")
lock.execute("COMMIT")
lock.close()
is_eq((sent, refused), (15000, 0),
      "15,000 datagrams at 10,000/s while the loop is stuck: none refused")
ok(len(read_netstring(c, timeout=10) or b"") > 0,
   "the loop answers again once the store is free")
c.close()
is_eq(settle(d, 2 + sent), 2 + sent, "every datagram counted afterwards")
is_eq(counter(d, "queue-full"), 0, "no full queue seen")
d.stop()
done()
