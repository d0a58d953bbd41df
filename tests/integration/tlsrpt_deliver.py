# SPDX-License-Identifier: BSD-2-Clause
"""TLS-RPT delivery end to end (issue 5, SPEC C3, RFC 8460 §3, §5).

The daemon counts libtlsrpt datagrams on day D, then is restarted with its
clock moved past midnight (TLSPOLICYD_CLOCK_OFFSET): the day closes and each
domain's report goes to the rua of its `_smtp._tls` TXT record, looked up in
the test DNS world (the "pr" record captured in the datagrams is a decoy
and must not be used while DNS answers):

  mailto:  through a real Postfix sendmail (its own config directory,
           selected with MAIL_CONFIG in the daemon's environment) whose
           instance relays everything to an aiosmtpd sink on
           127.S.45.25:25; each message is parsed with Python's email
           package (multipart/report, headers, attachment name, gzip, JSON
           valid against tests/lab/tlsrpt-schema.json, counts as sent);
  https:   to a Python ssl receiver on 127.S.45.1:443 with a certificate
           from the test CA ([sts] ca_file): 201 delivered, 500 retried
           (not before the 5-minute backoff, then delivered), 404 given
           up, 503 / 429 / 503 retried with the backoff doubling and given
           up once 24 hours have passed since the first try.

Restart in the middle of delivery: [tlsrpt] sendmail is first a wrapper
that holds two messages while the daemon is killed (SIGKILL). One held
sendmail is then killed too (the message never left): after the restart
and the backoff the report goes out once, with the same report-id. The
other is released and submits its copy after the daemon died: the daemon
cannot know and resends once more, with the same report-id; never a third
time (rpt_deliver.h: "a crash resends at most once, with the same
report-id"). Finally day D+1 closes and its own report is sent.
"""
import atexit
import email
import email.policy
import gzip
import http.server
import json
import os
import shutil
import signal
import socket
import ssl
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lab"))
from tlstest import Daemon, TOP_SRCDIR, bail, done, is_eq, ok  # noqa: E402
from dnsworld import DNSWorld  # noqa: E402
from postfixworld import PostfixWorld, tools_missing  # noqa: E402
import pki  # noqa: E402

import jsonschema  # noqa: E402
from aiosmtpd.controller import Controller  # noqa: E402

if tools_missing():
    bail("postfix tools missing: %s" % " ".join(tools_missing()))

SCHEMA = os.path.join(TOP_SRCDIR, "tests", "lab", "tlsrpt-schema.json")
with open(SCHEMA) as f:
    checker = jsonschema.Draft7Validator(
        json.load(f), format_checker=jsonschema.FormatChecker())
DAY = 86400
Z = "secure.test"
FROM = "tlsrpt-noreply@sender.test"
RX = "rpt." + Z                 # the HTTPS receiver's host name


def dom(label):
    return "%s.%s" % (label, Z)


tmp = tempfile.mkdtemp(prefix="tlsrpt-deliver-")
os.chmod(tmp, 0o755)
if not os.environ.get("KEEP_TMP"):
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
w = DNSWorld()
net = "127.%d.45." % w.slot
HTTPS_ADDR, SMTP_ADDR = net + "1", net + "25"
for a, port in ((HTTPS_ADDR, 443), (SMTP_ADDR, 25)):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((a, port))
    except OSError as e:
        bail("%s:%d busy: %s" % (a, port, e))
    finally:
        s.close()

# --- DNS: the rua of each domain -----------------------------------------
# label -> rua in DNS (None: no record at all).
RUA = {
    "mail": "mailto:tlsrpt@reports.example",
    "crash": "mailto:crash@reports.example",
    "orphan": "mailto:orphan@reports.example",
    "ok": "https://%s/ok" % RX,
    "retry": "https://%s/retry" % RX,
    "gone": "https://%s/gone" % RX,
    "down": "https://%s/down" % RX,
    "norec": None,
}
for lb, rua in RUA.items():
    if rua is not None:
        w.add_record(Z, "_smtp._tls.%s. 300 IN TXT \"v=TLSRPTv1; rua=%s\""
                     % (dom(lb), rua))
