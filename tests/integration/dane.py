# SPDX-License-Identifier: BSD-2-Clause
"""DANE classification (resolver/dane.c) against the test DNS world.

tests/lab/daneq runs dane_resolve() exactly as the daemon will (getdns's
libunbound forwarding to the world's validating unbound) and prints one JSON line per
domain. Every case of tests/lab/dnsworld.py, plus a few MX sets added here
(failing, bogus, address-less and CNAME-chained hosts next to good ones),
is checked for the exact verdict (SPEC B D1-D6), MX security and each
host's state. The rule of DESIGN 6.2 is asserted on its own: no lookup
failure ever comes out as "none" (no DANE). One run with -C cancels every
second job on the real resolver and checks no callback follows.
"""
import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tlstest import TOP_SRCDIR, TOP_BUILDDIR, ok, is_eq, done, bail  # noqa

sys.path.insert(0, os.path.join(TOP_SRCDIR, "tests", "lab"))
import dnsworld  # noqa: E402

DANEQ = os.path.join(TOP_BUILDDIR, "tests", "lab", "daneq")
TIMEOUT = 5  # [dns] timeout, seconds (generous: CI runs under ASan and load)

missing = dnsworld.tools_missing()
if missing:
    bail("not installed: %s (contrib/debian/install-deps --test)"
         % " ".join(missing))
if not os.access(DANEQ, os.X_OK):
    bail("%s not built (make check builds it)" % DANEQ)

S = "secure.test"
w = dnsworld.DNSWorld()
# MX sets that mix a good host with a failing one, or point into failing
# zones, all in the signed secure.test (so the MX itself is secure).
w.add_record(S, "tlsafail 300 IN MX 10 mx1.dane311")
w.add_record(S, "tlsafail 300 IN MX 20 mx1.tlsa.bogus.test.")
w.add_record(S, "tohost 300 IN MX 10 mx1.silent.test.")
w.add_record(S, "sfhost 300 IN MX 10 mx1.servfail.test.")
w.add_record(S, "boghost 300 IN MX 10 mx1.expired.test.")
w.add_record(S, "loophost 300 IN MX 10 loop1")
w.add_record(S, "noaddr 300 IN MX 10 nothere")
w.add_record(S, "noaddr 300 IN MX 20 mx1.dane311")
w.add_record(S, "allgone 300 IN MX 10 nothere")
w.add_record(S, "mixins 300 IN MX 10 mx1.dane311")
w.add_record(S, "mixins 300 IN MX 20 mx1.insecure.test.")
w.add_record(S, "mixpkix 300 IN MX 10 mx1.dane311")
w.add_record(S, "mixpkix 300 IN MX 20 mx1.pkix")
w.add_record(S, "chain1 300 IN CNAME chain2")
w.add_record(S, "chain2 300 IN CNAME mx1.dane311")
w.add_record(S, "chainmx 300 IN MX 10 chain1")
w.add_record(S, "order 120 IN MX 30 mx1.dane312")
w.add_record(S, "order 120 IN MX 10 mx1.dane311")
w.add_record(S, "order 120 IN MX 20 mx1.dane201")
w.add_record(S, "optouthost 300 IN MX 10 mx1.optout.nsec3.test.")
w.start()

tmp = tempfile.mkdtemp(prefix="tlspolicyd-dane-")
if not os.environ.get("KEEP_TMP"):
    atexit.register(shutil.rmtree, tmp, True)

conf = os.path.join(tmp, "daneq.conf")
with open(conf, "w") as f:
    f.write("[cache]\npath = %s\n"
            "[dns]\nresolvers = %s\ntrust_anchor = %s\ntimeout = %d\n"
            % (os.path.join(tmp, "state", "cache.db"), w.resolver,
               w.trust_anchor, TIMEOUT))
# Full recursion from the world's own root (issue 9): getdns's libunbound
# asks NSD directly, no unbound in between.
conf_rh = os.path.join(tmp, "daneq-rh.conf")
with open(conf_rh, "w") as f:
    f.write("[cache]\npath = %s\n"
            "[dns]\nroot_hints = %s\ntrust_anchor = %s\ntimeout = %d\n"
            % (os.path.join(tmp, "state", "cache.db"), w.root_hints,
               w.trust_anchor, TIMEOUT))


