# SPDX-License-Identifier: BSD-2-Clause
"""Real Postfix in the test world: TLS sinks and a DANE-aware sender.

Tests import it (Debian's /usr/bin/python3, standard library only):

    sys.path.insert(0, os.path.join(top_srcdir, "tests", "lab"))
    from postfixworld import PostfixWorld
    pw = PostfixWorld()                       # a work directory in /tmp
    pw.add_sink("mx1", "127.0.54.11", cert=c, key=k)   # STARTTLS offered
    pw.add_sink("plain", "127.0.54.19", starttls=False)
    tx = pw.add_sender(resolv_conf=w.resolv_conf, ca_file=w.ca_cert,
                       policy_map="socketmap:unix:/x/smap.sock:postfix")
    pw.start()                                # every instance, in parallel
    m = tx.submit("user@dane311.secure.test")
    r = tx.wait([m], timeout=60)[m]           # Result: r.status "sent"...
    pw.sink("mx1").received()                 # [Mail], r.tls(), r.text
    pw.stop()                                 # also registered with atexit

Each sink and the sender is its own Postfix instance with its own
config_directory, queue_directory, data_directory and maillog_file in the
work directory; the machine's own instance (/etc/postfix) is never read,
started or touched.

Sinks: smtpd on ADDR:25 (inet_interfaces = loopback-only; the address is
on the master.cf listener line, TESTING.md), STARTTLS with the given
certificate (a file may hold the leaf and its chain) or no STARTTLS at all,
an open relay for 127.0.0.0/8 that accepts any recipient in any domain and
hands every message to a pipe(8) transport writing it to
<sink>/mail/<queue id>.eml (the Received: header says whether the message
came over TLS: smtpd_tls_received_header = yes).

The sender: no listener; mail enters with its sendmail(1) (-C the config
directory). It runs in a private mount namespace (unshare -m) where the
test's resolv.conf ("nameserver <unbound>\noptions trust-ad") is
bind-mounted over /etc/resolv.conf, so Postfix's DNS (MX, A, TLSA with the
AD bit) goes to the test resolver; the machine's own file is never
changed.  Defaults: smtp_dns_support_level = dnssec,
smtp_tls_security_level = dane, smtp_host_lookup = dns, relayhost empty,
default_transport = smtp, inet_protocols = ipv4, smtp_tls_loglevel = 1,
short queue times so that a deferral is visible within seconds.  Any
main.cf parameter may be given in MAIN (a dict) to override these.

Results come from the sender's maillog: the cleanup line ties our
Message-ID to the queue id, the smtp(8) status line gives sent / deferred /
bounced, and the lines the same smtp(8) process wrote since its previous
status line (TLS "Verified/Trusted/Untrusted/Anonymous TLS connection
established", warnings) are kept with the result.

Processes: every instance is started with `postfix -c DIR start` under
script(1) (Postfix reports start-up errors only to a terminal or syslog,
TESTING.md); its master pid comes from the pid file and its children are
found in /proc.  stop() runs `postfix -c DIR stop`, waits for those pids,
and kills the survivors with SIGKILL, by pid.  Run this file to self-check
it (needs no DNS: static transport and policy maps to [address] next hops).
"""
import atexit
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

POSTFIX = "/usr/sbin/postfix"
SENDMAIL = "/usr/sbin/sendmail"
POSTMAP = "/usr/sbin/postmap"
SCRIPT = "/usr/bin/script"
UNSHARE = "/usr/bin/unshare"

# A clean environment for every Postfix command: the machine sets
# SSL_CERT_FILE and friends (TESTING.md), and Postfix must see only ours.
_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C", "TZ": "UTC"}

# Services every instance needs; no chroot (paths are absolute and in the
# work directory), master.cf(5) columns: type private unpriv chroot wakeup
# maxproc command.
_MASTER_COMMON = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

