# SPDX-License-Identifier: BSD-2-Clause
"""Exim (Debian's exim4-daemon-light 4.96) with contrib/exim asks
tlspolicyd over the query socket for every remote domain and applies the
answer (issue 12). A real Exim delivers, in the foreground, to Postfix
TLS sinks on the addresses the test DNS world's MX hosts resolve to; its
DNS goes to the world's validating unbound (resolv.conf bind-mounted in
a private mount namespace, see tests/lab/eximworld.py).

  dane311 (the daemon's own live verdict, dane-only): delivered, CV=dane;
  an MTA-STS enforce policy from the daemon's store (*.insecure.test):
      delivered over verified TLS (CV=yes) to the test-CA sink;
  mismatch (TLSA digest does not match the sink's key): deferred;
  a secure answer and a certificate for another name: deferred;
  an MTA-STS policy whose patterns leave out the MX host: deferred, and
      no connection is even attempted past TCP;
  notls under dane-only, and nsec3 under a secure answer (no STARTTLS):
      deferred;
  a TEMP answer, and no tlspolicyd on the socket at all: deferred;
  a runtime pin (tlspolicy pin DOMAIN dane-only) applies at once, and
      unpin restores the MTA-STS answer.
Nothing leaves 127.0.0.0/8."""
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
SRCDIR = os.environ.get("srcdir", TOP)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lab"))
from tlstest import Daemon, bail, done, is_eq, ok  # noqa: E402
from dnsworld import DNSWorld  # noqa: E402
from postfixworld import PostfixWorld, PostfixError  # noqa: E402
from eximworld import EximSender, exim_missing  # noqa: E402

T0 = time.time()
missing = exim_missing()
if missing:
    bail("the test Exim is missing: " + missing)
SNIPPETS = os.path.join(SRCDIR, "contrib", "exim", "conf.d")
with open("/etc/resolv.conf", "rb") as f:
    HOST_RESOLV = f.read()

w = DNSWorld()
w.add_record("insecure.test", "temp 300 IN MX 10 mx1.insecure.test.")
w.add_record("insecure.test", "sts 300 IN MX 10 mx1.insecure.test.")
w.add_record("insecure.test", "stsout 300 IN MX 10 mx1.insecure.test.")
w.start()
TEMP_DOMAIN = "temp." + w.name("insecure")
STS_DOMAIN = "sts." + w.name("insecure")
STSOUT_DOMAIN = "stsout." + w.name("insecure")


def mx(key):
    return w.mx_hosts(key)[0]


SECURE = "secure match=%s servername=hostname"
# The secure answers for these two are [policy] lines; the DANE answers
# are the daemon's own, resolved live.
d = Daemon(name="exim", dane=True, policy=(
    "%s = %s\n%s = %s\n" % (w.name("optout"), SECURE % mx("optout"),
                            w.name("nsec3"), SECURE % mx("nsec3"))),
    # Exim routes as its own user (Debian-exim); in production that user
    # is in [server] query_socket_group instead.
    server_extra="query_socket_mode = 0666\n",
    extra="[dns]\nresolvers = %s\ntrust_anchor = %s\n" %
    (w.resolver, w.trust_anchor))
d.start()
d.stop()
d.put_sts(TEMP_DOMAIN, "enforce", ["bad,pattern"])
d.put_sts(STS_DOMAIN, "enforce", ["*." + w.name("insecure")])
d.put_sts(STSOUT_DOMAIN, "enforce", ["mx.elsewhere.invalid"])
d.start()

SINKS = {  # sink name -> (host, cert or None)
    "dane311": (mx("dane311"), w.cert_for(mx("dane311"))),
    "mismatch": (mx("mismatch"), w.cert_for(mx("mismatch"))),
    "notls": (mx("notls"), None),
    "insecure": (mx("insecure"), w.cert_for(mx("insecure"))),
    "optout": (mx("optout"), w.cert_for("other.invalid")),
    "nsec3": (mx("nsec3"), None),
}
pw = PostfixWorld()
for name, (host, cert) in SINKS.items():
    if cert is None:
        pw.add_sink(name, w.addr(host), starttls=False, hostname=host)
    else:
        pw.add_sink(name, w.addr(host), cert[0], cert[1], hostname=host)
try:
    pw.start()
except PostfixError as e:
    bail(str(e))

ex = EximSender(os.path.join(d.dir, "exim"), SNIPPETS, w.resolv_conf,
                w.ca_cert, d.query)
with open(w.resolv_conf) as f:
    ok(ex.resolv_conf_seen() == f.read(), "Exim sees the test resolv.conf")

# --- the recipe's expansions -----------------------------------------------
rc, out, err = ex.expand("${readsocket{%s}{%s\n}{5s}{}{FAIL}}" %
                         (d.query, w.name("dane311")))
ok(rc == 0 and '"answer":"OK dane-only"' in out,
   "Exim's readsocket gets the daemon's JSON line for a bare domain",
   out + err)
rc, out, err = ex.expand(
    "${extract jsons{answer}{\\{\"answer\":\"OK secure "
    "match=mx1.x:.y.x servername=hostname\"\\}}}")
