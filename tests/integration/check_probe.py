# SPDX-License-Identifier: BSD-2-Clause
"""tlspolicy check with its live STARTTLS probe (issue 11), against real
Postfix sinks in the test world, and the [server] protocols floor in a real
delivery.

Sinks (each its own Postfix smtpd on 127.S.54.N:25):
  dane312   DANE-EE 3 1 2, certificate from the world CA, TLS >= 1.2
  dane201   DANE-TA 2 0 1, leaf + CA chain
  mismatch  TLSA of a key the sink does not have
  notls     no STARTTLS
  insecure  MTA-STS enforce, certificate for mx1.insecure.test
  self      MTA-STS enforce, self-signed certificate
  wrong     MTA-STS enforce, certificate for another name
  outside   MTA-STS enforce, mx2 covered by no pattern, a pattern that
            matches no MX
  old       MTA-STS enforce, a sink offering only TLS 1.0/1.1 (OpenSSL
            security level 0)
  soon      MTA-STS enforce, a certificate expiring in 5 days
  nofs      MTA-STS enforce, TLS 1.2 with RSA key exchange only

`check --json` must report each exactly and exit 1 where delivery would
fail or be weakened, 0 where nothing is wrong; the text output of two
domains is compared with golden text (times, addresses and digests
normalised); then a sending Postfix with the daemon's answers under
[server] protocols = >=TLSv1.2 delivers to the good MTA-STS sink and
defers mail to the TLS 1.1-only one (the sink's "protocol version" alert);
a [policy] line "encrypt protocols=>=TLSv1" for a control domain with the
same MX shows that this sender does deliver to that sink over TLS 1.0/1.1
when no floor is asked for.
Nothing leaves 127.0.0.0/8."""
import atexit
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lab"))
from tlstest import TOOL, Daemon, bail, done, is_eq, ok  # noqa: E402
from dnsworld import DNSWorld, STS_TXT  # noqa: E402
from httpsworld import HTTPSWorld  # noqa: E402
from postfixworld import PostfixWorld, PostfixError  # noqa: E402
import pki  # noqa: E402

tmp = tempfile.mkdtemp(prefix="check-probe-")
# Registered first, so it runs last: after the servers below are stopped
# (tests/lab/isolated fails a test that leaves files in TMPDIR).
atexit.register(lambda: os.environ.get("KEEP_TMP") or
                shutil.rmtree(tmp, ignore_errors=True))
os.chmod(tmp, 0o755)
ca = pki.CA(os.path.join(tmp, "ca"))
w = DNSWorld()
S = w.slot
hw = HTTPSWorld(os.path.join(tmp, "www"), ca, addr="127.%d.47.1" % S)

# MTA-STS domains below insecure.test: (label, [(mx, address)], policy mx)
STS = {
    "insecure": ([("mx1.insecure.test", w.addr("mx1.insecure.test"))],
                 ["mx1.insecure.test"]),
    "self": ([("mx1.self.insecure.test", "127.%d.54.60" % S)],
             ["mx1.self.insecure.test"]),
    "wrong": ([("mx1.wrong.insecure.test", "127.%d.54.61" % S)],
              ["mx1.wrong.insecure.test"]),
    "outside": ([("mx1.outside.insecure.test", "127.%d.54.62" % S),
                 ("mx2.outside.insecure.test", "127.%d.54.63" % S)],
                ["mx1.outside.insecure.test", "mail.elsewhere.test"]),
    "old": ([("mx1.old.insecure.test", "127.%d.54.64" % S)],
            ["mx1.old.insecure.test"]),
    "soon": ([("mx1.soon.insecure.test", "127.%d.54.65" % S)],
             ["mx1.soon.insecure.test"]),
    "nofs": ([("mx1.nofs.insecure.test", "127.%d.54.66" % S)],
             ["mx1.nofs.insecure.test"]),
}


def dom(label):
    return "insecure.test" if label == "insecure" else label + \
        ".insecure.test"