# main.cf lines every instance shares.
_MAIN_COMMON = {
    "compatibility_level": "3.6",
    "mail_owner": "postfix",
    "setgid_group": "postdrop",
    "inet_interfaces": "loopback-only",
    "inet_protocols": "ipv4",
    "mydestination": "",
    "relay_domains": "",
    "alias_maps": "",
    "alias_database": "",
    "local_recipient_maps": "",
    "append_dot_mydomain": "no",
    "biff": "no",
    "smtputf8_enable": "no",
    "mynetworks": "127.0.0.0/8",
    "notify_classes": "",
    "smtpd_peername_lookup": "no",
    "in_flow_delay": "0",
    # A stray lookup must never leave the machine for long.
    "smtp_connect_timeout": "5s",
}

# Postfix log: "<date> <host> <syslog_name>/<service>[<pid>]: <text>"
_LOG_RE = re.compile(r"^\S+\s+\S+\s+\S+\s+\S+\s+([\w/.-]+)\[(\d+)\]: (.*)$")
_QID = r"([0-9A-Za-z]{5,})"
_STATUS_RE = re.compile(_QID + r": to=<([^>]*)>,.*?\brelay=([^,]*),.*?"
                        r"\bdsn=([^,]*),\s*status=(\w+) \((.*)\)$")
_MSGID_RE = re.compile(_QID + r": message-id=<([^>]*)>")
_QUEUED_AS_RE = re.compile(r"\bqueued as ([0-9A-Za-z]+)")


class PostfixError(RuntimeError):
    """A Postfix instance could not be configured or started."""


def tools_missing():
    """The programs this module needs that are not installed."""
    return [p for p in (POSTFIX, SENDMAIL, SCRIPT, UNSHARE)
            if not os.access(p, os.X_OK)]


def _main_cf(params):
    out = []
    for k, v in params.items():
        out.append("%s = %s" % (k, v))
    return "\n".join(out) + "\n"


def _proc_start_time(pid):
    """The start time of PID from /proc (to recognise a reused pid)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return None
    # comm may hold spaces and parentheses: split after the last ')'.
    return stat[stat.rfind(")") + 2:].split()[19]


def _children_of(root):
    """Pids of every descendant of ROOT (read from /proc)."""
    parent = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                stat = f.read()
        except OSError:
            continue
        parent[int(d)] = int(stat[stat.rfind(")") + 2:].split()[1])
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        for c, pp in parent.items():
            if pp == p:
                out.append(c)
                todo.append(c)
    return out


def _alive(pid, start):
    return start is not None and _proc_start_time(pid) == start


def port_free(addr, port=25):
    """True when nothing listens on ADDR:PORT (TCP)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


