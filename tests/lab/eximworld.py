# SPDX-License-Identifier: BSD-2-Clause
"""A real Exim (Debian's exim4-daemon-light 4.96) as a sender in the test
world, configured with tlspolicyd's contrib/exim snippets.

    from eximworld import EximSender, exim_missing
    ex = EximSender(workdir, snippets="contrib/exim/conf.d",
                    resolv_conf=w.resolv_conf, ca_file=w.ca_cert,
                    socket=d.query)
    r = ex.send("postmaster@dane311.secure.test")   # delivers at once
    r.status            # "sent", "deferred", "failed" or None
    r.lines             # the mainlog lines of this message

Exim is not installed as a package: exim4-daemon-light conflicts with the
machine's Postfix (both are Debian's mail-transport-agent), and installing
it would remove Postfix. contrib/debian/fetch-test-mtas downloads the .deb
files with `apt-get download` and unpacks them with `dpkg-deb -x` into
EXIM_ROOT (default /var/lib/tlspolicyd-test/mtas); nothing is configured
or started, no package is installed. The binary has its user
("Debian-exim") compiled in; each run happens in a private mount
namespace (unshare -m) where a copy of /etc/passwd and /etc/group with
that user, and the test resolv.conf ("nameserver <unbound>", "options
trust-ad"), are bind-mounted over the machine's files, which are never
changed. Each message is delivered in the foreground (exim -odi) with its
own config, spool and log directory in WORKDIR; no Exim daemon runs.
"""
import os
import pwd
import grp
import re
import shutil
import subprocess
import time

EXIM_ROOT = os.environ.get("EXIM_ROOT", "/var/lib/tlspolicyd-test/mtas")
EXIM = os.path.join(EXIM_ROOT, "usr", "sbin", "exim4")
EXIM_LIB = os.path.join(EXIM_ROOT, "usr", "lib", "x86_64-linux-gnu")
UNSHARE = "/usr/bin/unshare"
_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C", "TZ": "UTC",
        "LD_LIBRARY_PATH": EXIM_LIB}


def exim_missing():
    """What is missing to run the test Exim, or ""."""
    if not os.path.exists(EXIM):
        return ("%s (run contrib/debian/fetch-test-mtas, or "
                "contrib/debian/install-deps --test)" % EXIM)
    return ""


class Result:
    def __init__(self, msgid):
        self.msgid = msgid
        self.exim_id = None
        self.status = None
        self.lines = []

    def tls_verified(self):
        """The => line's CV= field: "yes", "dane" or None."""
        for ln in self.lines:
            m = re.search(r" => .* CV=(\S+)", ln)
            if m:
                return m.group(1)
        return None

    def defer_reason(self):
        return " | ".join(ln for ln in self.lines if " == " in ln)

    def __repr__(self):
        return "<exim %s %s %s>\n%s" % (self.msgid, self.exim_id, self.status,
                                        "\n".join(self.lines))