w.add_record(Z, "%s. 300 IN A %s" % (RX, HTTPS_ADDR))
# What the datagrams carry as "pr": a decoy that must not be used.
DECOY = "v=TLSRPTv1; rua=https://%s/decoy" % RX

# --- the HTTPS receiver ----------------------------------------------------
ca = pki.CA(os.path.join(tmp, "ca"))
rx_cert, rx_key = ca.issue(RX)
posts = []                      # (path, headers, body) in arrival order
posts_lock = threading.Lock()


class Receiver(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n)
        with posts_lock:
            posts.append((self.path, dict(self.headers), body))
            tries = sum(1 for p in posts if p[0] == self.path)
        if self.path == "/ok":
            code = 201
        elif self.path == "/retry":
            code = 500 if tries == 1 else 201
        elif self.path == "/gone":
            code = 404
        elif self.path == "/down":
            code = 503 if tries != 2 else 429
        else:
            code = 400
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


rx = http.server.ThreadingHTTPServer((HTTPS_ADDR, 443), Receiver)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(rx_cert, rx_key)
rx.socket = ctx.wrap_socket(rx.socket, server_side=True)
threading.Thread(target=rx.serve_forever, daemon=True).start()
atexit.register(rx.shutdown)


def posted(path):
    with posts_lock:
        return [p for p in posts if p[0] == path]


# --- the SMTP sink and the Postfix instance that relays to it ---------------
received = []                   # (mail from, rcpt tos, bytes)


class Sink:
    async def handle_DATA(self, server, session, envelope):
        received.append((envelope.mail_from, list(envelope.rcpt_tos),
                         envelope.original_content or envelope.content))
        return "250 OK stored"


smtp = Controller(Sink(), hostname=SMTP_ADDR, port=25)
smtp.start()
atexit.register(smtp.stop)

pw = PostfixWorld(os.path.join(tmp, "postfix"))
tx = pw.add_sender(security_level="may", main={
    "relayhost": "[%s]:25" % SMTP_ADDR,
    "smtp_dns_support_level": "",
    "smtp_host_lookup": "native",
    "dnssec_probe": "",
})
w.start()
pw.start()
# Postfix's sendmail takes its configuration directory from MAIL_CONFIG
# (sendmail(1)); the daemon passes its environment on.
os.environ["MAIL_CONFIG"] = tx.etc


def mails_to(rcpt):
    return [m for m in received if m[1] == [rcpt]]


# --- the sendmail wrapper: holds a message while "block.RCPT" exists --------
wrap_dir = os.path.join(tmp, "wrap")
os.mkdir(wrap_dir)
wrapper = os.path.join(tmp, "sendmail-wrapper")
with open(wrapper, "w") as f:
    f.write("""#!/bin/sh
# Called as "sendmail -i -f FROM -- RCPT"; the recipient is the last word.
for a; do rcpt=$a; done
d=%s
if [ -e "$d/block.$rcpt" ]; then
	cat > "$d/held.$rcpt"
	echo $$ > "$d/pid.$rcpt.tmp" && mv "$d/pid.$rcpt.tmp" "$d/pid.$rcpt"
	while [ -e "$d/block.$rcpt" ]; do sleep 0.05; done
	exec /usr/sbin/sendmail "$@" < "$d/held.$rcpt"
fi
exec /usr/sbin/sendmail "$@"
""" % wrap_dir)
os.chmod(wrapper, 0o755)


def held_pid(rcpt):
    """The pid of the wrapper holding RCPT's message, while it waits."""
    try:
        with open(os.path.join(wrap_dir, "pid." + rcpt)) as f:
            pid = int(f.read())
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return pid if wrapper.encode() in f.read() else None
    except (OSError, ValueError):
        return None