class _Instance:
    """One Postfix instance in DIR: etc/, queue/, data/, maillog."""

    def __init__(self, world, name):
        self.world = world
        self.name = name
        self.dir = os.path.join(world.dir, name)
        self.etc = os.path.join(self.dir, "etc")
        self.queue = os.path.join(self.dir, "queue")
        self.data = os.path.join(self.dir, "data")
        self.maillog = os.path.join(self.dir, "maillog")
        self.main = dict(_MAIN_COMMON)
        self.main.update({
            "queue_directory": self.queue,
            "data_directory": self.data,
            "maillog_file": self.maillog,
            "maillog_file_prefixes": world.dir,
            "syslog_name": "postfix-" + name,
            "myhostname": name + ".pfx.invalid",
        })
        self.master_extra = ""
        self.pids = []          # (pid, start time) of master and children
        self.master_pid = None
        self.start_output = ""

    # --- configuration -----------------------------------------------------

    def write_config(self):
        for d in (self.dir, self.etc, self.queue):
            os.makedirs(d, exist_ok=True)
            os.chmod(d, 0o755)
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.write(_main_cf(self.main))
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write(_MASTER_COMMON + self.master_extra)

    def postconf(self, name):
        """The effective value of main.cf parameter NAME."""
        p = subprocess.run(["/usr/sbin/postconf", "-c", self.etc, "-h",
                            name], capture_output=True, env=_ENV,
                           timeout=30)
        return p.stdout.decode("utf-8", "replace").strip()

    # --- processes ---------------------------------------------------------

    def _start_argv(self):
        return [SCRIPT, "-qec", "%s -c %s start" % (POSTFIX, self.etc),
                "/dev/null"]

    def spawn(self):
        """Begin `postfix start`; finish() waits for it."""
        self.write_config()
        self._proc = subprocess.Popen(
            self._start_argv(), stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=_ENV,
            cwd=self.dir)

    def finish(self, timeout=60):
        try:
            out, _ = self._proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            out, _ = self._proc.communicate()
        self.start_output = out.decode("utf-8", "replace")
        rc = self._proc.returncode
        pidfile = os.path.join(self.queue, "pid", "master.pid")
        end = time.time() + (10 if rc == 0 else 0.5)
        pid = None
        while time.time() < end:
            try:
                with open(pidfile) as f:
                    pid = int(f.read().strip() or "0") or None
            except (OSError, ValueError):
                pid = None
            if pid is not None and _proc_start_time(pid) is not None:
                break
            time.sleep(0.05)
        if pid is not None and _proc_start_time(pid) is not None:
            # Recorded even when start failed, so that stop() ends it.
            self.master_pid = pid
            self.pids = [(pid, _proc_start_time(pid))]
            self._note_children()
        if rc != 0 or pid is None:
            raise PostfixError("postfix %s did not start (exit %s):\n%s\n%s"
                               % (self.name, rc, self.start_output,
                                  self.log_tail()))

    def _note_children(self):
        if self.master_pid is None:
            return
        known = {p for p, _ in self.pids}
        for c in _children_of(self.master_pid):
            if c not in known:
                self.pids.append((c, _proc_start_time(c)))

    def wait_ready(self, what, timeout=20):
        """Wait until the maillog shows WHAT (a regex)."""
        end = time.time() + timeout
        while time.time() < end:
            if re.search(what, self.log()):
                return True
            time.sleep(0.05)
        return False

    def stop_begin(self):
        """Begin `postfix stop` (stop_end() waits and cleans up)."""
        self._stopper = None
        if self.master_pid is None:
            return
        self._note_children()
        self._stopper = subprocess.Popen(
            [POSTFIX, "-c", self.etc, "stop"], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=_ENV)

    def stop_end(self, timeout=10):
        """Wait for every process of ours; SIGKILL the survivors."""
        if self.master_pid is None:
            return
        if self._stopper is not None:
            try:
                self._stopper.wait(timeout)
            except subprocess.TimeoutExpired:
                self._stopper.kill()
                self._stopper.wait()
        end = time.time() + 5
        while time.time() < end and any(_alive(p, s) for p, s in self.pids):
            time.sleep(0.05)
        for p, s in self.pids:
            if _alive(p, s):
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        end = time.time() + 5
        while time.time() < end and any(_alive(p, s) for p, s in self.pids):
            time.sleep(0.05)
        self.master_pid = None

    def stop(self):
        """postfix stop, then SIGKILL any process of ours still alive."""
        self.stop_begin()
        self.stop_end()

    def alive_pids(self):
        """Pids of this instance still running (for the tests)."""
        self._note_children()
        return [p for p, s in self.pids if _alive(p, s)]

    # --- logs --------------------------------------------------------------

    def log(self):
        try:
            with open(self.maillog, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, n=30):
        return "\n".join(self.log().splitlines()[-n:])


class Mail:
    """One message a sink stored: its queue id, file and text."""

    def __init__(self, qid, path):
        self.qid = qid
        self.path = path
        with open(path, "rb") as f:
            self.text = f.read().decode("utf-8", "replace")
        head = self.text.split("\n\n", 1)[0]
        self.headers = re.sub(r"\n[ \t]+", " ", head).split("\n")

    def header(self, name):
        """Every value of header NAME, in order."""
        pre = name.lower() + ":"
        return [h[len(pre):].strip() for h in self.headers
                if h.lower().startswith(pre)]

    def message_id(self):
        ids = self.header("Message-ID")
        return ids[0].strip("<>") if ids else None

    def tls(self):
        """True when the sink's own Received: line says TLS was used."""
        rcvd = self.header("Received")
        return bool(rcvd) and "(using TLS" in rcvd[0]

    def __repr__(self):
        return "<Mail %s %s>" % (self.qid, self.message_id())


