# SPDX-License-Identifier: BSD-2-Clause
"""TLS-RPT report mail over SMTP under NoNewPrivileges (issue 10 item 11).

The shipped systemd unit sets NoNewPrivileges=yes, which stops Postfix's
setgid postdrop, so report mail goes over SMTP to [tlsrpt] smtp by default.
The daemon runs under `setpriv --no-new-privs` (what the unit does; checked
in /proc), with [tlsrpt] smtp pointing at an aiosmtpd sink on 127.x.y.25 and
no sendmail. Datagrams are counted on day D; the daemon is restarted with
its clock past midnight (TLSPOLICYD_CLOCK_OFFSET): the day closes and the
report goes to the rua of the captured record (no live DNS here). The sink
first answers the message with 451: the delivery is recorded as failed with
the reply in plain words and retried after the backoff (another restart
with the clock 400 s later), then accepted with 250: the delivery is sent,
the message arrived exactly once, from [tlsrpt] from to the rua address,
and it is the RFC 8460 multipart/report whose gzip attachment holds a
report valid against tests/lab/tlsrpt-schema.json with the exact counts.
"""
import email
import email.policy
import gzip
import json
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tlstest import DAEMON, Daemon, TOP_SRCDIR, bail, done, is_eq, ok  # noqa

import jsonschema  # noqa: E402
from aiosmtpd.controller import Controller  # noqa: E402

SCHEMA = os.path.join(TOP_SRCDIR, "tests", "lab", "tlsrpt-schema.json")
with open(SCHEMA) as f:
    checker = jsonschema.Draft7Validator(
        json.load(f), format_checker=jsonschema.FormatChecker())
