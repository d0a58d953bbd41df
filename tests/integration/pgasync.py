# SPDX-License-Identifier: BSD-2-Clause
"""A slow or hung shared store never holds the answers (issue 13): the
PostgreSQL policy store's writes and poll run on the daemon's event loop
without blocking it, and every call that still waits is bounded. A real
PostgreSQL 15 in a temporary directory (tests/lab/pgworld.py).

1. Daemon A fetches four domains; their rows reach the database through
   the batched writes (stats count them).
2. The database hangs: its processes are stopped with SIGSTOP, so its
   socket still accepts connections and nothing ever answers (as a server
   stuck on a full disk or a dead network path does). The first domain
   not in memory waits for the store at most the call's bound, once: it
   is answered (fetched from the test world), and the store is known to
   be down (the lookup waits for its read on the loop, bounded to 1 s,
   while the loop serves everyone else). For the next 15 seconds, which
   include a poll of the hung server and attempts to connect again, the
   four known domains keep being answered, each within a second (the
   TLS-RPT store in the same database waits on threads of its own), and
   a second new domain is answered without waiting for the store at all. Both new policies
   wait in memory. `tlspolicy report list`, which reads the TLS-RPT store
   in the same database on the report sender's thread, says within its
   bound that the store did not answer, and the answers go on at once.
3. The database resumes (SIGCONT): the daemon connects again and writes
   both waiting policies; the log says the store is back.
4. A write batch the database refuses (a trigger raises an error for one
   domain) is one transaction: none of its rows is written, the log says
   why, the answers do not change, and once the trigger is gone the
   changes are written by the retry.
4b. The operator's commands wait for the database without holding
   anyone: with the database hung, a flush, a pin, a `cache_show` of a
   domain not in memory and a `cache_list` on one admin connection wait
   while a lookup and `stats` are answered; once it resumes their replies
   come in order and the store holds their changes. With the database
   hung for good, an unpin ends with an error after its bound (5 s) and
   the answers never stopped.
4c. A session in Postfix's log for a domain whose policy only the database
   holds waits for that row on the loop, as a lookup does: with the
   database hung a moment, a lookup is answered at once meanwhile, and
   once the row comes the session is counted under that policy. With the
   database hung past the read's bound (1 s) the session waits for the
   database to answer again, and is counted under that policy then;
   meanwhile, for 10 seconds that take in the MTA-STS refresh walk's read
   of the database, every lookup is answered at once.
5. The batches step by step, through the store itself (tests/lab/storecmd
   as the daemon's loop): a change made while its batch is in flight
   goes out in the next one; a newer row another host wrote is kept and
   memory lets the older change go; a synchronous call made while a
   batch is in flight lets it end first; a batch the database refuses is
   sent again by the retry timer, not at once. Lookups of domains not in
   memory are read on the loop, several in one query, one end per
   domain, while a domain in memory is answered meanwhile; with the
   database hung, a read in flight and one waiting behind a write batch
   each end within the read's bound, not the batch's.

Skipped only when the PostgreSQL 15 binaries are absent (install-deps
--test installs them)."""
import atexit
import json
import os
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lab"))
from tlstest import (TOP_BUILDDIR, Daemon, done, is_eq, ok,  # noqa: E402
                     scrape_unix)
import pgworld  # noqa: E402

pgworld.skip_unless_installed()
from dnsworld import DNSWorld  # noqa: E402
from httpsworld import HTTPSWorld  # noqa: E402
import pki  # noqa: E402

wait_for = pgworld.wait_for
# cache_strerror(CACHE_DEFERRED): an attempt the loop completes.
KEPT = "kept in memory, written to the store later"
STORECMD = os.path.join(TOP_BUILDDIR, "tests", "lab", "storecmd")
tmp, pg = pgworld.temp_world("pgasync-")
pg.start()
pg.psql("CREATE DATABASE tlspolicyd", db="postgres")