class Sink(_Instance):
    """A Postfix smtpd on ADDR:25 that stores whatever it is given."""

    def __init__(self, world, name, addr, cert=None, key=None,
                 starttls=True, hostname=None, main=None):
        super().__init__(world, name)
        if starttls and (cert is None or key is None):
            raise ValueError("a STARTTLS sink needs cert and key")
        self.addr = addr
        self.starttls = starttls
        self.mail_dir = os.path.join(self.dir, "mail")
        self.main.update({
            "myhostname": hostname or name,
            "smtpd_banner": "$myhostname ESMTP pfx sink",
            "smtpd_relay_restrictions": "permit_mynetworks, reject",
            "smtpd_recipient_restrictions": "",
            "smtpd_client_restrictions": "",
            "default_transport": "sinkstore",
            "relay_transport": "sinkstore",
            "local_transport": "sinkstore",
            "sinkstore_destination_recipient_limit": "1",
            "smtpd_tls_loglevel": "1",
            "smtpd_tls_received_header": "yes",
            "smtpd_tls_security_level": "may" if starttls else "none",
        })
        if starttls:
            self.main["smtpd_tls_cert_file"] = os.path.abspath(cert)
            self.main["smtpd_tls_key_file"] = os.path.abspath(key)
        self.main.update(main or {})
        # pipe(8) runs dd as nobody; the mail directory is sticky, open.
        self.master_extra = (
            "%s:25 inet n - n - - smtpd\n"
            "sinkstore unix - n n - - pipe\n"
            "  user=nobody argv=/bin/dd of=%s/${queue_id}.eml status=none\n"
            % (addr, self.mail_dir))

    def write_config(self):
        super().write_config()
        os.makedirs(self.mail_dir, exist_ok=True)
        os.chmod(self.mail_dir, 0o1777)

    def received(self):
        """The messages stored so far, oldest first."""
        out = []
        try:
            names = os.listdir(self.mail_dir)
        except OSError:
            return out
        for n in names:
            if n.endswith(".eml"):
                p = os.path.join(self.mail_dir, n)
                out.append((os.stat(p).st_mtime, Mail(n[:-4], p)))
        return [m for _, m in sorted(out, key=lambda t: t[0])]

    def find(self, message_id):
        """The stored message with MESSAGE_ID, or None."""
        for m in self.received():
            if m.message_id() == message_id:
                return m
        return None

    def wait_stored(self, message_id, timeout=10.0):
        """find(MESSAGE_ID), waiting up to TIMEOUT seconds: the sender logs
        "sent" once this sink has queued the message, a moment before the
        sink's own delivery stores it."""
        end = time.time() + timeout
        while True:
            m = self.find(message_id)
            if m is not None or time.time() >= end:
                return m
            time.sleep(0.05)

    def tls_sessions(self):
        """smtpd's "... TLS connection established from ..." lines."""
        return [line for line in self.log().splitlines()
                if "TLS connection established from" in line]


class Result:
    """What the sender's log says about one submitted message."""

    def __init__(self, msgid):
        self.msgid = msgid
        self.qid = None
        self.status = None      # "sent", "deferred", "bounced" or None
        self.rcpt = None
        self.relay = None
        self.dsn = None
        self.reason = None
        self.line = None
        self.lines = []         # the smtp(8) lines that led to the status
        self.sink_qid = None    # "queued as ..." in the sink's reply

    def tls(self):
        """The "<kind> TLS connection established to" lines seen."""
        return [x for x in self.lines
                if "TLS connection established to" in x]

    def verified(self):
        return any(x.startswith("Verified TLS connection established to")
                   for x in self.tls())

    def __repr__(self):
        return "<Result %s %s %s %s>" % (self.msgid, self.qid, self.status,
                                         self.reason)


