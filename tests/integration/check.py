# SPDX-License-Identifier: BSD-2-Clause
"""tlspolicy check DOMAIN against the test DNS world: the MX set and its
DNSSEC status, each host's TLSA usability, the verdict and the SPEC rule,
the stored state, and the warning about Postfix's DNSSEC setting (read
with postconf from MAIL_CONFIG)."""
import atexit
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lab"))
from tlstest import TOOL, Daemon, done, is_eq, ok  # noqa
from dnsworld import DNSWorld  # noqa
from httpsworld import HTTPSWorld  # noqa
import pki  # noqa
import tempfile  # noqa

tmp = tempfile.mkdtemp(prefix="check-")
# Registered first, so it runs last: after the servers below are stopped.
atexit.register(lambda: os.environ.get("KEEP_TMP") or
                shutil.rmtree(tmp, ignore_errors=True))
ca = pki.CA(os.path.join(tmp, "ca"))
w = DNSWorld()
hw = HTTPSWorld(os.path.join(tmp, "www"), ca, addr="127.%d.47.1" % w.slot)
hw.policy("insecure.test", "version: STSv1\nmode: enforce\n"
          "mx: mx1.insecure.test\nmax_age: 86400\n")
w.add_record("insecure.test", "mta-sts 300 IN A %s" % hw.addr)
hw.start()
w.start()
d = Daemon(name="check", dane=True, sts=True, extra="""
[dns]
resolvers = %s
trust_anchor = %s
timeout = 4
[sts]
ca_file = %s
[policy]
%s = dane-only
""" % (w.resolver, w.trust_anchor, ca.cert_path, w.name("insecuremx")))

# A Postfix config without DNSSEC, and one with it.
pf_plain = os.path.join(d.dir, "pf-plain")
pf_dnssec = os.path.join(d.dir, "pf-dnssec")
for path, extra in ((pf_plain, ""),
                    (pf_dnssec, "smtp_dns_support_level = dnssec\n")):
    os.mkdir(path)
    with open(os.path.join(path, "main.cf"), "w") as f:
        f.write("compatibility_level = 3.6\n" + extra)


def check(key, *flags, mail_config=pf_dnssec):
    """No probe here (no sinks run): the DNS and MTA-STS diagnosis; the
    probe is tested in check_probe.py."""
    env = dict(os.environ, MAIL_CONFIG=mail_config)
    p = subprocess.run([TOOL, "-c", d.conf] + list(flags) +
                       ["check", "--no-probe", w.name(key)],
                       capture_output=True,
                       text=True, timeout=60, env=env)
    return p.returncode, p.stdout, p.stderr


rc, out, err = check("dane311")
# Exit 1: dane311 publishes an _mta-sts record whose policy host has no
# address (a problem, listed).
ok(rc == 1 and "MTA-STS: a record is published but no valid policy" in out
   and "DANE:     dane-only: all 1 MX hosts have usable TLSA "
   "records" in out and "answer:   OK dane-only" in out and "1 usable" in out
   and "SPEC" not in out, "check: D1 explained in words", out + err)
ok("warning" not in out, "no warning when Postfix has dnssec", out)

rc, out, err = check("mixed", "-j")
try:
    r = json.loads(out)
except ValueError:
    r = {}
states = {h["host"]: h["state"] for h in r.get("hosts", [])}
ok(rc == 1 and r.get("verdict") == "dane" and r.get("mx_dnssec") == "secure"
   and states == {"mx1." + w.name("mixed"): "usable",
                  "mx2." + w.name("mixed"): "notlsa"}
   and r.get("rule") == "D2" and r.get("answer") == "OK dane"
   and r.get("answer_rule") == "dane",
   "check -j: D2 with per-host states", out)

rc, out, err = check("pkix", "-j")
r = json.loads(out) if rc == 0 else {}
h = (r.get("hosts") or [{}])[0]
ok(r.get("verdict") == "dane" and h.get("state") == "unusable"
   and h.get("unusable") == 2 and h.get("usable") == 0,
   "check: PKIX-only TLSA counted unusable (D3)", out + err)

rc, out, err = check("bogus")
ok(rc == 1 and "- DANE: the MX lookup for" in out and "DANE:     failed: the MX lookup for %s failed" %
   w.name("bogus") in out and "answer:   OK dane\n" in out,
   "check: bogus MX is a failure (D6), not 'no DANE'", out + err)

rc, out, err = check("insecure")
ok(rc == 0 and "DANE:     none" in out and "MX:       insecure" in out,
   "check: insecure zone (D5)", out + err)
ok("answer:   OK secure match=mx1.insecure.test servername=hostname" in out
   and "because:  the domain's MTA-STS policy (mode enforce)" in out,
   "check: an MTA-STS enforce domain gets the daemon's secure answer", out)