is_eq(out, "OK secure match=mx1.x:.y.x servername=hostname",
      "extract jsons reads the answer")

# --- deliveries --------------------------------------------------------------
CASES = [  # (name, domain, sink or None, want, what)
    ("dane311", w.name("dane311"), "dane311", "sent",
     "dane-only, DANE-EE 3 1 1"),
    ("sts", STS_DOMAIN, "insecure", "sent",
     "stored MTA-STS enforce policy, test-CA certificate for the MX"),
    ("mismatch", w.name("mismatch"), "mismatch", "deferred",
     "TLSA digest does not match"),
    ("optout", w.name("optout"), "optout", "deferred",
     "secure answer, certificate for another name"),
    ("stsout", STSOUT_DOMAIN, "insecure", "deferred",
     "MTA-STS patterns leave out the MX host"),
    ("notls", w.name("notls"), "notls", "deferred",
     "dane-only, MX offers no STARTTLS"),
    ("nsec3", w.name("nsec3"), "nsec3", "deferred",
     "secure answer, MX offers no STARTTLS"),
    ("temp", TEMP_DOMAIN, "insecure", "deferred", "TEMP answer"),
]
res = {}
for name, dom, sink, want, what in CASES:
    res[name] = ex.send("postmaster@" + dom)
# The daemon gone from the socket: the recipe defers, never sends.
res["nodaemon"] = ex.send("postmaster@" + w.name("dane311"), macros={
    "TLSPOLICYD_SOCKET": os.path.join(d.dir, "no-such.sock")})

for name, dom, sink, want, what in CASES:
    r = res[name]
    got = pw.sink(sink).find(r.msgid)
    if want == "sent":
        ok(r.status == "sent", "%s: delivered (%s)" % (dom, what), r)
        ok(got is not None and got.tls(),
           "%s: the sink stored it, received over TLS" % dom,
           got and got.text)
    else:
        ok(r.status == "deferred", "%s: deferred (%s)" % (dom, what), r)
        ok(got is None, "%s: the sink received nothing" % dom)
is_eq(res["dane311"].tls_verified(), "dane",
      "dane311: Exim verified the sink by DANE (CV=dane)")
ok("R=tlspolicyd_dane_only T=tlspolicyd_dane_only" in
   "\n".join(res["dane311"].lines), "dane311: routed by the dane-only "
   "router", res["dane311"])
is_eq(res["sts"].tls_verified(), "yes",
      "MTA-STS: a verified certificate (CV=yes)")
ok("R=tlspolicyd_verify T=tlspolicyd_verify H=mx1.insecure.test" in
   "\n".join(res["sts"].lines), "MTA-STS: the verified-TLS transport, to "
   "the MX host the pattern allows", res["sts"])
ok("no MX host of %s is allowed by its TLS policy" % STSOUT_DOMAIN in
   res["stsout"].defer_reason() and " H=" not in
   "\n".join(res["stsout"].lines),
   "MX outside the patterns: deferred before any connection, the reason "
   "names the policy", res["stsout"])
ok("TLS policy from tlspolicyd: TEMP unusable mta-sts mx patterns" in
   res["temp"].defer_reason(), "TEMP: deferred with the daemon's reason",
   res["temp"])
r = res["nodaemon"]
ok(r.status == "deferred" and "TEMP no answer from tlspolicyd" in
   r.defer_reason() and pw.sink("dane311").find(r.msgid) is None,
   "no daemon on the socket: deferred, nothing sent", r)
for name in ("notls", "nsec3"):
    ok("TLS" in res[name].defer_reason(),
       "%s: the deferral is about TLS" % name, res[name])
is_eq(ex.queue(), 7, "the seven deferred messages wait in Exim's queue")

# A runtime pin (tlspolicy pin) changes what Exim does at once: dane-only
# for a domain whose MX zone is unsigned defers; after unpin the MTA-STS
# policy applies again.
rc, out, err = d.tool("pin", STS_DOMAIN, "dane-only")
ok(rc == 0, "tlspolicy pin %s dane-only" % STS_DOMAIN, out + err)
r = ex.send("postmaster@" + STS_DOMAIN)
ok(r.status == "deferred" and "R=tlspolicyd_dane_only" in
   "\n".join(r.lines) and pw.sink("insecure").find(r.msgid) is None,
   "pinned dane-only: Exim requires DNSSEC for the unsigned MX and defers",
   r)
rc, out, err = d.tool("unpin", STS_DOMAIN)
r = ex.send("postmaster@" + STS_DOMAIN)
ok(r.status == "sent" and r.tls_verified() == "yes",
   "unpinned: verified TLS under the MTA-STS policy again", r)
is_eq(ex.panics(), "", "Exim's panic log is empty")
with open("/etc/resolv.conf", "rb") as f:
    is_eq(f.read(), HOST_RESOLV, "the machine's resolv.conf is untouched")

pids = pw.pids()
pw.stop()
d.stop()
w.stop()
ok(pids and not any(os.path.exists("/proc/%d" % p) for p in pids),
   "no Postfix sink survives")
print("# %.1f s" % (time.time() - T0))
done()