class Sender(_Instance):
    """The sending Postfix with its own resolv.conf and policy map."""

    def __init__(self, world, name="sender", resolv_conf=None, ca_file=None,
                 policy_map=None, security_level="dane", transport=None,
                 main=None):
        super().__init__(world, name)
        self.resolv_conf = resolv_conf
        self.main.update({
            "relayhost": "",
            "default_transport": "smtp",
            "relay_transport": "smtp",
            "smtp_host_lookup": "dns",
            "smtp_dns_support_level": "dnssec",
            "smtp_tls_security_level": security_level,
            "smtp_tls_loglevel": "1",
            "smtp_address_preference": "ipv4",
            "minimal_backoff_time": "10s",
            "maximal_backoff_time": "20s",
            "queue_run_delay": "5s",
            "maximal_queue_lifetime": "1h",
            "bounce_queue_lifetime": "1h",
            "smtp_helo_timeout": "10s",
            "smtp_starttls_timeout": "10s",
            "delay_warning_time": "0",
        })
        if ca_file:
            self.main["smtp_tls_CAfile"] = os.path.abspath(ca_file)
        if policy_map:
            self.main["smtp_tls_policy_maps"] = policy_map
        if transport:
            path = os.path.join(self.dir, "transport")
            self._transport = transport
            self.main["transport_maps"] = "texthash:" + path
        self.main.update(main or {})
        self._n = 0
        self._submitted = {}

    def write_config(self):
        super().write_config()
        if self.main.get("transport_maps", "").startswith("texthash:"):
            with open(self.main["transport_maps"][9:], "w") as f:
                for k, v in self._transport.items():
                    f.write("%s %s\n" % (k, v))

    def _start_argv(self):
        if self.resolv_conf is None:
            return super()._start_argv()
        # SPEC B prerequisites: Postfix's resolver is the test's validating
        # resolver.  A private mount namespace (propagation private, the
        # unshare default) keeps the bind mount away from the machine.
        inner = "mount --bind %s /etc/resolv.conf && exec %s" % (
            _shq(os.path.abspath(self.resolv_conf)),
            " ".join(_shq(a) for a in super()._start_argv()))
        return [UNSHARE, "-m", "--propagation", "private", "/bin/sh", "-c",
                inner]

    def resolv_conf_seen(self):
        """/etc/resolv.conf as the running master sees it."""
        try:
            with open("/proc/%d/root/etc/resolv.conf" % self.master_pid) as f:
                return f.read()
        except (OSError, TypeError):
            return None

    def submit(self, rcpt, sender=None, subject=None, body="test\n"):
        """Send one message with sendmail -C; returns its Message-ID."""
        self._n += 1
        msgid = "pfx.%d.%d.%s@%s" % (os.getpid(), self._n,
                                     os.urandom(4).hex(),
                                     self.main["myhostname"])
        sender = sender or "tester@" + self.main["myhostname"]
        text = ("From: <%s>\nTo: <%s>\nSubject: %s\nMessage-ID: <%s>\n\n%s"
                % (sender, rcpt, subject or "pfx test to " + rcpt, msgid,
                   body))
        p = subprocess.run([SENDMAIL, "-C", self.etc, "-i", "-f", sender,
                            "--", rcpt], input=text.encode(),
                           capture_output=True, env=_ENV, timeout=30)
        if p.returncode != 0:
            raise PostfixError("sendmail failed (%d): %s" % (
                p.returncode, (p.stdout + p.stderr).decode("utf-8",
                                                           "replace")))
        self._submitted[msgid] = rcpt
        return msgid

    def results(self, msgids=None):
        """Parse the maillog: a dict Message-ID -> Result."""
        want = set(msgids if msgids is not None else self._submitted)
        res = {m: Result(m) for m in want}
        by_qid = {}
        pending = {}            # smtp pid -> lines since its last status
        for raw in self.log().splitlines():
            m = _LOG_RE.match(raw)
            if not m:
                continue
            service, pid, text = m.group(1), m.group(2), m.group(3)
            mm = _MSGID_RE.match(text)
            if mm and "/cleanup" in service and mm.group(2) in res:
                r = res[mm.group(2)]
                if r.qid is None:
                    r.qid = mm.group(1)
                    by_qid[r.qid] = r
                continue
            if "/smtp" not in service and "/error" not in service \
                    and "/qmgr" not in service:
                continue
            ms = _STATUS_RE.match(text)
            if ms:
                lines = pending.pop(pid, []) if "/smtp" in service else []
                r = by_qid.get(ms.group(1))
                if r is None or r.status is not None:
                    continue
                r.rcpt, r.relay, r.dsn = ms.group(2), ms.group(3), \
                    ms.group(4)
                r.status, r.reason = ms.group(5), ms.group(6)
                r.line = text
                r.lines = lines + [text]
                mq = _QUEUED_AS_RE.search(r.reason)
                r.sink_qid = mq.group(1) if mq else None
            elif "/smtp" in service:
                pending.setdefault(pid, []).append(text)
        return res

    def wait(self, msgids, timeout=60):
        """Wait until every message in MSGIDS has a status; a dict
        Message-ID -> Result (status None for those that timed out)."""
        end = time.time() + timeout
        while True:
            res = self.results(msgids)
            if all(r.status is not None for r in res.values()) \
                    or time.time() >= end:
                return res
            time.sleep(0.2)