Z = "insecure.test"
KNOWN = ["k%d.%s" % (i, Z) for i in range(1, 5)]
C1, C2 = "c1." + Z, "c2." + Z     # first seen while the database hangs
X, Y = "x." + Z, "y." + Z         # a batch the database refuses
ALL = KNOWN + [C1, C2, X, Y]
w = DNSWorld()
net = "127.%d.52." % w.slot
ca = pki.CA(os.path.join(tmp, "ca"))
hw = HTTPSWorld(os.path.join(tmp, "nginx"), ca, addr=net + "1")
for dom in ALL:
    w.add_record(Z, "%s. 300 IN MX 10 mx1.%s." % (dom, dom))
    w.add_record(Z, "_mta-sts.%s. 300 IN TXT \"v=STSv1; id=a1;\"" % dom)
    w.add_record(Z, "mta-sts.%s. 300 IN A %s" % (dom, hw.addr))
    hw.policy(dom, "version: STSv1\nmode: enforce\nmx: mx1.%s\n"
              "max_age: 86400\n" % dom)
hw.start()
w.start()

CONF = dict(extra="""
[dns]
resolvers = %s
trust_anchor = %s
timeout = 2
[sts]
ca_file = %s
fetch_timeout = 5
""" % (w.resolver, w.trust_anchor, ca.cert_path))


def secure(dom):
    return "OK secure match=mx1.%s servername=hostname" % dom


def db_ids(doms):
    return pg.psql("SELECT string_agg(domain, ' ' ORDER BY domain) FROM "
                   "sts_policy WHERE domain IN (%s)" %
                   ", ".join("'%s'" % d for d in doms))


def stats(d):
    return d.jq({"cmd": "stats"})["cache"]


freeze, thaw = pg.freeze, pg.thaw
atexit.register(thaw)   # before pgworld stops the server (atexit is LIFO)


def timed_ask(d, dom):
    t0 = time.monotonic()
    got = d.ask(dom)
    return got, time.monotonic() - t0


# --- 1. writes through the batches -----------------------------------------

a = Daemon(name="pga", sts=True, **CONF)
a.db = pg.uri()
# The TLS-RPT store in the same database: its calls on the loop (here
# tlspolicy report list) are bounded too.
BASE_EXTRA = CONF["extra"]
CONF["extra"] += """
[tlsrpt]
enabled = yes
store = %s
spool = %s
socket = %s
socket_group =
organization = Test Org
contact = mailto:tlsrpt@sender.test
submitter = sender.test
from = tlsrpt-noreply@sender.test
""" % (pg.uri(), os.path.join(a.dir, "tlsrpt-spool.db"),
       os.path.join(a.dir, "tlsrpt.sock"))
a.write_config(**CONF)
a.start()
for dom in KNOWN:
    is_eq(a.ask(dom), secure(dom), "A fetched %s" % dom)
want = " ".join(sorted(KNOWN))
got, _ = wait_for(lambda: db_ids(KNOWN), want, 10)
is_eq(got, want, "the four policies are in the database")
ok(stats(a)["batched_writes"] >= 4,
   "written by the loop's batches (%d)" % stats(a)["batched_writes"])
is_eq(stats(a)["pending_writes"], 0, "nothing waits")
# Each of them was new: its lookup waited for a read of the database on
# the loop, not inside the request.
is_eq(a.jq({"cmd": "stats"})["resolutions"]["store_waited"], 4,
      "the four lookups waited for the store's reads on the loop")
ok(stats(a)["loop_reads"] >= 4, "the loop read them (%d)"
   % stats(a)["loop_reads"])

# --- 2. the database hangs --------------------------------------------------

freeze()
t_freeze = time.monotonic()
got, secs = timed_ask(a, C1)
ok(got == secure(C1), "a new domain is answered while the database hangs",
   [got] + [ln for ln in a.read_log().splitlines() if "store" in ln][-4:])
# At most the policy store's lookup bound (1 s), once; the TLS-RPT
# store's calls wait on the sender's thread, not here.
ok(secs < 2, "it waited for the hung store at most once, bounded "
   "(%.1f s)" % secs)