def daneq(domains, opts=(), limit=60, cfile=None):
    """Run daneq; (exit code, {domain: result}, [results], stderr)."""
    p = subprocess.run([DANEQ, "-c", cfile or conf] + list(opts) +
                       list(domains),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=limit)
    res = []
    for line in p.stdout.decode("utf-8", "replace").splitlines():
        try:
            res.append(json.loads(line))
        except ValueError:
            res.append({"error": "bad line %r" % line})
    return (p.returncode, {r.get("domain"): r for r in res}, res,
            p.stderr.decode("utf-8", "replace"))


def n(key):
    return w.name(key)


# domain, kind, mx_secure (None: not checked), [(host, state)],
# "RULE" or "RULE: start of the why"
CASES = [
    # D1: every host has usable secure TLSA (3 1 1, 2 0 1, 3 1 2).
    (n("dane311"), "dane-only", True,
     [("mx1.dane311." + S, "usable")], "D1"),
    (n("dane201"), "dane-only", True,
     [("mx1.dane201." + S, "usable")], "D1"),
    (n("dane312"), "dane-only", True,
     [("mx1.dane312." + S, "usable")], "D1"),
    # The TLSA matches no key (mismatch) or the host has no STARTTLS
    # (notls): DNS cannot tell, Postfix defers at delivery.
    (n("mismatch"), "dane-only", True,
     [("mx1.mismatch." + S, "usable")], "D1"),
    (n("notls"), "dane-only", True,
     [("mx1.notls." + S, "usable")], "D1"),
    (n("nsec3"), "dane-only", True,
     [("mx1.nsec3.test", "usable")], "D1"),
    # Preference order; three usable hosts.
    ("order." + S, "dane-only", True,
     [("mx1.dane311." + S, "usable"), ("mx1.dane201." + S, "usable"),
      ("mx1.dane312." + S, "usable")], "D1: all 3"),
    # D2: some hosts with TLSA, others without (secure denial, insecure
    # addresses) or with unusable TLSA only.
    (n("mixed"), "dane", True,
     [("mx1.mixed." + S, "usable"), ("mx2.mixed." + S, "notlsa")],
     "D2"),
    ("mixins." + S, "dane", True,
     [("mx1.dane311." + S, "usable"), ("mx1.insecure.test", "insecure")],
     "D2"),
    ("mixpkix." + S, "dane", True,
     [("mx1.dane311." + S, "usable"), ("mx1.pkix." + S, "unusable")],
     "D2"),
    # D3: TLSA present, none usable (PKIX-TA/EE; a 31-byte SHA2-256).
    (n("pkix"), "dane", True, [("mx1.pkix." + S, "unusable")], "D3"),
    (n("badtlsa"), "dane", True,
     [("mx1.badtlsa." + S, "unusable")], "D3"),
    # D4: insecure MX pointing at a secure host with usable TLSA.
    (n("insecuremx"), "dane", False,
     [("mx1.provider." + S, "usable")], "D4"),
    # D5: insecure zone; NSEC3 opt-out (insecure child); secure MX to an
    # insecure host; the secure host of insecuremx on its own is D1.
    (n("insecure"), "none", False,
     [("mx1.insecure.test", "insecure")], "D5"),
    (n("optout"), "none", False,
     [("mx1.optout.nsec3.test", "insecure")], "D5"),
    ("optouthost." + S, "none", True,
     [("mx1.optout.nsec3.test", "insecure")], "D5"),
    (n("provider"), "dane-only", True,
     [("mx1.provider." + S, "usable")], "D1"),
    # Secure NXDOMAIN: nothing to protect.
    (n("nxdomain"), "none", True, [], "D5"),
    # Null MX (RFC 7505).
    (n("nullmx"), "nullmx", True, [], "null-mx"),
    # No MX, secure apex: the domain is its own host (RFC 5321 §5.1).
    (n("nomx"), "dane-only", True, [(n("nomx"), "usable")], "D1"),
    # CNAME: TLSA at the expanded name, else at the original (A8.56).
    (n("cname"), "dane-only", True,
     [("alias.cname." + S, "usable")], "D1"),
    (n("cnamefb"), "dane-only", True,
     [("alias.cnamefb." + S, "usable")], "D1"),
    ("chainmx." + S, "dane-only", True,
     [("chain1." + S, "usable")], "D1"),
    # Hosts without any address are skipped; none left: no DANE.
    ("noaddr." + S, "dane-only", True,
     [("nothere." + S, "noaddr"), ("mx1.dane311." + S, "usable")],
     "D1"),
    ("allgone." + S, "none", True, [("nothere." + S, "noaddr")],
     "D5"),
    # D6: the MX lookup fails (bogus: edited after signing, expired;
    # SERVFAIL from a zone that does not load; a silent server).
    (n("bogus"), "failed", None, [], "D6: the MX lookup"),
    (n("expired"), "failed", None, [], "D6: the MX lookup"),
    (n("servfail"), "failed", None, [], "D6: the MX lookup"),
    (n("silent"), "failed", None, [], "D6: the MX lookup"),
    # D6: a host's TLSA or address lookup fails under a secure MX.
    (n("bogustlsa"), "failed", True,
     [("mx1.tlsa.bogus.test", "failed")], "D6"),
    ("tlsafail." + S, "failed", True,
     [("mx1.dane311." + S, "usable"), ("mx1.tlsa.bogus.test", "failed")],
     "D6"),
    ("tohost." + S, "failed", True,
     [("mx1.silent.test", "failed")], "D6"),
    ("sfhost." + S, "failed", True,
     [("mx1.servfail.test", "failed")], "D6"),
    ("boghost." + S, "failed", True,
     [("mx1.expired.test", "failed")], "D6"),
    # A CNAME loop: the address lookup fails, it is not "no address".
    (n("loop"), "failed", True, [("loop1." + S, "failed")], "D6"),
    ("loophost." + S, "failed", True,
     [("loop1." + S, "failed")], "D6"),
]
FAILURES = [c[0] for c in CASES if c[1] == "failed"]

