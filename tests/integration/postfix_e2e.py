# SPDX-License-Identifier: BSD-2-Clause
"""End to end with real Postfix (issue 3 and 4, SPEC B): a sending Postfix
whose resolver is the test DNS world's validating unbound asks tlspolicyd
through smtp_tls_policy_maps and delivers to Postfix TLS sinks on the
addresses the world's MX hosts resolve to.

  DANE-EE 3 1 1 and DANE-TA 2 0 1 (and 3 1 2), answer dane-only: delivered
      over a Verified TLS connection;
  a TLSA digest the sink's key does not match: deferred, nothing arrives;
  an MX that offers no STARTTLS under dane-only: deferred;
  an MTA-STS style answer "secure match=<mx> servername=hostname": the sink
      with a test-CA certificate for the MX name gets the mail (Verified);
      one with a certificate for another name, a self-signed one, or no
      STARTTLS does not (deferred); a stored enforce policy ("*.x") too;
  a TEMP answer from the policy map: deferred, "client TLS configuration
      problem".

The world, the daemon and every Postfix start once; all mails are
submitted together and their results awaited together.  The DANE answers
are the daemon's own, resolved live through the world's validating
unbound; the MTA-STS-style answers are pinned in its [policy] section (the
live MTA-STS path is tested in sts_policy.py), TEMP comes from its store.
Nothing leaves 127.0.0.0/8."""
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lab"))
from tlstest import Daemon, bail, done, is_eq, ok  # noqa: E402
from dnsworld import DNSWorld  # noqa: E402
from postfixworld import PostfixWorld, PostfixError  # noqa: E402
import pki  # noqa: E402

T0 = time.time()
with open("/etc/resolv.conf", "rb") as f:
    HOST_RESOLV = f.read()

w = DNSWorld()
# An insecure domain whose MX resolves (Postfix looks the MX up before it
# asks the policy map): the TEMP case.
w.add_record("insecure.test", "temp 300 IN MX 10 mx1.insecure.test.")
# Another one whose MTA-STS policy comes from the daemon's store.
w.add_record("insecure.test", "sts 300 IN MX 10 mx1.insecure.test.")
w.start()
TEMP_DOMAIN = "temp." + w.name("insecure")
STS_DOMAIN = "sts." + w.name("insecure")
SELF_SIGNED = pki.self_signed(os.path.join(w.dir, "pfx-self"),
                              w.mx_hosts("pkix")[0])


def mx(key):
    return w.mx_hosts(key)[0]


# Case key -> (policy answer, sink: (cert, key) or None for no STARTTLS,
# expected status, what).
SECURE = "secure match=%s servername=hostname"
CASES = [
    ("dane311", "dane-only", w.cert_for(mx("dane311")), "sent",
     "DANE-EE 3 1 1"),
    ("dane201", "dane-only", (w.chain_for(mx("dane201")),
                              w.cert_for(mx("dane201"))[1]), "sent",
     "DANE-TA 2 0 1 (leaf + test CA)"),
    ("dane312", "dane-only", w.cert_for(mx("dane312")), "sent",
     "DANE-EE 3 1 2"),
    ("mismatch", "dane-only", w.cert_for(mx("mismatch")), "deferred",
     "TLSA digest does not match the sink's key"),
    ("notls", "dane-only", None, "deferred",
     "MX offers no STARTTLS under dane-only"),
    ("insecure", SECURE % mx("insecure"), w.cert_for(mx("insecure")), "sent",
     "MTA-STS style secure match, test-CA certificate for the MX name"),
    ("optout", SECURE % mx("optout"), w.cert_for("other.invalid"),
     "deferred", "MTA-STS style secure match, certificate for another name"),
    ("pkix", SECURE % mx("pkix"), SELF_SIGNED, "deferred",
     "MTA-STS style secure match, self-signed certificate for the MX name"),
    ("nsec3", SECURE % mx("nsec3"), None, "deferred",
     "MTA-STS style secure match, MX offers no STARTTLS"),
]

# The DANE answers are the daemon's own, resolved live through the test
# world (SPEC B D1); only the MTA-STS-style cases are pinned in [policy].
d = Daemon(name="pfx", dane=True, policy="".join(
    "%s = %s\n" % (w.name(k), ans) for k, ans, _, _, _ in CASES
    if ans != "dane-only"),
    server_extra="socketmap_mode = 0666\n",
    extra="[dns]\nresolvers = %s\ntrust_anchor = %s\n" %
    (w.resolver, w.trust_anchor))
d.start()
d.stop()
# A TEMP answer: a cached enforce policy whose only MX pattern Postfix
# could misread is "TEMP unusable mta-sts mx patterns" (pol.c), never "no
# policy"; the domain is insecure (SPEC B D5), so DANE does not preempt it.
d.put_sts(TEMP_DOMAIN, "enforce", ["bad,pattern"])
# SPEC B notation: "*.x" becomes ".x" (Postfix: any subdomain of x).
d.put_sts(STS_DOMAIN, "enforce", ["*." + w.name("insecure")])
d.start()

