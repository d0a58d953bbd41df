# SPDX-License-Identifier: BSD-2-Clause
"""A burst of cold domains loses nothing (issue 9): 5,000 distinct domains
the daemon has never seen, half DANE-signed, half with an MTA-STS enforce
policy, asked by 200 clients at once on an empty store. Every answer
must be exact, and the daemon's own counters must show no timeout, no
failed DANE lookup and no local failure: the test world answers every
query, so any failure would be the daemon's. Run in both DNS modes:
forwarding to the world's validating unbound, and full recursion from
the world's own root ([dns] root_hints). Functional, not timed: the
lookup budget is generous, so a slow machine only makes it take longer.
"""
import os
import re
import selectors
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lab"))
from tlstest import Daemon, done, is_eq, netstring, ok  # noqa: E402
from dnsworld import DNSWorld  # noqa: E402
from httpsworld import HTTPSWorld  # noqa: E402
import pki  # noqa: E402

N = int(os.environ.get("BURST_DOMAINS", "5000"))
CLIENTS = 200
ZONE = "secure.test"


# unbound's caches as a resolver serving thousands of domains would have
# them (the tests' 1 MB evicts during such a pass, which only costs
# queries, but this test is about the daemon).
w = DNSWorld(cache_size="32m")
ca = pki.CA(os.path.join(w.dir, "ca"))
hw = HTTPSWorld(os.path.join(w.dir, "www"), ca, addr="127.%d.50.1" % w.slot)
MXADDR = w.addr("mx1.dane311.secure.test")
WANT = {}           # domain -> the exact answer
for i in range(N):
    if i % 2 == 0:      # interleaved, so every part of the burst is mixed
        d = w.add_dane_domain("u%05d" % i, ZONE)
        WANT[d] = "OK dane-only"
        continue
    d = "v%05d.%s" % (i, ZONE)
    w.add_record(ZONE, "%s. MX 10 mx1.%s." % (d, d))
    w.add_record(ZONE, "mx1.%s. A %s" % (d, MXADDR))
    w.add_record(ZONE, '_mta-sts.%s. TXT "v=STSv1; id=%d;"' % (d, i))
    w.add_record(ZONE, "mta-sts.%s. A %s" % (d, hw.addr))
    hw.policy(d, "version: STSv1\nmode: enforce\nmx: mx1.%s\n"
              "max_age: 86400\n" % d)
    WANT[d] = "OK secure match=mx1.%s servername=hostname" % d
hw.start()
w.start()


def burst(path, keys):
    """Each of CLIENTS connections asks the next key as soon as its reply
    is in (one request in flight per connection); returns key -> reply."""
    sel = selectors.DefaultSelector()
    todo = list(reversed(keys))
    got = {}
    conns = {}

    def send_next(s):
        if not todo:
            sel.unregister(s)
            s.close()
            return
        key = todo.pop()
        conns[s] = [key, b""]
        s.sendall(netstring("postfix " + key))

    for _ in range(min(CLIENTS, len(keys))):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        sel.register(s, selectors.EVENT_READ)
        send_next(s)
    end = time.monotonic() + 600
    while sel.get_map() and time.monotonic() < end:
        for k, _ in sel.select(5):
            s = k.fileobj
            b = s.recv(65536)
            st = conns[s]
            if not b:
                got[st[0]] = "<connection closed>"
                sel.unregister(s)
                s.close()
                continue
            st[1] += b
            m = re.match(rb"(\d+):", st[1])
            if m and len(st[1]) >= m.end() + int(m.group(1)) + 1:
                n = int(m.group(1))
                got[st[0]] = st[1][m.end():m.end() + n].decode(
                    "utf-8", "replace")
                send_next(s)
    for k in list(sel.get_map().values()):
        k.fileobj.close()
    return got


def run(mode, dns_conf):
    d = Daemon(name="burst-" + mode, dane=True, sts=True, extra="""
[dns]
%s
trust_anchor = %s
timeout = 5
[sts]
ca_file = %s
""" % (dns_conf, w.trust_anchor, ca.cert_path),
        server_extra="lookup_timeout = 60\n")
    d.start()
    keys = sorted(WANT, key=lambda k: k[1:6])       # u00000, v00001, ...
    got = burst(d.smap, keys)
    wrong = [(k, got.get(k)) for k in keys if got.get(k) != WANT[k]]
    is_eq(len(got), N, "%s: %d cold domains, %d clients: every one "
          "answered" % (mode, N, CLIENTS))
    ok(not wrong, "%s: every answer exact (%d DANE, %d MTA-STS enforce)" % (
        mode, len([k for k in WANT if WANT[k] == "OK dane-only"]),
        len([k for k in WANT if WANT[k] != "OK dane-only"])),
       "%d wrong, e.g. %r" % (len(wrong), wrong[:3]))
    st = d.settle(60)
    res = st.get("resolutions", {})
    is_eq({k: res.get(k) for k in ("timeouts", "dane_failed",
                                   "local_failures", "store_failures")},
          {"timeouts": 0, "dane_failed": 0, "local_failures": 0,
           "store_failures": 0},
          "%s: no lookup failed, timed out or failed locally" % mode)
    ans = st.get("answers", {})
    is_eq((ans.get("TEMP"), ans.get("TIMEOUT"), ans.get("PERM")), (0, 0, 0),
          "%s: no TEMP, TIMEOUT or PERM answer" % mode)
    log = d.read_log()
    bad = [ln for ln in log.splitlines()
           if re.search(r"fail|timed out|TIMEOUT|SERVFAIL", ln) and
           "smtp_dns_support_level" not in ln]
    ok(not bad, "%s: no failure in the daemon's log" % mode,
       "%d lines, e.g. %r" % (len(bad), bad[:3]))
    # Every domain is now known: asked again, each answer is the same.
    again = burst(d.smap, keys[:400])
    is_eq(sorted(k for k in again if again[k] != WANT[k]), [],
          "%s: asked again, the first 400 answer the same" % mode)
    is_eq(d.stop(), 0, "%s: stop" % mode)


run("forwarding", "resolvers = %s" % w.resolver)
run("recursion", "root_hints = %s" % w.root_hints)
done()