def kill_held():
    """A held sendmail still waiting when the test ends (by its pid)."""
    for n in os.listdir(wrap_dir):
        if n.startswith("pid.") and not n.endswith(".tmp"):
            pid = held_pid(n[4:])
            if pid is not None:
                os.kill(pid, signal.SIGKILL)


atexit.register(kill_held)

# --- the daemon ---------------------------------------------------------------
d = Daemon(name="rptdlv", dane=False, sts=True)
rsock = os.path.join(d.dir, "tlsrpt.sock")
clock = 0


def config(sendmail):
    d.write_config(extra="""
[dns]
resolvers = %s
trust_anchor = %s
timeout = 5
[sts]
ca_file = %s
fetch_timeout = 5
[tlsrpt]
enabled = yes
socket = %s
socket_group =
grace = 0
delay = 0
organization = Test Org
contact = mailto:tlsrpt@sender.test
submitter = sender.test
from = %s
sendmail = %s
""" % (w.resolver, w.trust_anchor, ca.cert_path, rsock, FROM, sendmail))


def start(offset, sendmail="/usr/sbin/sendmail"):
    global clock
    clock = offset
    os.environ["TLSPOLICYD_CLOCK_OFFSET"] = str(offset)
    config(sendmail)
    d.start()


def now():
    return int(time.time()) + clock


def listing():
    rc, out, err = d.tool("-j", "report", "list")
    return [json.loads(x) for x in out.splitlines() if x.strip()]


def dom_row(rows, label, day):
    for x in rows:
        if x.get("domain") == dom(label) and x.get("day") == day and \
                "success" in x:
            return x
    return None


def dlv_rows(rows, label):
    return [x for x in rows if x.get("domain") == dom(label) and
            "destination" in x]


def wait_for(cond, timeout, step=0.2):
    end = time.time() + timeout
    while True:
        r = cond()
        if r or time.time() >= end:
            return r
        time.sleep(step)


def daystr(t):
    return time.strftime("%Y-%m-%d", time.gmtime(t))


# --- day D: datagrams ------------------------------------------------------
start(0)
day0 = now() - now() % DAY
D0 = daystr(day0)
if now() - day0 > DAY - 120:
    # So close to midnight that the datagrams could straddle it: count
    # them on the next day instead.
    d.stop()
    start(DAY - (now() - day0) + 60)
    day0 = now() - now() % DAY
    D0 = daystr(day0)

MXIP = "192.0.2.25"


def dgram(label, fails=(), policy_type=2):
    """One session for LABEL: success, or failure with result codes."""
    pol = {"policy-type": policy_type, "policy-domain": dom(label),
           "t": len(fails), "f": 1 if fails else 0}
    if policy_type == 2:
        pol["policy-string"] = ["version: STSv1", "mode: enforce",
                                "mx: mx1.%s" % dom(label), "max_age: 86400"]
        pol["mx-host"] = ["mx1.%s" % dom(label)]
    if fails:
        pol["failure-details"] = [{"c": c, "n": "mx1." + dom(label),
                                   "r": MXIP} for c in fails]
    return json.dumps({"dpv": "1", "d": dom(label), "pr": DECOY,
                       "policies": [pol]}).encode()


# label -> (successes, failures by code)
SENT = {
    "mail": (5, [204, 204, 201]),
    "crash": (2, [203]),
    "orphan": (1, []),
    "ok": (3, [202]),
    "retry": (1, []),
    "gone": (1, []),
    "down": (0, [205]),
    "norec": (1, []),
}
snd = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
for lb, (nok, fails) in SENT.items():
    for _ in range(nok):
        snd.sendto(dgram(lb), rsock)
    for c in fails:
        snd.sendto(dgram(lb, [c]), rsock)


def counted():
    rows = listing()
    got = {}
    for lb in SENT:
        r = dom_row(rows, lb, D0) or {}
        got[lb] = (r.get("success"), r.get("failure"))
    return got


want = {lb: (n, len(f)) for lb, (n, f) in SENT.items()}
got = wait_for(lambda: counted() == want and counted(), 10) or counted()
is_eq(got, want, "day D: every datagram counted")
rows = listing()
ok(all((dom_row(rows, lb, D0) or {}).get("state") == "open"
       for lb in SENT), "day D still open: nothing due", rows)