FROM = "tlsrpt-noreply@sender.test"
RCPT = "tlsrpt@reports.example"
ADDR = "127.%d.%d.25" % (60 + os.getpid() % 100, os.getpid() // 100 % 250)


class Sink:
    """Answers DATA from the list REPLIES (the last one repeats)."""

    def __init__(self):
        self.replies = ["451 4.3.0 try again later", "250 2.0.0 queued"]
        self.tries = []             # (mail from, rcpts) of every DATA
        self.accepted = []          # (mail from, rcpts, content)
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            reply = self.replies[min(len(self.tries),
                                     len(self.replies) - 1)]
            self.tries.append((envelope.mail_from,
                               list(envelope.rcpt_tos)))
            if reply.startswith("250"):
                self.accepted.append((envelope.mail_from,
                                      list(envelope.rcpt_tos),
                                      envelope.original_content))
        return reply


s = socket.socket()
try:
    s.bind((ADDR, 0))
except OSError as e:
    bail("%s busy: %s" % (ADDR, e))
PORT = s.getsockname()[1]
s.close()
sink = Sink()
ctl = Controller(sink, hostname=ADDR, port=PORT)
ctl.start()


class NoNewPrivsDaemon(Daemon):
    """The daemon as the hardened unit starts it: no_new_privs set."""

    def start(self, wait=True, args=()):
        import subprocess
        self.log_mark = len(self.read_log())
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen(
            ["setpriv", "--no-new-privs", DAEMON, "-f", "-v", "-c",
             self.conf] + list(args),
            stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        logf.close()
        if wait:
            self.wait_ready()
        return self.proc


d = NoNewPrivsDaemon(name="tlsrpt-smtp")
rsock = os.path.join(d.dir, "run", "tlsrpt.sock")
d.write_config(extra=("[tlsrpt]\n"
                      "enabled = yes\n"
                      "socket = %s\n"
                      "socket_group =\n"
                      "grace = 0\n"
                      "delay = 0\n"
                      "organization = Test Org\n"
                      "contact = mailto:tlsrpt@sender.test\n"
                      "submitter = sender.test\n"
                      "from = %s\n"
                      "smtp = %s:%d\n" % (rsock, FROM, ADDR, PORT)))
d.start()
with open("/proc/%d/status" % d.proc.pid) as f:
    nnp = [x.split()[1] for x in f if x.startswith("NoNewPrivs:")]
is_eq(nnp, ["1"], "daemon runs with no_new_privs set")
today = time.strftime("%Y-%m-%d", time.gmtime())
day0 = int(time.time()) // 86400 * 86400

PR = "v=TLSRPTv1; rua=mailto:%s" % RCPT
FAIL = json.dumps({"dpv": "1", "d": "example.com", "pr": PR, "policies": [{
    "policy-type": 1, "policy-domain": "mx.example.com",
    "policy-string": ["3 1 1 ABCD"],
    "failure-details": [{"c": 204, "s": "192.0.2.1", "n": "mx.example.com",
                         "r": "198.51.100.7"}], "t": 1, "f": 1}]}).encode()
GOOD = json.dumps({"dpv": "1", "d": "example.com", "pr": PR, "policies": [{
    "policy-type": 1, "policy-domain": "mx.example.com",
    "policy-string": ["3 1 1 ABCD"], "t": 0, "f": 0}]}).encode()
c = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
for dg in [FAIL] + [GOOD] * 3:
    c.sendto(dg, rsock)
c.close()


def listing():
    rc, out, err = d.tool("-j", "report", "list")
    return [json.loads(x) for x in out.splitlines() if x.strip()]


def wait_for(pred, secs=20):
    end = time.time() + secs
    rows = []
    while time.time() < end:
        rows = listing()
        if pred(rows):
            break
        time.sleep(0.2)
    return rows


def dom(rows):
    return next((x for x in rows if x.get("domain") == "example.com" and
                 "success" in x), {})


def dlv(rows):
    return next((x for x in rows if x.get("destination") ==
                 "mailto:" + RCPT), {})


rows = wait_for(lambda r: dom(r).get("success") == 3)
is_eq((dom(rows).get("success"), dom(rows).get("failure")), (3, 1),
      "four sessions counted on day D")
is_eq(sink.tries, [], "nothing mailed while the day is open")
d.stop()

# Past midnight: the day closes and the report goes out; the sink says 451.
os.environ["TLSPOLICYD_CLOCK_OFFSET"] = "86460"
d.start()
rows = wait_for(lambda r: dlv(r).get("status") == "failed")
x = dlv(rows)
is_eq((x.get("status"), x.get("tries")), ("failed", 1),
      "451 from the MTA: failed, to be retried")
err = x.get("error", "")
ok(err.startswith("SMTP to %s:%d: rejected: reply 451" % (ADDR, PORT)),
   "the reply in the delivery state", err)
is_eq(sink.tries, [(FROM, [RCPT])], "one SMTP try, MAIL FROM and RCPT TO")
is_eq(sink.accepted, [], "nothing accepted yet")
is_eq(dom(rows).get("state"), "due", "the domain waits for its retry")
d.stop()

# After the backoff (300 s) the retry is accepted.
os.environ["TLSPOLICYD_CLOCK_OFFSET"] = str(86460 + 400)
d.start()
rows = wait_for(lambda r: dlv(r).get("status") == "sent")
x = dlv(rows)
is_eq((x.get("status"), x.get("tries")), ("sent", 2), "retry sent")
is_eq(dom(rows).get("state"), "done", "the domain is done")
time.sleep(1.5)                 # a second send would show up by now
is_eq(len(sink.tries), 2, "two SMTP tries in all")
is_eq(len(sink.accepted), 1, "the report arrived exactly once")
ok("sent to mailto:%s" % RCPT in d.read_log(), "sent, in the log")
ok(d.alive(), "daemon alive")
d.stop()
del os.environ["TLSPOLICYD_CLOCK_OFFSET"]

if sink.accepted:
    mfrom, rcpts, raw = sink.accepted[0]
    is_eq((mfrom, rcpts), (FROM, [RCPT]), "envelope: from and rua address")
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    is_eq(msg.get_content_type(), "multipart/report", "multipart/report")
    is_eq(msg.get_param("report-type"), "tlsrpt", "report-type=tlsrpt")
    is_eq((msg["From"], msg["To"], msg["TLS-Report-Domain"],
           msg["TLS-Report-Submitter"], msg["TLS-Required"]),
          (FROM, RCPT, "example.com", "sender.test", "No"),
          "RFC 8460 headers")
    parts = list(msg.iter_parts())
    is_eq([p.get_content_type() for p in parts],
          ["text/plain", "application/tlsrpt+gzip"], "two parts")
    fn = parts[-1].get_filename() or ""
    is_eq(fn.split("!")[:4],
          ["sender.test", "example.com", str(day0), str(day0 + 86399)],
          "attachment name submitter!domain!begin!end!uid.json.gz")
    body = json.loads(gzip.decompress(parts[-1].get_content()))
    errors = [e.message for e in checker.iter_errors(body)]
    ok(not errors, "report valid against the RFC 8460 schema", errors)
    ok(body["report-id"] in msg["Subject"], "Subject carries the report-id")
    is_eq((body["organization-name"], body["contact-info"],
           body["date-range"]),
          ("Test Org", "mailto:tlsrpt@sender.test",
           {"start-datetime": today + "T00:00:00Z",
            "end-datetime": today + "T23:59:59Z"}), "identity and day")
    pol = body["policies"][0]
    is_eq(pol["summary"], {"total-successful-session-count": 3,
                           "total-failure-session-count": 1}, "counts")
    is_eq([(f["result-type"], f["failed-session-count"])
           for f in pol["failure-details"]],
          [("certificate-expired", 1)], "failure details")
else:
    ok(False, "a message was accepted")
ctl.stop()
done()
