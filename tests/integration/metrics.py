# SPDX-License-Identifier: BSD-2-Clause
"""The Prometheus endpoint ([server] metrics, issue 12) end to end.

The daemon runs against the test DNS world; the scrape is checked by
Debian's promtool (`promtool check metrics`), the counters must move as
lookups happen (an uncached DANE domain, a cached repeat, a bogus and a
SERVFAIL domain), and the listener is bounded like the others: only GET
/metrics (404 and 405 otherwise, 400 for garbage, 431 for an oversized
request), one request per connection, a request deadline, a connection
limit. Every metric the Grafana dashboard in contrib/grafana/ uses must
be in the output. A second daemon serves the metrics on a unix socket."""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lab"))
from tlstest import TOP_SRCDIR, Daemon, bail, done, is_eq, ok  # noqa
from dnsworld import DNSWorld, tools_missing  # noqa

PROMTOOL = shutil.which("promtool")
if PROMTOOL is None:
    bail("promtool not installed (Debian package prometheus; "
         "contrib/debian/install-deps --test)")
missing = tools_missing()
if missing:
    bail("not installed: %s" % " ".join(missing))

w = DNSWorld()
# An MTA-STS domain whose policy host has no address: the fetch fails
# for the reason "no_address".
NOHOST = "stsnohost.insecure.test"
w.add_record("insecure.test", "%s. 300 IN MX 10 mx1.%s." % (NOHOST, NOHOST))
w.add_record("insecure.test",
             '_mta-sts.%s. 300 IN TXT "v=STSv1; id=1;"' % NOHOST)
w.start()

# A free loopback port in the world's own 127.S.0.0/16 slot.
addr = "127.%d.94.89" % w.slot
probe = socket.socket()
probe.bind((addr, 0))
port = probe.getsockname()[1]
probe.close()

d = Daemon(name="metrics", dane=True, sts=True)
rsock = os.path.join(d.dir, "tlsrpt.sock")
d.write_config(extra="""
[tlsrpt]
enabled = yes
socket = %s
socket_group =
organization = Test Org
contact = mailto:tlsrpt@sender.test
submitter = sender.test
from = tlsrpt-noreply@sender.test
[dns]
resolvers = %s
trust_anchor = %s
selftest_name = .
timeout = 3
""" % (rsock, w.resolver, w.trust_anchor),
               server_extra="metrics = inet:%s:%d\nrequest_timeout = 2\n"
           "lookup_timeout = 8\n" % (addr, port))
d.start()


def http(raw, target=(addr, port), family=socket.AF_INET, timeout=5):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(target)
    s.sendall(raw)
    buf = b""
    while True:
        try:
            b = s.recv(65536)
        except socket.timeout:
            break
        if not b:
            break
        buf += b
    s.close()
    return buf


def scrape(**kw):
    r = http(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", **kw)
    head, _, body = r.partition(b"\r\n\r\n")
    return head.decode(), body.decode()


def value(body, name, labels=None):
    for line in body.splitlines():
        if line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$', line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if labels is None or all(got.get(k) == v
                                 for k, v in labels.items()):
            return float(m.group(3))
    return None


head, body0 = scrape()
ok(head.startswith("HTTP/1.0 200 "), "GET /metrics: 200", head)
ok("Content-Type: text/plain; version=0.0.4" in head,
   "exposition format 0.0.4", head)
ok("Connection: close" in head, "Connection: close")
m = re.search(r"Content-Length: (\d+)", head)
ok(m is not None and int(m.group(1)) == len(body0.encode()),
   "Content-Length matches the body")