def _shq(s):
    return "'" + s.replace("'", "'\\''") + "'"


class PostfixWorld:
    """A work directory holding any number of sinks and senders."""

    def __init__(self, workdir=None):
        missing = tools_missing()
        if missing:
            raise RuntimeError("postfixworld needs: " + " ".join(missing))
        self.own_dir = workdir is None
        self.dir = os.path.realpath(workdir or tempfile.mkdtemp(
            prefix="postfixworld-"))
        os.makedirs(self.dir, exist_ok=True)
        # Postfix's unprivileged processes walk this path (0700 from
        # mkdtemp would lock them out).
        os.chmod(self.dir, 0o755)
        self.instances = {}
        self.started = False
        atexit.register(self.stop)

    def _add(self, inst):
        if inst.name in self.instances:
            raise ValueError("instance %s exists" % inst.name)
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", inst.name):
            raise ValueError("bad instance name %r" % inst.name)
        self.instances[inst.name] = inst
        return inst

    def add_sink(self, name, addr, cert=None, key=None, starttls=True,
                 hostname=None, main=None):
        """A sink called NAME on ADDR:25; see Sink."""
        return self._add(Sink(self, name, addr, cert, key, starttls,
                              hostname, main))

    def add_sender(self, name="sender", **kw):
        """A sender; keywords as Sender()."""
        return self._add(Sender(self, name, **kw))

    def sink(self, name):
        return self.instances[name]

    def start(self):
        """Start every instance (in parallel); raise when one fails."""
        for i in self.instances.values():
            if isinstance(i, Sink) and not port_free(i.addr):
                raise PostfixError("%s:25 is in use" % i.addr)
        todo = [i for i in self.instances.values() if i.master_pid is None]
        for i in todo:
            i.spawn()
        self.started = True
        err = []
        for i in todo:
            try:
                i.finish()
            except PostfixError as e:
                err.append(str(e))
        if err:
            raise PostfixError("\n".join(err))
        # The sinks must be listening before the first delivery.
        for i in todo:
            if isinstance(i, Sink) and not _wait_listen(i.addr, 25, 20):
                raise PostfixError("sink %s: nothing answers on %s:25\n%s" %
                                   (i.name, i.addr, i.log_tail()))
        return self

    def pids(self):
        """Pids of every Postfix process this world started and that runs."""
        return [p for i in self.instances.values() for p in i.alive_pids()]

    def stop(self):
        """Stop every instance; remove the work directory if it is ours."""
        # In parallel: each `postfix stop` takes a second or two.
        for i in self.instances.values():
            try:
                i.stop_begin()
            except Exception:          # keep stopping the others
                pass
        for i in self.instances.values():
            try:
                i.stop_end()
            except Exception:
                pass
        if self.own_dir and not os.environ.get("KEEP_TMP") and self.started:
            shutil.rmtree(self.dir, ignore_errors=True)
        self.started = False


