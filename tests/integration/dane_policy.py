# SPDX-License-Identifier: BSD-2-Clause
"""DANE answers end to end through the daemon (SPEC B rows D1-D7): the
test DNS world (private signed root, NSD behind a validating unbound) is
the daemon's [dns] resolver; each case asserts the exact socketmap answer,
that no lookup failure is read as "no TLSA", single-flight resolution,
the lookup budget, and that verdicts land in the store."""
import os
import shutil
import socket
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lab"))
from tlstest import Daemon, done, is_eq, netstring, ok, read_netstring  # noqa
from dnsworld import DNSWorld  # noqa
from httpsworld import HTTPSWorld  # noqa
import pki  # noqa

w = DNSWorld(log_queries=True)
# One MTA-STS enforce domain in the unsigned insecure.test (DANE: none at
# once), its policy host on 127.S.49.1 with a test CA, for the recursion
# run below.
STS_D = "stsrh.insecure.test"
ca = pki.CA(os.path.join(w.dir, "ca"))
hw = HTTPSWorld(os.path.join(w.dir, "www"), ca, addr="127.%d.49.1" % w.slot)
w.add_record("insecure.test", "%s. 300 IN MX 10 mx1.%s." % (STS_D, STS_D))
w.add_record("insecure.test",
             '_mta-sts.%s. 300 IN TXT "v=STSv1; id=1;"' % STS_D)
w.add_record("insecure.test", "mta-sts.%s. 300 IN A %s" % (STS_D, hw.addr))
hw.policy(STS_D, "version: STSv1\nmode: enforce\nmx: mx1.%s\n"
          "max_age: 86400\n" % STS_D)
hw.start()
w.start()

d = Daemon(name="dane", dane=True, extra="""
[dns]
resolvers = %s
trust_anchor = %s
selftest_name = .
timeout = 4
""" % (w.resolver, w.trust_anchor), server_extra="lookup_timeout = 8\n")
d.start()
d.stop()
# D6 with an enforce MTA-STS policy cached: TEMP, never a fallback.
d.put_sts(w.name("bogus"), "enforce", ["mx1." + w.name("bogus")])
# D7: a verdict just past its TTL still answers when the refresh fails.
d.put_dane(w.name("servfail"), "dane-only", ttl=-60)
d.start()

CASES = [
    ("dane311", "OK dane-only", "D1 secure MX, TLSA 3 1 1"),
    ("dane201", "OK dane-only", "D1 TLSA 2 0 1"),
    ("dane312", "OK dane-only", "D1 TLSA 3 1 2"),
    ("nsec3", "OK dane-only", "D1 under NSEC3"),
    ("cname", "OK dane-only", "D1 TLSA at the CNAME-expanded name"),
    ("cnamefb", "OK dane-only", "D1 TLSA at the original name"),
    ("nomx", "OK dane-only", "D1 implicit MX, secure apex"),
    ("mixed", "OK dane", "D2 one of two hosts has TLSA"),
    ("pkix", "OK dane", "D3 only PKIX usages (unusable)"),
    ("badtlsa", "OK dane", "D3 malformed digest (unusable)"),
    ("insecuremx", "OK dane", "D4 insecure MX, secure TLSA host"),
    ("insecure", "NOTFOUND ", "D5 insecure zone"),
    ("optout", "NOTFOUND ", "D5 NSEC3 opt-out: insecure"),
    ("nxdomain", "NOTFOUND ", "secure NXDOMAIN"),
    ("nullmx", "NOTFOUND ", "null MX"),
    ("bogustlsa", "OK dane", "D6 bogus TLSA is a failure, not absence"),
    ("expired", "OK dane", "D6 expired signatures"),
    ("loop", "OK dane", "D6 CNAME loop"),
    ("silent", "OK dane", "D6 timeout"),
    ("servfail", "OK dane-only", "D7 cached verdict within grace"),
]
for key, want, name in CASES:
    t0 = time.time()
    got = d.ask(w.name(key))
    ok(got == want, "%s: %s" % (w.name(key), name),
       "got %r want %r after %.1fs" % (got, want, time.time() - t0))

# D6 with an MTA-STS enforce policy stored: the stored policy answers at
# once (a known answer never waits), DANE is looked up behind it, and once
# that has failed the answer is TEMP, never a fallback to MTA-STS.
is_eq(d.ask(w.name("bogus")),
      "OK secure match=mx1.%s servername=hostname" % w.name("bogus"),
      "bogus.test: the stored enforce policy answers at once")