for label, (mxs, pats) in STS.items():
    d = dom(label)
    rel = "" if label == "insecure" else "." + label
    hw.policy(d, "version: STSv1\nmode: enforce\n%smax_age: 86400\n" %
              "".join("mx: %s\n" % p for p in pats))
    w.add_record("insecure.test", "mta-sts%s 300 IN A %s" % (rel, hw.addr))
    if label == "insecure":
        continue
    w.add_record("insecure.test", "_mta-sts%s 300 IN TXT %s" % (rel, STS_TXT))
    for i, (mx, addr) in enumerate(mxs):
        w.add_record("insecure.test", "%s. 300 IN MX %d %s." %
                     (d, 10 * (i + 1), mx))
        w.add_record("insecure.test", "%s. 300 IN A %s" % (mx, addr))
# The control domain for the delivery test: MX = the TLS 1.1-only sink.
CTL = "oldctl.insecure.test"
w.add_record("insecure.test", "%s. 300 IN MX 10 mx1.old.insecure.test." % CTL)
# TLS-RPT: a valid record and a broken one.
w.add_record("secure.test", '_smtp._tls.dane312 300 IN TXT '
             '"v=TLSRPTv1; rua=mailto:tlsrpt@dane312.secure.test"')
w.add_record("secure.test", '_smtp._tls.mismatch 300 IN TXT '
             '"v=TLSRPTv1; rua=ftp://example.invalid/"')
hw.start()
w.start()

bundle = os.path.join(tmp, "cas.pem")
with open(bundle, "w") as f:
    for p in (ca.cert_path, w.ca_cert):
        with open(p) as g:
            f.write(g.read())
SELF = pki.self_signed(os.path.join(tmp, "self"), "mx1.self.insecure.test")
MODERN = {"smtpd_tls_protocols": ">=TLSv1.2",
          "smtpd_tls_mandatory_protocols": ">=TLSv1.2"}
OLD = {"smtpd_tls_protocols": ">=TLSv1:<=TLSv1.1",
       "smtpd_tls_mandatory_protocols": ">=TLSv1:<=TLSv1.1",
       "smtpd_tls_ciphers": "medium",
       "tls_medium_cipherlist": "DEFAULT:@SECLEVEL=0"}


def mx(key):
    return w.mx_hosts(key)[0]


pw = PostfixWorld()
# name: (address, (cert, key) or None, hostname, main.cf extras)
SINKS = {
    "dane312": (w.addr(mx("dane312")), w.cert_for(mx("dane312")),
                mx("dane312"), MODERN),
    "dane201": (w.addr(mx("dane201")), (w.chain_for(mx("dane201")),
                                        w.cert_for(mx("dane201"))[1]),
                mx("dane201"), MODERN),
    "mismatch": (w.addr(mx("mismatch")), w.cert_for(mx("mismatch")),
                 mx("mismatch"), MODERN),
    "notls": (w.addr(mx("notls")), None, mx("notls"), {}),
    "insecure": (w.addr("mx1.insecure.test"),
                 w.cert_for("mx1.insecure.test"), "mx1.insecure.test",
                 MODERN),
    "self": (STS["self"][0][0][1], SELF, "mx1.self.insecure.test", MODERN),
    "wrong": (STS["wrong"][0][0][1], w.cert_for("other.invalid"),
              "mx1.wrong.insecure.test", MODERN),
    "outside1": (STS["outside"][0][0][1],
                 ca.issue("mx1.outside.insecure.test"),
                 "mx1.outside.insecure.test", MODERN),
    "outside2": (STS["outside"][0][1][1],
                 ca.issue("mx2.outside.insecure.test"),
                 "mx2.outside.insecure.test", MODERN),
    "old": (STS["old"][0][0][1], ca.issue("mx1.old.insecure.test",
                                          key_type="rsa"),
            "mx1.old.insecure.test", OLD),
    "soon": (STS["soon"][0][0][1],
             ca.issue("mx1.soon.insecure.test", days=5),
             "mx1.soon.insecure.test", MODERN),
    # RSA key exchange only (TLS 1.2, kRSA ciphers): no forward secrecy.
    "nofs": (STS["nofs"][0][0][1],
             ca.issue("mx1.nofs.insecure.test", key_type="rsa"),
             "mx1.nofs.insecure.test",
             {"smtpd_tls_protocols": ">=TLSv1.2:<=TLSv1.2",
              "smtpd_tls_mandatory_protocols": ">=TLSv1.2:<=TLSv1.2",
              "smtpd_tls_ciphers": "medium",
              "tls_medium_cipherlist": "kRSA",
              "tls_preempt_cipherlist": "yes"}),
}
for name, (addr, cert, host, main) in SINKS.items():
    if cert is None:
        pw.add_sink(name, addr, starttls=False, hostname=host, main=main)
    else:
        pw.add_sink(name, addr, cert[0], cert[1], hostname=host, main=main)

