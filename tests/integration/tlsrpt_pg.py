# SPDX-License-Identifier: BSD-2-Clause
"""The TLS-RPT store in PostgreSQL across a fleet (issue 13): two daemons
share one database (a real PostgreSQL 15 in a temporary directory,
tests/lab/pgworld.py) and the fleet sends one report per domain and day.

1. libtlsrpt datagrams sent to daemon A and to daemon B are counted in
   each host's local spool and pushed to the shared tables: the listing
   (the tool asks each daemon, which reads PostgreSQL) shows the sums.
2. PostgreSQL stopped mid-run: datagrams are still counted (both daemons
   keep running); when it returns the counts are pushed, nothing lost or
   doubled.
3. A restart with an unpushed spool (PostgreSQL down when A stops): A's
   counts are pushed after its next start. A batch applied once and then
   pushed again (the spool copied back from before the push: a crash
   between the database's commit and the spool's delete) is not applied
   twice.
4. The day closes (both restarted with TLSPOLICYD_CLOCK_OFFSET after
   midnight): exactly one daemon, the elected sender, hands each
   domain's report to its sendmail, which holds it; that daemon is
   killed (SIGKILL, and its held sendmail with it: the message never
   left). The other daemon takes over without waiting for the 5-minute
   retry backoff and sends each report once, with the same report-id and
   the summed counts; no third copy follows.
5. A wrong password or a schema newer than this version stops the start
   (with the reason, never the password); the database down does not.
6. (run before 5) The elected sender deletes the finished days older
   than 30 days (every report sent, given up or without a record, their
   counters too); a recent day stays, and so does an old day whose
   report still waits for a retry (it goes once sent or given up).
   Counts pushed for a day already that old are deleted, never sent.
7. (run before 5) "tlspolicy report send" on a host that is not the
   elected sender hands the report to the sender through the database
   and says so: the sender sends it, once; the host asked sends nothing.
   The same with that host's daemon stopped (the tool opens the store
   itself); with no daemon running anywhere the tool sends the report
   itself.
8. (run before 5) The elected sender's store calls wait for a hung
   database on a thread of their own: while the outcome of a delivery
   waits to be written, the daemon answers at once, and its stats say
   a call is waiting; the outcome is written once the database answers
   (within the call's bound). A report list asked meanwhile waits for
   the database too, without holding anyone up. Hung past the call's
   bound, the outcome is written again until the database takes it.
9. (run before 5) Counts a host pushes for a day whose reports are
   done (a host cut off for longer than the grace period) are in no
   report: the day's "after-report" counter says how many, and the tool
   lists it.

The _smtp._tls record comes from the datagrams ("pr"): the daemons' DNS
is silent, so the sender uses the captured record (SPEC C3). Skipped
only when the PostgreSQL 15 binaries are absent."""
import email
import email.policy
import gzip
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lab"))
from tlstest import Daemon, done, is_eq, ok  # noqa: E402
import pgworld  # noqa: E402

pgworld.skip_unless_installed()

DAY = 86400
tmp, pg = pgworld.temp_world("tlsrpt-pg-")
pg.start()
pg.psql("CREATE DATABASE tlspolicyd", db="postgres")
URI = pg.uri()

DOMS = ("one.example", "two.example")


def rua(dom):
    return "%s@reports.example" % dom.split(".")[0]


# --- sendmail wrappers: keep each message; hold it while "block" exists ----
wrap_dir = os.path.join(tmp, "wrap")
os.mkdir(wrap_dir)


def wrapper(tag):
    path = os.path.join(tmp, "sendmail-" + tag)
    with open(path, "w") as f:
        f.write("""#!/bin/sh
# Called as "sendmail -i -f FROM -- RCPT"; the recipient is the last word.
for a; do rcpt=$a; done
d=%s
n=$$
# A message appears under its name only once it is whole (the test reads
# it as soon as the name is there).
if [ -e "$d/block" ]; then
	echo $$ > "$d/pid.%s.$rcpt"
	cat > "$d/part.$$"
	mv "$d/part.$$" "$d/held.%s.$rcpt"
	while [ -e "$d/block" ]; do sleep 0.05; done
	exit 75
fi
cat > "$d/part.$$"
mv "$d/part.$$" "$d/sent.%s.$rcpt.$n"
""" % (wrap_dir, tag, tag, tag))
    os.chmod(path, 0o755)
    return path


