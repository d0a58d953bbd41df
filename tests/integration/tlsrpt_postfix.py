# SPDX-License-Identifier: BSD-2-Clause
"""TLS-RPT from a real Postfix 3.7 mail log, and the log follower's
rotation and restart behaviour (issue 5, SPEC C2).

Part 1, real logs: a sending Postfix 3.7 (tests/lab/postfixworld.py) in
the test DNS world asks the daemon through smtp_tls_policy_maps and
delivers to TLS sinks; the daemon's [tlsrpt] postfix_log is the sender's
maillog_file.  Five domains, one message each (the sender's backoff is an
hour, so every domain gets exactly one session):

  dane311    DANE-EE 3 1 1, dane-only             sent      success (tlsa)
  mismatch   TLSA digest of another key           deferred  tlsa-invalid
  notls      no STARTTLS under dane-only          deferred  starttls-not-
                                                            supported
  optout     stored MTA-STS enforce policy ->     deferred  certificate-
             "secure match=", wrong-name cert               host-mismatch
  insecure   stored MTA-STS enforce policy,       sent      success (sts)
             certificate for the MX name

`tlspolicy report show` must give each domain's exact session counts,
policy type and failure result-type.  The TLS lines Postfix wrote are
printed as TAP comments.

Part 2, rotation and restart, with synthesised 3.7 lines (the formats of
tlsrpt_collect.py) in a second daemon without DNS: lines counted once;
lines appended while the daemon is stopped counted after the restart and
nothing twice; a rename rotation (the old file's tail and the new file's
lines, each once); a copytruncate rotation (nothing lost or doubled).
Nothing leaves 127.0.0.0/8.
"""
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lab"))
from tlstest import Daemon, bail, done, is_eq, ok  # noqa: E402
from dnsworld import DNSWorld  # noqa: E402
from postfixworld import PostfixWorld, PostfixError  # noqa: E402

T0 = time.time()
TODAY = time.strftime("%Y-%m-%d", time.gmtime())


def tlsrpt_conf(d, maillog):
    return ("[tlsrpt]\n"
            "enabled = yes\n"
            "socket = %s\n"
            "socket_group =\n"
            "postfix_log = %s\n"
            "organization = Test Org\n"
            "contact = mailto:tlsrpt@sender.test\n"
            "submitter = sender.test\n"
            "from = tlsrpt-noreply@sender.test\n"
            "sendmail = /bin/false\n" %
            (os.path.join(d.dir, "run", "tlsrpt.sock"), maillog))


def show(d, domain):
    """`tlspolicy report show` for today: the report (dict) or None."""
    rc, out, _ = d.tool("report", "show", "--day", TODAY, "--domain",
                        domain)
    try:
        return json.loads(out) if rc == 0 else None
    except ValueError:
        return None


def summary(rep):
    """(policy-type, successes, failures, {result-type: count})."""
    if not rep or not rep.get("policies"):
        return None
    p = rep["policies"][0]
    types = {}
    for fd in p.get("failure-details", []):
        types[fd["result-type"]] = types.get(fd["result-type"], 0) + \
            fd["failed-session-count"]
    return (p["policy"]["policy-type"],
            p["summary"]["total-successful-session-count"],
            p["summary"]["total-failure-session-count"], types)


# --- part 1: a real Postfix 3.7 ---------------------------------------------

w = DNSWorld()
w.start()


def mx(key):
    return w.mx_hosts(key)[0]


pw = PostfixWorld()
# The sender's maillog_file (postfixworld: <world>/<name>/maillog).
SENDER_LOG = os.path.join(pw.dir, "sender", "maillog")
d = Daemon(name="rptpfx", dane=True,
           server_extra="socketmap_mode = 0666\n",
           extra="[dns]\nresolvers = %s\ntrust_anchor = %s\n" %
           (w.resolver, w.trust_anchor))
d.write_config(server_extra="socketmap_mode = 0666\n",
               extra="[dns]\nresolvers = %s\ntrust_anchor = %s\n%s" %
               (w.resolver, w.trust_anchor, tlsrpt_conf(d, SENDER_LOG)))