PROTO = ">=TLSv1.2"
d = Daemon(name="chkp", dane=True, sts=True,
           server_extra="socketmap_mode = 0666\nprotocols = %s\n" % PROTO,
           policy="%s = encrypt protocols=>=TLSv1\n" % CTL,
           extra="[dns]\nresolvers = %s\ntrust_anchor = %s\ntimeout = 4\n"
           "[sts]\nca_file = %s\n" % (w.resolver, w.trust_anchor, bundle))
# The sender may speak TLS 1.0/1.1 (OpenSSL security level 0 through
# Postfix's tls_config_file), so only the floor can keep it from the old
# sink.
OSSL = os.path.join(tmp, "sender-openssl.cnf")
with open(OSSL, "w") as f:
    f.write("tlspolicy_test = tp_init\n[tp_init]\nssl_conf = tp_ssl\n"
            "[tp_ssl]\nsystem_default = tp_sys\n[tp_sys]\n"
            "MinProtocol = TLSv1\nCipherString = DEFAULT:@SECLEVEL=0\n")
tx = pw.add_sender(resolv_conf=w.resolv_conf, ca_file=bundle,
                   policy_map="socketmap:unix:%s:postfix" % d.smap,
                   main={"tls_config_file": OSSL,
                         "tls_config_name": "tlspolicy_test",
                         "smtp_tls_mandatory_protocols": ">=TLSv1",
                         "smtp_tls_protocols": ">=TLSv1",
                         "smtp_tls_mandatory_ciphers": "medium",
                         "tls_medium_cipherlist": "DEFAULT:@SECLEVEL=0"})
try:
    pw.start()
except PostfixError as e:
    bail(str(e))

pf_dnssec = os.path.join(tmp, "pf")
os.mkdir(pf_dnssec)
with open(os.path.join(pf_dnssec, "main.cf"), "w") as f:
    f.write("compatibility_level = 3.6\nsmtp_dns_support_level = dnssec\n")


def check(*args):
    """tlspolicy check ARGS (options and the domain, in any order)."""
    env = dict(os.environ, MAIL_CONFIG=pf_dnssec)
    p = subprocess.run([TOOL, "-c", d.conf, "check"] + list(args),
                       capture_output=True, text=True, timeout=180, env=env)
    return p.returncode, p.stdout, p.stderr


def check_json(domain):
    """(json exit, report, raw, text exit, text); options after the
    domain work too."""
    trc, text, _ = check("--timeout", "10", domain)
    p = subprocess.run([TOOL, "-c", d.conf, "check", domain, "--json"],
                       capture_output=True, text=True, timeout=180,
                       env=dict(os.environ, MAIL_CONFIG=pf_dnssec))
    try:
        r = json.loads(p.stdout)
    except ValueError:
        r = {}
    return p.returncode, r, p.stdout + p.stderr, trc, text


def addr0(r, i=0):
    """The first address of the I-th MX host in a JSON report."""
    try:
        return r["mx"][i]["addresses"][0]
    except (KeyError, IndexError, TypeError):
        return {}


def probs(a):
    return " | ".join(a.get("problems", []))


# --- DANE -------------------------------------------------------------------
rc, r, raw, trc, text = check_json(w.name("dane312"))
a = addr0(r)
ok(rc == 0 and r.get("answer") == "OK dane-only protocols=" + PROTO
   and r.get("problems") == [], "dane312: exit 0, answer with the floor, "
   "no problems", raw)
ok(a.get("starttls") == "offered" and a.get("tls_version") in
   ("TLSv1.2", "TLSv1.3") and a.get("forward_secrecy") is True
   and isinstance(a.get("dane_match"), str)
   and a["dane_match"].startswith("3 1 2 ")
   and a.get("old_tls") == "refused" and a.get("sts_match") is None,
   "dane312: STARTTLS, modern TLS, DANE-EE 3 1 2 matched, TLS 1.1 refused",
   raw)