def files(prefix):
    return sorted(n for n in os.listdir(wrap_dir) if n.startswith(prefix))


def kill_held(tag):
    for n in files("pid.%s." % tag):
        try:
            with open(os.path.join(wrap_dir, n)) as f:
                os.kill(int(f.read()), signal.SIGKILL)
        except (OSError, ValueError):
            pass


# --- the daemons -------------------------------------------------------------
daemons = {}


def make(tag, uri=URI):
    d = Daemon(name="rptpg" + tag)
    d.rsock = os.path.join(d.dir, "tlsrpt.sock")
    d.write_config(extra="""
[dns]
resolvers = %s
timeout = 1
[tlsrpt]
enabled = yes
store = %s
socket = %s
socket_group =
grace = 0
delay = 0
organization = Test Org
contact = mailto:tlsrpt@sender.test
submitter = sender.test
from = tlsrpt-noreply@sender.test
sendmail = %s
""" % (pgworld.DEAD_DNS, uri, d.rsock, wrapper(tag)))
    d.spool = os.path.join(d.dir, "state", "tlsrpt.db")
    daemons[tag] = d
    return d


clock = 0


def start(d, offset):
    global clock
    clock = offset
    os.environ["TLSPOLICYD_CLOCK_OFFSET"] = str(offset)
    d.start()


def now():
    return int(time.time()) + clock


a, b = make("A"), make("B")
start(a, 0)
day0 = now() - now() % DAY
if now() - day0 > DAY - 300:
    # Too close to midnight: count on the next day instead.
    a.stop()
    start(a, DAY - (now() - day0) + 60)
    day0 = now() - now() % DAY
start(b, clock)
D0 = time.strftime("%Y-%m-%d", time.gmtime(day0))


def dgram(dom, fail_code=None):
    pol = {"policy-type": 2, "policy-domain": dom,
           "policy-string": ["version: STSv1", "mode: enforce",
                             "mx: mx1." + dom, "max_age: 86400"],
           "mx-host": ["mx1." + dom],
           "t": 1 if fail_code else 0, "f": 1 if fail_code else 0}
    if fail_code:
        pol["failure-details"] = [{"c": fail_code, "n": "mx1." + dom,
                                   "r": "192.0.2.25"}]
    return json.dumps({"dpv": "1", "d": dom,
                       "pr": "v=TLSRPTv1; rua=mailto:" + rua(dom),
                       "policies": [pol]}).encode()


snd = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
want = {dom: [0, 0] for dom in DOMS}        # success, failure


def send(d, dom, nok, fails=()):
    for _ in range(nok):
        snd.sendto(dgram(dom), d.rsock)
    for c in fails:
        snd.sendto(dgram(dom, c), d.rsock)
    want[dom][0] += nok
    want[dom][1] += len(fails)
    time.sleep(0.05)


def pg_sums():
    out = pg.psql("SELECT domain, sum(total) - sum(failure), sum(failure) "
                  "FROM tlsrpt_policies WHERE day = %d GROUP BY domain "
                  "ORDER BY domain" % day0)
    got = {dom: [0, 0] for dom in DOMS}
    for line in out.splitlines():
        dom, s, f = line.split("|")
        got[dom] = [int(s), int(f)]
    return got


def listing(d):
    rc, out, err = d.tool("-j", "report", "list")
    return [json.loads(x) for x in out.splitlines() if x.strip()]


def listed_sums(d):
    got = {dom: [0, 0] for dom in DOMS}
    for x in listing(d):
        if x.get("day") == D0 and x.get("domain") in got and "success" in x:
            got[x["domain"]] = [x["success"], x["failure"]]
    return got


