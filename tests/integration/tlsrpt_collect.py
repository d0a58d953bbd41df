# SPDX-License-Identifier: BSD-2-Clause
"""TLS-RPT collection and delivery through the daemon (issue 5).

One daemon with [tlsrpt] enabled and no live DNS: libtlsrpt-shaped
datagrams (SPEC C1.3 and broken ones) go to its datagram socket, one result
comes in over the query socket's "report" request, Postfix 3.7 log lines
are appended to a followed mail log, and a burst of 100,000 datagrams must
lose none; `tlspolicy report list/show` must show the exact counts and a
report valid against tests/lab/tlsrpt-schema.json. `tlspolicy report send`
then submits the mail report through a stand-in sendmail (argument vector,
stdin captured; exit 75 retried, exit 0 sent) whose message is parsed with
Python's email package. Finally the daemon is restarted one day later
(TLSPOLICYD_CLOCK_OFFSET): the day closes, the already-sent domain is done
and nothing is sent twice.
"""
import email
import email.policy
import gzip
import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tlstest import Daemon, TOP_SRCDIR, done, is_eq, ok  # noqa: E402

import jsonschema  # noqa: E402

SCHEMA = os.path.join(TOP_SRCDIR, "tests", "lab", "tlsrpt-schema.json")

d = Daemon(name="tlsrpt")
rsock = os.path.join(d.dir, "run", "tlsrpt", "tlsrpt.sock")
maillog = os.path.join(d.dir, "mail.log")
sendmail = os.path.join(d.dir, "sendmail")
mails = os.path.join(d.dir, "mails")
os.mkdir(mails)
with open(maillog, "w"):
    pass
# A stand-in for sendmail: records its arguments and the message, exits
# with the status in the file "exit" (75 = EX_TEMPFAIL).
with open(sendmail, "w") as f:
    f.write("#!/bin/sh\n"
            "exec 9>%(d)s/lock && flock 9\n"
            "n=$(ls %(m)s | grep -c eml)\n"
            "printf '%%s\\n' \"$@\" > %(m)s/$n.args\n"
            "cat > %(m)s/$n.eml\n"
            "exit $(cat %(d)s/exit 2>/dev/null || echo 0)\n"
            % {"m": mails, "d": d.dir})
os.chmod(sendmail, 0o755)
with open(os.path.join(d.dir, "exit"), "w") as f:
    f.write("75\n")

d.write_config(extra=("[tlsrpt]\n"
                      "enabled = yes\n"
                      "socket = %s\n"
                      "socket_group =\n"
                      "socket_mode = 0620\n"
                      "postfix_log = %s\n"
                      "grace = 0\n"
                      "delay = 0\n"
                      "organization = Test Org\n"
                      "contact = mailto:tlsrpt@sender.test\n"
                      "submitter = sender.test\n"
                      "from = tlsrpt-noreply@sender.test\n"
                      "sendmail = %s\n" % (rsock, maillog, sendmail)))
# A stale socket file from an earlier run is replaced.
os.makedirs(os.path.dirname(rsock))
stale = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
stale.bind(rsock)
stale.close()
d.start()
ok(os.path.exists(rsock), "datagram socket bound (stale one replaced)")
is_eq(oct(os.stat(rsock).st_mode & 0o777), "0o620", "socket_mode applied")

today = time.strftime("%Y-%m-%d", time.gmtime())

# SPEC C1.3 fixtures, as libtlsrpt 0.5 sends them, plus broken ones.
GOOD = [
    # DANE failure with raw non-UTF-8 bytes in the reason (repaired).
    b'{"dpv": "1","d": "example.com","pr": "v=TLSRPTv1; '
    b'rua=mailto:r@example.com","policies":[{"policy-type":1,'
    b'"policy-domain": "mx.example.com","policy-string":["3 1 1 ABCD"],'
    b'"failure-details":[{"c":204,"s": "192.0.2.1","n": "mx.example.com",'
    b'"h": "250-mx.example.com\\r\\n250 STARTTLS","r": "198.51.100.7",'
    b'"f": "caf\xc3\xa9 \\"q\\" \xff"}],"t":1,"f":1}]}',
    # The same policy, a success.
    b'{"dpv": "1","d": "example.com","policies":[{"policy-type":1,'
    b'"policy-domain": "mx.example.com","policy-string":["3 1 1 ABCD"],'
    b'"t":0,"f":0}]}',
    # No policy, an https rua; no dpv (libtlsrpt before 0.5).
    b'{"d": "Example.ORG.","pr": "v=TLSRPTv1;rua=https://r.example/x",'
    b'"policies":[{"policy-type":9,"t":0,"f":0}]}',
]
BAD = {
    "malformed": [b'not json', b'{"d": "example.com", "policies": [',
                  b'[1,2,3]'],
    "version": [b'{"dpv": "2","d": "example.com","policies":[]}'],
    "toobig": [b'{"d": "x.example", "pad": "' + b"a" * 70000 + b'"}'],
    "invalid": [b'{"dpv": "1","policies":[{"policy-type":9,"t":0,"f":0}]}'],
}