t0 = time.monotonic()
rc, byd, allres, err = daneq([c[0] for c in CASES])
took = time.monotonic() - t0
is_eq(rc, 0, "daneq: exit 0")
is_eq(err, "", "daneq: nothing on stderr")
is_eq(len(allres), len(CASES), "one result per domain")
ok(took < TIMEOUT + 10, "all %d domains at once in %.1fs" % (len(CASES),
                                                             took))
for domain, kind, mx_secure, hosts, why in CASES:
    r = byd.get(domain, {})
    is_eq(r.get("kind"), kind, "%s: %s" % (domain, kind))
    if mx_secure is not None:
        is_eq(r.get("mx_secure"), mx_secure,
              "%s: MX %s" % (domain, "secure" if mx_secure else "insecure"))
    is_eq([(h.get("name"), h.get("state")) for h in r.get("hosts", [])],
          hosts, "%s: host states" % domain)
    rule, _, words = why.partition(": ")
    is_eq(r.get("rule"), rule, "%s: rule %s" % (domain, rule))
    ok(r.get("why", "").startswith(words), "%s: why %s..." % (domain, words),
       r.get("why"))

# DESIGN 6.2: a lookup failure is never read as "no DANE".
for domain in FAILURES:
    ok(byd.get(domain, {}).get("kind") not in ("none", None),
       "%s: a failure is not none" % domain, byd.get(domain))
    ok(all(h.get("state") != "notlsa"
           for h in byd.get(domain, {}).get("hosts", [])),
       "%s: no host reads as no TLSA" % domain)

# The same cases in full recursion through [dns] root_hints: the same
# verdicts, and still no failure read as "no DANE" (D6) now that the
# validation is libunbound's inside getdns.
t0 = time.monotonic()
rc, byd_rh, allres, err = daneq([c[0] for c in CASES], cfile=conf_rh,
                                limit=120)
