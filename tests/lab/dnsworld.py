# SPDX-License-Identifier: BSD-2-Clause
"""The test DNS world: a private DNSSEC root on loopback, made at test time.

Tests import it (Debian's /usr/bin/python3, standard library only):

    sys.path.insert(0, os.path.join(top_srcdir, "tests", "lab"))
    from dnsworld import DNSWorld
    w = DNSWorld()              # keys, certificates, zones, configs
    w.add_record("secure.test", "extra 300 IN TXT \"x\"")   # optional
    w.start()                   # sign, start NSD, unbound, silent server
    w.resolver                  # unbound, validating, port 53
    w.trust_anchor              # the private root's DS, zone format
    w.root_hints                # hints file: "." NS -> NSD (w.nsd_addr),
                                # for full recursion ([dns] root_hints)
    w.resolv_conf               # "nameserver <resolver>\noptions trust-ad"
    w.stop()                    # also registered with atexit

Servers (each world takes a free "slot" S, 0..63, held by binding the
abstract unix socket "tlspolicyd-dnsworld.S", so worlds in one network
namespace may run side by side; the kernel frees it when the process
ends, and no lock file is left anywhere; slot 0 is 127.0.53.x):
    127.S.53.1:53    NSD, authoritative for "." and every zone below
    127.S.53.53:53   unbound: validating recursion, root hints -> NSD,
                     trust anchor = the private root's DS
    127.S.53.99:53   the silent server: UDP and TCP, never answers
    127.S.53.98:53   the SERVFAIL server (w.servfail_addr): answers every
                     UDP query SERVFAIL, like a resolver that serves only
                     a private tree and cannot resolve the root
    127.S.54.N       addresses of the MX hosts (for Postfix TLS sinks);
                     w.addr(host) gives the address of a host

Every signed zone uses one ECDSAP256SHA256 key (flags 257) made by
ldns-keygen and is signed by ldns-signzone with an explicit window
(inception one day ago, expiration 30 days ahead).  The root delegates
"test." securely; "test." delegates the zones below.  Names, by the key
that w.name(KEY) takes (domain; what a lookup gives at unbound):

  secure.test. (signed, NSEC, DS in test.):
    dane311   dane311.secure.test    MX 10 mx1.dane311, TLSA 3 1 1 (SPKI
              SHA2-256 of mx1's certificate), _mta-sts TXT
    dane201   dane201.secure.test    MX 10 mx1.dane201, TLSA 2 0 1 (SHA2-256
              of the test CA's certificate; mx1 presents leaf + CA)
    dane312   dane312.secure.test    MX 10 mx1.dane312, TLSA 3 1 2 (SHA2-512)
    mixed     mixed.secure.test      MX 10 mx1.mixed (TLSA 3 1 1), MX 20
              mx2.mixed (no TLSA), _mta-sts TXT
    pkix      pkix.secure.test       MX 10 mx1.pkix, TLSA 0 0 1 and 1 1 1
              only (usable for PKIX, unusable for SMTP DANE)
    badtlsa   badtlsa.secure.test    MX 10 mx1.badtlsa, TLSA 3 1 1 with a
              31-byte digest (malformed, unusable)
    mismatch  mismatch.secure.test   MX 10 mx1.mismatch, TLSA 3 1 1 of a
              key mx1 does not have (delivery must fail)
    notls     notls.secure.test      MX 10 mx1.notls, TLSA 3 1 1 correct
              (for a sink that offers no STARTTLS)
    nullmx    nullmx.secure.test     MX 0 . (RFC 7505)
    nomx      nomx.secure.test       no MX; A at the apex, TLSA 3 1 1 at
              _25._tcp.nomx.secure.test, _mta-sts TXT
    cname     cname.secure.test      MX 10 alias.cname; alias.cname CNAME
              mx1.cname (A, TLSA 3 1 1 at the expanded name)
    cnamefb   cnamefb.secure.test    MX 10 alias.cnamefb; alias.cnamefb
              CNAME mx1.cnamefb (A, no TLSA); TLSA 3 1 1 at
              _25._tcp.alias.cnamefb (the original name, RFC 7672 §2.2.2)
    loop      loop.secure.test       MX 10 loop1.secure.test; loop1 CNAME
              loop2, loop2 CNAME loop1 (a CNAME loop)
    provider  provider.secure.test   MX 10 mx1.provider (A, TLSA 3 1 1):
              the secure host behind insecuremx.test
    nxdomain  nxdomain.secure.test   does not exist (secure NXDOMAIN)
  insecure    insecure.test.         unsigned, no DS (insecure): MX 10
              mx1.insecure.test, A, TLSA 3 1 1 (insecure), _mta-sts TXT
  insecuremx  insecuremx.test.       unsigned, no DS: MX 10
              mx1.provider.secure.test (RFC 7672 insecure MX, SPEC B D4)
  bogus       bogus.test.            signed, DS; the apex MX edited after
              signing (BOGUS MX; mx1.bogus.test A and TLSA stay secure)
  bogustlsa   tlsa.bogus.test        MX 10 mx1.tlsa.bogus.test (A secure);
              its TLSA 3 1 1 edited after signing (BOGUS TLSA only)
  expired     expired.test.          signed, DS, validity window in the
              past (-60 to -7 days): MX, A, TLSA all BOGUS
  servfail    servfail.test.         in NSD's config, zone file missing;
              delegated without DS: SERVFAIL
  silent      silent.test.           delegated (no DS) to ns.silent.test =
              the silent server: the query times out
  nsec3       nsec3.test.            signed with NSEC3 (opt-out, 0
              iterations), DS: MX 10 mx1.nsec3.test, A, TLSA 3 1 1 secure
  optout      optout.nsec3.test.     unsigned child delegated from the
              opt-out span of nsec3.test (no NSEC3 at the delegation): MX
              10 mx1.optout.nsec3.test, A, TLSA 3 1 1 all insecure

Each MX host (and nomx.secure.test) has its own EC P-256 key and a
certificate from the world's test CA (w.ca_cert) naming the host (and its
CNAME alias); w.cert_for(host) gives (cert, key), w.chain_for(host) the
leaf + CA file a TLS server presents.  TLSA data is computed from them.

Changing the world: w.add_record(zone, rr) and w.edit_after_signing(zone,
owner, type, rdata) before start(); after start(), call w.reload() to
re-sign, restart NSD and flush unbound's cache.  w.add_dane_domain(label)
adds a whole secure domain with a 3 1 1 host (for benchmarks).
"""
import atexit
import base64
import errno
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