s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
for dg in GOOD:
    s.sendto(dg, rsock)
for kind in BAD:
    for dg in BAD[kind]:
        s.sendto(dg, rsock)

# One result through the query socket (other MTAs).
r = d.jq({"cmd": "report", "result": {
    "d": "jsonl.example", "pr": "v=TLSRPTv1; rua=mailto:x@jsonl.example",
    "policies": [{"policy-type": 2, "policy-string": [
        "version: STSv1", "mode: enforce", "mx: mx.jsonl.example",
        "max_age: 86400"], "mx-host": ["mx.jsonl.example"],
        "failure-details": [{"c": 202, "n": "mx.jsonl.example"}],
        "t": 1, "f": 1}]}})
is_eq(r, {"counted": True}, "report request counted")
r = d.jq({"cmd": "report", "result": {"policies": []}})
ok(r is not None and "error" in r, "invalid report request refused", r)
r = d.jq({"cmd": "report", "result": "nope"})
ok(r is not None and "error" in r, "non-object result refused", r)

# Postfix 3.7 smtp(8) lines: a DANE-verified success and an expired
# certificate, each closed by its to= line (SPEC C2).
d.put_dane("dane.example", "dane-only")
# An MTA-STS policy past its max_age is not applied, so the session is
# reported under no policy: the follower asks the daemon's decision, it
# does not read the store a second way.
d.put_sts("expired.example", "enforce", ["mx.expired.example"], max_age=60,
          fetched_at=int(time.time()) - 3600)
stamp = time.strftime("%b %d %H:%M:%S")
CIPHER = (": TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) "
          "key-exchange X25519 server-signature RSA-PSS (2048 bits) "
          "server-digest SHA256")
lines = [
    "%s mta postfix/smtp[501]: Verified TLS connection established to "
    "mx.dane.example[192.0.2.10]:25%s" % (stamp, CIPHER),
    "%s mta postfix/smtp[501]: 1A2B3C: to=<u@dane.example>, "
    "relay=mx.dane.example[192.0.2.10]:25, delay=1, delays=0/0/1/0, "
    "dsn=2.0.0, status=sent (250 ok)" % stamp,
    "%s mta postfix/smtp[502]: server certificate verification failed "
    "for mx.expired.example[192.0.2.30]:25: certificate has expired"
    % stamp,
    "%s mta postfix/smtp[502]: Untrusted TLS connection established to "
    "mx.expired.example[192.0.2.30]:25%s" % (stamp, CIPHER),
    "%s mta postfix/smtp[502]: 4D5E6F: to=<u@expired.example>, "
    "relay=mx.expired.example[192.0.2.30]:25, delay=1, "
    "delays=0/0/1/0, dsn=4.7.5, status=deferred (Server certificate "
    "not verified)" % stamp,
]
with open(maillog, "a") as f:
    f.write("\n".join(lines) + "\n")

# The burst: 100,000 datagrams, none may be lost.
BURST = 100000
burst = (b'{"dpv":"1","d":"burst.example","policies":[{"policy-type":9,'
         b'"t":0,"f":0}]}')
t0 = time.time()
for i in range(BURST):
    s.sendto(burst, rsock)
sent_secs = time.time() - t0
s.close()


def listing():
    rc, out, err = d.tool("-j", "report", "list")
    rows = [json.loads(x) for x in out.splitlines() if x.strip()]
    return rc, rows, err


def row(rows, domain):
    for x in rows:
        if x.get("domain") == domain and "success" in x:
            return x
    return None


end = time.time() + 60
while time.time() < end:
    rc, rows, err = listing()
    b = row(rows, "burst.example")
    if rc == 0 and b and b["success"] >= BURST and \
            row(rows, "expired.example"):
        break
    time.sleep(0.5)
is_eq(rc, 0, "report list runs")
b = row(rows, "burst.example") or {}
is_eq(b.get("success"), BURST,
      "burst of %d datagrams (sent in %.1fs): none lost" % (BURST,
                                                             sent_secs))
com = row(rows, "example.com") or {}
is_eq((com.get("success"), com.get("failure"), com.get("policies")),
      (1, 1, 1), "example.com: 1 success, 1 failure, one policy")
org = row(rows, "example.org") or {}
is_eq((org.get("success"), org.get("failure")), (1, 0),
      "example.org (normalised): 1 success")