ok(a.alive(), "A runs on")
got, _ = wait_for(lambda: "shared store cannot be reached" in a.read_log(),
                  True, 10)
ok(got, "the log says the shared store cannot be reached",
   [ln for ln in a.read_log().splitlines() if "store" in ln][-3:])

worst, n, slow = 0.0, 0, 0
wrong = []
while time.monotonic() - t_freeze < 15:
    for dom in KNOWN:
        got, secs = timed_ask(a, dom)
        n += 1
        worst = max(worst, secs)
        slow += secs >= 1.0
        if got != secure(dom):
            wrong.append((dom, got))
    time.sleep(0.1)
is_eq(wrong, [], "%d answers of known domains while it hangs, all right" % n)
# The TLS-RPT store in the same database: its calls (the sender's, each
# bounded to 2.5 s) wait on a thread of their own, and its attempts to
# connect again on its push thread.
ok(slow == 0 and worst < 1.0,
   "none of them waited (%d slower than 1 s, the slowest %.3f s)"
   % (slow, worst))
got, secs = timed_ask(a, C2)
is_eq(got, secure(C2), "a second new domain is answered")
ok(secs < 2.0, "without waiting for the store again (%.2f s)" % secs)
ok(stats(a)["pending_writes"] >= 2, "both new policies wait in memory (%d)"
   % stats(a)["pending_writes"])
t0 = time.monotonic()
rc, out, err = a.tool("report", "list")
secs = time.monotonic() - t0
ok(rc != 0 and ("did not answer" in out + err or
                "no answer within" in out + err),
   "tlspolicy report list: the TLS-RPT store does not answer, said so",
   [rc, out, err])
ok(secs < 5, "within its bound (%.1f s)" % secs)
got, secs = timed_ask(a, KNOWN[0])
ok(got == secure(KNOWN[0]) and secs < 1.0,
   "and the daemon answers at once again (%.3f s)" % secs)
ok(a.alive(), "A runs on")

# --- 3. the database resumes ------------------------------------------------

thaw()
want = " ".join(sorted([C1, C2]))
got, secs = wait_for(lambda: db_ids([C1, C2]), want, 70)
is_eq(got, want, "the policies that waited are written once it resumes "
      "(%.1f s; the attempts to connect back off up to 60 s)" % secs)
got, _ = wait_for(lambda: stats(a)["pending_writes"], 0, 10)
is_eq(got, 0, "nothing waits any more")
ok("the shared store is reachable again" in a.read_log(),
   "the log says the store is back",
   [ln for ln in a.read_log().splitlines() if "store" in ln][-6:])

# --- 4. a batch the database refuses ----------------------------------------

pg.psql("CREATE FUNCTION refuse_x() RETURNS trigger LANGUAGE plpgsql AS "
        "$$BEGIN IF NEW.domain = '%s' THEN RAISE EXCEPTION "
        "'refused by the test'; END IF; RETURN NEW; END$$;"
        "CREATE TRIGGER refuse_x BEFORE INSERT OR UPDATE ON sts_policy "
        "FOR EACH ROW EXECUTE FUNCTION refuse_x()" % X)
mark = len(a.read_log())
# X and Y resolve together, so their writes share a batch.
res = {}
ts = [threading.Thread(target=lambda d=d: res.__setitem__(d, a.ask(d)))
      for d in (X, Y)]
for t in ts:
    t.start()
for t in ts:
    t.join()
is_eq(res, {X: secure(X), Y: secure(Y)}, "X and Y are answered")
got, _ = wait_for(lambda: "refused by the test" in a.read_log()[mark:],
                  True, 10)
ok(got, "the log says why the batch was not written",
   [ln for ln in a.read_log()[mark:].splitlines() if "store" in ln])
