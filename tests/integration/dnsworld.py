# SPDX-License-Identifier: BSD-2-Clause
"""Self-check of the test DNS world (tests/lab/dnsworld.py): starts it once
and proves, with dig against the validating unbound (AD flag, rcode) and
with getdns_query in stub mode validating against the private anchor
(dnssec_status, rcode; SPEC A9.65, A9.70a), that every case behaves as its
docstring says; that the TLSA data match the certificates (openssl's own
digests and a real DANE handshake with s_client); that records added later
appear after reload(); and that stop() leaves no process behind."""
import os
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
LAB = os.path.join(os.path.dirname(HERE), "lab")
sys.path.insert(0, HERE)
sys.path.insert(0, LAB)
from tlstest import done, is_eq, ok  # noqa
import dnsworld  # noqa

T0 = time.time()
if (os.geteuid() != 0 or dnsworld.tools_missing() or
        not dnsworld.shutil.which("getdns_query", path=dnsworld._PATH)):
    print("1..0 # SKIP needs root (port 53) and: nsd unbound ldnsutils "
          "dig getdns_query")
    sys.exit(0)

w = dnsworld.DNSWorld()
w.start()
ok(len(w.pids()) == 2, "NSD and unbound are running", w.pids())
with open(w.trust_anchor) as f:
    anchor = f.read()
ok(anchor.startswith(".\t") and "\tDS\t" in anchor,
   "trust anchor: the private root's DS in zone format", anchor)
with open(w.resolv_conf) as f:
    is_eq(f.read(), "nameserver %s\noptions trust-ad\n" % w.resolver,
          "resolv.conf for a Postfix in its own mount namespace")


def n(key):
    return w.name(key)


def tlsa_norm(rdata):
    """dig prints TLSA hex in upper case, split into chunks."""
    f = rdata.split()
    return " ".join(f[:3] + ["".join(f[3:]).lower()])


# --- TLSA data against openssl's own DER output ----------------------------


def openssl_tlsa(cert, u, s, m):
    import hashlib
    if s == 0:
        der = subprocess.run(["openssl", "x509", "-in", cert, "-outform",
                              "DER"], capture_output=True).stdout
    else:
        pub = subprocess.run(["openssl", "x509", "-in", cert, "-noout",
                              "-pubkey"], capture_output=True).stdout
        der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"],
                             input=pub, capture_output=True).stdout
    h = hashlib.sha256 if m == 1 else hashlib.sha512
    return "%d %d %d %s" % (u, s, m, h(der).hexdigest())


for host, u, s, m in (("mx1.dane311.secure.test", 3, 1, 1),
                      ("mx1.dane201.secure.test", 2, 0, 1),
                      ("mx1.dane312.secure.test", 3, 1, 2),
                      ("mx1.pkix.secure.test", 1, 1, 1)):
    src = w.ca_cert if u in (0, 2) else w.cert_for(host)[0]
    is_eq(w.tlsa(host, u, s, m), openssl_tlsa(src, u, s, m),
          "TLSA %d %d %d for %s equals openssl's digest" % (u, s, m, host))