chain = (a.get("cert") or {}).get("chain") or [{}]
ok(chain[0].get("dns_names") == [mx("dane312")]
   and "CN=" + mx("dane312") in chain[0].get("subject", "")
   and "dnsworld test CA" in chain[0].get("issuer", "")
   and re.match(r"\d{4}-\d\d-\d\dT", chain[0].get("not_after", "")),
   "dane312: the chain: subject, names, issuer, expiry", raw)
t = r.get("tlsrpt", {})
ok(t.get("valid") is True and t.get("rua") ==
   ["mailto:tlsrpt@dane312.secure.test"], "dane312: the TLS-RPT record is "
   "valid", raw)
dh = (r.get("dane", {}).get("hosts") or [{}])[0]
ok(r.get("dane", {}).get("verdict") == "dane-only"
   and [x.get("usable") for x in dh.get("tlsa", [])] == [True]
   and dh["tlsa"][0]["record"] == a.get("dane_match"),
   "dane312: per-host TLSA in \"dane\", the matched record named", raw)
ok(trc == 0 and "problems: none found" in text, "dane312: text, exit 0",
   text)

rc, r, raw, _, _ = check_json(w.name("dane201"))
a = addr0(r)
ok(rc == 0 and str(a.get("dane_match")).startswith("2 0 1 ")
   and len((a.get("cert") or {}).get("chain", [])) == 2,
   "dane201: DANE-TA 2 0 1 matched through the chain", raw)

rc, r, raw, _, _ = check_json(w.name("mismatch"))
a = addr0(r)
ok(rc == 1 and a.get("dane_match") is False
   and "matches none of the host's TLSA records" in probs(a)
   and any("matches none of the host's TLSA" in p
           for p in r.get("problems", [])),
   "mismatch: no TLSA record matches, exit 1", raw)
t = r.get("tlsrpt", {})
ok(t.get("valid") is False and t.get("error") and "ftp" in
   t.get("record", ""), "mismatch: the TLS-RPT record is invalid, says "
   "why", raw)

rc, r, raw, _, _ = check_json(w.name("notls"))
a = addr0(r)
ok(rc == 1 and a.get("starttls") == "not offered"
   and "STARTTLS is not offered" in probs(a) and "tls_version" not in a,
   "notls: STARTTLS not offered, exit 1", raw)

# --- MTA-STS ----------------------------------------------------------------
SEC = "OK secure match=%s servername=hostname protocols=" + PROTO
rc, r, raw, trc, text = check_json("insecure.test")
a = addr0(r)
ok(rc == 0 and r.get("answer") == SEC % "mx1.insecure.test"
   and a.get("sts_match") is True and a.get("dane_match") is None
   and (a.get("cert") or {}).get("pkix") == "valid"
   and r["mx"][0].get("sts_pattern") == "mx1.insecure.test"
   and r.get("mta_sts", {}).get("uncovered_mx") == [],
   "insecure.test: MTA-STS passes, exit 0", raw)

rc, r, raw, _, _ = check_json("self.insecure.test")
a = addr0(r)
ok(rc == 1 and a.get("sts_match") is False
   and "self-signed" in (a.get("cert") or {}).get("pkix", "")
   and "MTA-STS delivery fails" in probs(a),
   "self-signed: PKIX fails, MTA-STS fails, exit 1", raw)

rc, r, raw, _, _ = check_json("wrong.insecure.test")
a = addr0(r)
ok(rc == 1 and a.get("sts_match") is False
   and (a.get("cert") or {}).get("pkix") == "valid"
   and (a.get("cert") or {}).get("name_match") is False
   and "not valid for the host name mx1.wrong.insecure.test" in probs(a),
   "wrong name: chain valid, name not, MTA-STS fails, exit 1", raw)

rc, r, raw, _, _ = check_json("outside.insecure.test")
m = r.get("mta_sts", {})
ok(rc == 1 and m.get("uncovered_mx") == ["mx2.outside.insecure.test"]
   and m.get("unused_patterns") == ["mail.elsewhere.test"]
   and addr0(r, 0).get("sts_match") is True
   and addr0(r, 1).get("sts_match") is False
   and any("mx2.outside.insecure.test is covered by no MTA-STS" in p
           for p in r.get("problems", [])),
   "outside: the uncovered MX and the unused pattern are listed, exit 1",
   raw)