is_eq(db_ids([X]), "", "X is not in the database")
is_eq(a.ask(X), secure(X), "X is still answered, from memory")
ok(stats(a)["pending_writes"] >= 1, "X waits in memory")
pg.psql("DROP TRIGGER refuse_x ON sts_policy")
want = " ".join(sorted([X, Y]))
got, secs = wait_for(lambda: db_ids([X, Y]), want, 15)
is_eq(got, want, "once the database takes them, the retry writes X and Y "
      "(%.1f s)" % secs)
got, _ = wait_for(lambda: stats(a)["pending_writes"], 0, 10)
is_eq(got, 0, "nothing waits any more")

# --- 4b. the operator's commands on a hung database -------------------------

P = "pinned." + Z         # pinned while the database hangs
NEW = "never." + Z        # never looked up: not in memory


def adm_send(reqs):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(a.admin)
    for r in reqs:
        s.sendall((json.dumps(r) + "\n").encode())
    return s


def adm_pending(s):
    """True while no byte of a reply has come."""
    s.setblocking(False)
    try:
        s.recv(1, socket.MSG_PEEK)   # a byte, or b"" at end of file
        return False
    except BlockingIOError:
        return True
    finally:
        s.setblocking(True)


def adm_read(s, n, timeout):
    s.settimeout(timeout)
    buf = b""
    try:
        while buf.count(b"\n") < n:
            b = s.recv(65536)
            if not b:
                break
            buf += b
    except socket.timeout:
        pass
    return [json.loads(ln) for ln in buf.decode().splitlines()]


before = stats(a)["loop_commands"]
freeze()
s = adm_send([{"cmd": "flush", "domain": KNOWN[1]},
              {"cmd": "pin", "domain": P, "answer": "dane-only"},
              {"cmd": "cache_show", "domain": NEW},
              {"cmd": "cache_list"}])
time.sleep(0.5)
is_eq(a.ask(KNOWN[0]), secure(KNOWN[0]),
      "database hung, four admin commands waiting for it: a lookup is "
      "answered")
ok(stats(a)["loop_commands"] > before,
   "and so is stats: the first command is in flight on the loop")
ok(adm_pending(s), "the admin commands are still waiting for the database")
thaw()
got = adm_read(s, 4, 10)
s.close()
ok(len(got) == 4, "once it resumes, the four replies come", got)
got += [{}] * (4 - len(got))
is_eq(got[0], {"flushed": True, "domain": KNOWN[1]}, "flush: done")
is_eq((got[1].get("domain"), got[1].get("exempt"), got[1].get("answer")),
      (P, False, "dane-only"), "pin: done")
is_eq(got[2], {"found": False, "domain": NEW},
      "cache_show of a domain not in memory: read from the database")
names = [e.get("domain") for e in got[3].get("entries", [])]
ok(P in names and KNOWN[0] in names and KNOWN[1] not in names,
   "cache_list: after the flush and the pin, in order", names)
is_eq(stats(a)["loop_commands"] - before, 4,
      "all four waited for the database on the loop")
is_eq(db_ids([KNOWN[1]]), "", "the flushed rows are gone from the database")
is_eq(pg.psql("SELECT answer FROM pin WHERE domain = '%s' AND NOT deleted"
              % P), "dane-only", "the pin is in the database")
is_eq(a.ask(P), "OK dane-only", "the pin is answered")
is_eq(a.ask(KNOWN[1]), secure(KNOWN[1]), "the flushed domain is fetched "
      "afresh")

# A database that stays hung: the command ends with an error after the
# call's bound (5 s), and nobody else waited meanwhile.
freeze()
s = adm_send([{"cmd": "unpin", "domain": P}])
time.sleep(0.5)
is_eq(a.ask(KNOWN[0]), secure(KNOWN[0]),
      "database hung again, an unpin waiting: a lookup is answered")
ok(adm_pending(s), "the unpin is still waiting")
got = adm_read(s, 1, 15)
s.close()
err = got[0].get("error", "") if got else ""
ok("cannot be reached" in err and "did not answer" in err,
   "the unpin fails, saying the database did not answer", got)