def wait_sums(secs=15):
    w = {k: list(v) for k, v in want.items()}
    got, _ = pgworld.wait_for(pg_sums, w, secs)
    return got, w


# --- 1. two hosts, one set of sums ------------------------------------------
send(a, "one.example", 3, [202])
send(b, "one.example", 2, [202, 203])
send(a, "two.example", 1)
send(b, "two.example", 4)
snd.sendto(b"{not json", a.rsock)
snd.sendto(b"{not json", b.rsock)
snd.sendto(b"{not json", b.rsock)
got, w = wait_sums()
is_eq(got, w, "1: A's and B's datagrams summed in PostgreSQL")


def malformed():
    return pg.psql("SELECT coalesce(sum(value), 0) FROM tlsrpt_counters "
                   "WHERE name = 'malformed' AND day = %d" % day0)


is_eq(pgworld.wait_for(malformed, "3", 10)[0], "3",
      "1: the ingest counters summed too (1 malformed on A, 2 on B)")
is_eq(listed_sums(a), w, "1: the tool lists the fleet's sums (A's config)")
is_eq(listed_sums(b), w, "1: the tool lists the fleet's sums (B's config)")
hosts = pg.psql("SELECT count(*) FROM tlsrpt_hosts WHERE seq > 0")
is_eq(hosts, "2", "1: two hosts pushed batches")
fails = pg.psql("SELECT detail, count FROM tlsrpt_failures WHERE day = %d "
                "AND domain = 'one.example' ORDER BY detail" % day0)
is_eq([int(x.split("|")[1]) for x in fails.splitlines()], [2, 1],
      "1: failure details summed per tuple (202 twice, 203 once)")

# --- 2. PostgreSQL stopped mid-run --------------------------------------------
pg.stop()
send(a, "one.example", 2)
send(b, "two.example", 0, [201])
send(a, "two.example", 1)
time.sleep(3)
ok(a.alive() and b.alive(), "2: both daemons run on with PostgreSQL down")
ok("the counts wait in the spool" in a.read_log(),
   "2: A says the counts wait in the spool", a.read_log()[-2000:])
pg.start()
got, w = wait_sums(20)
is_eq(got, w, "2: the counts of the outage pushed once PostgreSQL is back, "
      "none lost or doubled")

# --- 3. a restart with an unpushed spool; a batch pushed twice ----------------
pg.stop()
send(a, "one.example", 5, [204])
time.sleep(1.5)
is_eq(a.stop(), 0, "3: A stopped while PostgreSQL is down")
con = sqlite3.connect(a.spool)
left = con.execute("SELECT count(*) FROM outbox").fetchone()[0] + \
    con.execute("SELECT count(*) FROM policies").fetchone()[0]
con.close()
ok(left > 0, "3: A's spool keeps the unpushed counts", left)
before = os.path.join(tmp, "spool-before-push.db")
shutil.copy(a.spool, before)
pg.start()
start(a, clock)
got, w = wait_sums(20)
is_eq(got, w, "3: A's spooled counts pushed after its restart")
a.stop()
# The spool as it was before that push: its batch again, its seq too.
shutil.copy(before, a.spool)
for sfx in ("-wal", "-shm"):
    if os.path.exists(a.spool + sfx):
        os.unlink(a.spool + sfx)
start(a, clock)
time.sleep(2 * 2 + 2)
con = sqlite3.connect(a.spool)
out_left = con.execute("SELECT count(*) FROM outbox").fetchone()[0]
con.close()
is_eq(out_left, 0, "3: the replayed batch left A's outbox")
is_eq(pg_sums(), w, "3: a batch pushed twice is applied once")

# --- 4. the day closes: one sender, killed mid-delivery, the other takes over -
a.stop()
b.stop()
open(os.path.join(wrap_dir, "block"), "w").close()
off = day0 + DAY + 60 - int(time.time())
start(a, off)
start(b, off)