TTL = 300
_PATH = os.environ.get("PATH", "") + ":/usr/sbin:/usr/bin:/sbin:/bin"
MAX_SLOT = 64
DAY = 86400
_OPENSSL_CNF = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = dnsworld
[ca_ext]
basicConstraints = critical,CA:true
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[leaf_ext]
basicConstraints = critical,CA:false
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = $ENV::DNSWORLD_SAN
"""

# The cases: key -> (domain, [MX hosts in preference order]).
CASES = {
    "dane311": ("dane311.secure.test", ["mx1.dane311.secure.test"]),
    "dane201": ("dane201.secure.test", ["mx1.dane201.secure.test"]),
    "dane312": ("dane312.secure.test", ["mx1.dane312.secure.test"]),
    "mixed": ("mixed.secure.test", ["mx1.mixed.secure.test",
                                    "mx2.mixed.secure.test"]),
    "pkix": ("pkix.secure.test", ["mx1.pkix.secure.test"]),
    "badtlsa": ("badtlsa.secure.test", ["mx1.badtlsa.secure.test"]),
    "mismatch": ("mismatch.secure.test", ["mx1.mismatch.secure.test"]),
    "notls": ("notls.secure.test", ["mx1.notls.secure.test"]),
    "nullmx": ("nullmx.secure.test", []),
    "nomx": ("nomx.secure.test", ["nomx.secure.test"]),
    "cname": ("cname.secure.test", ["alias.cname.secure.test"]),
    "cnamefb": ("cnamefb.secure.test", ["alias.cnamefb.secure.test"]),
    "loop": ("loop.secure.test", ["loop1.secure.test"]),
    "provider": ("provider.secure.test", ["mx1.provider.secure.test"]),
    "nxdomain": ("nxdomain.secure.test", []),
    "insecure": ("insecure.test", ["mx1.insecure.test"]),
    "insecuremx": ("insecuremx.test", ["mx1.provider.secure.test"]),
    "bogus": ("bogus.test", ["mx1.bogus.test"]),
    "bogustlsa": ("tlsa.bogus.test", ["mx1.tlsa.bogus.test"]),
    "expired": ("expired.test", ["mx1.expired.test"]),
    "servfail": ("servfail.test", []),
    "silent": ("silent.test", []),
    "nsec3": ("nsec3.test", ["mx1.nsec3.test"]),
    "optout": ("optout.nsec3.test", ["mx1.optout.nsec3.test"]),
}

# Hosts with an address (last octet in 127.S.54.N) and a certificate;
# extra names go into the certificate's SAN.
HOSTS = [
    ("mx1.dane311.secure.test", 11, []),
    ("mx1.dane201.secure.test", 12, []),
    ("mx1.dane312.secure.test", 13, []),
    ("mx1.mixed.secure.test", 14, []),
    ("mx2.mixed.secure.test", 15, []),
    ("mx1.pkix.secure.test", 16, []),
    ("mx1.badtlsa.secure.test", 17, []),
    ("mx1.mismatch.secure.test", 18, []),
    ("mx1.notls.secure.test", 19, []),
    ("nomx.secure.test", 20, []),
    ("mx1.cname.secure.test", 21, ["alias.cname.secure.test"]),
    ("mx1.cnamefb.secure.test", 22, ["alias.cnamefb.secure.test"]),
    ("mx1.provider.secure.test", 23, []),
    ("mx1.insecure.test", 30, []),
    ("mx1.bogus.test", 40, []),
    ("mx1.tlsa.bogus.test", 41, []),
    ("mx1.expired.test", 42, []),
    ("mx1.nsec3.test", 50, []),
    ("mx1.optout.nsec3.test", 51, []),
    ("other.invalid", 99, []),      # a key no TLSA record names (mismatch)
]

# Zones: name -> signing ("nsec", "nsec3", "expired" or None = unsigned)
# and whether the parent publishes a DS.
ZONES = {
    ".": ("nsec", False),
    "test": ("nsec", True),
    "secure.test": ("nsec", True),
    "insecure.test": (None, False),
    "insecuremx.test": (None, False),
    "bogus.test": ("nsec", True),
    "expired.test": ("expired", True),
    "nsec3.test": ("nsec3", True),
    "optout.nsec3.test": (None, False),
}
STS_TXT = '"v=STSv1; id=20261123T000000;"'


def _fqdn(name):
    name = name.strip().lower()
    return name if name.endswith(".") else name + "."


def _plain(name):
    return name.strip().lower().rstrip(".")


def _der_tlv(buf, off):
    """(tag, content start, content end) of the DER item at OFF."""
    tag = buf[off]
    n = buf[off + 1]
    if n & 0x80:
        k = n & 0x7f
        n = int.from_bytes(buf[off + 2:off + 2 + k], "big")
        start = off + 2 + k
    else:
        start = off + 2
    if start + n > len(buf):
        raise ValueError("truncated DER")
    return tag, start, start + n


def cert_der(path):
    """The DER bytes of the first certificate in the PEM file PATH."""
    with open(path) as f:
        pem = f.read()
    m = re.search(r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----",
                  pem, re.S)
    if not m:
        raise ValueError("%s: no certificate" % path)
    return base64.b64decode("".join(m.group(1).split()))


def spki_der(der):
    """The SubjectPublicKeyInfo (TLSA selector 1) of a DER certificate."""
    _, s, _ = _der_tlv(der, 0)                  # Certificate
    _, p, _ = _der_tlv(der, s)                  # tbsCertificate
    tag, _, e = _der_tlv(der, p)
    if tag == 0xa0:                             # [0] version
        p = e
    for _ in range(5):     # serial, signature, issuer, validity, subject
        _, _, p = _der_tlv(der, p)
    _, _, e = _der_tlv(der, p)
    return der[p:e]


def tlsa_rdata(cert_path, usage, selector, mtype):
    """TLSA rdata "U S M hex" for the certificate in CERT_PATH."""
    der = cert_der(cert_path)
    data = der if selector == 0 else spki_der(der)
    if mtype == 1:
        data = hashlib.sha256(data).digest()
    elif mtype == 2:
        data = hashlib.sha512(data).digest()
    return "%d %d %d %s" % (usage, selector, mtype, data.hex())


def _prog(name):
    """NAME's path, /usr/sbin included (make check may not have it)."""
    return shutil.which(name, path=_PATH) or name