is_eq(a.ask(P), "OK dane-only", "the pin still holds")
is_eq(a.ask(KNOWN[2]), secure(KNOWN[2]), "answers go on")
thaw()

# --- 4c. a logged session waits for its domain's row, not the loop ----------
# A daemon of its own, whose TLS-RPT store is local: only the policy store
# is in the database that hangs (the TLS-RPT store's own calls there are
# bounded separately, section 2).

is_eq(a.stop(), 0, "A stops cleanly")
NOW4 = int(time.time())
CIPHER = (": TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) "
          "key-exchange X25519 server-signature RSA-PSS (2048 bits) "
          "server-digest SHA256")


def stored_only(dom, pid):
    """An enforce policy for DOM that only the database holds (another
    host's row, never looked up here)."""
    pg.psql("INSERT INTO sts_policy (domain, policy_id, mode, mx, max_age, "
            "fetched_at, expires_at) VALUES ('%s', '%s', 2, 'mx1.%s', "
            "86400, %d, %d)" % (dom, pid, dom, NOW4, NOW4 + 86400))


def log_session(dom, pid):
    """Postfix 3.7's lines for one verified delivery to DOM."""
    stamp = time.strftime("%b %d %H:%M:%S")
    with open(maillog, "a") as f:
        f.write("%s mta postfix/smtp[%d]: Verified TLS connection "
                "established to mx1.%s[127.0.0.9]:25%s\n"
                "%s mta postfix/smtp[%d]: 7A8B%d: to=<u@%s>, "
                "relay=mx1.%s[127.0.0.9]:25, delay=1, delays=0/0/1/0, "
                "dsn=2.0.0, status=sent (250 ok)\n"
                % (stamp, pid, dom, CIPHER, stamp, pid, pid, dom, dom))


def counted(dom):
    """The sessions counted as successes for DOM today, or None."""
    rc, out, err = lg.tool("-j", "report", "list")
    for x in (json.loads(ln) for ln in out.splitlines() if ln.strip()):
        if x.get("domain") == dom and "success" in x:
            return x.get("success")
    return None


def reported_policy(dom):
    """The policy of DOM's report of today so far."""
    rc, out, err = lg.tool("report", "show", "--day",
                           time.strftime("%Y-%m-%d", time.gmtime()),
                           "--domain", dom)
    try:
        return json.loads(out)["policies"][0]["policy"]
    except (ValueError, KeyError, IndexError):
        return {"out": out, "err": err}


def store_waited():
    return lg.jq({"cmd": "stats"})["resolutions"]["store_waited"]


LOGD = "logged." + Z      # in the database, never looked up on L
stored_only(LOGD, "l1")
lg = Daemon(name="pgl", sts=True, extra=BASE_EXTRA)
maillog = os.path.join(lg.dir, "mail.log")
with open(maillog, "w"):
    pass
os.chmod(maillog, 0o644)
lg.db = pg.uri()
lg.metrics = os.path.join(lg.dir, "metrics.sock")
lg.write_config(server_extra="metrics = unix:%s\n" % lg.metrics,
                extra=BASE_EXTRA + """
[cache]
refresh = 3600
[tlsrpt]
enabled = yes
store = %s
socket =
organization = Test Org
contact = mailto:tlsrpt@sender.test
submitter = sender.test
from = tlsrpt-noreply@sender.test
sendmail = /bin/false
postfix_log = %s
""" % (os.path.join(lg.dir, "tlsrpt.db"), maillog))
lg.start()
is_eq(lg.ask(KNOWN[0]), secure(KNOWN[0]), "L answers a stored domain")


def scrape(d):
    """GET /metrics on D's unix socket: the body."""
    return scrape_unix(d.metrics)


def enforced(body):
    for ln in body.splitlines():
        if ln.startswith('tlspolicyd_stored_sts_policies{mode="enforce"} '):
            return int(ln.split()[1])
    return None