p = subprocess.run([PROMTOOL, "check", "metrics"], input=body0.encode(),
                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
ok(p.returncode == 0, "promtool check metrics passes",
   p.stdout.decode() + body0[:3000])
names = set(re.findall(r"^([a-z_]+)", body0, re.M)) - {""}
ok(all(n.startswith("tlspolicyd_") for n in names), "every name has the "
   "tlspolicyd_ prefix", sorted(n for n in names
                                if not n.startswith("tlspolicyd_")))
types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", body0, re.M))
ok(all(n.endswith("_total") for n, t in types.items() if t == "counter"),
   "every counter ends in _total")
ok(not re.search(r"(secure|bogus|servfail)\.test", body0),
   "no domain in any label")
ok(value(body0, "tlspolicyd_store_polls_total") == 0 and
   value(body0, "tlspolicyd_store_polled_updates_total") == 0 and
   types.get("tlspolicyd_store_polls_total") == "counter" and
   types.get("tlspolicyd_store_polled_updates_total") == "counter" and
   value(body0, "tlspolicyd_store_batched_writes_total") == 0 and
   types.get("tlspolicyd_store_batched_writes_total") == "counter" and
   value(body0, "tlspolicyd_store_loop_reads_total") == 0 and
   types.get("tlspolicyd_store_loop_reads_total") == "counter",
   "the shared store's poll, batch and read counters are there, 0 with a "
   "SQLite store")
ok(value(body0, "tlspolicyd_build_info") == 1 and
   re.search(r'tlspolicyd_build_info\{version="[^"]+"\} 1', body0),
   "build_info with a version label")
ok(value(body0, "tlspolicyd_connections_open",
         {"listener": "metrics"}) == 1,
   "the scrape's own connection is counted open")

# Lookups move the counters.
DOM = w.name("dane311")
is_eq(d.ask(DOM), "OK dane-only", "uncached DANE lookup")
is_eq(d.ask(DOM), "OK dane-only", "the same, from the store")
ans_bogus = d.ask(w.name("bogus"))
ans_sf = d.ask(w.name("servfail"))
ok(ans_bogus is not None and ans_sf is not None, "bogus and servfail "
   "lookups answered", (ans_bogus, ans_sf))
ok(d.ask(w.name("silent")) is not None, "a lookup that times out answered")
is_eq(d.ask(NOHOST), "NOTFOUND ", "MTA-STS with no policy host address")
# A datagram the collector must reject.
dg = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
dg.sendto(b"not a TLS-RPT datagram", rsock)
dg.close()
# Identical datagrams are counted together at the collector's next tick.
rej0 = value(body0, "tlspolicyd_tlsrpt_datagrams_total",
             {"result": "rejected"}) or 0
for _ in range(100):
    _, body1 = scrape()
    if (value(body1, "tlspolicyd_tlsrpt_datagrams_total",
              {"result": "rejected"}) or 0) > rej0:
        break
    time.sleep(0.1)


def moved(name, labels=None, by=1):
    a = value(body0, name, labels) or 0
    b = value(body1, name, labels)
    ok(b is not None and b - a >= by, "%s%s moved by >= %d" %
       (name, json.dumps(labels) if labels else "", by), (a, b))


moved("tlspolicyd_lookups_total", {"answer": "OK", "source": "dane"}, 2)
moved("tlspolicyd_lookup_duration_seconds_count", None, 4)
moved("tlspolicyd_resolutions_started_total", None, 3)
moved("tlspolicyd_resolutions_completed_total", None, 3)
moved("tlspolicyd_resolution_duration_seconds_count", None, 3)
moved("tlspolicyd_resolution_failures_total",
      {"part": "dane", "class": "bogus"})
moved("tlspolicyd_resolution_failures_total",
      {"part": "dane", "class": "servfail"})
moved("tlspolicyd_resolution_failures_total",
      {"part": "dane", "class": "timeout"})
moved("tlspolicyd_sts_fetch_failures_total", {"reason": "no_address"})
moved("tlspolicyd_dane_verdicts_total", {"kind": "dane-only"})
moved("tlspolicyd_store_hits_total")
moved("tlspolicyd_tlsrpt_datagrams_total", {"result": "rejected"})
moved("tlspolicyd_connections_accepted_total", {"listener": "socketmap"},
      4)
ok((value(body1, "tlspolicyd_stored_dane_verdicts", {"kind": "dane-only"})
    or 0) >= 0, "stored verdict gauge present")
p = subprocess.run([PROMTOOL, "check", "metrics"], input=body1.encode(),
                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
ok(p.returncode == 0, "promtool passes after lookups", p.stdout.decode())

# At -v, one line per answer, the first uncached one included.
log = d.read_log()
ok(re.search(r"lookup %s: OK dane-only \(from dane, after \d+ ms of "
             r"resolution\)" % re.escape(DOM), log),
   "the uncached answer is logged", log[-2000:])
ok(re.search(r"lookup %s: OK dane-only \(from dane\)$" % re.escape(DOM),
             log, re.M), "the cached answer is logged")
ok(re.search(r"%s: new DANE verdict: dane-only" % re.escape(DOM), log),
   "a new verdict is logged as a policy change")

# The listener's bounds.
r = http(b"GET / HTTP/1.0\r\n\r\n")
ok(r.startswith(b"HTTP/1.0 404 "), "another path: 404", r[:80])
r = http(b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
ok(r.startswith(b"HTTP/1.0 405 ") and b"Allow: GET" in r, "POST: 405",
   r[:80])
r = http(b"hello\r\n\r\n")
ok(r.startswith(b"HTTP/1.0 400 "), "garbage: 400", r[:80])
# Exactly the limit and no end of headers (more would be unread input,
# and the close a reset).
big = b"GET /metrics HTTP/1.1\r\nX: "
r = http(big + b"a" * (8192 - len(big)))
ok(r.startswith(b"HTTP/1.0 431 "), "an oversized request: 431", r[:80])
r = http(b"GET /metrics HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n")
is_eq(r.count(b"HTTP/1.0 "), 1, "one request per connection")
t0 = time.time()
r = http(b"GET /metr", timeout=10)
ok(r == b"" and time.time() - t0 < 6, "a request that never ends is cut "
   "at the deadline", (r, time.time() - t0))
# The connection limit: eight connections, the ninth is refused.
held = []
for i in range(8):
    s = socket.create_connection((addr, port))
    held.append(s)
time.sleep(0.2)
s = socket.create_connection((addr, port))
s.settimeout(3)
try:
    got = s.recv(100)
except OSError:
    got = b""
ok(got == b"", "past the connection limit: closed at once", got)
s.close()
for s in held:
    s.close()
time.sleep(0.2)
_, body2 = scrape()
ok((value(body2, "tlspolicyd_connections_refused_total",
          {"listener": "metrics"}) or 0) >= 1, "the refusal is counted")

# Every metric the Grafana dashboard uses exists in the output.
with open(os.path.join(TOP_SRCDIR, "contrib", "grafana",
                       "tlspolicyd.json")) as f:
    dash = json.load(f)
exprs = []


def walk(o):
    if isinstance(o, dict):
        for k, v in o.items():
            if k == "expr" and isinstance(v, str):
                exprs.append(v)
            else:
                walk(v)
    elif isinstance(o, list):
        for v in o:
            walk(v)


walk(dash)
ok(len(exprs) >= 6, "the dashboard has panels with queries", len(exprs))
have = set(re.findall(r"^([a-z_]+)", body2, re.M))
used = set()
for e in exprs:
    used |= set(re.findall(r"\b(tlspolicyd_[a-z_]+)", e))
ok(used and used <= have, "every metric in the dashboard exists",
   sorted(used - have))
d.stop()

# A unix socket endpoint.
u = Daemon(name="metrics-unix")
path = os.path.join(u.dir, "metrics.sock")
u.write_config(server_extra="metrics = unix:%s\n" % path)
u.start()
head, body = scrape(target=path, family=socket.AF_UNIX)
ok(head.startswith("HTTP/1.0 200 ") and "tlspolicyd_build_info" in body,
   "metrics on a unix socket")
u.stop()
w.stop()
done()