# --- prerequisites --------------------------------------------------------
for key, ans, _, _, _ in CASES:
    is_eq(d.postmap(w.name(key))[:2], (0, ans),
          "postmap: %s answers %s" % (w.name(key), ans))
rc, out, _ = d.postmap(TEMP_DOMAIN)
ok(rc != 0 and not out, "postmap: %s is a lookup error (TEMP)" %
   TEMP_DOMAIN, (rc, out))
is_eq(d.ask(TEMP_DOMAIN)[:5], "TEMP ", "%s: the daemon answers TEMP" %
      TEMP_DOMAIN)
STS_ANSWER = SECURE % ("." + w.name("insecure"))
is_eq(d.postmap(STS_DOMAIN)[:2], (0, STS_ANSWER),
      "postmap: %s answers the stored enforce policy" % STS_DOMAIN)
r = w.dig(w.name("dane311"), "MX")
ok(r.status == "NOERROR" and r.ad, "test resolver: secure MX (AD)", r)

pw = PostfixWorld()
for key, _, cert, _, _ in CASES:
    host = mx(key)
    if cert is None:
        pw.add_sink(key, w.addr(host), starttls=False, hostname=host)
    else:
        pw.add_sink(key, w.addr(host), cert[0], cert[1], hostname=host)
tx = pw.add_sender(resolv_conf=w.resolv_conf, ca_file=w.ca_cert,
                   policy_map="socketmap:unix:%s:postfix" % d.smap)
try:
    pw.start()
except PostfixError as e:
    bail(str(e))
with open(w.resolv_conf) as f:
    ok(tx.resolv_conf_seen() == f.read(), "sender sees the test resolv.conf",
       tx.resolv_conf_seen())
with open("/etc/resolv.conf", "rb") as f:
    is_eq(f.read(), HOST_RESOLV, "the machine's resolv.conf is untouched")

# --- deliveries -------------------------------------------------------------
ids = {}
for key, _, _, _, _ in CASES:
    ids[key] = tx.submit("postmaster@" + w.name(key))
ids["temp"] = tx.submit("postmaster@" + TEMP_DOMAIN)
ids["sts"] = tx.submit("postmaster@" + STS_DOMAIN)
res = tx.wait(list(ids.values()), timeout=60)


def diag(key):
    r = res[ids[key]]
    return "%r\n%s" % (r, "\n".join(r.lines) or tx.log_tail())


for key, _, cert, want, what in CASES:
    r = res[ids[key]]
    if want == "sent":
        got = pw.sink(key).wait_stored(ids[key])
        ok(r.status == "sent" and r.verified(),
           "%s: delivered over Verified TLS (%s)" % (w.name(key), what),
           diag(key))
        ok(got is not None and got.tls() and got.qid == r.sink_qid,
           "%s: the sink stored it, received over TLS" % w.name(key),
           got and got.text)
    else:
        ok(r.status == "deferred", "%s: deferred (%s)" % (w.name(key), what),
           diag(key))
        ok(pw.sink(key).find(ids[key]) is None and
           pw.sink(key).received() == [],
           "%s: the sink received nothing" % w.name(key))
r = res[ids["temp"]]
ok(r.status == "deferred" and "client TLS configuration problem" in
   (r.reason or ""), "%s: TEMP answer: deferred, client TLS configuration "
   "problem" % TEMP_DOMAIN, diag("temp"))
r = res[ids["sts"]]
got = pw.sink("insecure").wait_stored(ids["sts"])
ok(r.status == "sent" and r.verified() and got is not None and got.tls(),
   "%s: stored MTA-STS enforce policy: delivered over Verified TLS" %
   STS_DOMAIN, diag("sts"))

# Postfix did the DANE work itself (SPEC B): its TLSA lookup for the
# mismatching host found records and the handshake failed to verify.
r = res[ids["mismatch"]]
ok("not verified" in (r.reason or "").lower() or any(
   "verification failed" in x for x in r.lines),
   "mismatch: the failure is certificate verification", diag("mismatch"))
for key in ("notls", "nsec3"):
    r = res[ids[key]]
    ok("TLS is required, but was not offered" in (r.reason or ""),
       "%s: STARTTLS required but not offered" % key, diag(key))
r = res[ids["pkix"]]
ok("not verified" in (r.reason or "").lower(),
   "pkix: the self-signed certificate is not verified", diag("pkix"))

# --- clean-up ---------------------------------------------------------------
pids = pw.pids()
pw.stop()
ok(pids and not any(os.path.exists("/proc/%d" % p) for p in pids),
   "no Postfix process survives (%d were running)" % len(pids))
print("# %.1f s" % (time.time() - T0))
done()