def held():
    return [n for n in files("held.")]


hl, _ = pgworld.wait_for(lambda: len(held()) >= 2 and len(held()), 2, 40)
hl = held()
tags = sorted(set(n.split(".")[1] for n in hl))
ok(len(hl) == 2, "4: both reports handed to a sendmail", hl)
ok(len(tags) == 1, "4: by one daemon only (the elected sender)", hl)
S = tags[0] if tags else "A"
T = "B" if S == "A" else "A"
ids = {}
for n in hl:
    with open(os.path.join(wrap_dir, n), "rb") as f:
        m = re.search(rb"Report-ID: <([^>]+)>", f.read())
    ids[n.split(".", 2)[2]] = m.group(1).decode() if m else None
tries = pg.psql("SELECT dest, tries, status FROM tlsrpt_deliveries "
                "ORDER BY dest")
ok(all(x.endswith("|1|0") for x in tries.splitlines()) and tries,
   "4: the try written before it started (pending, 1 try)", tries)
daemons[S].proc.send_signal(signal.SIGKILL)
daemons[S].proc.wait()
kill_held(S)
os.unlink(os.path.join(wrap_dir, "block"))
t_kill = time.monotonic()


def sent(tag):
    return files("sent.%s." % tag)


got, secs = pgworld.wait_for(lambda: len(sent(T)), 2, 40)
is_eq(got, 2, "4: after the sender died, %s sent both reports in %.0f s "
      "(not after the 300 s backoff)" % (T, secs))
ok(time.monotonic() - t_kill < 60, "4: the take-over did not wait for the "
   "backoff")
for n in sent(T):
    rcpt = n.split(".", 2)[2].rsplit(".", 1)[0]
    with open(os.path.join(wrap_dir, n), "rb") as f:
        raw = f.read()
    m = re.search(rb"Report-ID: <([^>]+)>", raw)
    rid = m.group(1).decode() if m else None
    is_eq(rid, ids.get(rcpt), "4: %s: the same report-id as the held copy"
          % rcpt)
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    rep = None
    for part in msg.walk():
        if part.get_filename():
            rep = json.loads(gzip.decompress(part.get_content()))
    dom = "%s.example" % rcpt.split("@")[0]
    summ = [p["summary"] for p in (rep or {}).get("policies", [])]
    tot = [sum(s["total-successful-session-count"] for s in summ),
           sum(s["total-failure-session-count"] for s in summ)]
    is_eq(tot, want[dom], "4: %s: the report carries the fleet's sums" % dom)
time.sleep(12)
is_eq(len(sent(T)), 2, "4: no third copy (one per domain from %s)" % T)
is_eq(sent(S), [], "4: nothing from the killed sender")
st = pg.psql("SELECT status, tries FROM tlsrpt_deliveries ORDER BY dest")
is_eq(st.splitlines(), ["2|2", "2|2"],
      "4: both deliveries sent, on the second try")
snd.close()
for d in daemons.values():
    d.stop()
w = {k: list(v) for k, v in want.items()}
is_eq(listed_sums(a), w, "4: with no daemon running the tool reads the "
      "shared tables itself")
rows = [x for x in listing(a) if "destination" in x]
ok(len(rows) == 2 and all(x["status"] == "sent" and
                          x["report-id"] == ids.get(x["destination"][7:])
                          for x in rows),
   "4: the tool lists both deliveries sent with their report-ids", rows)

# --- 6. the sender deletes finished days past the retention (30 days) -------
# Days written as if long ago; the clock stays one day after day0.
KEEP = 30