is_eq(org.get("day"), today, "counted on today's UTC day")
j = row(rows, "jsonl.example") or {}
is_eq((j.get("success"), j.get("failure")), (0, 1), "query-socket result")
is_eq(row(rows, "x.example"), None, "oversized datagram not counted")
dn = row(rows, "dane.example") or {}
is_eq((dn.get("success"), dn.get("failure")), (1, 0),
      "log follower: Verified session for dane.example")
ex = row(rows, "expired.example") or {}
is_eq((ex.get("success"), ex.get("failure")), (0, 1),
      "log follower: expired certificate for expired.example")
counters = {x["counter"]: x["value"] for x in rows if "counter" in x}
# The blocking burst sender may fill the kernel queue: counted apart.
counters.pop("queue-full", None)
# "invalid": one datagram and one query-socket request.
is_eq(counters, {"malformed": 3, "version": 1, "toobig": 1, "invalid": 2,
                 "repaired": 1}, "bad datagrams counted by kind")
ok(not d.proc.poll(), "daemon alive after hostile datagrams")
ok("dropped a malformed datagram" in d.read_log(),
   "bad datagram logged")
is_eq(d.read_log().count("dropped a malformed datagram"), 1,
      "warnings rate-limited")

with open(SCHEMA) as f:
    checker = jsonschema.Draft7Validator(
        json.load(f), format_checker=jsonschema.FormatChecker())


def show(domain):
    rc, out, err = d.tool("report", "show", "--day", today, "--domain",
                          domain)
    try:
        return rc, json.loads(out), err
    except ValueError:
        return rc, None, err


rc, rep, err = show("example.com")
is_eq(rc, 0, "report show example.com")
errors = [e.message for e in checker.iter_errors(rep)] if rep else ["none"]
ok(not errors, "report valid against the RFC 8460 schema", errors)
if rep:
    pol = rep["policies"][0]
    is_eq(pol["policy"], {"policy-type": "tlsa", "policy-string":
                          ["3 1 1 ABCD"], "policy-domain": "mx.example.com"},
          "tlsa policy as sent")
    is_eq(pol["summary"], {"total-successful-session-count": 1,
                           "total-failure-session-count": 1}, "summary")
    fd = pol["failure-details"][0]
    is_eq((fd["result-type"], fd["failed-session-count"],
           fd["receiving-ip"], fd["sending-mta-ip"]),
          ("certificate-expired", 1, "198.51.100.7", "192.0.2.1"),
          "failure detail")
    is_eq(fd["failure-reason-code"], 'caf\u00e9 "q" \ufffd',
          "invalid UTF-8 repaired to U+FFFD")
rc, rep, err = show("dane.example")
if rep:
    is_eq(rep["policies"][0]["policy"]["policy-type"], "tlsa",
          "log follower takes the daemon's DANE answer as policy")
rc, rep, err = show("expired.example")
if rep:
    p = rep["policies"][0]
    is_eq((p["policy"]["policy-type"],
           p["failure-details"][0]["result-type"],
           p["failure-details"][0]["receiving-mx-hostname"]),
          ("no-policy-found", "certificate-expired", "mx.expired.example"),
          "log follower failure detail, under no policy (the stored one "
          "expired)")
rc, rep, err = show("nothing.example")
is_eq(rc, 1, "report show of an unknown domain: exit 1")

# Issue 10 item 14: the day is still open, so `report send` refuses and
# consumes nothing; --force mails what is counted so far as a partial
# report under an id of its own, first a temporary failure, then success.
rc, out, err = d.tool("report", "send", "--day", today, "--domain",
                      "example.com")
is_eq(rc, 2, "report send on an open day refused")
ok("%s is not over yet" % today in err and "--force" in err,
   "refusal in plain words", err)
is_eq(os.listdir(mails), [], "nothing mailed without --force")
rc, rows, err = listing()
is_eq((row(rows, "example.com") or {}).get("state"), "open",
      "refused send leaves the day open")
rc, out, err = d.tool("report", "send", "--force", "--day", today,
                      "--domain", "example.com")
is_eq(rc, 2, "partial send with sendmail exit 75: not sent")
ok("partial report" in out and "not sent: sendmail exit 75" in out,
   "partial failure printed", out + err)
with open(os.path.join(d.dir, "exit"), "w") as f:
    f.write("0\n")
rc, out, err = d.tool("report", "send", "--day", today, "--domain",
                      "example.com", "--force")
is_eq(rc, 0, "partial send runs")
ok("mailto:r@example.com sent" in out, "partial report sent", out + err)
rc, rows, err = listing()
c = row(rows, "example.com") or {}
is_eq(c.get("state"), "open", "a partial report leaves the day open")
ok(not [x for x in rows if x.get("destination") == "mailto:r@example.com"],
   "a partial report records no delivery", rows)