is_eq((rc, err), (0, ""), "recursion: daneq exit 0, nothing on stderr")
is_eq(len(allres), len(CASES), "recursion: one result per domain")
for domain, kind, mx_secure, hosts, why in CASES:
    r = byd_rh.get(domain, {})
    is_eq(r.get("kind"), kind, "recursion: %s: %s" % (domain, kind))
    if mx_secure is not None:
        is_eq(r.get("mx_secure"), mx_secure, "recursion: %s: MX %s"
              % (domain, "secure" if mx_secure else "insecure"))
    is_eq([(h.get("name"), h.get("state")) for h in r.get("hosts", [])],
          hosts, "recursion: %s: host states" % domain)
    is_eq(r.get("rule"), why.partition(": ")[0],
          "recursion: %s: rule %s" % (domain, why.partition(": ")[0]))
for domain in FAILURES:
    ok(byd_rh.get(domain, {}).get("kind") not in ("none", None),
       "recursion: %s: a failure is not none" % domain, byd_rh.get(domain))

# Details: implicit MX, TLSA base names, record counts, TTLs.
r = byd.get(n("nomx"), {})
is_eq(r.get("implicit"), True, "nomx: implicit MX")
is_eq(byd.get(n("dane311"), {}).get("implicit"), False,
      "dane311: explicit MX")
is_eq(byd.get(n("cname"), {}).get("hosts", [{}])[0].get("tlsa_base"),
      "mx1.cname." + S, "cname: TLSA base is the expanded name")
is_eq(byd.get(n("cnamefb"), {}).get("hosts", [{}])[0].get("tlsa_base"),
      "alias.cnamefb." + S, "cnamefb: TLSA base is the original name")
is_eq(byd.get("chainmx." + S, {}).get("hosts", [{}])[0].get("tlsa_base"),
      "mx1.dane311." + S, "chainmx: TLSA base at the end of the chain")
h = byd.get(n("pkix"), {}).get("hosts", [{}])[0]
is_eq((h.get("usable"), h.get("unusable")), (0, 2),
      "pkix: 0 usable, 2 unusable records")
h = byd.get(n("dane311"), {}).get("hosts", [{}])[0]
is_eq((h.get("usable"), h.get("unusable")), (1, 0),
      "dane311: 1 usable record")
ok(0 < byd.get("order." + S, {}).get("ttl", 0) <= 120,
   "order: ttl is the smallest RRset's (MX 120)",
   byd.get("order." + S, {}).get("ttl"))
ok(0 < byd.get(n("dane311"), {}).get("ttl", 0) <= 300,
   "dane311: ttl within the zone's 300")
ok(0 < byd.get(n("nxdomain"), {}).get("ttl", 0) <= 300,
   "nxdomain: ttl from the denial")
is_eq(byd.get(n("servfail"), {}).get("ttl"), 0,
      "servfail: a failure carries no ttl")
ok(byd.get(n("silent"), {}).get("ms", 0) >= (TIMEOUT - 1) * 1000 or
   "SERVFAIL" in byd.get(n("silent"), {}).get("why", ""),
   "silent: failed by the timeout (or unbound's SERVFAIL)",
   byd.get(n("silent")))

# Cancel every second job on the real resolver, the silent zone too.
doms = [n("dane311"), n("silent"), n("mixed"), "tohost." + S,
        n("cname"), n("bogustlsa")]
rc, byd, allres, err = daneq(doms, ["-C", "-w", str(TIMEOUT * 1000 + 500)])
is_eq(rc, 0, "daneq -C: exit 0 (no callback after dane_cancel)")
is_eq(sorted(r.get("domain") for r in allres), sorted(doms[0::2]),
      "daneq -C: results only for the jobs not cancelled")
ok(not any("error" in r for r in allres), "daneq -C: no error line",
   allres)

# Names it refuses to start with: no callback, exit 1.
rc, byd, allres, err = daneq(["", "a" * 254])
is_eq(rc, 1, "daneq: bad names exit 1")
is_eq([r.get("error") for r in allres], ["not started"] * 2,
      "empty and 254-byte names are not started")

done()
