# SPDX-License-Identifier: BSD-2-Clause
"""OpenSMTPD 6.8 with contrib/opensmtpd (issue 12): tlspolicyd's answers
written into two tables by tlspolicyd-smtpd-tables, matched with
"relay tls" (verified) and "relay tls no-verify". A real smtpd (Debian's
opensmtpd 6.8, unpacked by contrib/debian/fetch-test-mtas, never
installed: it would replace Postfix) relays to Postfix sinks in the test
DNS world. It runs in a private mount namespace with copies of
/etc/passwd and /etc/group holding its compiled-in users, tmpfs over
/var/spool, /var/lib and /run (its compiled-in queue, chroot and control
socket paths), the test resolv.conf and the test CA bind-mounted over the
system CA bundle; the machine's files are never changed.

  an MTA-STS enforce domain: in the verify table, delivered over TLS;
  a self-signed certificate and an MX without STARTTLS under a secure
      answer: not delivered (deferred);
  a dane-only domain: in the encrypt table, delivered over TLS without
      verification (OpenSMTPD has no DANE);
  a TEMP answer: in the verify table;
  a certificate from the trusted CA for another name under a secure
      answer: not delivered (OpenSMTPD checks the MX host name);
  an MX host outside the MTA-STS patterns: delivered, the limitation the
      README states (a table has no room for the patterns)."""
import os
import shutil
import signal
import smtplib
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
SRCDIR = os.environ.get("srcdir", TOP)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lab"))
from tlstest import Daemon, bail, done, is_eq, ok  # noqa: E402
from dnsworld import DNSWorld  # noqa: E402
from postfixworld import PostfixWorld, PostfixError, port_free  # noqa
import pki  # noqa: E402

ROOT = os.environ.get("EXIM_ROOT", "/var/lib/tlspolicyd-test/mtas")
SMTPD = os.path.join(ROOT, "usr", "sbin", "smtpd")
if not os.path.exists(SMTPD):
    bail("%s is missing: run contrib/debian/fetch-test-mtas" % SMTPD)
CONTRIB = os.path.join(SRCDIR, "contrib", "opensmtpd")

w = DNSWorld()
w.add_record("insecure.test", "temp 300 IN MX 10 mx1.insecure.test.")
w.add_record("insecure.test", "sts 300 IN MX 10 mx1.insecure.test.")
w.add_record("insecure.test", "stsout 300 IN MX 10 mx1.insecure.test.")
w.start()
STSOUT_DOMAIN = "stsout." + w.name("insecure")
TEMP_DOMAIN = "temp." + w.name("insecure")
STS_DOMAIN = "sts." + w.name("insecure")


def mx(key):
    return w.mx_hosts(key)[0]


SELF_SIGNED = pki.self_signed(os.path.join(w.dir, "smtpd-self"), mx("pkix"))
SECURE = "secure match=%s servername=hostname"
d = Daemon(name="smtpd", dane=True, policy="".join(
    "%s = %s\n" % (w.name(k), SECURE % mx(k))
    for k in ("optout", "pkix", "nsec3")),
    extra="[dns]\nresolvers = %s\ntrust_anchor = %s\n" %
    (w.resolver, w.trust_anchor))
d.start()
d.stop()
d.put_sts(TEMP_DOMAIN, "enforce", ["bad,pattern"])
d.put_sts(STS_DOMAIN, "enforce", ["*." + w.name("insecure")])
d.put_sts(STSOUT_DOMAIN, "enforce", ["mx.elsewhere.invalid"])
d.start()
is_eq(d.ask(w.name("dane311")), "OK dane-only", "the daemon: dane311 "
      "dane-only")

work = os.path.join(d.dir, "smtpd")
os.makedirs(work)
os.chmod(work, 0o755)
doms = os.path.join(work, "domains")
with open(doms, "w") as f:
    f.write("# domains the tables cover besides the stored ones\n")
    for k in ("dane311", "optout", "pkix", "nsec3"):
        f.write(w.name(k) + "\n")
p = subprocess.run([os.path.join(CONTRIB, "tlspolicyd-smtpd-tables"),
                    "--query", d.query, "--admin", d.admin, "--domains",
                    doms, "--out", work, "--no-update"],
                   capture_output=True, text=True, timeout=60)
ok(p.returncode == 0, "tlspolicyd-smtpd-tables ran", p.stderr)


def table(name):
    with open(os.path.join(work, "tlspolicyd-" + name)) as f:
        return sorted(ln.strip() for ln in f if not ln.startswith("#"))


is_eq(table("verify"), sorted([STS_DOMAIN, STSOUT_DOMAIN, TEMP_DOMAIN,
                               w.name("optout"),
                               w.name("pkix"), w.name("nsec3")]),
      "verify table: MTA-STS, secure answers and the TEMP domain")
is_eq(table("encrypt"), [w.name("dane311")], "encrypt table: dane-only")

SINKS = {"dane311": w.cert_for(mx("dane311")),
         "insecure": w.cert_for(mx("insecure")),
         "optout": w.cert_for("other.invalid"),
         "pkix": SELF_SIGNED, "nsec3": None}
pw = PostfixWorld()
for k, cert in SINKS.items():
    host = mx(k)
    if cert is None:
        pw.add_sink(k, w.addr(host), starttls=False, hostname=host)
    else:
        pw.add_sink(k, w.addr(host), cert[0], cert[1], hostname=host)
try:
    pw.start()