# --- dig at unbound: rcode and AD ----------------------------------------
SEC, INS = True, False
DIG = [
    # (qname, type, status, AD, [answers of that type] or None = any)
    (n("dane311"), "MX", "NOERROR", SEC, ["10 mx1.dane311.secure.test."]),
    ("mx1.dane311.secure.test", "A", "NOERROR", SEC,
     [w.addr("mx1.dane311.secure.test")]),
    ("mx1.dane311.secure.test", "AAAA", "NOERROR", SEC, []),
    ("_25._tcp.mx1.dane311.secure.test", "TLSA", "NOERROR", SEC,
     [w.tlsa("mx1.dane311.secure.test")]),
    ("_mta-sts." + n("dane311"), "TXT", "NOERROR", SEC,
     [dnsworld.STS_TXT]),
    ("_25._tcp.mx1.dane201.secure.test", "TLSA", "NOERROR", SEC,
     [w.tlsa("mx1.dane201.secure.test", 2, 0, 1)]),
    ("_25._tcp.mx1.dane312.secure.test", "TLSA", "NOERROR", SEC,
     [w.tlsa("mx1.dane312.secure.test", 3, 1, 2)]),
    (n("mixed"), "MX", "NOERROR", SEC,
     ["10 mx1.mixed.secure.test.", "20 mx2.mixed.secure.test."]),
    ("_25._tcp.mx1.mixed.secure.test", "TLSA", "NOERROR", SEC, None),
    ("mx2.mixed.secure.test", "A", "NOERROR", SEC, None),
    ("_25._tcp.mx2.mixed.secure.test", "TLSA", "NXDOMAIN", SEC, []),
    ("_25._tcp.mx1.pkix.secure.test", "TLSA", "NOERROR", SEC,
     sorted([w.tlsa("mx1.pkix.secure.test", 0, 0, 1),
             w.tlsa("mx1.pkix.secure.test", 1, 1, 1)])),
    ("_25._tcp.mx1.mismatch.secure.test", "TLSA", "NOERROR", SEC,
     [w.tlsa("other.invalid")]),
    (n("nullmx"), "MX", "NOERROR", SEC, ["0 ."]),
    (n("nomx"), "MX", "NOERROR", SEC, []),
    (n("nomx"), "A", "NOERROR", SEC, [w.addr("nomx.secure.test")]),
    ("_25._tcp." + n("nomx"), "TLSA", "NOERROR", SEC,
     [w.tlsa("nomx.secure.test")]),
    (n("cname"), "MX", "NOERROR", SEC, ["10 alias.cname.secure.test."]),
    ("alias.cname.secure.test", "A", "NOERROR", SEC,
     [w.addr("mx1.cname.secure.test")]),
    ("alias.cname.secure.test", "CNAME", "NOERROR", SEC,
     ["mx1.cname.secure.test."]),
    ("_25._tcp.mx1.cname.secure.test", "TLSA", "NOERROR", SEC,
     [w.tlsa("mx1.cname.secure.test")]),
    ("_25._tcp.alias.cnamefb.secure.test", "TLSA", "NOERROR", SEC,
     [w.tlsa("mx1.cnamefb.secure.test")]),
    ("_25._tcp.mx1.cnamefb.secure.test", "TLSA", "NXDOMAIN", SEC, []),
    ("loop1.secure.test", "CNAME", "NOERROR", SEC, ["loop2.secure.test."]),
    ("loop2.secure.test", "CNAME", "NOERROR", SEC, ["loop1.secure.test."]),
    ("loop1.secure.test", "A", "SERVFAIL", INS, []),
    (n("nxdomain"), "MX", "NXDOMAIN", SEC, []),
    ("_25._tcp.mx1.nxdomain.secure.test", "TLSA", "NXDOMAIN", SEC, []),
    (n("insecure"), "MX", "NOERROR", INS, ["10 mx1.insecure.test."]),
    ("_25._tcp.mx1.insecure.test", "TLSA", "NOERROR", INS, None),
    ("_mta-sts." + n("insecure"), "TXT", "NOERROR", INS, None),
    (n("insecuremx"), "MX", "NOERROR", INS,
     ["10 mx1.provider.secure.test."]),
    ("mx1.provider.secure.test", "A", "NOERROR", SEC, None),
    ("_25._tcp.mx1.provider.secure.test", "TLSA", "NOERROR", SEC, None),
    (n("bogus"), "MX", "SERVFAIL", INS, []),
    ("mx1.bogus.test", "A", "NOERROR", SEC, None),
    ("_25._tcp.mx1.bogus.test", "TLSA", "NOERROR", SEC, None),
    (n("bogustlsa"), "MX", "NOERROR", SEC, ["10 mx1.tlsa.bogus.test."]),
    ("mx1.tlsa.bogus.test", "A", "NOERROR", SEC, None),
    ("_25._tcp.mx1.tlsa.bogus.test", "TLSA", "SERVFAIL", INS, []),
    (n("expired"), "MX", "SERVFAIL", INS, []),
    ("mx1.expired.test", "A", "SERVFAIL", INS, []),
    ("_25._tcp.mx1.expired.test", "TLSA", "SERVFAIL", INS, []),
    (n("servfail"), "MX", "SERVFAIL", INS, []),
    (n("nsec3"), "MX", "NOERROR", SEC, ["10 mx1.nsec3.test."]),
    ("_25._tcp.mx1.nsec3.test", "TLSA", "NOERROR", SEC,
     [w.tlsa("mx1.nsec3.test")]),
    ("nothing.nsec3.test", "TLSA", "NXDOMAIN", INS, []),  # opt-out span
    (n("optout"), "MX", "NOERROR", INS, ["10 mx1.optout.nsec3.test."]),
    ("mx1.optout.nsec3.test", "A", "NOERROR", INS, None),
    ("_25._tcp.mx1.optout.nsec3.test", "TLSA", "NOERROR", INS, None),
]
for qname, rtype, status, ad, want in DIG:
    r = w.dig(qname, rtype)
    got = sorted(tlsa_norm(x) if rtype == "TLSA" else x
                 for x in r.rdata(rtype))
    good = r.status == status and r.ad == ad and (want is None or
                                                  got == sorted(want))
    if want is None:
        good = good and len(got) > 0
    ok(good, "dig %s %s: %s%s" % (qname, rtype, status,
                                   " AD" if ad else " no AD"), r.out)