is_eq(posts, [], "nothing sent while the day is open")
is_eq(d.stop(), 0, "daemon stopped")

# --- day D+1, 60 s after midnight: the day closes and delivery starts --------
# The wrapper holds the crash and orphan reports; the rest go through.
for lb in ("crash", "orphan"):
    open(os.path.join(wrap_dir, "block." + RUA[lb][7:]), "w").close()
t_midnight = day0 + DAY
start(t_midnight + 60 - int(time.time()), sendmail=wrapper)
D1 = daystr(now())
snd.sendto(dgram("ok"), rsock)      # counted on D+1
snd.close()


def held(lb):
    return os.path.exists(os.path.join(wrap_dir, "pid." + RUA[lb][7:]))


def phase_b_done():
    rows = listing()
    st = {lb: [(x["status"], x["tries"]) for x in dlv_rows(rows, lb)]
          for lb in ("mail", "ok", "retry", "gone", "down")}
    return (held("crash") and held("orphan") and
            st == {"mail": [("sent", 1)], "ok": [("sent", 1)],
                   "retry": [("failed", 1)], "gone": [("given-up", 1)],
                   "down": [("failed", 1)]} and
            (dom_row(rows, "norec", D0) or {}).get("state") == "no-record"
            and mails_to("tlsrpt@reports.example") and rows)


rows = wait_for(phase_b_done, 30) or listing()
t_b = now()
ok(held("crash") and held("orphan"), "crash and orphan reports held in "
   "sendmail")
for lb, want_st in (("mail", "sent"), ("ok", "sent"), ("retry", "failed"),
                    ("gone", "given-up"), ("down", "failed")):
    dl = dlv_rows(rows, lb)
    ok(len(dl) == 1 and dl[0]["destination"] == RUA[lb] and
       dl[0]["status"] == want_st and dl[0]["tries"] == 1,
       "after midnight: %s -> %s, %s after one try" % (dom(lb), RUA[lb],
                                                       want_st), dl)
dl = dlv_rows(rows, "retry")
if dl:
    ok("500" in dl[0]["error"], "retry: the 500 is recorded", dl)
    left = dl[0]["next-try"] - t_b
    ok(250 <= left <= 300, "retry: next try 300 s after the first "
       "(RFC 8460 §5.5 backoff), %d s left" % left, dl)
r = dom_row(rows, "retry", D0) or {}
is_eq((r.get("closed"), r.get("state")), (True, "due"),
      "retry: day closed, domain due again")
r = dom_row(rows, "gone", D0) or {}
is_eq(r.get("state"), "done", "gone: given up, domain done")
r = dom_row(rows, "norec", D0) or {}
is_eq((r.get("state"), dlv_rows(rows, "norec")), ("no-record", []),
      "norec: no _smtp._tls record, nothing sent (the captured one is "
      "not used when DNS answers)")
is_eq(posted("/decoy"), [], "the datagrams' pr record never used")
r = dom_row(rows, "ok", D1) or {}
is_eq((r.get("success"), r.get("closed"), r.get("state")),
      (1, False, "open"), "a datagram after midnight counts on D+1, open")

# --- the HTTPS posts ----------------------------------------------------------


def check_post(p, what):
    path, hdrs, body = p
    hdrs = {k.lower(): v for k, v in hdrs.items()}
    ok(hdrs.get("content-type") == "application/tlsrpt+gzip",
       "%s: Content-Type application/tlsrpt+gzip" % what, hdrs)
    try:
        rep = json.loads(gzip.decompress(body))
    except (OSError, ValueError) as e:
        ok(False, "%s: gzipped JSON body" % what, e)
        return None
    errs = [e.message for e in checker.iter_errors(rep)]
    ok(not errs, "%s: report valid against the RFC 8460 schema" % what,
       errs)
    return rep