except PostfixError as e:
    bail(str(e))

# The contrib config, with the test's paths, listener and clients.
ADDR = "127.%d.77.1" % w.slot
if not port_free(ADDR, 2525):
    bail("%s:2525 is in use" % ADDR)
with open(os.path.join(CONTRIB, "smtpd.conf")) as f:
    conf = f.read()
conf = conf.replace("/etc/smtpd/", work + "/")
conf = conf.replace("listen on localhost",
                    "listen on %s port 2525" % ADDR)
conf = conf.replace("from local", "from any")
with open(os.path.join(work, "smtpd.conf"), "w") as f:
    f.write(conf)
with open("/etc/passwd") as f:
    pwd_lines = [ln for ln in f if not ln.startswith("opensmtp")]
with open("/etc/group") as f:
    grp_lines = [ln for ln in f if not ln.startswith("opensmtp")]
with open(os.path.join(work, "passwd"), "w") as f:
    f.writelines(pwd_lines)
    f.write("opensmtpd:x:64980:64980::/nonexistent:/usr/sbin/nologin\n"
            "opensmtpq:x:64981:64981::/nonexistent:/usr/sbin/nologin\n")
with open(os.path.join(work, "group"), "w") as f:
    f.writelines(grp_lines)
    f.write("opensmtpd:x:64980:\nopensmtpq:x:64981:\n")
shutil.copy(SMTPD, os.path.join(work, "smtpd"))
ca = os.path.join(work, "ca.pem")
shutil.copy(w.ca_cert, ca)
os.chmod(ca, 0o644)
script = """set -e
mount --bind {w}/passwd /etc/passwd
mount --bind {w}/group /etc/group
mount --bind {rc} /etc/resolv.conf
mount --bind {ca} /etc/ssl/certs/ca-certificates.crt
mount -t tmpfs tmpfs /var/spool
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /var/lib
mkdir -p /var/lib/opensmtpd/empty
exec {w}/smtpd -d -v -f {w}/smtpd.conf
""".format(w=work, rc=w.resolv_conf, ca=ca)
logf = open(os.path.join(work, "smtpd.log"), "wb")
proc = subprocess.Popen(["/usr/bin/unshare", "-m", "sh", "-c", script],
                        stdout=logf, stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL, start_new_session=True)


def smtpd_log():
    with open(os.path.join(work, "smtpd.log"), "rb") as f:
        return f.read().decode("utf-8", "replace")


def stop_smtpd():
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


end = time.time() + 20
while time.time() < end and port_free(ADDR, 2525):
    if proc.poll() is not None:
        break
    time.sleep(0.1)
if port_free(ADDR, 2525):
    stop_smtpd()
    bail("smtpd did not start:\n" + smtpd_log()[-2000:])

CASES = [  # (key, domain, sink, delivered?)
    ("sts", STS_DOMAIN, "insecure", True),
    ("dane311", w.name("dane311"), "dane311", True),
    ("pkix", w.name("pkix"), "pkix", False),
    ("nsec3", w.name("nsec3"), "nsec3", False),
    ("optout", w.name("optout"), "optout", False),
    # What the tables cannot express: the MTA-STS MX patterns.
    ("stsout", STSOUT_DOMAIN, "insecure", None),
]
ids = {}
for key, dom, sink, _ in CASES:
    ids[key] = "smtpd-%s-%d@sender.test" % (key, os.getpid())
    msg = ("From: <sender@sender.test>\r\nTo: <postmaster@%s>\r\n"
           "Subject: tlspolicyd smtpd test\r\nMessage-ID: <%s>\r\n\r\n"
           "test\r\n" % (dom, ids[key]))
    with smtplib.SMTP(ADDR, 2525, timeout=30) as s:
        s.sendmail("sender@sender.test", ["postmaster@" + dom], msg)

got = {}
end = time.time() + 30
while time.time() < end:
    for key, dom, sink, _ in CASES:
        if key not in got:
            m = pw.sink(sink).find(ids[key])
            if m is not None:
                got[key] = m
    if all(k in got for k, _, _, want in CASES if want is not False):
        break
    time.sleep(0.2)
time.sleep(3)  # the others had their chance too
for key, dom, sink, _ in CASES:
    if key not in got:
        m = pw.sink(sink).find(ids[key])
        if m is not None:
            got[key] = m
log = smtpd_log()
for key, dom, sink, want in CASES:
    m = got.get(key)
    if want is True:
        ok(m is not None and m.tls(), "%s: delivered over TLS" % dom,
           log[-3000:])
    elif want is False:
        ok(m is None, "%s: not delivered" % dom, m and m.text)
ok("ssl_check_name: no match for '%s' in cert" % mx("optout") in log,
   "optout: OpenSMTPD checked the certificate name against the MX host "
   "name", log[-3000:])
ok("X509 verify: self-signed certificate" in log,
   "pkix: the self-signed certificate failed verification", log[-3000:])
ok("TLS required but not supported by remote host" in log,
   "nsec3: TLS required, not offered", log[-3000:])
# The limitation contrib/opensmtpd/README.md states: nothing in a table
# says which MX hosts the MTA-STS policy allows.
m = got.get("stsout")
ok(m is not None and m.tls(), "limitation, as documented: an MX host "
   "outside the MTA-STS patterns still gets the mail (over verified TLS)",
   log[-2000:])

stop_smtpd()
pw.stop()
d.stop()
w.stop()
done()