rc, r, raw, _, _ = check_json("old.insecure.test")
a = addr0(r)
ok(rc == 1 and a.get("starttls") == "offered"
   and str(a.get("old_tls", "")).startswith("accepted: TLSv1")
   and "still accepts TLSv1" in probs(a)
   and "tls_error" in a and "TLS handshake failed" in probs(a),
   "old: only TLS 1.0/1.1: the modern handshake fails, TLS 1.1 accepted, "
   "exit 1", raw)

rc, r, raw, _, _ = check_json("soon.insecure.test")
a = addr0(r)
ok(rc == 1 and a.get("sts_match") is True
   and "the certificate expires within 14 days (in 4 days)" in probs(a),
   "soon: a certificate expiring within 14 days is a problem, exit 1", raw)

rc, r, raw, _, _ = check_json("nofs.insecure.test")
a = addr0(r)
ok(rc == 1 and a.get("tls_version") == "TLSv1.2"
   and a.get("key_exchange") == "RSA" and a.get("forward_secrecy") is False
   and "no forward secrecy" in probs(a),
   "nofs: RSA key exchange: no forward secrecy, exit 1", raw)

# --- options, usage ---------------------------------------------------------
rc, out, err = check("--no-probe", "--json", w.name("notls"))
try:
    r = json.loads(out)
except ValueError:
    r = {}
ok(rc == 0 and r.get("probe") is False and "starttls" not in addr0(r)
   and addr0(r).get("address") == w.addr(mx("notls")),
   "--no-probe: no connection, addresses still listed", out + err)
rc, out, err = check("--port", "2525", "--timeout", "3", "--json",
                     w.name("dane312"))
r = json.loads(out) if out.startswith("{") else {}
ok(rc == 1 and "connection refused" in
   str(addr0(r).get("connect", "")).lower(),
   "--port: the probe connects to the port given", out + err)
# A server that accepts the connection and never speaks: the probe gives
# up after --timeout, per connection.
import socket  # noqa: E402
import time  # noqa: E402
silent = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
silent.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
silent.bind((w.addr(mx("dane312")), 2526))
silent.listen(8)
t0 = time.time()
rc, out, err = check("--json", w.name("dane312"), "--port", "2526",
                     "--timeout", "2")
took = time.time() - t0
r = json.loads(out) if out.startswith("{") else {}
ok(rc == 1 and addr0(r).get("connect") == "ok"
   and "the SMTP dialogue failed: timed out" in probs(addr0(r))
   and took < 15, "a silent server: timed out after --timeout (%.1f s)" %
   took, out + err)
silent.close()
rc, out, err = check("--bogus", w.name("dane312"))
ok(rc == 2 and "unknown option --bogus" in err, "unknown option: exit 2",
   err)
rc, out, err = check(w.name("dane312"), "other.test")
ok(rc == 2 and "one domain only" in err, "two domains: exit 2", err)
rc, out, err = check("[192.0.2.1]")
ok(rc == 2 and "NOTFOUND" in err, "an IP literal: exit 2", err)


# --- golden text ------------------------------------------------------------
def normalise(text):
    t = text.replace("127.%d." % S, "127.S.")
    t = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "<time>", t)
    t = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", "<time>", t)
    t = re.sub(r"\b[0-9a-f]{32,}\b", "<hex>", t)
    t = re.sub(r"\b\d+ ms\b", "<n> ms", t)
    t = re.sub(r"\b\d+ bytes\b", "<n> bytes", t)
    t = re.sub(r"TLS_AES_\d+_GCM_SHA\d+|TLS_CHACHA20_POLY1305_SHA256",
               "<cipher>", t)
    return t