st = d.settle()
ok(st.get("resolutions", {}).get("dane_failed", 0) >= 1,
   "bogus.test: the DANE lookup behind it ran and failed", st)
is_eq(d.ask(w.name("bogus")), "TEMP dnssec lookup failure for " +
      w.name("bogus"), "bogus.test: D6 with MTA-STS enforce stored: TEMP")

# A client that half-closes after its request still gets the answer of a
# lookup that has to resolve first.
s = d.connect()
s.sendall(netstring("postfix " + w.name("dane312").upper()))
s.shutdown(socket.SHUT_WR)
is_eq(read_netstring(s, timeout=15), "OK dane-only",
      "answer owed to a half-closed client is delivered")
s.close()

# A second ask comes from the store, at once.
t0 = time.time()
is_eq(d.ask(w.name("dane311")), "OK dane-only", "cached verdict answered")
ok(time.time() - t0 < 0.5, "cached verdict answered without DNS")
r = d.jq({"domain": w.name("mixed")})
ok(r and r["source"] == "dane" and r.get("rule") == "dane" and
   "1 of 2 MX hosts have TLSA records" in (r.get("reason") or ""),
   "JSON reply names the rule, and why in words", r)

# The store keeps verdicts across a restart; failures are not stored.
is_eq(d.stop(), 0, "stop")
rc, out, err = d.tool("cache", "show", w.name("dane311"))
ok(rc == 0 and "dane-only" in out, "verdict in the store", out + err)
rc, out, err = d.tool("cache", "show", w.name("expired"))
is_eq(rc, 1, "a failed lookup stores no verdict")
d.start()

# Single-flight: 1000 simultaneous queries for one cold domain cause one
# query per RRset at the resolver.
target = w.name("dane201")
rc, out, err = d.tool("cache", "flush", target)
# Each RRset the resolution needs, as unbound logs a client's question.
RRSETS = {"MX": target + ". MX IN", "A": "mx1." + target + ". A IN",
          "AAAA": "mx1." + target + ". AAAA IN",
          "TLSA": "_25._tcp.mx1." + target + ". TLSA IN"}
text = open(w.unbound_log, errors="replace").read()
before = {k: text.count(v) for k, v in RRSETS.items()}
conns = [d.connect() for _ in range(1000)]
results = [None] * 1000


def burst(lo, hi):
    for i in range(lo, hi):
        conns[i].sendall(netstring("postfix " + target))
    for i in range(lo, hi):
        try:
            results[i] = read_netstring(conns[i], timeout=20)
        except Exception as e:  # noqa: BLE001
            results[i] = repr(e)


ts = [threading.Thread(target=burst, args=(i, i + 100))
      for i in range(0, 1000, 100)]
for t in ts:
    t.start()
for t in ts:
    t.join()
for c in conns:
    c.close()
bad = [x for x in results if x != "OK dane-only"]
ok(not bad, "1000 simultaneous queries all answered dane-only",
   "%d bad: %r" % (len(bad), bad[:3]))
time.sleep(0.5)
log = open(w.unbound_log, errors="replace").read()
counts = {k: log.count(v) - before[k] for k, v in RRSETS.items()}
is_eq(counts, {"MX": 1, "A": 1, "AAAA": 1, "TLSA": 1},
      "one query per RRset at the resolver for 1000 clients")

# The lookup budget: a silent zone with a short budget answers at once and
# finishes in the background.
d.stop()
d.write_config(extra="""
[dns]
resolvers = %s
trust_anchor = %s
selftest_name = .
timeout = 4
""" % (w.resolver, w.trust_anchor), server_extra="lookup_timeout = 1\n")
d.start()
t0 = time.time()
got = d.ask("x." + w.name("silent"))
el = time.time() - t0
ok(got == "NOTFOUND " and el < 3,
   "lookup_timeout answers before the DNS timeout", "%r after %.1fs"
   % (got, el))
ok(d.alive(), "daemon alive")
is_eq(d.stop(), 0, "stop")

# --- the same decisions in full recursion ([dns] root_hints, issue 9) -------
# The embedded default mode, made hermetic: getdns's libunbound recurses
# from the world's own root (NSD), no resolver in between; validation is
# libunbound's, and a bogus, expired, SERVFAIL or silent case must still be
# a failure (D6), never "no DANE".
drh = Daemon(name="danerh", dane=True, sts=True, extra="""
[dns]
root_hints = %s
trust_anchor = %s
timeout = 4
[sts]
ca_file = %s
fetch_timeout = 5
""" % (w.root_hints, w.trust_anchor, ca.cert_path),
             server_extra="lookup_timeout = 8\n")