d.start()
d.stop()
# MTA-STS enforce policies in the daemon's store (both domains are
# insecure in DNS, so DANE does not preempt them): the daemon answers
# "secure match=<mx> servername=hostname" and reports them as "sts".
d.put_sts(w.name("insecure"), "enforce", [mx("insecure")])
d.put_sts(w.name("optout"), "enforce", [mx("optout")])
d.start()

# key -> (sink certificate or None for no STARTTLS, Postfix status,
#         policy type, successes, failures, {result-type: count})
CASES = {
    # Postfix: "Verified TLS connection established to
    #   mx1.dane311.secure.test[127.S.54.N]:25: TLSv1.3 with cipher ..."
    # -> one successful session under the daemon's DANE answer.
    "dane311": (w.cert_for(mx("dane311")), "sent", "tlsa", 1, 0, {}),
    # Postfix 3.7 with OpenSSL 3.0 logs the DANE failure as
    #   "server certificate verification failed for
    #    mx1.mismatch.secure.test[...]:25: num=65:No matching DANE TLSA
    #    records"
    # then "Untrusted TLS connection established to ..." and the to= line
    # "status=deferred (Server certificate not verified)": one session,
    # tlsa-invalid (RFC 8460 §4.3.2: the TLSA records did not match).
    "mismatch": (w.cert_for(mx("mismatch")), "deferred", "tlsa", 0, 1,
                 {"tlsa-invalid": 1}),
    # The to= line: "status=deferred (TLS is required, but was not offered
    #   by host mx1.notls.secure.test[...])": starttls-not-supported.
    "notls": (None, "deferred", "tlsa", 0, 1,
              {"starttls-not-supported": 1}),
    # "server certificate verification failed for
    #   mx1.optout.nsec3.test[...]:25: num=62:hostname mismatch", then
    # "Untrusted TLS connection established" and "status=deferred (Server
    # certificate not verified)": certificate-host-mismatch.
    "optout": (w.cert_for("other.invalid"), "deferred", "sts", 0, 1,
               {"certificate-host-mismatch": 1}),
    # "Verified TLS connection established to mx1.insecure.test[...]:25":
    # success under the stored MTA-STS policy.
    "insecure": (w.cert_for(mx("insecure")), "sent", "sts", 1, 0, {}),
}

for key in CASES:
    host = mx(key)
    cert = CASES[key][0]
    if cert is None:
        pw.add_sink(key, w.addr(host), starttls=False, hostname=host)
    else:
        pw.add_sink(key, w.addr(host), cert[0], cert[1], hostname=host)
# A deferred message is retried only after an hour: one session each.
tx = pw.add_sender(resolv_conf=w.resolv_conf, ca_file=w.ca_cert,
                   policy_map="socketmap:unix:%s:postfix" % d.smap,
                   main={"minimal_backoff_time": "3600s",
                         "maximal_backoff_time": "3600s"})
try:
    pw.start()
except PostfixError as e:
    bail(str(e))
ok(tx.maillog == SENDER_LOG, "the daemon follows the sender's maillog",
   tx.maillog)

ids = {key: tx.submit("postmaster@" + w.name(key)) for key in CASES}
res = tx.wait(list(ids.values()), timeout=60)
for key, (_, want, _, _, _, _) in CASES.items():
    r = res[ids[key]]
    is_eq(r.status, want, "%s: Postfix says %s" % (w.name(key), want))

# The real smtp(8) lines (TLS, certificate and to= lines), for reviewers.
for line in tx.log().splitlines():
    if "/smtp[" in line and ("TLS" in line or "certificate" in line or
                             ": to=<" in line):
        print("# " + line)

# Wait until the daemon has counted every session (tick 0.5 s).
want = {key: c[2:] for key, c in CASES.items()}
got = {}
end = time.time() + 20
while time.time() < end:
    got = {key: summary(show(d, w.name(key))) for key in CASES}
    if all(got[k] is not None and got[k][1] + got[k][2] >= want[k][1] +
           want[k][2] for k in CASES):
        break
    time.sleep(0.5)
