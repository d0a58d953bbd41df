# SPDX-License-Identifier: BSD-2-Clause
"""Shared helpers for the integration tests: TAP output, a daemon in a
temporary directory, Postfix's own socketmap client (postmap -q), and a raw
socketmap / JSON-lines client for framing cases.

Every server a test starts lives in its own temporary directory and is
stopped by pid when the test ends; nothing leaves 127.0.0.0/8.
"""
import atexit
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time

TOP_SRCDIR = os.environ.get("top_srcdir", os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__)))))
TOP_BUILDDIR = os.environ.get("top_builddir", TOP_SRCDIR)
DAEMON = os.path.join(TOP_BUILDDIR, "tlspolicyd")
TOOL = os.path.join(TOP_BUILDDIR, "tlspolicy")
POSTMAP = shutil.which("postmap", path="/usr/sbin:/usr/bin:/sbin:/bin")

# --- TAP ---------------------------------------------------------------

_n = 0
_failed = 0


def ok(cond, name, diag=None):
    """One TAP test point; DIAG is printed when it fails."""
    global _n, _failed
    _n += 1
    print("%s %d - %s" % ("ok" if cond else "not ok", _n, name), flush=True)
    if not cond:
        _failed += 1
        if diag is not None:
            for line in str(diag).splitlines() or [""]:
                print("#   " + line, flush=True)
    return cond


def is_eq(got, want, name):
    return ok(got == want, name, "got  %r\nwant %r" % (got, want))


def done():
    print("1..%d" % _n, flush=True)
    sys.exit(1 if _failed else 0)


def bail(msg):
    print("Bail out! " + msg, flush=True)
    sys.exit(1)


# --- netstrings ------------------------------------------------------------

def netstring(payload):
    if isinstance(payload, str):
        payload = payload.encode()
    return str(len(payload)).encode() + b":" + payload + b","


def read_netstring(sock, timeout=5.0):
    """Read one netstring reply; None on EOF before any byte."""
    sock.settimeout(timeout)
    head = b""
    while not head.endswith(b":"):
        b = sock.recv(1)
        if not b:
            return None if not head else b"<eof in length>"
        head += b
        if len(head) > 12:
            raise ValueError("bad reply length %r" % head)
    n = int(head[:-1])
    data = b""
    while len(data) < n + 1:
        chunk = sock.recv(n + 1 - len(data))
        if not chunk:
            raise ValueError("eof in reply")
        data += chunk
    if data[-1:] != b",":
        raise ValueError("bad reply terminator")
    return data[:-1].decode("utf-8", "replace")


def is_closed(sock, timeout=3.0):
    """True when the peer closes SOCK within TIMEOUT (EOF or reset)."""
    sock.settimeout(timeout)
    try:
        while True:
            b = sock.recv(4096)
            if not b:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


# --- the daemon ------------------------------------------------------------