def _run(args, **kw):
    p = subprocess.run([_prog(args[0])] + list(args[1:]),
                       capture_output=True, timeout=60,
                       stdin=subprocess.DEVNULL, **kw)
    if p.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (
            " ".join(args), p.returncode,
            (p.stderr or p.stdout).decode("utf-8", "replace")))
    return p.stdout.decode("utf-8", "replace")


def _stamp(t):
    return time.strftime("%Y%m%d%H%M%S", time.gmtime(t))


def tools_missing():
    """Names of the programs the world needs that are not installed."""
    return [p for p in ("nsd", "nsd-checkconf", "unbound", "unbound-control",
                        "unbound-checkconf", "ldns-keygen", "ldns-signzone",
                        "dig", "openssl")
            if not shutil.which(p, path=_PATH)]


def _port_free(addr):
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        s = socket.socket(socket.AF_INET, kind)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((addr, 53))
        except OSError:
            return False
        finally:
            s.close()
    return True


def _group_alive(pgid):
    """True while a process of group PGID runs (zombies waiting for init
    to reap them do not count)."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % pid) as f:
                st = f.read()
        except OSError:
            continue
        f = st[st.rindex(")") + 2:].split()
        if int(f[2]) == pgid and f[0] != "Z":
            return True
    return False


class DigResult:
    """One dig answer: status ("NOERROR", "SERVFAIL", … or "TIMEOUT"),
    flags (set of header flags), answer (list of (owner, type, rdata))."""

    def __init__(self, out):
        self.out = out
        self.status = "TIMEOUT"
        self.flags = set()
        self.answer = []
        m = re.search(r"status: ([A-Z]+)", out)
        if m:
            self.status = m.group(1)
        m = re.search(r";; flags: ([a-z ]*);", out)
        if m:
            self.flags = set(m.group(1).split())
        sect = None
        for line in out.splitlines():
            if line.startswith(";; ANSWER SECTION"):
                sect = "answer"
                continue
            if not line.strip() or line.startswith(";"):
                sect = None if line.startswith(";;") else sect
                continue
            if sect == "answer":
                f = line.split(None, 4)
                if len(f) == 5:
                    self.answer.append((f[0].lower(), f[3], f[4]))

    @property
    def ad(self):
        return "ad" in self.flags

    def rdata(self, rtype):
        return [r for _, t, r in self.answer if t == rtype]

    def __repr__(self):
        return "<dig %s %s %r>" % (self.status, sorted(self.flags),
                                   self.answer)


class _Servfail:
    """UDP on ADDR:53 that answers every query with SERVFAIL (RA set,
    the question echoed, nothing else)."""

    def __init__(self, addr):
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind((addr, 53))
        self.udp.settimeout(0.2)
        self.stopping = False
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    @staticmethod
    def answer(q):
        """The SERVFAIL reply to query Q (bytes), or None."""
        if len(q) < 12 or q[2] & 0x80:
            return None
        p = 12
        while p < len(q) and q[p] != 0:
            p += 1 + q[p]
        end = p + 5                       # root label, QTYPE, QCLASS
        if q[4:6] != b"\0\1" or end > len(q):
            return None
        flags = bytes([0x80 | (q[2] & 0x79), 0x80 | 2])   # QR RD, RA 2
        return q[:2] + flags + b"\0\1\0\0\0\0\0\0" + q[12:end]

    def _loop(self):
        while not self.stopping:
            try:
                q, peer = self.udp.recvfrom(65535)
            except (socket.timeout, OSError):
                continue
            r = self.answer(q)
            if r is not None:
                try:
                    self.udp.sendto(r, peer)
                except OSError:
                    pass

    def close(self):
        self.stopping = True
        self.thread.join(2)
        self.udp.close()


class _Silent:
    """UDP and TCP on ADDR:53 that accept and never answer."""

    def __init__(self, addr):
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind((addr, 53))
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind((addr, 53))
        self.tcp.listen(64)
        self.held = []
        self.stopping = False
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        import selectors
        sel = selectors.DefaultSelector()
        sel.register(self.udp, selectors.EVENT_READ)
        sel.register(self.tcp, selectors.EVENT_READ)
        while not self.stopping:
            for key, _ in sel.select(0.2):
                try:
                    if key.fileobj is self.udp:
                        self.udp.recvfrom(65535)        # and drop it
                    else:
                        c, _ = self.tcp.accept()        # and hold it
                        self.held.append(c)
                        if len(self.held) > 200:
                            self.held.pop(0).close()
                except OSError:
                    pass
        sel.close()

    def close(self):
        self.stopping = True
        self.thread.join(2)
        for s in self.held + [self.udp, self.tcp]:
            s.close()


class DNSWorld:
    """See the module docstring."""

    def __init__(self, workdir=None, slot=None, log_queries=False,
                 cache_size="1m"):
        """CACHE_SIZE: each of unbound's caches (message, RRset, key,
        negative). The tests' 1m evicts during a pass over thousands of
        domains, which costs only queries; benchmarks and bursts raise it
        to what a real resolver would have."""
        missing = tools_missing()
        if missing:
            raise RuntimeError("dnsworld needs: " + " ".join(missing))
        self.own_dir = workdir is None
        self.dir = workdir or tempfile.mkdtemp(prefix="dnsworld-")
        os.makedirs(self.dir, exist_ok=True)
        self.dir = os.path.realpath(self.dir)
        self.log_queries = log_queries
        self.cache_size = cache_size
        self.procs = {}
        self.silent = None
        self.servfail = None
        self._lockf = None
        self.slot = self._take_slot(slot)
        s = self.slot
        self.nsd_addr = "127.%d.53.1" % s
        self.resolver = "127.%d.53.53" % s
        self.silent_addr = "127.%d.53.99" % s
        self.servfail_addr = "127.%d.53.98" % s
        self.zonedir = os.path.join(self.dir, "zones")
        self.keydir = os.path.join(self.dir, "keys")
        self.pkidir = os.path.join(self.dir, "pki")
        for d in (self.zonedir, self.keydir, self.pkidir):
            os.makedirs(d, exist_ok=True)
        self.trust_anchor = os.path.join(self.dir, "root.anchor")
        # The private root's servers, for full recursion without unbound
        # ([dns] root_hints); written by start().
        self.root_hints = os.path.join(self.dir, "root.hints")
        self.root_servers = [self.nsd_addr]
        self.resolv_conf = os.path.join(self.dir, "resolv.conf")
        self.nsd_conf = os.path.join(self.dir, "nsd.conf")
        self.nsd_log = os.path.join(self.dir, "nsd.log")
        self.unbound_conf = os.path.join(self.dir, "unbound.conf")
        self.unbound_log = os.path.join(self.dir, "unbound.log")
        self.unbound_ctl = os.path.join(self.dir, "unbound.ctl")
        self.extra = {z: [] for z in ZONES}
        self.edits = {z: [] for z in ZONES}
        self.addrs = {h: "127.%d.54.%d" % (s, n) for h, n, _ in HOSTS}
        self.certs = {}
        atexit.register(self.stop)
        self._make_keys()
        self._make_pki()
        with open(self.resolv_conf, "w") as f:
            f.write("nameserver %s\noptions trust-ad\n" % self.resolver)

    # --- slots -------------------------------------------------------------

    def _take_slot(self, want):
        for s in ([want] if want is not None else range(MAX_SLOT)):
            lock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            try:
                lock.bind("\0tlspolicyd-dnsworld.%d" % s)
            except OSError as e:
                lock.close()
                if e.errno == errno.EADDRINUSE:
                    continue
                raise
            addrs = ["127.%d.53.%d" % (s, n) for n in (1, 53, 98, 99)]
            if all(_port_free(a) for a in addrs):
                self._lockf = lock
                return s
            lock.close()
        raise RuntimeError("dnsworld: no free slot (127.S.53.x:53 busy)")

    # --- accessors ---------------------------------------------------------

    def name(self, key):
        """The domain of case KEY (no trailing dot), e.g. "dane311"."""
        return CASES[key][0]

    def mx_hosts(self, key):
        """The MX host names of case KEY as published (preference order)."""
        return list(CASES[key][1])

    def addr(self, host):
        """The IPv4 address of HOST (an MX host or nomx.secure.test)."""
        return self.addrs[_plain(host)]

    def cert_for(self, host):
        """(certificate, key) PEM paths of HOST."""
        return self.certs[_plain(host)]

    def chain_for(self, host):
        """PEM path with HOST's certificate followed by the CA's."""
        return os.path.join(self.pkidir, _plain(host) + ".chain.pem")

    # --- keys and certificates -----------------------------------------

    def _make_keys(self):
        self.keys = {}
        for z, (how, _) in ZONES.items():
            if how is None:
                continue
            d = os.path.join(self.keydir, z.replace(".", "_") or "root")
            os.makedirs(d, exist_ok=True)
            base = _run(["ldns-keygen", "-a", "ECDSAP256SHA256", "-k",
                         _fqdn(z) if z != "." else "."], cwd=d).strip()
            base = os.path.join(d, base)
            with open(base + ".ds") as f:
                ds = f.read().strip()
            self.keys[z] = (base, ds)
        with open(self.trust_anchor, "w") as f:
            f.write(self.keys["."][1] + "\n")

    def _make_pki(self):
        """A test CA and a certificate per host: tests/lab/pki.py when it
        is there (the project's test PKI), else openssl req -x509 here."""
        try:
            import pki
        except ImportError:
            pki = None
        if pki is not None:
            ca = pki.CA(self.pkidir, name="dnsworld test CA")
            self.ca_cert = ca.cert_path
            self.ca_key = ca.key_path
            for host, _, alias in HOSTS:
                self.certs[host] = ca.issue(host, sans=[host] + alias)
        else:
            self._make_pki_openssl()
        with open(self.ca_cert) as f:
            ca_pem = f.read()
        for host, _, _ in HOSTS:
            with open(self.certs[host][0]) as f, \
                    open(self.chain_for(host), "w") as g:
                g.write(f.read() + ca_pem)

    def _make_pki_openssl(self):
        cnf = os.path.join(self.pkidir, "openssl.cnf")
        with open(cnf, "w") as f:
            f.write(_OPENSSL_CNF)
        self.ca_cert = os.path.join(self.pkidir, "ca.pem")
        self.ca_key = os.path.join(self.pkidir, "ca.key")
        env = dict(os.environ, DNSWORLD_SAN="DNS:ca.invalid")
        newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                  "-nodes", "-days", "30", "-config", cnf]
        _run(["openssl", "req", "-x509", "-new"] + newkey +
             ["-keyout", self.ca_key, "-out", self.ca_cert,
              "-subj", "/CN=dnsworld test CA", "-extensions", "ca_ext"],
             env=env)
        for host, _, alias in HOSTS:
            cert = os.path.join(self.pkidir, host + ".pem")
            key = os.path.join(self.pkidir, host + ".key")
            env["DNSWORLD_SAN"] = ",".join("DNS:" + n for n in [host] + alias)
            _run(["openssl", "req", "-x509", "-new"] + newkey +
                 ["-keyout", key, "-out", cert, "-subj", "/CN=" + host,
                  "-extensions", "leaf_ext", "-CA", self.ca_cert,
                  "-CAkey", self.ca_key], env=env)
            self.certs[host] = (cert, key)

    def tlsa(self, host, usage=3, selector=1, mtype=1):
        """TLSA rdata for HOST's certificate (usage 2: the CA's)."""
        path = self.ca_cert if usage in (0, 2) else self.cert_for(host)[0]
        return tlsa_rdata(path, usage, selector, mtype)

    # --- zone content ------------------------------------------------------

    def _zone_text(self, z):
        a = self.addr
        t = self.tlsa
        rr = []
        if z == ".":
            rr += [". NS ns.test.", "test. NS ns.test.",
                   "ns.test. A " + self.nsd_addr]
        elif z == "test":
            rr += ["@ NS ns", "ns A " + self.nsd_addr]
            for child in ("secure", "insecure", "insecuremx", "bogus",
                          "expired", "servfail", "nsec3"):
                rr.append("%s NS ns.test." % child)
            rr += ["silent NS ns.silent", "ns.silent A " + self.silent_addr]
        elif z == "secure.test":
            rr.append("@ NS ns.test.")
            for label, usage, sel, mt in (("dane311", 3, 1, 1),
                                          ("dane201", 2, 0, 1),
                                          ("dane312", 3, 1, 2),
                                          ("notls", 3, 1, 1),
                                          ("provider", 3, 1, 1)):
                mx = "mx1.%s.secure.test" % label
                rr += ["%s MX 10 %s." % (label, mx),
                       "%s. A %s" % (mx, a(mx)),
                       "_25._tcp.%s. TLSA %s" % (mx, t(mx, usage, sel, mt))]
            rr += ["_mta-sts.dane311 TXT " + STS_TXT,
                   "mixed MX 10 mx1.mixed", "mixed MX 20 mx2.mixed",
                   "mx1.mixed A " + a("mx1.mixed.secure.test"),
                   "mx2.mixed A " + a("mx2.mixed.secure.test"),
                   "_25._tcp.mx1.mixed TLSA " + t("mx1.mixed.secure.test"),
                   "_mta-sts.mixed TXT " + STS_TXT,
                   "pkix MX 10 mx1.pkix",
                   "mx1.pkix A " + a("mx1.pkix.secure.test"),
                   "_25._tcp.mx1.pkix TLSA " +
                   t("mx1.pkix.secure.test", 0, 0, 1),
                   "_25._tcp.mx1.pkix TLSA " +
                   t("mx1.pkix.secure.test", 1, 1, 1),
                   "badtlsa MX 10 mx1.badtlsa",
                   "mx1.badtlsa A " + a("mx1.badtlsa.secure.test"),
                   "_25._tcp.mx1.badtlsa TLSA " +
                   t("mx1.badtlsa.secure.test")[:-2],   # 31 bytes
                   "mismatch MX 10 mx1.mismatch",
                   "mx1.mismatch A " + a("mx1.mismatch.secure.test"),
                   "_25._tcp.mx1.mismatch TLSA " + t("other.invalid"),
                   "nullmx MX 0 .",
                   "nomx A " + a("nomx.secure.test"),
                   "_25._tcp.nomx TLSA " + t("nomx.secure.test"),
                   "_mta-sts.nomx TXT " + STS_TXT,
                   "cname MX 10 alias.cname",
                   "alias.cname CNAME mx1.cname",
                   "mx1.cname A " + a("mx1.cname.secure.test"),
                   "_25._tcp.mx1.cname TLSA " + t("mx1.cname.secure.test"),
                   "cnamefb MX 10 alias.cnamefb",
                   "alias.cnamefb CNAME mx1.cnamefb",
                   "mx1.cnamefb A " + a("mx1.cnamefb.secure.test"),
                   "_25._tcp.alias.cnamefb TLSA " +
                   t("mx1.cnamefb.secure.test"),
                   "loop MX 10 loop1", "loop1 CNAME loop2",
                   "loop2 CNAME loop1"]
        elif z == "insecure.test":
            rr += ["@ NS ns.test.", "@ MX 10 mx1",
                   "mx1 A " + a("mx1.insecure.test"),
                   "_25._tcp.mx1 TLSA " + t("mx1.insecure.test"),
                   "_mta-sts TXT " + STS_TXT]
        elif z == "insecuremx.test":
            rr += ["@ NS ns.test.", "@ MX 10 mx1.provider.secure.test."]
        elif z == "bogus.test":
            rr += ["@ NS ns.test.", "@ MX 10 mx1",
                   "mx1 A " + a("mx1.bogus.test"),
                   "_25._tcp.mx1 TLSA " + t("mx1.bogus.test"),
                   "tlsa MX 10 mx1.tlsa",
                   "mx1.tlsa A " + a("mx1.tlsa.bogus.test"),
                   "_25._tcp.mx1.tlsa TLSA " + t("mx1.tlsa.bogus.test")]
        elif z == "expired.test":
            rr += ["@ NS ns.test.", "@ MX 10 mx1",
                   "mx1 A " + a("mx1.expired.test"),
                   "_25._tcp.mx1 TLSA " + t("mx1.expired.test")]
        elif z == "nsec3.test":
            rr += ["@ NS ns.test.", "@ MX 10 mx1",
                   "mx1 A " + a("mx1.nsec3.test"),
                   "_25._tcp.mx1 TLSA " + t("mx1.nsec3.test")]
        elif z == "optout.nsec3.test":
            rr += ["@ NS ns.test.", "@ MX 10 mx1",
                   "mx1 A " + a("mx1.optout.nsec3.test"),
                   "_25._tcp.mx1 TLSA " + t("mx1.optout.nsec3.test")]
        # DS records for the secure children
        for child, (how, ds) in ZONES.items():
            if ds and child != "." and self._parent(child) == z:
                rr.append(self.keys[child][1])
        rr += self.extra[z]
        head = ("$ORIGIN %s\n$TTL %d\n@ SOA ns.test. hostmaster.test. "
                "%d 3600 600 86400 %d\n" % (_fqdn(z) if z != "." else ".",
                                           TTL, int(time.time()), TTL))
        return head + "\n".join(rr) + "\n"

    @staticmethod
    def _parent(z):
        if z == ".":
            return None
        return z.split(".", 1)[1] if "." in z else "."

    # --- changes -----------------------------------------------------------

    def add_record(self, zone, rr):
        """Add RR ("owner TTL IN TYPE rdata", owner relative to ZONE or
        absolute) to ZONE before signing; call reload() once started."""
        self.extra[_plain(zone) or "."].append(rr)

    def edit_after_signing(self, zone, owner, rtype, rdata):
        """Replace the rdata of every OWNER/RTYPE record in the signed ZONE
        by RDATA, keeping the old RRSIG (that RRset becomes BOGUS)."""
        self.edits[_plain(zone) or "."].append(
            (_fqdn(owner), rtype.upper(), rdata))

    def add_dane_domain(self, label, zone="secure.test"):
        """A secure domain LABEL.ZONE with MX 10 mx.LABEL.ZONE (address of
        mx1.dane311, TLSA 3 1 1 of mx1.dane311's key); returns it."""
        d = "%s.%s" % (label, _plain(zone))
        mx = "mx." + d
        src = "mx1.dane311.secure.test"
        self.add_record(zone, "%s. MX 10 %s." % (d, mx))
        self.add_record(zone, "%s. A %s" % (mx, self.addr(src)))
        self.add_record(zone, "_25._tcp.%s. TLSA %s" % (mx, self.tlsa(src)))
        return d

    # --- signing -----------------------------------------------------------

    def _build_zones(self):
        now = int(time.time())
        for z, (how, _) in ZONES.items():
            fname = os.path.join(self.zonedir, (z if z != "." else "root") +
                                 ".zone")
            text = self._zone_text(z)
            if how is None:
                with open(fname, "w") as f:
                    f.write(text)
                continue
            with open(fname + ".in", "w") as f:
                f.write(text)
            if how == "expired":
                # beyond unbound's val-sig-skew-max (one day)
                win = [now - 60 * DAY, now - 7 * DAY]
            else:
                win = [now - DAY, now + 30 * DAY]
            args = ["ldns-signzone", "-i", _stamp(win[0]), "-e",
                    _stamp(win[1]), "-f", fname]
            if how == "nsec3":
                args += ["-n", "-p", "-t", "0"]
            _run(args + [fname + ".in", self.keys[z][0]])
            self._after_signing(z, fname)

    def _after_signing(self, z, fname):
        edits = list(self.edits[z])
        post = []
        if z == "bogus.test":
            edits += [("bogus.test.", "MX", "20 mx1.bogus.test."),
                      ("_25._tcp.mx1.tlsa.bogus.test.", "TLSA",
                       self.tlsa("other.invalid"))]
        if z == "nsec3.test":
            # the delegation is added after signing, so no NSEC3 record
            # matches it and the opt-out span covers it (RFC 5155 §6)
            post.append("optout.nsec3.test.\t%d\tIN\tNS\tns.test." % TTL)
        if not edits and not post:
            return
        with open(fname) as f:
            lines = f.read().splitlines()
        out = []
        for line in lines:
            f = line.split("\t")
            if len(f) >= 5 and not line.startswith(";"):
                for owner, rtype, rdata in edits:
                    if f[0].lower() == owner and f[3].upper() == rtype:
                        line = "\t".join(f[:4] + [rdata])
            out.append(line)
        with open(fname, "w") as f:
            f.write("\n".join(out + post) + "\n")

    # --- servers -------------------------------------------------------

    def _write_configs(self):
        zones = []
        for z in list(ZONES) + ["servfail.test"]:
            zones.append('zone:\n\tname: "%s"\n\tzonefile: "%s.zone"\n' %
                         (_fqdn(z) if z != "." else ".",
                          z if z != "." else "root"))
        d = self.dir
        with open(self.nsd_conf, "w") as f:
            f.write("server:\n"
                    "\tip-address: %s\n\tport: 53\n\tdo-ip6: no\n"
                    "\tusername: \"\"\n\tchroot: \"\"\n"
                    "\tzonesdir: \"%s\"\n\tdatabase: \"\"\n"
                    "\tzonelistfile: \"%s/nsd.zonelist\"\n"
                    "\txfrdfile: \"%s/nsd.xfrd\"\n\txfrdir: \"%s\"\n"
                    "\tpidfile: \"%s/nsd.pid\"\n\tlogfile: \"%s\"\n"
                    "\tserver-count: 1\n\tverbosity: 1\n"
                    "\thide-version: yes\n\tidentity: \"dnsworld\"\n"
                    # No response rate limiting: a burst of validating
                    # lookups from one resolver is the test, not abuse.
                    "\trrl-ratelimit: 0\n\trrl-whitelist-ratelimit: 0\n"
                    "remote-control:\n\tcontrol-enable: no\n" %
                    (self.nsd_addr, self.zonedir, d, d, d, d, self.nsd_log)
                    + "".join(zones))
        hints = self.root_hints
        with open(hints, "w") as f:
            f.write(". 3600000 NS ns.test.\nns.test. 3600000 A %s\n" %
                    self.nsd_addr)
        with open(self.unbound_conf, "w") as f:
            f.write(
                "server:\n"
                "\tinterface: %(res)s\n\tport: 53\n"
                "\toutgoing-interface: %(res)s\n"
                "\tdo-ip6: no\n\tdo-daemonize: no\n"
                "\tusername: \"\"\n\tchroot: \"\"\n"
                "\tdirectory: \"%(d)s\"\n\tpidfile: \"%(d)s/unbound.pid\"\n"
                "\tlogfile: \"%(log)s\"\n\tuse-syslog: no\n"
                "\tlog-time-ascii: yes\n"
                "\tverbosity: 1\n\tval-log-level: 2\n"
                "\tlog-queries: %(lq)s\n"
                "\tnum-threads: 1\n\tso-reuseport: no\n"
                "\taccess-control: 127.0.0.0/8 allow\n"
                "\tdo-not-query-localhost: no\n"
                "\troot-hints: \"%(hints)s\"\n"
                "\ttrust-anchor-file: \"%(ta)s\"\n"
                "\tmodule-config: \"validator iterator\"\n"
                "\tlocal-zone: \"test.\" nodefault\n"
                "\tqname-minimisation: no\n"
                "\taggressive-nsec: no\n\tprefetch: no\n"
                "\tserve-expired: no\n"
                "\tharden-glue: yes\n\tharden-dnssec-stripped: yes\n"
                "\tharden-below-nxdomain: yes\n"
                "\tharden-algo-downgrade: yes\n"
                "\tuse-caps-for-id: no\n"
                "\tmsg-cache-size: %(cs)s\n\trrset-cache-size: %(cs)s\n"
                "\tkey-cache-size: %(cs)s\n\tneg-cache-size: %(cs)s\n"
                "\tinfra-host-ttl: 1\n\tinfra-keep-probing: yes\n"
                "\tval-bogus-ttl: 1\n"
                "remote-control:\n\tcontrol-enable: yes\n"
                "\tcontrol-interface: \"%(ctl)s\"\n"
                "\tcontrol-use-cert: no\n" %
                {"res": self.resolver, "d": d, "log": self.unbound_log,
                 "lq": "yes" if self.log_queries else "no", "hints": hints,
                 "ta": self.trust_anchor, "ctl": self.unbound_ctl,
                 "cs": self.cache_size})
        _run(["nsd-checkconf", self.nsd_conf])
        _run(["unbound-checkconf", self.unbound_conf])

    def _spawn(self, name, args):
        logf = open(os.path.join(self.dir, name + ".out"), "ab")
        try:
            self.procs[name] = subprocess.Popen(
                [_prog(args[0])] + args[1:], stdout=logf,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        finally:
            logf.close()

    def _wait_answer(self, name, addr, qname, rd, timeout=10.0):
        end = time.time() + timeout
        while time.time() < end:
            p = self.procs[name]
            if p.poll() is not None:
                raise RuntimeError("%s exited with %s:\n%s" % (
                    name, p.returncode, self._tail(name)))
            r = self.dig(qname, "SOA", server=addr, rd=rd, dnssec=False,
                         wait=1)
            if r.status == "NOERROR":
                return
            time.sleep(0.05)
        raise RuntimeError("%s does not answer:\n%s" % (name,
                                                         self._tail(name)))

    def _tail(self, name):
        out = ""
        for path in (os.path.join(self.dir, name + ".out"),
                     self.nsd_log if name == "nsd" else self.unbound_log):
            try:
                with open(path, errors="replace") as f:
                    out += f.read()[-3000:]
            except OSError:
                pass
        return out

    def start(self):
        """Sign the zones and start NSD, unbound and the silent server."""
        self._build_zones()
        self._write_configs()
        self.silent = _Silent(self.silent_addr)
        self.servfail = _Servfail(self.servfail_addr)
        self._start_nsd()
        self._spawn("unbound", ["unbound", "-d", "-c", self.unbound_conf])
        self._wait_answer("unbound", self.resolver, ".", True)
        return self

    def _start_nsd(self):
        self._spawn("nsd", ["nsd", "-d", "-c", self.nsd_conf])
        self._wait_answer("nsd", self.nsd_addr, "secure.test", False)

    def reload(self):
        """Re-sign with the current records, restart NSD, flush unbound."""
        self._build_zones()
        self._kill("nsd")
        self._start_nsd()
        self.flush()

    def flush(self):
        """Empty unbound's caches (answers, keys, infra, bogus)."""
        for cmd in (["flush_zone", "."], ["flush_bogus"], ["flush_infra",
                                                            "all"],
                    ["flush_negative"], ["flush_requestlist"]):
            _run(["unbound-control", "-c", self.unbound_conf] + cmd)

    def pids(self):
        """Pids of the servers this world started (process group leaders)."""
        return [p.pid for p in self.procs.values() if p.poll() is None]

    def _kill(self, name):
        p = self.procs.pop(name, None)
        if p is None:
            return
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        # NSD's helpers (same group) follow their parent within a second;
        # they are ours and hold nothing worth keeping
        end = time.time() + 0.3
        while _group_alive(p.pid) and time.time() < end:
            time.sleep(0.02)
        if _group_alive(p.pid):
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                return
        end = time.time() + 3
        while _group_alive(p.pid) and time.time() < end:
            time.sleep(0.02)

    def stop(self):
        """Stop every server of this world; remove its own temporary dir."""
        for name in ("unbound", "nsd"):
            self._kill(name)
        if self.silent is not None:
            self.silent.close()
            self.silent = None
        if self.servfail is not None:
            self.servfail.close()
            self.servfail = None
        if self._lockf is not None:
            self._lockf.close()
            self._lockf = None
        if self.own_dir and not os.environ.get("KEEP_TMP"):
            shutil.rmtree(self.dir, ignore_errors=True)

    # --- clients -------------------------------------------------------

    def dig(self, qname, rtype, server=None, rd=True, dnssec=True, wait=2,
            tcp=False):
        """Ask SERVER (default: the resolver) with dig; a DigResult."""
        args = [_prog("dig"), "@" + (server or self.resolver), qname, rtype,
                "+time=%d" % wait, "+tries=1", "+norecurse" if not rd
                else "+recurse", "+dnssec" if dnssec else "+nodnssec",
                "+nocookie"]
        if tcp:
            args.append("+tcp")
        p = subprocess.run(args, capture_output=True, timeout=wait * 3 + 5,
                           stdin=subprocess.DEVNULL)
        return DigResult(p.stdout.decode("utf-8", "replace"))

    def getdns(self, qname, rtype, timeout_ms=3000):
        """getdns_query in stub mode against the resolver, validating with
        the private anchor; the JSON response dict, or None (timeout or
        no output; the raw text is in self.last_getdns)."""
        args = [_prog("getdns_query"), "-s", "@" + self.resolver, "-f",
                self.trust_anchor, "-t", str(timeout_ms), "-N",
                "+dnssec_return_status", "+dnssec_return_all_statuses",
                "-j", qname, rtype]
        env = dict(os.environ, HOME=self.dir)
        p = subprocess.run(args, capture_output=True, env=env,
                           timeout=timeout_ms / 1000 * 3 + 10,
                           stdin=subprocess.DEVNULL)
        self.last_getdns = (p.stdout + p.stderr).decode("utf-8", "replace")
        try:
            return json.loads(p.stdout.decode("utf-8", "replace"))
        except ValueError:
            return None

    def query_log(self):
        """Client queries unbound logged (log_queries=True): a list of
        (client, qname, type)."""
        out = []
        try:
            with open(self.unbound_log, errors="replace") as f:
                for line in f:
                    m = re.search(r"info: (\S+) (\S+) (\S+) IN$", line)
                    if m:
                        out.append((m.group(1), m.group(2).lower(),
                                    m.group(3)))
        except OSError:
            pass
        return out