time.sleep(1.5)     # anything counted twice would show up by now
got = {key: summary(show(d, w.name(key))) for key in CASES}
for key in CASES:
    p, s, f, types = want[key]
    is_eq(got[key], (p, s, f, types),
          "%s: report %s, %d success, %d failure, %s" %
          (w.name(key), p, s, f, types or "no failure details"))
# The failure details name the MX host Postfix tried.
for key in ("mismatch", "notls", "optout"):
    rep = show(d, w.name(key))
    fds = rep["policies"][0].get("failure-details", []) if rep else []
    is_eq([(x.get("receiving-mx-hostname"), x.get("receiving-ip"))
           for x in fds], [(mx(key), w.addr(mx(key)))],
          "%s: failure detail names %s" % (w.name(key), mx(key)))
rep = show(d, w.name("insecure"))
if rep:
    is_eq(rep["policies"][0]["policy"].get("policy-string"),
          ["version: STSv1", "mode: enforce", "mx: " + mx("insecure"),
           "max_age: 86400"], "insecure: the stored STS policy lines")

pids = pw.pids()
pw.stop()
ok(pids and not any(os.path.exists("/proc/%d" % p) for p in pids),
   "no Postfix process survives (%d were running)" % len(pids))
d.stop()
w.stop()
print("# part 1: %.1f s" % (time.time() - T0))

# --- part 2: rotation and restart ---------------------------------------------

d2 = Daemon(name="rptrot")
LOG = os.path.join(d2.dir, "mail.log")
with open(LOG, "w"):
    pass
d2.write_config(extra=tlsrpt_conf(d2, LOG))
CIPHER = (": TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) "
          "key-exchange X25519 server-signature RSA-PSS (2048 bits) "
          "server-digest SHA256")
_pid = [1000]


def session(domain, ok_=True):
    """The lines of one delivery to DOMAIN by a new smtp[pid]: a Verified
    session, or an expired certificate (one failure)."""
    _pid[0] += 1
    stamp = time.strftime("%b %d %H:%M:%S")
    pre = "%s mta postfix/smtp[%d]: " % (stamp, _pid[0])
    host = "mx.%s[192.0.2.%d]:25" % (domain, _pid[0] % 250)
    qid = "%X" % (0xA0000 + _pid[0])
    if ok_:
        return [pre + "Verified TLS connection established to " + host +
                CIPHER,
                pre + "%s: to=<u@%s>, relay=%s, delay=1, delays=0/0/1/0, "
                "dsn=2.0.0, status=sent (250 ok)" % (qid, domain, host)]
    return [pre + "server certificate verification failed for %s: "
            "certificate has expired" % host,
            pre + "Untrusted TLS connection established to " + host + CIPHER,
            pre + "%s: to=<u@%s>, relay=%s, delay=1, delays=0/0/1/0, "
            "dsn=4.7.5, status=deferred (Server certificate not verified)"
            % (qid, domain, host)]


def append(path, domain, n_ok, n_fail=0):
    with open(path, "a") as f:
        for _ in range(n_ok):
            f.write("\n".join(session(domain)) + "\n")
        for _ in range(n_fail):
            f.write("\n".join(session(domain, False)) + "\n")


def counts(domain):
    rc, out, _ = d2.tool("-j", "report", "list")
    for x in out.splitlines():
        try:
            r = json.loads(x)
        except ValueError:
            continue
        if r.get("domain") == domain and "success" in r:
            return (r["success"], r["failure"])
    return (0, 0)


def wait_counts(domain, want, settle=1.5):
    """Counts of DOMAIN once they reach WANT (or after 10 s), then after
    SETTLE more seconds, so that a double count would show."""
    end = time.time() + 10
    while time.time() < end and counts(domain) < want:
        time.sleep(0.2)
    time.sleep(settle)
    return counts(domain)


d2.start()
append(LOG, "first.example", 3, 1)
is_eq(wait_counts("first.example", (3, 1)), (3, 1),
      "appended lines counted once: 3 successes, 1 failure")