with open(os.path.join(mails, "1.args")) as f:
    args = f.read().split("\n")[:-1]
is_eq(args, ["-i", "-f", "tlsrpt-noreply@sender.test", "--",
             "r@example.com"], "sendmail argument vector")
with open(os.path.join(mails, "1.eml"), "rb") as f:
    msg = email.message_from_bytes(f.read(), policy=email.policy.default)
is_eq(msg.get_content_type(), "multipart/report", "multipart/report")
is_eq(msg.get_param("report-type"), "tlsrpt", "report-type tlsrpt")
is_eq((msg["TLS-Report-Domain"], msg["TLS-Report-Submitter"],
       msg["TLS-Required"], msg["To"]),
      ("example.com", "sender.test", "No", "r@example.com"),
      "report headers")
parts = list(msg.iter_parts())
is_eq([p.get_content_type() for p in parts],
      ["text/plain", "application/tlsrpt+gzip"], "two parts")
att = parts[-1]
fn = att.get_filename() or ""
ok(fn.startswith("sender.test!example.com!") and fn.endswith(".json.gz"),
   "attachment name", fn)
body = json.loads(gzip.decompress(att.get_content()))
ok(checker.is_valid(body), "mailed report valid against the schema")
ok(body["report-id"] in msg["Subject"], "Subject carries the report-id")
partial_id = body["report-id"]
ok("-partial-" in partial_id, "partial report-id of its own", partial_id)
ok(not body["date-range"]["end-datetime"].endswith("T23:59:59Z"),
   "partial date-range ends now", body["date-range"])
is_eq(body["policies"][0]["summary"],
      {"total-successful-session-count": 1,
       "total-failure-session-count": 1}, "partial report counts")
# A session after the partial report: the day's own report must have it.
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.sendto(GOOD[1], rsock)
s.close()
end = time.time() + 10
while time.time() < end:
    rc, rows, err = listing()
    if (row(rows, "example.com") or {}).get("success") == 2:
        break
    time.sleep(0.2)
is_eq((row(rows, "example.com") or {}).get("success"), 2,
      "a later session is still counted")

# One day later: the day closes at start-up, example.com gets the day's
# own report with every session (the partial one consumed nothing),
# example.org has an https rua and no HTTPS client here (live lookups
# off): retried later, nothing marked sent.
d.stop()
os.environ["TLSPOLICYD_CLOCK_OFFSET"] = "86460"
d.start()
end = time.time() + 20
while time.time() < end:
    rc, rows, err = listing()
    c = row(rows, "example.com") or {}
    o = row(rows, "example.org") or {}
    if c.get("state") == "done" and o.get("state") in ("due", "done"):
        if any(x.get("destination") == "https://r.example/x"
               for x in rows):
            break
    time.sleep(0.5)
is_eq((c.get("closed"), c.get("state")), (True, "done"),
      "after midnight: day closed, example.com done")
dl = [x for x in rows if x.get("destination") == "https://r.example/x"]
ok(dl and dl[0]["status"] == "failed" and dl[0]["tries"] == 1,
   "https rua without a client: failed, to be retried", dl)
rcpts = []
for n in sorted(os.listdir(mails)):
    if n.endswith(".args"):
        with open(os.path.join(mails, n)) as f:
            rcpts.append(f.read().split("\n")[-2])
is_eq(sorted(rcpts), ["r@example.com", "r@example.com", "r@example.com",
                     "x@jsonl.example"],
      "after the restart: jsonl.example and example.com's day mailed")
full = None
for n in sorted(os.listdir(mails)):
    if n.endswith(".eml") and n not in ("0.eml", "1.eml"):
        with open(os.path.join(mails, n), "rb") as f:
            m = email.message_from_bytes(f.read(),
                                         policy=email.policy.default)
        if m["To"] == "r@example.com":
            full = json.loads(gzip.decompress(
                list(m.iter_parts())[-1].get_content()))
ok(full is not None, "the day's own report for example.com")
if full:
    ok(full["report-id"] != partial_id and "-partial-" not in
       full["report-id"], "the day's report has the day's id",
       full["report-id"])
    is_eq(full["policies"][0]["summary"],
          {"total-successful-session-count": 2,
           "total-failure-session-count": 1},
          "the day's report counts the session after the partial one")
    is_eq(full["date-range"]["end-datetime"], today + "T23:59:59Z",
          "the day's report covers the whole day")
d.stop()
del os.environ["TLSPOLICYD_CLOCK_OFFSET"]
done()
