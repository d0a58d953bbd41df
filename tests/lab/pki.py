# SPDX-License-Identifier: BSD-2-Clause
"""A throw-away test PKI made with the openssl command line (stdlib only).

    ca = pki.CA(dir, name="tlspolicyd test CA")
    cert, key = ca.issue("mx1", sans=["mx1.example"])
    cert, key = ca.issue("old", sans=["a.test"],
                         not_before="20200101000000Z",
                         not_after="20200201000000Z")       # expired
    cert, key = ca.issue_cn_only("cn.test")                  # no SAN at all
    cert, key = pki.self_signed(dir, "self", ["a.test"])
    pki.tlsa_rdata(cert, 3, 1, 1)  -> "3 1 1 <hex>"

Leaf certificates are signed with `openssl ca` because OpenSSL 3.0's
`x509 -req` cannot backdate (TESTING.md); every validity window is given
explicitly (-startdate/-enddate), so expired and not-yet-valid cases are
exact. Keys are unencrypted PEM files next to the certificates; nothing
outside DIR is written. Run this file to self-check it.
"""
import datetime
import hashlib
import os
import re
import subprocess
import sys

OPENSSL = "openssl"

_CA_CONF = """\
[ ca ]
default_ca = testca

[ testca ]
dir = {dir}
database = $dir/index.txt
new_certs_dir = $dir/newcerts
serial = $dir/serial
certificate = {cert}
private_key = {key}
default_md = sha256
policy = policy_any
unique_subject = no
copy_extensions = none
email_in_dn = no

[ policy_any ]
commonName = optional
organizationName = optional

[ req ]
distinguished_name = dn
prompt = no

[ dn ]
CN = unused

[ ext_ca ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
"""


def _run(args, **kw):
    """Run openssl; raise with its stderr when it fails."""
    p = subprocess.run([OPENSSL] + args, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, **kw)
    if p.returncode != 0:
        raise RuntimeError("openssl %s failed: %s" %
                           (" ".join(args[:2]),
                            p.stderr.decode("utf-8", "replace")))
    return p.stdout


def _asn1_time(t):
    """A datetime (UTC), a string already in YYYYMMDDHHMMSSZ form, or None."""
    if t is None or isinstance(t, str):
        return t
    if t.tzinfo is not None:
        t = t.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return t.strftime("%Y%m%d%H%M%SZ")