# The stored rows are counted on the loop too: the first scrape starts the
# count, a later one shows it.
want = int(pg.psql("SELECT count(*) FROM sts_policy WHERE mode = 2"))
got, _ = wait_for(lambda: enforced(scrape(lg)), want, 10)
is_eq(got, want, "the metrics count the stored enforce policies (%d)" % want)
waited0 = store_waited()
freeze()
log_session(LOGD, 701)
# The follower reads the lines within its tick (0.5 s); the session then
# waits for LOGD's row while the database hangs.
t0 = time.monotonic()
waited = 0
while time.monotonic() - t0 < 0.9 and waited == 0:
    waited = store_waited() - waited0
    time.sleep(0.02)
got, secs = timed_ask(lg, KNOWN[0])
thaw()
is_eq(waited, 1, "the logged session waits for the database's row of its "
      "domain on the loop")
is_eq(got, secure(KNOWN[0]), "database hung, a logged session waiting: a "
      "lookup is answered")
ok(secs < 0.5, "at once (%.3f s), not after the session's read" % secs)


got, _ = wait_for(lambda: counted(LOGD), 1, 30)
is_eq(got, 1, "once the row is read, the session is counted")
pol = reported_policy(LOGD)
is_eq((pol.get("policy-type"), pol.get("policy-string")),
      ("sts", ["version: STSv1", "mode: enforce", "mx: mx1.%s" % LOGD,
               "max_age: 86400"]),
      "under the MTA-STS policy the database holds for the domain")

# The database hung for longer than a read may wait: the session is not
# counted under "no policy" but waits for the database to answer again.
LOGD2 = "logged2." + Z
stored_only(LOGD2, "l2")
waited0 = store_waited()
freeze()
log_session(LOGD2, 702)
got, _ = wait_for(lambda: store_waited() - waited0, 1, 5)
is_eq(got, 1, "database hung: the session waits for its domain's row")
# The read is given up after 1 s. For 10 s, which take in the refresh
# walk's next read of the database (every 5 to 9 s) and attempts to
# connect again, nothing the daemon does waits for the hung database:
# every lookup is answered at once.
t0 = time.monotonic()
answers, worst = set(), 0.0
while time.monotonic() - t0 < 10:
    got, secs = timed_ask(lg, KNOWN[0])
    answers.add(got)
    worst = max(worst, secs)
    t1 = time.monotonic()
    if "tlspolicyd_lookups_total" in scrape(lg):
        worst = max(worst, time.monotonic() - t1)
    else:
        answers.add("a scrape without its metrics")
    time.sleep(0.05)
is_eq(answers, {secure(KNOWN[0])}, "the read given up, lookups and "
      "metrics go on being answered")
ok(worst < 0.5, "each at once (the slowest in %.3f s)" % worst)
thaw()


got, secs = wait_for(lambda: counted(LOGD2), 1, 60)
is_eq(got, 1, "once the database answers again the session is counted "
      "(%.1f s)" % secs)
is_eq(reported_policy(LOGD2).get("policy-type"), "sts",
      "under the policy the database holds, not under no policy")

# A lookup that waited for its row counts as one miss, not also as a hit.
RD = "read." + Z
stored_only(RD, "r1")
c0 = stats(lg)
is_eq(lg.ask(RD), secure(RD), "a domain only the database holds is answered "
      "from its row")
c1 = stats(lg)
is_eq((c1["misses"] - c0["misses"], c1["hits"] - c0["hits"]), (1, 0),
      "the lookup that waited for the row counts as one miss, no hit")
is_eq(lg.stop(), 0, "L stops cleanly")

# Two hours later every stored policy is due: the refresh walk reads them
# from the database on the loop and fetches them again in the background.
fetched0 = int(pg.psql("SELECT fetched_at FROM sts_policy WHERE domain = "
                       "'%s'" % KNOWN[0]))
os.environ["TLSPOLICYD_CLOCK_OFFSET"] = "7200"
lg.start()
got, secs = wait_for(lambda: int(pg.psql(
    "SELECT fetched_at FROM sts_policy WHERE domain = '%s'" % KNOWN[0]))
    >= fetched0 + 7200, True, 30)