def old_day(day, dom, state, dlv_status=None, due=0):
    sql = ("INSERT INTO tlsrpt_days (day, closed) VALUES (%d, true) "
           "ON CONFLICT DO NOTHING;"
           "INSERT INTO tlsrpt_domains (day, domain, record, state, due) "
           "VALUES (%d, '%s', 'v=TLSRPTv1; rua=mailto:x@reports.example', "
           "%d, %d);"
           "INSERT INTO tlsrpt_policies (day, domain, policy, total, failure)"
           " VALUES (%d, '%s', '{}', 5, 1);"
           "INSERT INTO tlsrpt_failures (day, domain, policy, detail, count)"
           " VALUES (%d, '%s', '{}', '{}', 1);"
           % (day, day, dom, state, due, day, dom, day, dom))
    if dlv_status is not None:
        sql += ("INSERT INTO tlsrpt_deliveries (day, domain, dest, "
                "report_id, status, tries, first_try, next_try) VALUES "
                "(%d, '%s', 'mailto:x@reports.example', 'id', %d, 1, %d, "
                "%d);" % (day, dom, dlv_status, day + DAY, due))
    pg.psql(sql)


far = day0 + 100 * DAY      # never due within this test
old = day0 - 40 * DAY
old_day(old, "old-sent.example", 2, 2)
old_day(old, "old-gaveup.example", 2, 3)
old_day(old, "old-norecord.example", 3)
old_day(old, "old-late.example", 0)       # counts pushed 40 days late
old_day(old - DAY, "old-waiting.example", 1, 1, far)
old_day(day0 - (KEEP + 1) * DAY, "past-keep.example", 2, 2)
old_day(day0 - (KEEP - 1) * DAY, "within-keep.example", 2, 2)
pg.psql("INSERT INTO tlsrpt_days (day, closed) VALUES (%d, true);"
        "INSERT INTO tlsrpt_counters (day, name, value) VALUES "
        "(%d, 'malformed', 7), (%d, 'malformed', 8)"
        % (old - 2 * DAY, old - 2 * DAY, old))


def domains_left():
    return pg.psql("SELECT domain FROM tlsrpt_domains ORDER BY domain"
                   ).splitlines()


kept = sorted(["old-waiting.example", "within-keep.example"] + list(DOMS))
start(a, off)
got, _ = pgworld.wait_for(domains_left, kept, 30)
is_eq(got, kept, "6: the sender deleted the finished days older than %d "
      "days (sent, given up, no record); a recent day and an old one still "
      "waiting for delivery are kept" % KEEP)
a.stop()
for t in ("tlsrpt_policies", "tlsrpt_failures", "tlsrpt_deliveries"):
    left = pg.psql("SELECT count(*) FROM %s WHERE domain IN ("
                   "'old-sent.example', 'old-gaveup.example', "
                   "'old-norecord.example', 'past-keep.example')" % t)
    is_eq(left, "0", "6: no %s rows of the deleted reports left" % t)
days = pg.psql("SELECT day FROM tlsrpt_days WHERE day < %d ORDER BY day"
               % day0).splitlines()
is_eq(days, [str(old - DAY), str(day0 - (KEEP - 1) * DAY)],
      "6: the old days emptied (and the one with only counters) deleted, "
      "the one still waiting and the recent one kept")
is_eq(pg.psql("SELECT count(*) FROM tlsrpt_counters WHERE day < %d"
              % (day0 - KEEP * DAY)), "0",
      "6: the deleted days' counters went with them")
is_eq(pg.psql("SELECT status FROM tlsrpt_deliveries WHERE domain = "
              "'old-waiting.example'"), "1",
      "6: the old report still waiting for its retry is untouched")
is_eq(files("sent.A.x@") + files("held.A.x@"), [],
      "6: the counts pushed 40 days late were deleted, not sent")

# --- 7. "report send" on a host that does not send ---------------------------
# A alone takes the sender's lock; B, started after, does not send. A
# report of two days ago waits for a retry hours away: "report send" on B
# hands it to A through the database, and only A sends it.
def lock_held():
    return pg.psql("SELECT count(*) FROM pg_locks WHERE locktype = "
                   "'advisory' AND objid = 1414288210 AND granted")


start(a, off)
is_eq(pgworld.wait_for(lock_held, "1", 30)[0], "1",
      "7: A holds the sender's lock")