def _now():
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def _fname(name):
    """A file-name-safe form of NAME."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name).lstrip(".") or "cert"


def _genkey(path, key_type):
    if key_type == "ec":
        _run(["genpkey", "-algorithm", "EC", "-pkeyopt",
              "ec_paramgen_curve:P-256", "-out", path])
    elif key_type == "rsa":
        _run(["genpkey", "-algorithm", "RSA", "-pkeyopt",
              "rsa_keygen_bits:2048", "-out", path])
    else:
        raise ValueError("key_type must be 'ec' or 'rsa'")
    os.chmod(path, 0o600)


def _san_value(sans):
    parts = []
    for s in sans:
        if re.fullmatch(r"[0-9.]+|[0-9A-Fa-f:]+:[0-9A-Fa-f:.]*", s):
            parts.append("IP:" + s)
        else:
            parts.append("DNS:" + s)
    return ", ".join(parts)


class CA:
    """A self-signed test CA in DIR (created if needed)."""

    def __init__(self, dir, name="tlspolicyd test CA", days=3650,
                 key_type="ec"):
        self.dir = os.path.abspath(dir)
        self.name = name
        os.makedirs(os.path.join(self.dir, "newcerts"), exist_ok=True)
        base = _fname(name)
        self.cert_path = os.path.join(self.dir, base + ".ca.crt")
        self.key_path = os.path.join(self.dir, base + ".ca.key")
        self.conf = os.path.join(self.dir, base + ".ca.cnf")
        self._db = os.path.join(self.dir, "index.txt")
        with open(self.conf, "w") as f:
            f.write(_CA_CONF.format(dir=self.dir, cert=self.cert_path,
                                    key=self.key_path))
        if not os.path.exists(self._db):
            open(self._db, "w").close()
        serial = os.path.join(self.dir, "serial")
        if not os.path.exists(serial):
            with open(serial, "w") as f:
                # An even number of hex digits (openssl ca insists).
                f.write("%016x\n" % (0x1000000000000000 |
                                      int.from_bytes(os.urandom(7), "big")))
        if os.path.exists(self.cert_path) and os.path.exists(self.key_path):
            return
        _genkey(self.key_path, key_type)
        csr = os.path.join(self.dir, base + ".ca.csr")
        _run(["req", "-new", "-config", self.conf, "-key", self.key_path,
              "-subj", "/CN=" + name, "-out", csr])
        # Backdated a day so that a small clock difference never matters.
        start = _now() - datetime.timedelta(days=1)
        end = _now() + datetime.timedelta(days=days)
        _run(["ca", "-batch", "-notext", "-selfsign", "-config", self.conf,
              "-keyfile", self.key_path, "-in", csr, "-out", self.cert_path,
              "-startdate", _asn1_time(start), "-enddate", _asn1_time(end),
              "-extfile", self.conf, "-extensions", "ext_ca"],
             stdin=subprocess.DEVNULL)

    def issue(self, name, sans=None, cn=None, not_before=None,
              not_after=None, days=30, key_type="ec"):
        """Sign a leaf certificate for NAME; return (cert_path, key_path).

        SANS: dNSName (or IP) entries; None means [NAME]; [] means no SAN
        extension. CN: the subject CN (default NAME). NOT_BEFORE/NOT_AFTER:
        datetimes (UTC) or "YYYYMMDDHHMMSSZ"; default one hour ago and
        DAYS from now.
        """
        if sans is None:
            sans = [name]
        base = os.path.join(self.dir, _fname(name))
        key = base + ".key"
        cert = base + ".crt"
        csr = base + ".csr"
        ext = base + ".ext"
        _genkey(key, key_type)
        _run(["req", "-new", "-config", self.conf, "-key", key,
              "-subj", "/CN=" + (cn if cn is not None else name),
              "-out", csr])
        lines = ["[ ext_leaf ]",
                 "basicConstraints = critical, CA:FALSE",
                 "keyUsage = critical, digitalSignature%s" %
                 (", keyEncipherment" if key_type == "rsa" else ""),
                 "extendedKeyUsage = serverAuth",
                 "subjectKeyIdentifier = hash",
                 "authorityKeyIdentifier = keyid"]
        if sans:
            lines.append("subjectAltName = " + _san_value(sans))
        with open(ext, "w") as f:
            f.write("\n".join(lines) + "\n")
        start = _asn1_time(not_before) or _asn1_time(
            _now() - datetime.timedelta(hours=1))
        end = _asn1_time(not_after) or _asn1_time(
            _now() + datetime.timedelta(days=days))
        _run(["ca", "-batch", "-notext", "-config", self.conf,
              "-in", csr, "-out", cert, "-startdate", start, "-enddate", end,
              "-extfile", ext, "-extensions", "ext_leaf"],
             stdin=subprocess.DEVNULL)
        return cert, key

    def issue_cn_only(self, name, **kw):
        """A leaf certificate with CN=NAME and no subjectAltName."""
        return self.issue(name, sans=[], cn=name, **kw)


def self_signed(dir, name, sans=None, days=30, key_type="ec"):
    """A self-signed (non-CA) certificate; return (cert_path, key_path)."""
    dir = os.path.abspath(dir)
    os.makedirs(dir, exist_ok=True)
    if sans is None:
        sans = [name]
    base = os.path.join(dir, _fname(name))
    key = base + ".key"
    cert = base + ".crt"
    _genkey(key, key_type)
    args = ["req", "-new", "-x509", "-key", key, "-subj", "/CN=" + name,
            "-days", str(days), "-out", cert,
            "-addext", "basicConstraints=critical,CA:FALSE",
            "-addext", "extendedKeyUsage=serverAuth"]
    if sans:
        args += ["-addext", "subjectAltName=" + _san_value(sans)]
    _run(args, stdin=subprocess.DEVNULL)
    return cert, key


def tlsa_rdata(cert_path, usage, selector, mtype):
    """TLSA RDATA in presentation form, e.g. "3 1 1 <hex>" (RFC 6698).

    SELECTOR 0 = full certificate DER, 1 = SubjectPublicKeyInfo DER;
    MTYPE 0 = the data itself, 1 = SHA-256, 2 = SHA-512.
    """
    if selector == 0:
        data = _run(["x509", "-in", cert_path, "-outform", "DER"])
    elif selector == 1:
        pub = _run(["x509", "-in", cert_path, "-noout", "-pubkey"])
        data = _run(["pkey", "-pubin", "-outform", "DER"], input=pub)
    else:
        raise ValueError("selector must be 0 or 1")
    if mtype == 0:
        digest = data.hex()
    elif mtype == 1:
        digest = hashlib.sha256(data).hexdigest()
    elif mtype == 2:
        digest = hashlib.sha512(data).hexdigest()
    else:
        raise ValueError("mtype must be 0, 1 or 2")
    return "%d %d %d %s" % (usage, selector, mtype, digest)


def cert_text(cert_path):
    """openssl x509 -text output (for diagnostics)."""
    return _run(["x509", "-in", cert_path, "-noout", "-text"]).decode()


def _selfcheck():
    import tempfile
    failed = 0
    n = 0

    def ok(cond, what):
        nonlocal failed, n
        n += 1
        print("%s %d - %s" % ("ok" if cond else "not ok", n, what))
        if not cond:
            failed += 1

    with tempfile.TemporaryDirectory(prefix="pki-") as d:
        ca = CA(d)
        good, _ = ca.issue("mx1", sans=["mx1.example", "*.mx.example"])
        rsa, _ = ca.issue("rsa", sans=["rsa.example"], key_type="rsa")
        old, _ = ca.issue("old", sans=["old.example"],
                          not_before="20200101000000Z",
                          not_after="20200201000000Z")
        cn, _ = ca.issue_cn_only("cn.example")
        ss, _ = self_signed(d, "self.example")

        def verify(c):
            return subprocess.run([OPENSSL, "verify", "-CAfile",
                                   ca.cert_path, c], capture_output=True)
        ok(verify(good).returncode == 0, "leaf verifies")
        ok(verify(rsa).returncode == 0, "rsa leaf verifies")
        ok(b"expired" in verify(old).stderr, "expired leaf is expired")
        ok(verify(ss).returncode != 0, "self-signed does not verify")
        ok("DNS:*.mx.example" in cert_text(good), "SANs present")
        ok("Subject Alternative Name" not in cert_text(cn),
           "CN-only has no SAN")
        r = tlsa_rdata(good, 3, 1, 1)
        ok(re.fullmatch(r"3 1 1 [0-9a-f]{64}", r) is not None, "3 1 1")
        r = tlsa_rdata(ca.cert_path, 2, 0, 2)
        ok(re.fullmatch(r"2 0 2 [0-9a-f]{128}", r) is not None, "2 0 2")
        ok(tlsa_rdata(good, 3, 0, 0).startswith("3 0 0 30"), "3 0 0 DER")
    print("1..%d" % n)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(_selfcheck())