# Restart: the position is kept in the store; lines written while the
# daemon is down are counted after the start, the old ones not again.
d2.stop()
append(LOG, "first.example", 2)
append(LOG, "down.example", 1, 1)
d2.start()
is_eq(wait_counts("first.example", (5, 1)), (5, 1),
      "after a restart: only the 2 new sessions added")
is_eq(counts("down.example"), (1, 1),
      "lines written while the daemon was stopped counted once")
d2.stop()
d2.start()
is_eq(wait_counts("first.example", (5, 1)), (5, 1),
      "a restart with nothing new counts nothing")

# A line half written when the daemon stops is read whole after the
# start (the kept position is the start of that line, not its middle).
# (The correlator's pending sessions live in memory: a delivery whose
# lines straddle a restart is not counted; Postfix writes them within
# milliseconds.)
one = session("first.example")
with open(LOG, "a") as f:
    f.write(one[0][:60])
time.sleep(1.2)
d2.stop()
with open(LOG, "a") as f:
    f.write(one[0][60:] + "\n" + one[1] + "\n")
d2.start()
is_eq(wait_counts("first.example", (6, 1)), (6, 1),
      "a line split by a restart is counted once")

# A rename rotation: the tail of the old file is written just before the
# rename, the new file gets lines right after; both counted once.
append(LOG, "rot.example", 2)
os.rename(LOG, LOG + ".1")
append(LOG + ".1", "rot.example", 1)
with open(LOG, "w"):
    pass
append(LOG, "rot.example", 3, 1)
is_eq(wait_counts("rot.example", (6, 1)), (6, 1),
      "rename rotation: old file's tail and the new file, each once")
append(LOG, "rot.example", 1)
is_eq(wait_counts("rot.example", (7, 1)), (7, 1),
      "after the rotation the new file is followed")

# logrotate "create": the new file exists (empty) for a while before the
# writer reopens its log; what it writes to the old file meanwhile counts.
os.rename(LOG, LOG + ".1")
with open(LOG, "w"):
    pass
time.sleep(1.2)                 # the daemon sees the new, empty file
append(LOG + ".1", "late.example", 2)
is_eq(wait_counts("late.example", (2, 0)), (2, 0),
      "create rotation: the old file is followed until the writer moves")
append(LOG, "late.example", 1, 1)
is_eq(wait_counts("late.example", (3, 1)), (3, 1),
      "create rotation: then the new file, nothing twice")

# Rotated while the daemon is down: the old file's rest (found as
# PATH.1 by its inode) and the whole new file are counted.
d2.stop()
append(LOG, "down2.example", 1)
os.rename(LOG, LOG + ".1")
append(LOG, "down2.example", 2, 1)
d2.start()
is_eq(wait_counts("down2.example", (3, 1)), (3, 1),
      "rotated while stopped: old file's tail and new file, each once")
d2.stop()
d2.start()
append(LOG, "down2.example", 1)
is_eq(wait_counts("down2.example", (4, 1)), (4, 1),
      "and a restart after that counts nothing twice")

# copytruncate: the file is copied and truncated in place, then written
# again from offset 0.
append(LOG, "trunc.example", 2)
is_eq(wait_counts("trunc.example", (2, 0)), (2, 0), "before copytruncate")
with open(LOG, "rb") as f, open(LOG + ".2", "wb") as g:
    g.write(f.read())
os.truncate(LOG, 0)
append(LOG, "trunc.example", 1, 1)
is_eq(wait_counts("trunc.example", (3, 1)), (3, 1),
      "copytruncate: new lines counted, nothing lost or doubled")
is_eq([counts(x) for x in ("first.example", "down.example", "rot.example",
                            "late.example", "down2.example")],
      [(6, 1), (1, 1), (7, 1), (3, 1), (4, 1)],
      "every other domain unchanged at the end")

ok(d2.alive(), "daemon alive")
d2.stop()
print("# %.1f s" % (time.time() - T0))
done()