ok(got, "the refresh walk found the due policies in the database and "
   "fetched them again (%.1f s)" % secs)
ok(lg.jq({"cmd": "stats"})["resolutions"]["refreshes"] >= 1,
   "counted as proactive refreshes")
is_eq(lg.stop(), 0, "L stops cleanly again")
del os.environ["TLSPOLICYD_CLOCK_OFFSET"]

# --- 5. the batches, step by step (tests/lab/storecmd) ----------------------

st = subprocess.Popen([STORECMD, pg.uri()], stdin=subprocess.PIPE,
                      stdout=subprocess.PIPE, text=True)


def cmd(line):
    st.stdin.write(line + "\n")
    st.stdin.flush()
    return st.stdout.readline().strip()


def row(dom):
    return pg.psql("SELECT policy_id FROM sts_policy WHERE domain = '%s'"
                   % dom)


NOW = int(time.time())
is_eq(st.stdout.readline().strip(), "ready", "storecmd opened the store")
is_eq(cmd("async"), "ok", "storecmd: writes as on the daemon's loop")
is_eq(cmd("put inflight.pg.test a1 %d" % NOW), "ok", "put a1")
is_eq(cmd("pending"), "1", "a1 waits in memory")
is_eq(row("inflight.pg.test"), "", "nothing is written before the batch")
is_eq(cmd("start"), "ok", "the batch with a1 is sent")
is_eq(cmd("put inflight.pg.test b2 %d" % (NOW + 1)), "ok",
      "put b2 while a1 is in flight")
is_eq(cmd("wait"), "ok", "the batch ends, and the loop sends the next")
# Had a1's result marked the record written, b2 would never be sent.
is_eq(row("inflight.pg.test"), "b2",
      "b2, changed while a1 was in flight, was written by the next batch")
is_eq(cmd("pending"), "0", "nothing waits")
is_eq(cmd("get inflight.pg.test"), "b2 %d" % (NOW + 1), "memory answers b2")

# Another host holds a newer row: the batch keeps it, memory lets go.
pg.psql("INSERT INTO sts_policy (domain, policy_id, mode, mx, max_age, "
        "fetched_at, expires_at) VALUES ('newer.pg.test', 'z9', 2, "
        "'mx1.pg.test', 86400, %d, %d)" % (NOW + 500, NOW + 86900))
is_eq(cmd("put newer.pg.test a1 %d" % NOW), "ok", "put an older a1")
is_eq(cmd("start"), "ok", "sent")
is_eq(cmd("wait"), "ok", "the batch ends")
is_eq(row("newer.pg.test"), "z9", "the database keeps the newer z9")
is_eq(cmd("pending"), "0", "nothing waits")
is_eq(cmd("get newer.pg.test"), "z9 %d" % (NOW + 500),
      "the next lookup reads z9 (memory let a1 go)")

# A synchronous call while a batch is in flight ends the batch first; its
# results wait for the loop.
is_eq(cmd("put settle.pg.test s1 %d" % NOW), "ok", "put s1")
is_eq(cmd("start"), "ok", "sent")
is_eq(cmd("get other.pg.test"), "none", "a lookup meanwhile")
is_eq(row("settle.pg.test"), "s1", "the batch was written")
is_eq(cmd("wait"), "ok", "the loop takes its results")
is_eq(cmd("pending"), "0", "nothing waits")

# A batch the database refuses is not sent again at once (it would be
# refused again, as fast as the database answers): the writes wait for
# the retry timer (storecmd "resume").
pg.psql("CREATE FUNCTION refuse_all() RETURNS trigger LANGUAGE plpgsql AS "
        "$$BEGIN RAISE EXCEPTION 'refused by the test'; END$$;"
        "CREATE TRIGGER refuse_all BEFORE INSERT OR UPDATE ON sts_policy "
        "FOR EACH ROW EXECUTE FUNCTION refuse_all()")