def _wait_listen(addr, port, timeout):
    end = time.time() + timeout
    while time.time() < end:
        try:
            with socket.create_connection((addr, port), timeout=1) as s:
                s.settimeout(5)
                if s.recv(512).startswith(b"220"):
                    s.sendall(b"QUIT\r\n")
                    return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


# --- self-check (no DNS needed) ---------------------------------------------

def _free_base():
    for b in range(200, 250):
        if all(port_free("127.%d.55.%d" % (b, n)) for n in (1, 2, 3)):
            return b
    raise RuntimeError("no free 127.B.55.x addresses")


def _selfcheck():
    import sys
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import pki
    n = 0
    failed = 0

    def ok(cond, what, diag=None):
        nonlocal n, failed
        n += 1
        print("%s %d - %s" % ("ok" if cond else "not ok", n, what),
              flush=True)
        if not cond:
            failed += 1
            for line in str(diag or "").splitlines():
                print("#   " + line)

    pw = PostfixWorld()
    ca = pki.CA(os.path.join(pw.dir, "pki"))
    cert, key = ca.issue("sink-a.pfx.invalid")
    b = _free_base()
    a1, a2, a3 = ("127.%d.55.%d" % (b, i) for i in (1, 2, 3))
    pw.add_sink("a", a1, cert, key, hostname="sink-a.pfx.invalid")
    pw.add_sink("b", a2, starttls=False, hostname="sink-b.pfx.invalid")
    pol = os.path.join(pw.dir, "policy")
    with open(pol, "w") as f:
        f.write("[%s]:25 secure match=sink-a.pfx.invalid\n"
                "[%s]:25 encrypt\n" % (a1, a2))
    tx = pw.add_sender(ca_file=ca.cert_path, security_level="may",
                       policy_map="texthash:" + pol,
                       main={"smtp_dns_support_level": "",
                             "smtp_host_lookup": "native"},
                       transport={"a.pfx.invalid": "smtp:[%s]:25" % a1,
                                  "b.pfx.invalid": "smtp:[%s]:25" % a2,
                                  "c.pfx.invalid": "smtp:[%s]:25" % a3})
    t0 = time.time()
    pw.start()
    ok(len(pw.pids()) >= 9, "three instances run (%d processes, %.1fs)" %
       (len(pw.pids()), time.time() - t0))
    ma = tx.submit("u@a.pfx.invalid")
    mb = tx.submit("u@b.pfx.invalid")
    mc = tx.submit("u@c.pfx.invalid")
    res = tx.wait([ma, mb, mc], timeout=60)
    ok(res[ma].status == "sent", "a: sent", res[ma].lines)
    ok(res[ma].verified(), "a: Verified TLS", res[ma].lines)
    got = pw.sink("a").find(ma)
    ok(got is not None and got.tls(), "a: stored by sink a, over TLS",
       got and got.text)
    ok(got is not None and got.qid == res[ma].sink_qid,
       "a: the sink's queue id is in the sender's log")
    ok(res[mb].status == "deferred" and
       "TLS is required, but was not offered" in res[mb].reason,
       "b: no STARTTLS under encrypt: deferred", res[mb].line)
    ok(pw.sink("b").received() == [], "b: nothing stored")
    ok(res[mc].status == "deferred", "c: nobody listens: deferred",
       res[mc].line)
    pids = pw.pids()
    pw.stop()
    ok(not any(_proc_start_time(p) for p in pids), "no process survives")
    print("1..%d" % n)
    return 1 if failed else 0


if __name__ == "__main__":
    import sys
    sys.exit(_selfcheck())