r = w.dig(n("silent"), "MX", wait=2)
is_eq(r.status, "TIMEOUT", "dig silent.test MX times out")
r = w.dig(".", "SOA", server=w.servfail_addr, wait=2)
is_eq((r.status, "ra" in r.flags), ("SERVFAIL", True),
      "the SERVFAIL server answers . SOA with SERVFAIL (RA set)")
with open(w.root_hints) as f:
    hints = f.read()
ok(w.root_servers == [w.nsd_addr] and w.nsd_addr in hints and
   ". 3600000 NS " in hints, "root hints name the private root (NSD)",
   hints)
with open(w.unbound_log, errors="replace") as f:
    ulog = f.read()
ok("validation failure <bogus.test. MX IN>" in ulog,
   "unbound logs why bogus.test MX is bogus", ulog[-2000:])

# --- getdns_query, stub mode, validating with the private anchor ---------
S_SECURE, S_BOGUS, S_INSECURE = 400, 401, 403
GETDNS = [
    # (qname, type, top status, dnssec_status or None, rcode, answer type)
    (n("dane311"), "MX", 900, S_SECURE, 0, 15),
    ("_25._tcp.mx1.dane311.secure.test", "TLSA", 900, S_SECURE, 0, 52),
    ("_25._tcp.mx1.dane201.secure.test", "TLSA", 900, S_SECURE, 0, 52),
    ("_25._tcp.mx1.dane312.secure.test", "TLSA", 900, S_SECURE, 0, 52),
    ("_mta-sts." + n("dane311"), "TXT", 900, S_SECURE, 0, 16),
    ("alias.cname.secure.test", "A", 900, S_SECURE, 0, 5),
    (n("nullmx"), "MX", 900, S_SECURE, 0, 15),
    (n("nxdomain"), "MX", 901, S_SECURE, 3, None),
    ("_25._tcp.mx1.nsec3.test", "TLSA", 900, S_SECURE, 0, 52),
    (n("insecure"), "MX", 900, S_INSECURE, 0, 15),
    (n("insecuremx"), "MX", 900, S_INSECURE, 0, 15),
    ("_25._tcp.mx1.optout.nsec3.test", "TLSA", 900, S_INSECURE, 0, 52),
    (n("bogus"), "MX", 900, S_BOGUS, 0, 15),
    ("_25._tcp.mx1.tlsa.bogus.test", "TLSA", 900, S_BOGUS, 0, 52),
    (n("expired"), "MX", 900, S_BOGUS, 0, 15),
    ("_25._tcp.mx1.expired.test", "TLSA", 900, S_BOGUS, 0, 52),
    (n("servfail"), "MX", 901, None, 2, None),
]
for qname, rtype, top, dstat, rcode, atype in GETDNS:
    r = w.getdns(qname, rtype)
    got = None
    if r is not None:
        rt = r.get("replies_tree") or [{}]
        types = [a.get("type") for a in rt[0].get("answer", [])]
        got = (r.get("status"), rt[0].get("dnssec_status"),
               rt[0].get("header", {}).get("rcode"),
               atype in types if atype else True)
        if dstat is None:
            got = got[:1] + (None,) + got[2:]
    is_eq(got, (top, dstat, rcode, True),
          "getdns %s %s: status %d, dnssec_status %s, rcode %d" %
          (qname, rtype, top, dstat, rcode))