def summary(rep):
    tot = [0, 0]
    fails = []
    for p in rep.get("policies", []):
        s = p.get("summary", {})
        tot[0] += s.get("total-successful-session-count", 0)
        tot[1] += s.get("total-failure-session-count", 0)
        for fd in p.get("failure-details", []):
            fails += [fd["result-type"]] * fd["failed-session-count"]
    return tuple(tot), sorted(fails)


CODES = {201: "starttls-not-supported", 202: "certificate-host-mismatch",
         203: "certificate-not-trusted", 204: "certificate-expired",
         205: "validation-failure"}


def want_summary(lb, nok=None):
    n, fails = SENT[lb]
    return (n if nok is None else nok, len(fails)), sorted(CODES[c]
                                                           for c in fails)


def day_range(rep):
    dr = rep.get("date-range", {})
    return dr.get("start-datetime"), dr.get("end-datetime")


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


oks = posted("/ok")
is_eq(len(oks), 1, "https 201: one POST")
rep_ok0 = check_post(oks[0], "https /ok") if oks else None
if rep_ok0:
    is_eq(summary(rep_ok0), want_summary("ok"), "https /ok: counts as sent")
    ok(day_range(rep_ok0)[0] == iso(day0) and
       day_range(rep_ok0)[1].startswith(D0),
       "https /ok: date-range is day D", day_range(rep_ok0))
    is_eq(rep_ok0["policies"][0]["policy"]["policy-domain"], dom("ok"),
          "https /ok: policy-domain")
is_eq(len(posted("/retry")), 1, "https 500: one POST so far")
is_eq(len(posted("/gone")), 1, "https 404: one POST")
if posted("/gone"):
    check_post(posted("/gone")[0], "https /gone")

# --- the mail through Postfix ------------------------------------------------