class EximSender:
    def __init__(self, workdir, snippets, resolv_conf, ca_file, socket,
                 extra_main=""):
        self.dir = os.path.realpath(workdir)
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o755)
        self.resolv_conf = resolv_conf
        self.spool = os.path.join(self.dir, "spool")
        self.logdir = os.path.join(self.dir, "log")
        self.mainlog = os.path.join(self.logdir, "mainlog")
        self.paniclog = os.path.join(self.logdir, "paniclog")
        self.conf = os.path.join(self.dir, "exim.conf")
        self.count = 0
        uid = self._free_id()
        self.passwd = os.path.join(self.dir, "passwd")
        self.group = os.path.join(self.dir, "group")
        with open("/etc/passwd") as f:
            pw = [ln for ln in f if not ln.startswith("Debian-exim:")]
        with open("/etc/group") as f:
            gr = [ln for ln in f if not ln.startswith("Debian-exim:")]
        with open(self.passwd, "w") as f:
            f.writelines(pw)
            f.write("Debian-exim:x:%d:%d:test Exim:/nonexistent:"
                    "/usr/sbin/nologin\n" % (uid, uid))
        with open(self.group, "w") as f:
            f.writelines(gr)
            f.write("Debian-exim:x:%d:\n" % uid)
        for d in (self.spool, self.logdir):
            os.makedirs(d, exist_ok=True)
            os.chown(d, uid, uid)
            os.chmod(d, 0o750)
        # The transport runs as Debian-exim: a CA copy it may read.
        ca_copy = os.path.join(self.dir, "ca.pem")
        shutil.copyfile(ca_file, ca_copy)
        os.chmod(ca_copy, 0o644)
        ca_file = ca_copy
        self.macros = {"TLSPOLICYD_SOCKET": socket,
                       "TLSPOLICYD_TIMEOUT": "15s",
                       "TLSPOLICYD_CA": ca_file}
        with open(self.conf, "w") as f:
            f.write(self._config(snippets, extra_main))

    @staticmethod
    def _free_id():
        used = {p.pw_uid for p in pwd.getpwall()} | \
            {g.gr_gid for g in grp.getgrall()}
        for i in range(64990, 65500):
            if i not in used:
                return i
        raise RuntimeError("no free uid for Debian-exim")

    def _config(self, snippets, extra_main):
        inc = lambda part: ".include %s\n" % os.path.abspath(  # noqa: E731
            os.path.join(snippets, part))
        return (
            # Exim's own defaults stand in for Debian's generated config
            # parts other than tlspolicyd's.
            "".join(".ifndef %s\n%s = %s\n.endif\n" % (k, k, v)
                    for k, v in self.macros.items()) +
            inc("main/05_tlspolicyd") +
            "primary_hostname = sender.test\n"
            "domainlist local_domains = sender.test\n"
            "spool_directory = %s\n"
            "log_file_path = %s/%%slog\n"
            "disable_ipv6 = true\n"
            # Exim re-executes itself for each delivery: the unpacked
            # binary, and the library path it needs.
            "exim_path = %s\n"
            "keep_environment = LD_LIBRARY_PATH\n"
            "log_selector = +tls_peerdn +tls_certificate_verified "
            "+smtp_confirmation +received_recipients\n"
            "%s"
            "begin routers\n" % (self.spool, self.logdir, EXIM, extra_main) +
            inc("router/150_tlspolicyd") +
            # Debian's router/200_exim4-config_primary, reduced.
            "dnslookup:\n"
            "  driver = dnslookup\n"
            "  domains = ! +local_domains\n"
            "  transport = remote_smtp\n"
            "  no_more\n"
            "begin transports\n" +
            inc("transport/30_tlspolicyd") +
            "remote_smtp:\n"
            "  driver = smtp\n"
            "begin retry\n"
            "* * F,1h,1m\n")

    def _run(self, argv, stdin=None, macros=None, timeout=120):
        defs = ["-D%s=%s" % kv for kv in (macros or {}).items()]
        script = ("mount --bind %s /etc/passwd && "
                  "mount --bind %s /etc/group && "
                  "mount --bind %s /etc/resolv.conf && exec \"$@\"" %
                  (self.passwd, self.group, self.resolv_conf))
        return subprocess.run(
            [UNSHARE, "-m", "sh", "-c", script, "sh", EXIM, "-C", self.conf]
            + defs + argv, input=stdin, capture_output=True, env=_ENV,
            timeout=timeout)

    def expand(self, s, macros=None):
        """exim -be S: an expansion test, in the namespace."""
        p = self._run(["-be", s], macros=macros)
        return (p.returncode, p.stdout.decode("utf-8", "replace").strip(),
                p.stderr.decode("utf-8", "replace").strip())

    def resolv_conf_seen(self):
        p = subprocess.run([UNSHARE, "-m", "sh", "-c",
                            "mount --bind %s /etc/resolv.conf && "
                            "cat /etc/resolv.conf" % self.resolv_conf],
                           capture_output=True, env=_ENV, timeout=30)
        return p.stdout.decode()

    def send(self, rcpt, macros=None):
        """Submit one message to RCPT and deliver it now (-odi)."""
        self.count += 1
        msgid = "exim-%d-%d@sender.test" % (os.getpid(), self.count)
        msg = ("From: <sender@sender.test>\nTo: <%s>\nSubject: tlspolicyd "
               "exim test %d\nMessage-ID: <%s>\n\ntest\n" %
               (rcpt, self.count, msgid))
        # Each case on its own: no retry hints from an earlier case's
        # failure on the same MX host.
        shutil.rmtree(os.path.join(self.spool, "db"), ignore_errors=True)
        p = self._run(["-odi", "-oi", "-f", "sender@sender.test", rcpt],
                      stdin=msg.encode(), macros=macros)
        r = Result(msgid)
        r.rc = p.returncode
        r.stderr = p.stderr.decode("utf-8", "replace")
        log = self.log()
        for ln in log.splitlines():
            if r.exim_id is None and " <= " in ln and \
                    "id=%s" % msgid in ln:
                r.exim_id = ln.split()[2]
            if r.exim_id is not None and " %s " % r.exim_id in ln:
                r.lines.append(ln)
                if " => " in ln:
                    r.status = "sent"
                elif " == " in ln and r.status is None:
                    r.status = "deferred"
                elif " ** " in ln:
                    r.status = "failed"
        return r

    def log(self):
        try:
            with open(self.mainlog, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def panics(self):
        try:
            with open(self.paniclog, "rb") as f:
                text = f.read().decode("utf-8", "replace")
            # Expected: the re-executed delivery process runs as the
            # Exim user with our -C file.
            return "".join(ln for ln in text.splitlines(True)
                           if "lost privilege for using -C" not in ln)
        except OSError:
            return ""

    def queue(self):
        """exim -bpc: messages still in the queue."""
        p = self._run(["-bpc"])
        try:
            return int(p.stdout.decode().strip())
        except ValueError:
            return -1


if __name__ == "__main__":
    print(exim_missing() or "exim found: %s" % EXIM)
    time.sleep(0)