drh.start()
drh.stop()
drh.put_sts(w.name("bogus"), "enforce", ["mx1." + w.name("bogus")])
drh.put_dane(w.name("servfail"), "dane-only", ttl=-60)
drh.start()
ok("answering from the store until DNS answers" not in drh.read_log(),
   "recursion: the self-test passed at start-up", drh.read_log()[-600:])
for key, want, name in CASES:
    t0 = time.time()
    got = drh.ask(w.name(key))
    ok(got == want, "recursion: %s: %s" % (w.name(key), name),
       "got %r want %r after %.1fs" % (got, want, time.time() - t0))
is_eq(drh.ask(w.name("bogus")),
      "OK secure match=mx1.%s servername=hostname" % w.name("bogus"),
      "recursion: bogus.test: the stored enforce policy answers at once")
st = drh.settle()
is_eq(drh.ask(w.name("bogus")), "TEMP dnssec lookup failure for " +
      w.name("bogus"), "recursion: D6 with MTA-STS enforce stored: TEMP")
# MTA-STS enforce, discovered and fetched cold in recursion mode (the TXT
# and the policy host's address through libunbound).
is_eq(drh.ask(STS_D), "OK secure match=mx1.%s servername=hostname" % STS_D,
      "recursion: MTA-STS enforce policy fetched and applied")
rc, out, err = drh.tool("cache", "show", STS_D)
ok(rc == 0 and "enforce" in out, "recursion: the policy is in the store",
   out + err)
ok(not [q for q in w.query_log() if STS_D in q[1]],
   "recursion: unbound never saw these queries (NSD answered getdns)")
is_eq(drh.stop(), 0, "recursion: stop")

# Root hints after the privilege drop: libunbound reads them at its first
# query, as [server] user. A copy that user can read works; one it cannot
# read is refused at start-up, in words, before any lookup fails.
dn = Daemon(name="danerhuser", dane=True, user="nobody")
hints_ok = os.path.join(dn.dir, "root.hints")
shutil.copy(w.root_hints, hints_ok)
os.chmod(hints_ok, 0o644)
anchor_ok = os.path.join(dn.dir, "root.anchor")
shutil.copy(w.trust_anchor, anchor_ok)
dn.write_config(extra="""
[dns]
root_hints = %s
trust_anchor = %s
timeout = 4
""" % (hints_ok, anchor_ok))
dn.start()
is_eq(dn.ask(w.name("dane311")), "OK dane-only",
      "recursion as nobody: root hints read after the privilege drop")
dn.stop()
os.chmod(hints_ok, 0o600)
p = dn.start(wait=False)
try:
    rc = p.wait(30)
except Exception:  # noqa: BLE001
    rc = None
ok(rc == 1 and "root_hints %s is not readable by [server] user nobody"
   % hints_ok in dn.read_log(),
   "root hints the user cannot read: refused at start-up",
   dn.read_log()[-600:])

# The start-up self-test refuses a trust anchor that does not validate.
bad = os.path.join(d.dir, "bad.anchor")
with open(bad, "w") as f:
    f.write(". 3600 IN DS 12345 13 2 " + "00" * 32 + "\n")
d.write_config(extra="""
[dns]
resolvers = %s
trust_anchor = %s
selftest_name = .
""" % (w.resolver, bad))
p = d.start(wait=False)
try:
    rc = p.wait(30)
except Exception:  # noqa: BLE001
    rc = None
ok(rc == 1 and "trust anchor" in d.read_log(),
   "start-up refused with a trust anchor that does not validate",
   d.read_log()[-600:])

# Issue 10 item 4: the same wrong anchor behind a resolver that answers
# SERVFAIL (one that serves only a private tree, no root): before, the
# daemon started and every DANE answer degraded; now it refuses and says
# what to fix.
d.write_config(extra="""
[dns]
resolvers = %s
trust_anchor = %s
""" % (w.servfail_addr, bad))
p = d.start(wait=False)
try:
    rc = p.wait(30)
except Exception:  # noqa: BLE001
    rc = None
log = d.read_log()
ok(rc == 1 and "the resolver %s answered rcode SERVFAIL for . SOA"
   % w.servfail_addr in log and "point [dns] resolvers at a resolver that "
   "resolves ." in log,
   "SERVFAIL from the resolver at start-up: refused, in plain words",
   log[-800:])
ok("answering from the store" not in log[-800:],
   "SERVFAIL is not read as \"DNS does not answer\"", log[-800:])
hw.stop()
w.stop()
done()