r = w.getdns(n("silent"), "MX", timeout_ms=1500)
is_eq(r and r.get("status"), 902, "getdns silent.test MX: 902 all timeout")

# --- DANE handshakes with the world's certificates ------------------------


def handshake(host, rr, port=4433):
    """openssl s_client with -dane_tlsa_rrdata against s_server presenting
    HOST's chain; (exit status, s_client's stderr)."""
    cert, key = w.cert_for(host)
    a = w.addr(host)
    srv = subprocess.Popen(["openssl", "s_server", "-quiet", "-accept",
                            "%s:%d" % (a, port), "-cert", cert, "-key", key,
                            "-cert_chain", w.ca_cert],
                           stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        end = time.time() + 5
        while time.time() < end:
            try:
                socket.create_connection((a, port), 1).close()
                break
            except OSError:
                time.sleep(0.02)
        p = subprocess.run(["openssl", "s_client", "-connect",
                            "%s:%d" % (a, port), "-servername", host,
                            "-dane_tlsa_domain", host, "-dane_tlsa_rrdata",
                            rr, "-verify_return_error", "-brief"],
                           input=b"", capture_output=True, timeout=10)
        return p.returncode, p.stderr.decode("utf-8", "replace")
    finally:
        srv.kill()
        srv.wait()


for key, rtype in (("dane311", "3 1 1"), ("dane201", "2 0 1"),
                   ("dane312", "3 1 2"), ("cname", "3 1 1")):
    host = "mx1.%s.secure.test" % key
    rr = tlsa_norm(w.dig("_25._tcp." + host, "TLSA").rdata("TLSA")[0])
    rc, err = handshake(host, rr)
    ok(rc == 0 and ("DANE TLSA %s" % rtype) in err and "matched" in err,
       "s_client: published TLSA %s matches %s's chain" % (rtype, host),
       err)
host = "mx1.mismatch.secure.test"
rr = tlsa_norm(w.dig("_25._tcp." + host, "TLSA").rdata("TLSA")[0])
rc, err = handshake(host, rr)
ok(rc != 0 and "no matching DANE TLSA" in err,
   "s_client: mismatch.secure.test's TLSA does not match its host", err)

# --- changes after start ---------------------------------------------------
w.add_record("secure.test", "added 300 IN TXT \"hello\"")
w.add_dane_domain("bench1")
w.reload()
r = w.dig("added.secure.test", "TXT")
ok(r.status == "NOERROR" and r.ad and r.rdata("TXT") == ['"hello"'],
   "add_record + reload: new TXT is served and secure", r.out)
r = w.dig("_25._tcp.mx.bench1.secure.test", "TLSA")
ok(r.status == "NOERROR" and r.ad and len(r.rdata("TLSA")) == 1,
   "add_dane_domain: its TLSA is secure", r.out)
w.edit_after_signing("secure.test", "added.secure.test", "TXT", '"forged"')
w.reload()
is_eq(w.dig("added.secure.test", "TXT").status, "SERVFAIL",
      "edit_after_signing + reload: that RRset is bogus")
r = w.dig(n("dane311"), "MX")
ok(r.status == "NOERROR" and r.ad, "the rest of secure.test stays secure",
   r.out)

# --- a second world runs side by side -------------------------------------
w2 = dnsworld.DNSWorld()
ok(w2.slot != w.slot and w2.resolver != w.resolver,
   "a second world takes another slot", (w.slot, w2.slot))
w2.stop()

# --- stop ------------------------------------------------------------------
pids = w.pids()
wdir = w.dir
w.stop()
time.sleep(0.1)
p = subprocess.run(["pgrep", "-f", wdir], capture_output=True)
is_eq(p.stdout.decode().split(), [], "no process left after stop()")
ok(all(not os.path.exists("/proc/%d" % pid) for pid in pids),
   "the server pids are gone")
ok(dnsworld._port_free(w.resolver) and dnsworld._port_free(w.nsd_addr) and
   dnsworld._port_free(w.silent_addr), "its addresses are free again")
ok(not os.path.exists(wdir), "its temporary directory is removed")
elapsed = time.time() - T0
ok(elapsed < 30, "whole self-check under 30 s (%.1f s)" % elapsed)
done()