ok("MTA-STS:  TXT record, id 20261123T000000" in out
   and "fetch:  status 200, text/plain" in out
   and "mta-sts.insecure.test" in out.split("cert:", 1)[-1]
   and "policy: mode enforce, max_age 86400, mx mx1.insecure.test" in out,
   "check shows the MTA-STS record, the fetch and the parsed policy", out)
rc, out, err = check("mixed", "-j")
r = json.loads(out) if rc == 1 else {}
m = r.get("mta_sts", {})
ok(m.get("discovery") == "record" and "no address for mta-sts." in
   m.get("error", ""), "check -j: a policy host without address is named",
   out + err)

rc, out, err = check("dane311", mail_config=pf_plain)
ok("warning:  Postfix has smtp_dns_support_level = (empty)" in out,
   "check warns when Postfix lacks smtp_dns_support_level = dnssec", out)

# The stored state is shown once the daemon has decided.
d.start()
is_eq(d.ask(w.name("dane201")), "OK dane-only", "daemon decides dane201")
rc, out, err = check("dane201")
ok("store:    DANE dane-only until" in out, "check shows the stored verdict",
   out + err)
# A flush makes the next lookup resolve afresh: the in-memory re-check
# hold goes with the row (it used to leave NOTFOUND for 15 minutes).
SEC = "OK secure match=mx1.insecure.test servername=hostname"
is_eq(d.ask("insecure.test"), SEC, "daemon fetches the enforce policy")
rc, out, err = d.tool("cache", "flush", "insecure.test")
ok(rc == 0, "flushed while running", out + err)
is_eq(d.ask("insecure.test"), SEC,
      "after a flush: resolved afresh, not NOTFOUND")
ok("flushed insecure.test from the store (it was there); the next lookup "
   "resolves it afresh" in d.read_log(), "the flush is logged",
   d.read_log()[-600:])
d.stop()
d.put_sts("insecure.test", "enforce", ["mx1.insecure.test"])
rc, out, err = check("insecure")
ok("store:    MTA-STS enforce (id id1) until" in out
   and ", refreshed from " in out,
   "check shows the stored policy, its expiry and its refresh", out + err)

rc, out, err = check("insecuremx", "-j")
r = json.loads(out) if rc == 0 else {}
ok(r.get("verdict") == "dane" and r.get("answer") == "OK dane-only"
   and r.get("answer_rule") == "static"
   and r.get("answer_source") == "static",
   "check: a [policy] line wins, as in the daemon", out + err)

# Runtime pins (issue 12), written to the store with no daemon running:
# check decides with them, and says when a [policy] line wins instead.
rc, out, err = d.tool("pin", "insecure.test", "encrypt")
ok(rc == 0, "pin with the daemon stopped: written to the store", out + err)
rc, out, err = check("insecure")
ok("answer:   OK encrypt\n" in out
   and "because:  pinned by the operator (tlspolicy pin)" in out
   and "store:    pinned by the operator: encrypt" in out,
   "check: the operator's pin wins over the MTA-STS policy", out + err)
rc, out, err = d.tool("exempt", w.name("insecuremx"))
ok(rc == 0 and "[policy] line 'dane-only' in the config wins" in err,
   "exempt of a domain with a [policy] line: the tool says the line wins",
   out + err)
rc, out, err = check("insecuremx")
ok("answer:   OK dane-only\n" in out
   and "note:     the operator's pin in the store is not used: the "
   "[policy] line in the config wins over it" in out
   and "store:    pinned by the operator: exempt (no TLS policy)" in out,
   "check: the [policy] line wins over an exemption, and says so",
   out + err)
d.tool("unpin", "insecure.test")
rc, out, err = check("insecure")
ok("answer:   OK secure match=mx1.insecure.test" in out,
   "check after unpin: the MTA-STS answer again", out + err)

p = subprocess.run([TOOL, "-c", d.conf, "check", "[192.0.2.1]"],
                   capture_output=True, text=True, timeout=30)
ok(p.returncode == 2 and "NOTFOUND" in p.stderr,
   "check of an IP literal says it gets NOTFOUND", p.stderr)

# The daemon warns at start-up too.
d2 = Daemon(name="check2", dane=True, extra="""
[dns]
resolvers = %s
trust_anchor = %s
""" % (w.resolver, w.trust_anchor))
os.environ["MAIL_CONFIG"] = pf_plain
d2.start()
d2.stop()
del os.environ["MAIL_CONFIG"]
ok("smtp_dns_support_level" in d2.read_log(),
   "daemon warns at start-up about Postfix without dnssec",
   d2.read_log()[-800:])
w.stop()
hw.stop()
done()