GOLDEN = {}
GOLDEN["dane312"] = """\
domain:   dane312.secure.test
answer:   OK dane-only protocols=>=TLSv1.2
because:  all 1 MX hosts have usable TLSA records
MX:       secure
   10 mx1.dane312.secure.test: usable, TLSA at _25._tcp.mx1.dane312.secure.test: 1 usable, 0 unusable (secure TLSA at _25._tcp.mx1.dane312.secure.test, usable records)
DANE:     dane-only: all 1 MX hosts have usable TLSA records
store:    no store
MTA-STS:  TXT none
TLS-RPT:  v=TLSRPTv1; rua=mailto:tlsrpt@dane312.secure.test
  valid, reports to mailto:tlsrpt@dane312.secure.test
probe:
  mx1.dane312.secure.test [127.S.54.13]
    banner:   220 mx1.dane312.secure.test ESMTP pfx sink
    STARTTLS: offered
    TLS:      TLSv1.3, <cipher>, key exchange x25519
    cert 0:   CN=mx1.dane312.secure.test
      issuer: CN=dnsworld test CA
      valid:  <time> to <time>
      names:  mx1.dane312.secure.test
    PKIX:     valid, valid for the host name
    DANE:     matches TLSA 3 1 2 <hex>
    TLS 1.1:  refused
problems: none found
"""
GOLDEN["insecure"] = """\
domain:   insecure.test
answer:   OK secure match=mx1.insecure.test servername=hostname protocols=>=TLSv1.2
because:  the domain's MTA-STS policy (mode enforce)
MX:       insecure
   10 mx1.insecure.test: insecure (addresses of mx1.insecure.test insecure: no TLSA lookup)
DANE:     none: the MX records are not signed and no MX host has usable TLSA records
store:    no store
MTA-STS:  TXT record, id 20261123T000000
  fetch:  status 200, text/plain, <n> bytes, <n> ms
  cert:   mta-sts.insecure.test mta-sts.nofs.insecure.test
          mta-sts.old.insecure.test mta-sts.outside.insecure.test
          mta-sts.self.insecure.test mta-sts.soon.insecure.test
          mta-sts.wrong.insecure.test
  policy: mode enforce, max_age 86400, mx mx1.insecure.test
TLS-RPT:  no TLS-RPT record published
probe:
  mx1.insecure.test [127.S.54.30]
    banner:   220 mx1.insecure.test ESMTP pfx sink
    STARTTLS: offered
    TLS:      TLSv1.3, <cipher>, key exchange x25519
    cert 0:   CN=mx1.insecure.test
      issuer: CN=dnsworld test CA
      valid:  <time> to <time>
      names:  mx1.insecure.test
    PKIX:     valid, valid for the host name
    MTA-STS:  passes
    TLS 1.1:  refused
problems: none found
"""
for key, dname in (("dane312", w.name("dane312")),
                   ("insecure", "insecure.test")):
    rc, out, err = check(dname)
    got = normalise(out)
    if got != GOLDEN[key]:
        import difflib
        diff = "".join(difflib.unified_diff(
            GOLDEN[key].splitlines(True), got.splitlines(True),
            "golden", "got"))
    else:
        diff = ""
    ok(rc == 0 and got == GOLDEN[key], "golden text: %s" % dname,
       diff + err)

# --- [server] protocols in a real delivery ----------------------------------
d.start()
is_eq(d.ask("old.insecure.test"), SEC % "mx1.old.insecure.test",
      "the daemon's answer carries the floor")
is_eq(d.ask(CTL), "OK encrypt protocols=>=TLSv1",
      "a [policy] answer naming its own protocols keeps them")
ids = {k: tx.submit("postmaster@" + k) for k in
       ("insecure.test", "old.insecure.test", CTL)}
res = tx.wait(list(ids.values()), timeout=90)


def diag(k):
    x = res[ids[k]]
    return "%r\n%s" % (x, "\n".join(x.lines) or tx.log_tail())


x = res[ids["insecure.test"]]
ok(x.status == "sent" and x.verified()
   and pw.sink("insecure").find(ids["insecure.test"]) is not None,
   "protocols >=TLSv1.2: delivered to the good MTA-STS sink (Verified)",
   diag("insecure.test"))
x = res[ids["old.insecure.test"]]
ok(x.status == "deferred"
   and pw.sink("old").find(ids["old.insecure.test"]) is None
   and any("protocol version" in y for y in x.lines),
   "protocols >=TLSv1.2: deferred to the TLS 1.1-only sink",
   diag("old.insecure.test"))
x = res[ids[CTL]]
got = pw.sink("old").find(ids[CTL])
ok(x.status == "sent" and got is not None and got.tls(),
   "control: without the floor the TLS 1.1-only sink takes the mail",
   diag(CTL))
d.stop()
pw.stop()
hw.stop()
w.stop()
done()
