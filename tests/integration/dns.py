# SPDX-License-Identifier: BSD-2-Clause
"""The dns_ module against the test DNS world (tests/lab/dnsworld.py).

tests/lab/dnsq runs the module exactly as the daemon does (getdns 1.6's
libunbound forwarding to the world's validating unbound, on our own
libevent adapter)
and prints one JSON line per answer. Each case asserts the exact outcome
and DNSSEC status (SPEC A9.65, A9.70a): secure data, secure NXDOMAIN and
NODATA, insecure zones, bogus answers (never NODATA), SERVFAIL, a server
that never answers (TIMEOUT within [dns] timeout), CNAME expansion, TXT
strings joined (SPEC A3.18), 50 queries at once, dns_cancel(), and the
start-up self-test with a right, a wrong, an empty and a broken anchor
(SPEC A9.66).
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

DNSQ = os.path.join(TOP_BUILDDIR, "tests", "lab", "dnsq")
TIMEOUT = 2  # [dns] timeout in the configs below, seconds

missing = dnsworld.tools_missing()
if missing:
    bail("not installed: %s (contrib/debian/install-deps --test)"
         % " ".join(missing))
if not os.access(DNSQ, os.X_OK):
    bail("%s not built (make check builds it)" % DNSQ)

w = dnsworld.DNSWorld()
# Extra records for decoding cases, signed with secure.test.
w.add_record("secure.test", 'multi 300 IN TXT "v=STSv1; " "id=" "42;"')
w.add_record("secure.test", 'nul 300 IN TXT "a\\000b" "c"')
w.add_record("secure.test", "chain1 300 IN CNAME chain2")
w.add_record("secure.test", "chain2 300 IN CNAME mx1.dane311")
w.add_record("secure.test", "UPPER 120 IN MX 5 MX1.Dane311.Secure.Test.")
w.add_record("secure.test", "UPPER 60 IN MX 7 mx1.dane312")
w.add_record("secure.test", "six 300 IN AAAA 2001:db8::25")
for i in range(50):
    w.add_record("secure.test", "n%02d 300 IN A 127.0.54.%d" % (i, i + 100))
w.start()

tmp = tempfile.mkdtemp(prefix="tlspolicyd-dns-")
if not os.environ.get("KEEP_TMP"):
    atexit.register(shutil.rmtree, tmp, True)


def conf(name, resolvers=None, anchor=None, selftest=".", hints=None):
    """A dnsq config: forwarding to RESOLVERS (default: the world's
    unbound), or with HINTS full recursion from those root hints."""
    path = os.path.join(tmp, name + ".conf")
    with open(path, "w") as f:
        f.write("[cache]\npath = %s\n"
                "[dns]\nresolvers = %s\ntrust_anchor = %s\ntimeout = %d\n"
                "selftest_name = %s\n" % (
                    os.path.join(tmp, "state", "cache.db"),
                    "" if hints else resolvers or w.resolver,
                    anchor or w.trust_anchor, TIMEOUT, selftest))
        if hints:
            f.write("root_hints = %s\n" % hints)
    return path


def anchor(name, text):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def dnsq(cfile, args, opts=(), limit=60):
    """Run dnsq; (exit code, {(qname, qtype): result}, [results], stderr)."""
    p = subprocess.run([DNSQ, "-c", cfile] + list(opts) + list(args),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=limit)
    res = []
    for line in p.stdout.decode("utf-8", "replace").splitlines():
        try:
            res.append(json.loads(line))
        except ValueError:
            res.append({"error": "bad line %r" % line})
    byq = {(r.get("qname"), r.get("qtype")): r for r in res}
    return p.returncode, byq, res, p.stderr.decode("utf-8", "replace")


good = conf("good")

# --- one run with every decoding case, all at once, after the self-test --

S = "secure.test"
CASES = [
    # qname, qtype, outcome, security, canonical (None: = qname), rrs
    ("dane311." + S, "MX", "DATA", "secure", None,
     ["10 mx1.dane311." + S]),
    ("_25._tcp.mx1.dane311." + S, "TLSA", "DATA", "secure", None,
     ["3 1 1 " + w.tlsa("mx1.dane311." + S).split()[-1].lower()]),
    ("_25._tcp.mx1.dane312." + S, "TLSA", "DATA", "secure", None,
     ["3 1 2 " + w.tlsa("mx1.dane312." + S, 3, 1, 2).split()[-1].lower()]),
    ("_mta-sts.dane311." + S, "TXT", "DATA", "secure", None,
     ["v=STSv1; id=20261123T000000;"]),
    ("mx1.dane311." + S, "A", "DATA", "secure", None,
     [w.addr("mx1.dane311." + S)]),
    ("six." + S, "AAAA", "DATA", "secure", None, ["2001:db8::25"]),
    ("nullmx." + S, "MX", "DATA", "secure", None, ["0 ."]),
    ("upper." + S, "MX", "DATA", "secure", None,
     ["5 mx1.dane311." + S, "7 mx1.dane312." + S]),
    # SPEC A3.18: TXT strings joined without a separator, NUL kept.
    ("multi." + S, "TXT", "DATA", "secure", None, ["v=STSv1; id=42;"]),
    ("nul." + S, "TXT", "DATA", "secure", None, ["a\x00bc"]),
    # CNAME chains: the records of the target, the expanded owner.
    ("alias.cname." + S, "A", "DATA", "secure", "mx1.cname." + S,
     [w.addr("mx1.cname." + S)]),
    ("chain1." + S, "A", "DATA", "secure", "mx1.dane311." + S,
     [w.addr("mx1.dane311." + S)]),
    ("chain1." + S, "CNAME", "DATA", "secure", None, ["chain2." + S]),
    # Denial of existence, proven.
    ("nxdomain." + S, "MX", "NXDOMAIN", "secure", None, []),
    ("_25._tcp.mx2.mixed." + S, "TLSA", "NXDOMAIN", "secure", None, []),
    ("mx1.dane311." + S, "AAAA", "NODATA", "secure", None, []),
    ("nomx." + S, "MX", "NODATA", "secure", None, []),
    ("_25._tcp.mx1.nsec3.test", "TLSA", "DATA", "secure", None, None),
    # In an opt-out span the denial is insecure (RFC 5155 §9.2, SPEC
    # A8.55): "no DANE", not a failure.
    ("nothere.nsec3.test", "TLSA", "NXDOMAIN", "insecure", None, []),
    # Insecure zones (no DS), also below an NSEC3 opt-out span.
    ("insecure.test", "MX", "DATA", "insecure", None,
     ["10 mx1.insecure.test"]),
    ("_25._tcp.mx1.insecure.test", "TLSA", "DATA", "insecure", None, None),
    ("optout.nsec3.test", "MX", "DATA", "insecure", None,
     ["10 mx1.optout.nsec3.test"]),
    ("_25._tcp.mx1.optout.nsec3.test", "TLSA", "DATA", "insecure", None,
     None),
    # Bogus: expired signatures, an RRset edited after signing.
    ("expired.test", "MX", "DATA", "bogus", None, None),
    ("_25._tcp.mx1.expired.test", "TLSA", "DATA", "bogus", None, None),
    ("bogus.test", "MX", "DATA", "bogus", None, None),
    ("_25._tcp.mx1.tlsa.bogus.test", "TLSA", "DATA", "bogus", None, None),
    ("mx1.tlsa.bogus.test", "A", "DATA", "secure", None, None),
    # A zone that fails to load: SERVFAIL, which getdns labels insecure.
    ("servfail.test", "MX", "SERVFAIL", "indeterminate", None, []),
]
args = []
for c in CASES:
    args += [c[0], c[1]]
rc, byq, allres, err = dnsq(good, args, ["-s"])
is_eq(rc, 0, "dnsq -s with the right anchor: exit 0")
is_eq(err, "", "dnsq -s: nothing on stderr")
is_eq(len(allres), len(CASES), "one answer per query")
for qname, qtype, outcome, sec, canon, rrs in CASES:
    r = byq.get((qname, qtype), {})
    tag = "%s %s" % (qname, qtype)
    is_eq((r.get("outcome"), r.get("security")), (outcome, sec),
          "%s: %s %s" % (tag, outcome, sec))
    if canon is not None or outcome == "DATA":
        is_eq(r.get("canonical"), canon or qname, "%s: canonical" % tag)
    if rrs is not None:
        is_eq(sorted(r.get("rrs", [])), sorted(rrs), "%s: records" % tag)
    elif outcome == "DATA":
        ok(len(r.get("rrs", [])) > 0, "%s: has records" % tag, r)
    # SPEC A9.70a: a failure or a bogus answer never reads as "no record".
    if sec == "bogus" or outcome == "SERVFAIL":
        ok(r.get("outcome") not in ("NODATA", "NXDOMAIN"),
           "%s: not read as absent" % tag, r)

# TTLs: the smallest in the answer, the SOA's for denial.
is_eq(byq.get(("upper." + S, "MX"), {}).get("ttl", -1) <= 60, True,
      "ttl is the smallest of the RRset")
ok(0 < byq.get(("nxdomain." + S, "MX"), {}).get("ttl", 0) <= 300,
   "NXDOMAIN ttl from the SOA")
ok(byq.get(("servfail.test", "MX"), {}).get("why", "").startswith(
    "rcode SERVFAIL"), "SERVFAIL says why")

# The silent server behind unbound: a failure either way, never absent.
rc, byq, _, _ = dnsq(good, ["silent.test", "MX"])
r = byq.get(("silent.test", "MX"), {})
ok(r.get("outcome") in ("TIMEOUT", "SERVFAIL"),
   "silent.test via unbound: TIMEOUT or SERVFAIL", r)

# --- timeout: a resolver that never answers ------------------------------

silent = conf("silent", resolvers=w.silent_addr)
t0 = time.monotonic()
rc, byq, allres, _ = dnsq(silent, ["dane311." + S, "MX", "dane311." + S,
                                   "TLSA"])
took = time.monotonic() - t0
is_eq([(r.get("outcome"), r.get("security")) for r in allres],
      [("TIMEOUT", "indeterminate")] * 2, "silent resolver: TIMEOUT")
ok(all(TIMEOUT * 1000 - 200 <= r.get("ms", 0) <= TIMEOUT * 1000 + 2000
       for r in allres), "timeout within [dns] timeout plus slack",
   [r.get("ms") for r in allres])
ok(took < TIMEOUT + 4, "dnsq done in %.1fs" % took)

# --- 50 queries at once ---------------------------------------------------

args = []
for i in range(50):
    args += ["n%02d.%s" % (i, S), "A"]
t0 = time.monotonic()
rc, byq, allres, _ = dnsq(good, args)
is_eq(rc, 0, "50 queries: exit 0")
is_eq(len(allres), 50, "50 queries: 50 answers")
is_eq(sorted((r.get("qname"), r.get("outcome"), r.get("security"),
              tuple(r.get("rrs", []))) for r in allres),
      [("n%02d.%s" % (i, S), "DATA", "secure", ("127.0.54.%d" % (i + 100),))
       for i in range(50)], "50 queries: each its own secure answer")
ok(time.monotonic() - t0 < 10, "50 queries in under 10s")

# --- dns_cancel: the callback never runs ---------------------------------

names = ["dane311." + S, "MX", "insecure.test", "MX", "bogus.test", "MX",
         "nxdomain." + S, "MX", "servfail.test", "MX", "multi." + S, "TXT"]
rc, byq, allres, _ = dnsq(good, names, ["-C", "-w", "700"])
is_eq(rc, 0, "cancel: no callback after dns_cancel (exit 0)")
is_eq(sorted(r.get("qname") for r in allres),
      sorted(["dane311." + S, "bogus.test", "servfail.test"]),
      "cancel: only the queries not cancelled answer")
rc, byq, allres, _ = dnsq(silent, ["a.test", "MX", "b.test", "MX"],
                          ["-C", "-w", str(TIMEOUT * 1000 + 2500)])
is_eq((rc, [r.get("qname") for r in allres]), (0, ["a.test"]),
      "cancel of a pending query: it never times out into a callback")

# --- the self-test (SPEC A9.66) ------------------------------------------

with open(w.trust_anchor) as f:
    right = f.read()
fields = right.split()
# DS: owner IN DS tag alg digtype digest; change one digest nibble.
dig = fields[-1]
wrong = right.replace(dig, ("0" if dig[0] != "0" else "1") + dig[1:])
CASES_ST = [
    ("wrong digest", anchor("wrong.anchor", wrong),
     "does not validate .: status DATA, bogus"),
    ("empty file", anchor("empty.anchor", ""),
     "no DS or DNSKEY record in the file"),
    ("broken file", anchor("broken.anchor", ". IN DS 12345 13 2 zz\n"),
     "trust anchor %s/broken.anchor" % tmp),
    ("no DS or DNSKEY", anchor("a.anchor", ". 300 IN A 127.0.0.1\n"),
     "no DS or DNSKEY record in the file"),
    ("missing file", os.path.join(tmp, "nonexistent"),
     "No such file or directory"),
]
for what, path, want in CASES_ST:
    rc, _, res, err = dnsq(conf("st", anchor=path), ["x.test", "MX"], ["-s"])
    is_eq(rc, 2, "selftest, %s: refused (exit 2)" % what)
    ok(want in err, "selftest, %s: says %r" % (what, want), err)
    is_eq(res, [], "selftest, %s: no query ran" % what)

rc, _, _, err = dnsq(conf("st", selftest="insecure.test"), [], ["-s"])
is_eq(rc, 2, "selftest on an insecure name fails")
ok("does not validate insecure.test: status DATA, insecure" in err,
   "selftest names the status", err)
rc, _, _, err = dnsq(conf("st", selftest="secure.test"), [], ["-s"])
is_eq((rc, err), (0, ""), "selftest on a secure name passes")
rc, _, _, err = dnsq(silent, [], ["-s"])
is_eq(rc, 2, "selftest against a silent resolver fails")
ok("no answer for . SOA: timeout" in err, "selftest says no answer came (timeout)", err)

# Issue 10 item 4: a resolver that answers SERVFAIL for the anchor's zone
# (one serving only a private tree) is an answer, and a refusal in plain
# words; before, a wrong anchor passed this way.
sfconf = conf("sf", resolvers=w.servfail_addr, selftest="")
rc, _, _, err = dnsq(sfconf, [], ["-s"])
is_eq(rc, 2, "selftest, resolver answers SERVFAIL: refused")
ok("the resolver %s answered rcode SERVFAIL for . SOA, the zone the trust "
   "anchor is for" % w.servfail_addr in err and
   "point [dns] resolvers at a resolver that resolves ." in err,
   "selftest, SERVFAIL: says which resolver answered what, and what to do",
   err)
rc, _, _, err = dnsq(conf("sfw", resolvers=w.servfail_addr, selftest="",
                          anchor=os.path.join(tmp, "wrong.anchor")), [],
                     ["-s"])
ok(rc == 2 and "answered rcode SERVFAIL" in err,
   "selftest, wrong anchor behind a SERVFAIL resolver: refused", err)

# The default self-test name is the anchor's own zone: an anchor for
# secure.test (its DS) is tested on secure.test, not on the root.
sec_ds = w.keys["secure.test"][1]
sec_anchor = anchor("secure.anchor", sec_ds + "\n")
rc, _, _, err = dnsq(conf("own", anchor=sec_anchor, selftest=""), [], ["-s"])
is_eq((rc, err), (0, ""), "selftest, anchor for secure.test: its SOA "
      "validates (default name = the anchor's zone)")
dg = sec_ds.split()[-1]
bad_sec = anchor("secure-wrong.anchor",
                 sec_ds.replace(dg, ("0" if dg[0] != "0" else "1") + dg[1:]) +
                 "\n")
rc, _, _, err = dnsq(conf("ownbad", anchor=bad_sec, selftest=""), [], ["-s"])
ok(rc == 2 and "does not validate secure.test: status DATA, bogus" in err,
   "selftest, wrong anchor for secure.test: refused on secure.test", err)
rc, _, _, err = dnsq(conf("ownover", anchor=sec_anchor,
                          selftest="dane311.secure.test"), [], ["-s"])
ok(rc == 2 and "does not validate dane311.secure.test: status NODATA" in err,
   "selftest_name set: that name is asked instead", err)

# --- full recursion from the world's root ([dns] root_hints, issue 9) ------

# getdns's embedded libunbound recurses from NSD itself; validation is
# libunbound's and getdns's, on the same private anchor. Every case above
# must come out the same, except where only the resolver in between made
# the difference: a zone that does not load is a failed lookup either way.
rh = conf("rh", hints=w.root_hints, selftest="")
args = []
for c in CASES:
    args += [c[0], c[1]]
rc, byq, allres, err = dnsq(rh, args, ["-s"])
is_eq((rc, err), (0, ""), "recursion: dnsq -s with the right anchor")
is_eq(len(allres), len(CASES), "recursion: one answer per query")
for qname, qtype, outcome, sec, canon, rrs in CASES:
    r = byq.get((qname, qtype), {})
    tag = "recursion: %s %s" % (qname, qtype)
    if outcome == "SERVFAIL":
        is_eq(r.get("outcome"), "SERVFAIL", "%s: SERVFAIL" % tag)
        continue
    is_eq((r.get("outcome"), r.get("security")), (outcome, sec),
          "%s: %s %s" % (tag, outcome, sec))
    if rrs is not None:
        is_eq(sorted(r.get("rrs", [])), sorted(rrs), "%s: records" % tag)
rc, byq, _, _ = dnsq(rh, ["silent.test", "MX", "x.servfail.test", "A"])
for q in (("silent.test", "MX"), ("x.servfail.test", "A")):
    r = byq.get(q, {})
    ok(r.get("outcome") in ("TIMEOUT", "SERVFAIL"),
       "recursion: %s %s is a failure, never absent" % q, r)

# The self-test in recursion: a wrong anchor is an answer that does not
# validate; root hints to a server that never answers are no answer.
rc, _, _, err = dnsq(conf("rhbad", hints=w.root_hints, selftest="",
                          anchor=os.path.join(tmp, "wrong.anchor")), [],
                     ["-s"])
ok(rc == 2 and "does not validate .: status DATA, bogus" in err,
   "recursion: selftest with a wrong anchor refused", err)
silent_hints = anchor("silent.hints", ". 3600000 NS ns.silent.\n"
                      "ns.silent. 3600000 A %s\n" % w.silent_addr)
rc, _, _, err = dnsq(conf("rhsilent", hints=silent_hints, selftest=""), [],
                     ["-s"], limit=90)
ok(rc == 2 and "no answer for . SOA from the root servers" in err,
   "recursion: a silent root is no answer (start and retry)", err)
no_hints = anchor("nohints.hints", ". 3600000 NS ns.silent.\n")
rc, _, _, err = dnsq(conf("rhnone", hints=no_hints), [], ["-s"])
ok(rc != 0 and "no A or AAAA record of a root server" in err,
   "root hints without an address: refused", err)

done()