def parse_mail(raw, lb, what):
    """Check one received report mail; return (report-id, report)."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    rcpt = RUA[lb][7:]
    is_eq(msg.get_content_type(), "multipart/report",
          "%s: multipart/report" % what)
    is_eq(msg.get_param("report-type"), "tlsrpt",
          "%s: report-type=\"tlsrpt\"" % what)
    is_eq((msg["From"], msg["To"], msg["TLS-Report-Domain"],
           msg["TLS-Report-Submitter"], msg["TLS-Required"]),
          (FROM, rcpt, dom(lb), "sender.test", "No"),
          "%s: From, To, TLS-Report-Domain, -Submitter, TLS-Required" % what)
    ok(any("Postfix" in h or "sender.pfx.invalid" in h
           for h in msg.get_all("Received") or []),
       "%s: came through the Postfix instance" % what,
       msg.get_all("Received"))
    parts = list(msg.iter_parts())
    is_eq([p.get_content_type() for p in parts],
          ["text/plain", "application/tlsrpt+gzip"],
          "%s: a text part and the gzip attachment" % what)
    if len(parts) != 2:
        return None, None
    ok(dom(lb) in parts[0].get_content(), "%s: text names the domain"
       % what, parts[0].get_content())
    fn = parts[1].get_filename() or ""
    bits = fn[:-len(".json.gz")].split("!") if fn.endswith(".json.gz") \
        else []
    ok(len(bits) == 5 and bits[:4] == ["sender.test", dom(lb), str(day0),
                                        str(day0 + DAY - 1)]
       and bits[4].isalnum(),
       "%s: filename submitter!domain!begin!end!id.json.gz" % what, fn)
    try:
        rep = json.loads(gzip.decompress(parts[1].get_content()))
    except (OSError, ValueError) as e:
        ok(False, "%s: gzipped JSON attachment" % what, e)
        return None, None
    errs = [e.message for e in checker.iter_errors(rep)]
    ok(not errs, "%s: report valid against the RFC 8460 schema" % what,
       errs)
    rid = rep.get("report-id")
    is_eq(msg["Subject"], "Report Domain: %s Submitter: sender.test "
          "Report-ID: <%s>" % (dom(lb), rid), "%s: Subject" % what)
    is_eq(summary(rep), want_summary(lb), "%s: counts as sent" % what)
    ok(day_range(rep)[0] == iso(day0), "%s: date-range starts at day D"
       % what, day_range(rep))
    return rid, rep


m = mails_to("tlsrpt@reports.example")
is_eq(len(m), 1, "mailto: one message through Postfix sendmail")
if m:
    is_eq(m[0][0], FROM, "envelope sender is [tlsrpt] from")
    rid_mail, rep = parse_mail(m[0][2], "mail", "mailto")
    if rep:
        pol = rep["policies"][0]
        is_eq((pol["policy"]["policy-type"], pol["policy"]["mx-host"]),
              ("sts", ["mx1." + dom("mail")]), "mailto: sts policy")
        fd = {f["result-type"]: f for f in pol.get("failure-details", [])}
        is_eq(fd.get("certificate-expired", {}).get("receiving-ip"), MXIP,
              "mailto: failure detail tuple")

# --- crash: kill the daemon while sendmail holds two messages ---------------
held_ids = {}
for lb in ("crash", "orphan"):
    try:
        with open(os.path.join(wrap_dir, "held." + RUA[lb][7:]), "rb") as f:
            msg = email.message_from_bytes(f.read(),
                                           policy=email.policy.default)
        held_ids[lb] = msg["Subject"].rsplit("<", 1)[1].rstrip(">")
    except (OSError, IndexError, AttributeError):
        held_ids[lb] = None
d.proc.kill()
is_eq(d.proc.wait(), -signal.SIGKILL, "daemon killed (SIGKILL) while two "
      "sendmails run")
# The "crash" sendmail dies with it: that message never left.
pid = held_pid(RUA["crash"][7:])
if ok(pid is not None, "the held crash sendmail still runs"):
    os.kill(pid, signal.SIGKILL)
    os.unlink(os.path.join(wrap_dir, "pid." + RUA["crash"][7:]))
# The "orphan" sendmail finishes after the daemon died: delivered.
os.unlink(os.path.join(wrap_dir, "block." + RUA["orphan"][7:]))
os.unlink(os.path.join(wrap_dir, "block." + RUA["crash"][7:]))
got = wait_for(lambda: mails_to("orphan@reports.example"), 20)
is_eq(len(got or []), 1, "the orphaned sendmail delivered its copy")
rows = listing()
for lb in ("crash", "orphan"):
    dl = dlv_rows(rows, lb)
    ok(len(dl) == 1 and dl[0]["status"] == "pending" and
       dl[0]["tries"] == 1 and dl[0]["report-id"] == held_ids[lb],
       "%s: pending, one try written before it ran, same report-id" % lb,
       dl)

# --- restart before the backoff ends: nothing is resent ------------------------
start(t_b + 120 - int(time.time()))
time.sleep(2.5)                  # the first maintenance tick is at 0.5 s
rows = listing()
is_eq({lb: [(x["status"], x["tries"]) for x in dlv_rows(rows, lb)]
       for lb in ("crash", "orphan", "retry")},
      {"crash": [("pending", 1)], "orphan": [("pending", 1)],
       "retry": [("failed", 1)]},
      "restart 2 min later: nothing retried before its next try")
is_eq((len(posted("/retry")), len(mails_to("crash@reports.example"))),
      (1, 0), "no POST, no mail meanwhile")
is_eq(d.stop(), 0, "daemon stopped")

# --- restart after the backoff: retried once each --------------------------


def phase_c_done():
    rows = listing()
    st = {lb: [(x["status"], x["tries"]) for x in dlv_rows(rows, lb)]
          for lb in ("crash", "orphan", "retry", "down")}
    want = {lb: [("sent", 2)] for lb in ("crash", "orphan", "retry")}
    want["down"] = [("failed", 2)]
    return (st == want and mails_to("crash@reports.example") and
            len(mails_to("orphan@reports.example")) == 2 and rows)


start(t_b + 400 - int(time.time()))
rows = wait_for(phase_c_done, 30) or listing()
for lb in ("crash", "orphan", "retry"):
    dl = dlv_rows(rows, lb)
    ok(len(dl) == 1 and dl[0]["status"] == "sent" and dl[0]["tries"] == 2,
       "%s: sent on the second try after the backoff" % dom(lb), dl)
    r = dom_row(rows, lb, D0) or {}
    is_eq(r.get("state"), "done", "%s: domain done" % dom(lb))
dl = dlv_rows(rows, "down")
if dl:
    left = dl[0]["next-try"] - now()
    ok(dl[0]["status"] == "failed" and dl[0]["tries"] == 2 and
       "429" in dl[0]["error"] and 550 <= left <= 600,
       "https 429: retried, the backoff doubled to 600 s (%d s left)" % left,
       dl)
rt = posted("/retry")
is_eq(len(rt), 2, "https 500 then 201: two POSTs in all")
if len(rt) == 2:
    a = check_post(rt[0], "https /retry first")
    b = check_post(rt[1], "https /retry second")
    ok(a and b and a == b, "the retry posts the same report", (a, b))
m = mails_to("crash@reports.example")
is_eq(len(m), 1, "crash: delivered exactly once after the restart")
if m:
    rid, _ = parse_mail(m[0][2], "crash", "crash mail")
    is_eq(rid, held_ids["crash"], "crash: the same report-id as the "
          "interrupted try")
m = mails_to("orphan@reports.example")
is_eq(len(m), 2, "orphan: the orphan's copy and one resend, no more")
ids = [parse_mail(x[2], "orphan", "orphan mail %d" % i)[0]
       for i, x in enumerate(m)]
is_eq(ids, [held_ids["orphan"]] * 2, "orphan: both copies carry the same "
      "report-id")
is_eq((len(posted("/ok")), len(posted("/gone")),
       len(mails_to("tlsrpt@reports.example"))), (1, 1, 1),
      "sent and given-up reports are not sent again")
is_eq(d.stop(), 0, "daemon stopped")

# --- day D+1 closes: its own report, a new report-id; more than 24 hours
# after the first try, the report that still fails is given up ----------------
day1 = day0 + DAY
start(t_b + DAY + 30 - int(time.time()))
oks = wait_for(lambda: len(posted("/ok")) >= 2 and posted("/ok"), 20) or \
    posted("/ok")
is_eq(len(oks), 2, "day D+1 closed: a second POST to /ok")
if len(oks) == 2:
    rep = check_post(oks[1], "https /ok day D+1")
    if rep and rep_ok0:
        is_eq(summary(rep), ((1, 0), []), "day D+1: its one session only")
        is_eq(day_range(rep)[0], iso(day1), "day D+1: date-range")
        ok(rep["report-id"] != rep_ok0["report-id"],
           "day D+1: a new report-id", rep["report-id"])
rows = wait_for(lambda: [(x["status"], x["tries"]) for x in
                         dlv_rows(listing(), "down")] == [("given-up", 3)]
                and listing(), 20) or listing()
dl = dlv_rows(rows, "down")
ok(len(dl) == 1 and dl[0]["status"] == "given-up" and dl[0]["tries"] == 3
   and len(posted("/down")) == 3,
   "https 503 after the 24-hour retry window: tried once more, given up",
   (dl, len(posted("/down"))))
is_eq((dom_row(rows, "down", D0) or {}).get("state"), "done",
      "down: domain done")
time.sleep(1)
is_eq((len(posted("/retry")), len(mails_to("crash@reports.example")),
       len(mails_to("orphan@reports.example"))), (2, 1, 2),
      "nothing of day D is sent again")
is_eq(d.stop(), 0, "daemon stopped")
del os.environ["TLSPOLICYD_CLOCK_OFFSET"]
del os.environ["MAIL_CONFIG"]
pids = pw.pids()
pw.stop()
ok(pids and not any(os.path.exists("/proc/%d" % p) for p in pids),
   "the Postfix instance stopped, none of its %d processes left"
   % len(pids))
done()