def scrape_unix(path, timeout=10):
    """GET /metrics on the metrics unix socket PATH: the body."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    buf = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        buf += b
    s.close()
    return buf.partition(b"\r\n\r\n")[2].decode()


class Daemon:
    """tlspolicyd in a temporary directory with its own sockets and store."""

    def __init__(self, extra="", policy="", server_extra="", name="t",
                 user="", dane=False, sts=False):
        self.user = user
        self.sts = sts
        # Without a test DNS world a test must not resolve anything: live
        # DNS would leave loopback.
        self.dane = dane
        self.dir = tempfile.mkdtemp(prefix="tlspolicyd-%s-" % name)
        os.chmod(self.dir, 0o755)
        self.smap = os.path.join(self.dir, "smap.sock")
        self.query = os.path.join(self.dir, "query.sock")
        self.admin = os.path.join(self.dir, "admin.sock")
        self.db = os.path.join(self.dir, "state", "cache.db")
        self.conf = os.path.join(self.dir, "tlspolicyd.conf")
        self.log = os.path.join(self.dir, "daemon.log")
        self.proc = None
        self.write_config(extra, policy, server_extra)
        atexit.register(self.cleanup)

    def config_text(self, extra="", policy="", server_extra=""):
        return ("[server]\n"
                "socketmap = unix:%s\n"
                "socketmap_group =\n"
                "query_socket = unix:%s\n"
                "admin_socket = unix:%s\n"
                "user = %s\n"
                "%s\n"
                "[dane]\n"
                "enabled = %s\n"
                "[sts]\n"
                "enabled = %s\n"
                "[cache]\n"
                "path = %s\n"
                "%s\n"
                "[policy]\n%s\n" % (self.smap, self.query, self.admin,
                                    self.user,
                                    server_extra,
                                    "yes" if self.dane else "no",
                                    "yes" if self.sts else "no",
                                    self.db, extra, policy))

    def write_config(self, extra="", policy="", server_extra=""):
        with open(self.conf, "w") as f:
            f.write(self.config_text(extra, policy, server_extra))

    def start(self, wait=True, args=(), wrap=()):
        """WRAP: a command prefix, e.g. ["prlimit", "--nofile=64:64"]."""
        # Only a "ready:" line written after this start counts.
        self.log_mark = len(self.read_log())
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen(
            list(wrap) + [DAEMON, "-f", "-v", "-c", self.conf] + list(args),
            stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        logf.close()
        if wait:
            self.wait_ready()
        return self.proc

    def wait_ready(self, timeout=10.0):
        end = time.time() + timeout
        while time.time() < end:
            if self.proc.poll() is not None:
                bail("tlspolicyd exited with %s:\n%s" %
                     (self.proc.returncode, self.read_log()))
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(self.smap)
                s.close()
                if "ready:" in self.read_log()[self.log_mark:]:
                    return
            except OSError:
                pass
            time.sleep(0.02)
        bail("tlspolicyd did not become ready:\n" + self.read_log())

    def read_log(self):
        try:
            with open(self.log, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=10.0):
        """SIGTERM and wait; returns the exit status."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return "killed"

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def cleanup(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if os.environ.get("KEEP_TMP"):
            return
        shutil.rmtree(self.dir, ignore_errors=True)

    # --- clients ----------------------------------------------------------

    def connect(self, path=None):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path or self.smap)
        return s

    def ask(self, key, name="postfix", sock=None):
        """One socketmap request on a new (or the given) connection."""
        own = sock is None
        s = sock or self.connect()
        try:
            s.sendall(netstring("%s %s" % (name, key) if isinstance(key, str)
                                else name.encode() + b" " + key))
            return read_netstring(s)
        finally:
            if own:
                s.close()

    def postmap(self, key, name="postfix"):
        """Postfix's own client: (exit status, stdout, stderr)."""
        pdir = os.path.join(self.dir, "postfix")
        if not os.path.isdir(pdir):
            os.mkdir(pdir)
            with open(os.path.join(pdir, "main.cf"), "w") as f:
                f.write("compatibility_level = 3.6\n"
                        "smtputf8_enable = yes\n"
                        "maillog_file = /dev/stdout\n")
        p = subprocess.run(
            [POSTMAP, "-c", pdir, "-q", key,
             "socketmap:unix:%s:%s" % (self.smap, name)],
            capture_output=True, timeout=30)
        return (p.returncode, p.stdout.decode("utf-8", "replace").strip(),
                p.stderr.decode("utf-8", "replace").strip())

    def settle(self, timeout=30):
        """Wait until no resolution is queued or running (background
        re-checks included); returns the last stats reply."""
        end = time.monotonic() + timeout
        while True:
            st = self.jq({"cmd": "stats"})
            if st.get("resolutions", {}).get("active", 1) == 0 or \
                    time.monotonic() > end:
                return st
            time.sleep(0.05)

    def jq(self, req, sock=None, path=None):
        """One JSON-lines request; returns the decoded reply object."""
        own = sock is None
        s = sock or self.connect(path or self.query)
        try:
            line = req if isinstance(req, (bytes, str)) else json.dumps(req)
            if isinstance(line, str):
                line = line.encode()
            s.sendall(line + b"\n")
            s.settimeout(5)
            buf = b""
            while not buf.endswith(b"\n"):
                b = s.recv(65536)
                if not b:
                    break
                buf += b
            return json.loads(buf.decode()) if buf else None
        finally:
            if own:
                s.close()

    def aq(self, req):
        """One request on the admin socket; the decoded reply."""
        return self.jq(req, sock=None, path=self.admin)

    def tool(self, *args):
        p = subprocess.run([TOOL, "-c", self.conf] + list(args),
                           capture_output=True, timeout=30)
        return (p.returncode, p.stdout.decode("utf-8", "replace"),
                p.stderr.decode("utf-8", "replace"))

    # --- the store ----------------------------------------------------------

    def put_sts(self, domain, mode, mx, max_age=86400, fetched_at=None,
                policy_id="id1"):
        """Write an MTA-STS row the way the daemon stores it (cache.h)."""
        now = int(time.time()) if fetched_at is None else fetched_at
        modes = {"none": 0, "testing": 1, "enforce": 2}
        self._exec("INSERT OR REPLACE INTO sts_policy(domain, policy_id, "
                   "mode, mx, max_age, fetched_at, expires_at) "
                   "VALUES (?,?,?,?,?,?,?)",
                   (domain, policy_id, modes[mode], "\n".join(mx), max_age,
                    now, now + max_age))

    def put_dane(self, domain, verdict, ttl=3600, checked_at=None):
        """Write a DANE verdict row (enum cache_dane_kind in cache.h)."""
        now = int(time.time()) if checked_at is None else checked_at
        kinds = {"none": 0, "dane-only": 1, "dane": 2, "nullmx": 3}
        self._exec("INSERT OR REPLACE INTO dane_verdict(domain, kind, "
                   "detail, checked_at, expires_at) VALUES (?,?,?,?,?)",
                   (domain, kinds[verdict], "test row", now, now + ttl))

    def _exec(self, sql, args):
        con = sqlite3.connect(self.db, timeout=5)
        try:
            con.execute(sql, args)
            con.commit()
        finally:
            con.close()


def run_daemon_cmd(args, timeout=15):
    p = subprocess.run([DAEMON] + args, capture_output=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    return (p.returncode, p.stdout.decode("utf-8", "replace"),
            p.stderr.decode("utf-8", "replace"))