start(b, off)
R = day0 - 2 * DAY
pg.psql("INSERT INTO tlsrpt_days (day, closed) VALUES (%d, true);"
        "INSERT INTO tlsrpt_domains (day, domain, record, state) VALUES "
        "(%d, 'resend.example', 'v=TLSRPTv1; rua=mailto:resend@reports."
        "example', 2);"
        "INSERT INTO tlsrpt_policies (day, domain, policy, total, failure) "
        "SELECT %d, 'resend.example', policy, 4, 1 FROM tlsrpt_policies "
        "WHERE day = %d ORDER BY domain, policy LIMIT 1;"
        "INSERT INTO tlsrpt_deliveries (day, domain, dest, report_id, "
        "status, tries, first_try, next_try) VALUES (%d, 'resend.example',"
        " 'mailto:resend@reports.example', 'x', 1, 1, %d, %d)"
        % (R, R, R, day0, R, now() - 60, now() + 7200))
RS = time.strftime("%Y-%m-%d", time.gmtime(R))
rc, out, err = b.tool("report", "send", "--day", RS, "--domain",
                      "resend.example")
ok(rc == 0 and "handed over" in out and "does not send" in out,
   "7: on B the tool says the report was handed to the sending host",
   (rc, out, err))


def resent():
    return len(files("sent.A.resend@")) + len(files("sent.B.resend@"))


got, _ = pgworld.wait_for(resent, 1, 30)
time.sleep(3)
is_eq((len(files("sent.A.resend@")), len(files("sent.B.resend@"))), (1, 0),
      "7: the report went once, from A (the sender), none from B")
is_eq(pg.psql("SELECT status, tries FROM tlsrpt_deliveries WHERE domain = "
              "'resend.example'"), "2|2",
      "7: the shared delivery state says sent, on the second try")


def waiting_report(dom):
    """A report of day R for DOM whose try waits for a retry hours away."""
    pg.psql("INSERT INTO tlsrpt_domains (day, domain, record, state) VALUES "
            "(%d, '%s', 'v=TLSRPTv1; rua=mailto:%s@reports.example', 2);"
            "INSERT INTO tlsrpt_policies (day, domain, policy, total, "
            "failure) SELECT %d, '%s', policy, 4, 1 FROM tlsrpt_policies "
            "WHERE day = %d ORDER BY domain, policy LIMIT 1;"
            "INSERT INTO tlsrpt_deliveries (day, domain, dest, report_id, "
            "status, tries, first_try, next_try) VALUES (%d, '%s', "
            "'mailto:%s@reports.example', 'x', 1, 1, %d, %d)"
            % (R, dom, dom.split(".")[0], R, dom, day0, R, dom,
               dom.split(".")[0], now() - 60, now() + 7200))


def sent(tag, dom):
    return len(files("sent.%s.%s@" % (tag, dom.split(".")[0])))


# B's daemon stopped: the tool opens the store itself, sees that A holds
# the sender's lock, and hands the report over as B's daemon did.
b.stop()
waiting_report("resend2.example")
rc, out, err = b.tool("report", "send", "--day", RS, "--domain",
                      "resend2.example")
ok(rc == 0 and "handed over" in out and "does not send" in out,
   "7: B's daemon stopped, the tool on B hands the report to the sending "
   "host too", (rc, out, err))
pgworld.wait_for(lambda: sent("A", "resend2.example") +
                 sent("B", "resend2.example"), 1, 30)
time.sleep(3)
is_eq((sent("A", "resend2.example"), sent("B", "resend2.example")), (1, 0),
      "7: that report went once, from A; the tool sent nothing")
a.stop()
# No daemon anywhere: the tool takes the sender's role and sends itself.
waiting_report("resend3.example")
rc, out, err = b.tool("report", "send", "--day", RS, "--domain",
                      "resend3.example")
is_eq((rc, sent("A", "resend3.example"), sent("B", "resend3.example")),
      (0, 0, 1), "7: with no host sending, the tool sends the report "
      "itself, once (%s)" % (out + err).strip()[-300:])