is_eq(cmd("put held.pg.test h1 %d" % NOW), "ok", "put h1")
is_eq(cmd("start"), "ok", "sent")
is_eq(cmd("wait"), "failed", "the database refuses the batch, and the "
      "loop sends nothing more")
is_eq(cmd("start"), "ok", "another turn of the loop")
is_eq(cmd("step"), "ok", "still nothing in flight: the write waits")
is_eq(cmd("pending"), "1", "h1 waits in memory")
is_eq(cmd("get held.pg.test"), "h1 %d" % NOW, "and is answered from there")
pg.psql("DROP TRIGGER refuse_all ON sts_policy")
is_eq(cmd("resume"), "ok", "the retry timer")
is_eq(cmd("wait"), "ok", "the batch is written")
is_eq(row("held.pg.test"), "h1", "h1 is in the database")
is_eq(cmd("pending"), "0", "nothing waits")

# Lookups of domains not in memory do not wait for the database: they
# are read on the loop, several in one query, and one that is in memory
# is answered meanwhile.
is_eq(cmd("put rd1.pg.test r1 %d" % NOW), "ok", "put rd1")
is_eq(cmd("start"), "ok", "sent")
is_eq(cmd("wait"), "ok", "written")
is_eq(cmd("forget rd1.pg.test"), "ok", "memory forgets rd1")
is_eq(cmd("nowait rd1.pg.test"), "pending", "rd1 is not in memory: read")
is_eq(cmd("nowait rd1.pg.test"), "pending", "asked again: the same read")
is_eq(cmd("nowait rd2.pg.test"), "pending", "rd2, which has no row: read")
is_eq(cmd("reads"), "none", "no read has ended before it was sent")
is_eq(cmd("start"), "ok", "both are sent, in one query")
is_eq(cmd("nowait inflight.pg.test"), "b2 %d" % (NOW + 1),
      "a domain in memory is answered while the read is in flight")
is_eq(cmd("wait"), "ok", "the read ends")
is_eq(cmd("reads"), "rd1.pg.test:ok rd2.pg.test:ok",
      "one end for each domain, however often it was asked")
is_eq(cmd("nowait rd1.pg.test"), "r1 %d" % NOW, "rd1 is answered from memory")
is_eq(cmd("nowait rd2.pg.test"), "none", "rd2 is known to have no policy")

# The database hangs: a read in flight ends within its bound (1 s) as
# "offline", and so does one that waits behind a write batch, while the
# batch itself keeps its longer bound.
freeze()
is_eq(cmd("nowait rd3.pg.test"), "pending", "rd3, database hung: read")
is_eq(cmd("start"), "ok", "sent")
t0 = time.monotonic()
is_eq(cmd("wait"), "failed", "the read fails")
secs = time.monotonic() - t0
is_eq(cmd("reads"), "rd3.pg.test:offline",
      "rd3's lookup goes on without the store")
ok(secs < 4, "after the read's bound, not a write's (%.1f s)" % secs)
thaw()
is_eq(cmd("reconnect"), KEPT, "connecting again, on the loop")
is_eq(cmd("wait"), "ok", "connected")
is_eq(cmd("put rd4.pg.test r4 %d" % NOW), "ok", "put rd4")
freeze()
is_eq(cmd("start"), "ok", "the write batch is sent to the hung database")
is_eq(cmd("nowait rd5.pg.test"), "pending", "rd5 waits behind the batch")
is_eq(cmd("step"), "ok inflight",
      "the first bound to pass is rd5's; the batch is still in flight")
is_eq(cmd("reads"), "rd5.pg.test:offline",
      "rd5's lookup went on without the store, before the batch ended")
is_eq(cmd("wait"), "failed", "the batch fails after its own bound")
thaw()
is_eq(cmd("pending"), "1", "rd4 still waits in memory")
st.stdin.close()
is_eq(st.wait(timeout=10), 0, "storecmd exits cleanly")
done()