is_eq(lock_held(), "0", "7: and the sender's lock is free again after it")

# --- 8. the sender's store calls wait on a thread of their own -------------
# A sends a report; its sendmail holds it. The database hangs, sendmail
# ends (a temporary failure), and the sender's write of the outcome waits
# for the database while A answers everyone at once: its stats say the
# write is still waiting. The hang (1.5 s) is shorter than a call's bound
# (2.5 s): once the database answers, the outcome is written.
def sender_state(d):
    return d.jq({"cmd": "stats"}).get("tlsrpt", {})


def hung_try():
    return pg.psql("SELECT status, tries, last_error FROM tlsrpt_deliveries "
                   "WHERE domain = 'hung.example'")


start(a, off)
is_eq(pgworld.wait_for(lock_held, "1", 30)[0], "1",
      "8: A holds the sender's lock again")
open(os.path.join(wrap_dir, "block"), "w").close()
waiting_report("hung.example")
rep = a.aq({"cmd": "report_send", "day": RS, "domain": "hung.example"})
got, _ = pgworld.wait_for(lambda: len(files("held.A.hung@")), 1, 30)
ok(got == 1, "8: the report is handed to A's sendmail, which holds it",
   rep)
ok(sender_state(a).get("sender") is True, "8: A's stats say it sends the "
   "reports", sender_state(a))
is_eq(hung_try(), "1|2|", "8: the try written before it started")
listed = {}


def list_hung():
    t = time.monotonic()
    listed["reply"] = a.aq({"cmd": "report_list", "day": RS,
                            "domain": "hung.example"})
    listed["secs"] = time.monotonic() - t


pg.freeze()
os.unlink(os.path.join(wrap_dir, "block"))
t0 = time.monotonic()
lister = threading.Thread(target=list_hung)
lister.start()
worst, waiting, answers = 0.0, 0, 0
while time.monotonic() - t0 < 1.5:
    t1 = time.monotonic()
    st = sender_state(a)
    worst = max(worst, time.monotonic() - t1)
    answers += 1
    waiting = max(waiting, st.get("store_calls_waiting", 0))
    time.sleep(0.02)
pg.thaw()
ok(waiting >= 1, "8: database hung, the sender's write of the outcome "
   "waits for it (stats: %d store call(s) waiting)" % waiting)
ok(worst < 0.5, "8: meanwhile A answers at once (%d answers, the slowest "
   "in %.3f s)" % (answers, worst))
want = "1|2|sendmail exit 75 (EX_TEMPFAIL)"
got, secs = pgworld.wait_for(hung_try, want, 30)
is_eq(got, want, "8: once the database answers, the outcome is written "
      "(%.1f s)" % secs)
got, _ = pgworld.wait_for(
    lambda: sender_state(a).get("store_calls_waiting"), 0, 30)
is_eq(got, 0, "8: and nothing waits any more")
lister.join(30)
days = listed.get("reply", {}).get("days", [])
ok([x.get("domain") for x in days] == ["hung.example"] and
   listed["secs"] >= 1.0,
   "8: a report list asked meanwhile waited for the database, not the "
   "loop, and then listed the report (%.1f s)" % listed.get("secs", -1),
   listed)

# The database hung past the call's bound: the outcome's write fails,
# and the sender writes it again (every 5 s, for 2 minutes) until the
# database takes it.
open(os.path.join(wrap_dir, "block"), "w").close()
waiting_report("hung2.example")
rep = a.aq({"cmd": "report_send", "day": RS, "domain": "hung2.example"})
got, _ = pgworld.wait_for(lambda: len(files("held.A.hung2@")), 1, 30)
ok(got == 1, "8: a second report held by A's sendmail", rep)
mark = len(a.read_log())
pg.freeze()
os.unlink(os.path.join(wrap_dir, "block"))
t0 = time.monotonic()
worst = 0.0
while time.monotonic() - t0 < 4:
    t1 = time.monotonic()
    sender_state(a)
    worst = max(worst, time.monotonic() - t1)
    time.sleep(0.05)
pg.thaw()
ok(worst < 0.5, "8: the database hung for 4 s: A answers at once all the "
   "while (the slowest in %.3f s)" % worst)
want = "1|2|sendmail exit 75 (EX_TEMPFAIL)"
got, secs = pgworld.wait_for(lambda: pg.psql(
    "SELECT status, tries, last_error FROM tlsrpt_deliveries WHERE domain "
    "= 'hung2.example'"), want, 60)
is_eq(got, want, "8: the outcome the database did not take at first is "
      "written once it answers (%.1f s)" % secs)
ok("tlsrpt: report store:" in a.read_log()[mark:],
   "8: the log said the store did not take it",
   a.read_log()[mark:][-800:])
a.stop()

# --- 9. counts for a day whose report is done -------------------------------
# A host cut off for longer than the grace period pushes counts for day0
# after its reports went out: they are in no report, and the day's
# "after-report" counter says how many.
def after_report():
    return pg.psql("SELECT coalesce(sum(value), 0) FROM tlsrpt_counters "
                   "WHERE name = 'after-report' AND day = %d" % day0)


def day0_deliveries():
    return pg.psql("SELECT string_agg(status || '/' || tries, ' ' ORDER BY "
                   "dest) FROM tlsrpt_deliveries WHERE day = %d" % day0)


is_eq(pg.psql("SELECT string_agg(DISTINCT state::text, ' ') FROM "
              "tlsrpt_domains WHERE day = %d" % day0), "2",
      "9: the reports of day %s are done" % D0)
before = day0_deliveries()
start(a, day0 + 3600 - int(time.time()))
late = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
for _ in range(3):
    late.sendto(dgram("one.example"), a.rsock)
late.sendto(dgram("two.example", 202), a.rsock)
late.close()
got, _ = pgworld.wait_for(after_report, "4", 20)
is_eq(got, "4", "9: the 4 sessions pushed after the reports are counted "
      "as after-report")
is_eq(pg.psql("SELECT count(*) FROM pg_stat_activity WHERE usename = "
              "'tlspolicyd' AND backend_type = 'client backend' AND "
              "pid <> pg_backend_pid()"), "2",
      "9: A holds two connections to the database (its push thread's and "
      "its sender's)")
listed = [x for x in listing(a) if x.get("counter") == "after-report"]
is_eq([(x.get("day"), x.get("value")) for x in listed], [(D0, 4)],
      "9: the tool lists that counter for the day")
time.sleep(3)
is_eq(day0_deliveries(), before, "9: no report of the day is sent again")
a.stop()

# --- 5. refusals stop the start; an outage does not ----------------------------


def start_fails(d):
    os.environ["TLSPOLICYD_CLOCK_OFFSET"] = "0"
    p = d.start(wait=False)
    try:
        rc = p.wait(20)
    except Exception:
        p.kill()
        rc = "running"
    return rc, d.read_log()


bad = os.path.join(tmp, "pgpass-bad")
with open(bad, "w") as f:
    f.write("*:*:*:tlspolicyd:Zq9-bad-secret\n")
os.chmod(bad, 0o600)
rc, log = start_fails(make("C", pg.uri(passfile=bad)))
ok(rc not in (0, "running") and "refuses this connection" in log and
   "Zq9-bad-secret" not in log,
   "5: a wrong password stops the start, the password not in the message",
   log[-1500:])
pg.psql("UPDATE tlspolicyd_schema SET version = 99 WHERE store = 'tlsrpt'")
rc, log = start_fails(make("D"))
ok(rc not in (0, "running") and
   "schema version 99 is newer than this tlspolicyd knows (1)" in log,
   "5: a newer schema stops the start", log[-1500:])
pg.psql("UPDATE tlspolicyd_schema SET version = 1 WHERE store = 'tlsrpt'")
pg.stop()
e = make("E")
start(e, 0)
ok(e.alive(), "5: the database down at start: the daemon starts")
e.stop()
done()
