# SPDX-License-Identifier: BSD-2-Clause
"""A PostgreSQL 15 for a test: initdb in a temporary directory, run as
nobody, a Unix socket in that directory (no TCP listener), a password in
a libpq passfile; pg_ctl starts and stops it (no system service)."""
import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

PGBIN = "/usr/lib/postgresql/15/bin"


# A resolver address where nothing listens: a daemon's DNS is silent.
DEAD_DNS = "127.0.0.2@5353"
# The daemon's poll of other hosts' rows: every 10 s plus up to 1 s
# (daemon/main.c PG_POLL_S, PG_JITTER_MS); the margin covers the query
# and a test's own steps.
POLL_BOUND = 10 + 1 + 3


def installed():
    return os.path.exists(os.path.join(PGBIN, "initdb"))


def skip_unless_installed():
    """End a TAP test with a skip when PostgreSQL 15 is not there."""
    if not installed():
        print("1..0 # SKIP PostgreSQL 15 is not installed (postgresql-15)")
        sys.exit(0)


def temp_world(prefix):
    """A temporary directory (0755: the server runs as nobody below it)
    and a PGWorld in it, stopped and removed at exit (kept with
    KEEP_TMP): (tmp, pg)."""
    tmp = tempfile.mkdtemp(prefix=prefix)
    os.chmod(tmp, 0o755)
    pg = PGWorld(tmp)

    def cleanup():
        pg.stop()
        if not os.environ.get("KEEP_TMP"):
            shutil.rmtree(tmp, ignore_errors=True)

    atexit.register(cleanup)
    return tmp, pg


def wait_for(fn, want, secs):
    """Call FN until it returns WANT or SECS pass; (last value, seconds)."""
    t0 = time.monotonic()
    got = fn()
    while got != want and time.monotonic() - t0 < secs:
        time.sleep(0.2)
        got = fn()
    return got, time.monotonic() - t0


class PGWorld:
    def __init__(self, tmp, db="tlspolicyd", password="s3cret"):
        self.dir = os.path.join(tmp, "pg")
        os.mkdir(self.dir)
        shutil.chown(self.dir, "nobody", "nogroup")
        self.data = os.path.join(self.dir, "data")
        self.sock = self.dir
        self.db = db
        pwfile = os.path.join(self.dir, "pw")
        with open(pwfile, "w") as f:
            f.write(password + "\n")
        shutil.chown(pwfile, "nobody", "nogroup")
        self.passfile = os.path.join(tmp, "pgpass")
        with open(self.passfile, "w") as f:
            f.write("*:*:*:tlspolicyd:%s\n" % password)
        os.chmod(self.passfile, 0o600)
        self.running = False
        self.frozen = []
        self._nobody(os.path.join(PGBIN, "initdb"), "-D", self.data, "-U",
                     "tlspolicyd", "--auth=scram-sha-256",
                     "--pwfile=" + pwfile, "-E", "UTF8")

    def uri(self, passfile=None, db=None):
        return ("postgresql:///%s?host=%s&user=tlspolicyd&passfile=%s"
                "&connect_timeout=2" % (db or self.db, self.sock,
                                        passfile or self.passfile))

    def _nobody(self, *args, check=True):
        return subprocess.run(["runuser", "-u", "nobody", "--"] + list(args),
                              stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, cwd=self.dir,
                              check=check)

    def start(self):
        self._nobody(os.path.join(PGBIN, "pg_ctl"), "-D", self.data, "-w",
                     "-s", "-l", os.path.join(self.dir, "log"), "-o",
                     "-k %s -c listen_addresses=''" % self.sock, "start")
        self.running = True

    def pids(self):
        """The postmaster and its children (the backends, the writers)."""
        with open(os.path.join(self.data, "postmaster.pid")) as f:
            master = int(f.readline())
        pids = [master]
        for ent in os.listdir("/proc"):
            if not ent.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % ent) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == master:
                pids.append(int(ent))
        return pids

    def freeze(self):
        """Hang the server: every process stopped (SIGSTOP), so its socket
        still accepts connections and nothing ever answers, as a server
        stuck on a full disk or a dead network path does."""
        self.frozen = []
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGSTOP)
            except ProcessLookupError:
                continue      # a backend that ended meanwhile
            self.frozen.append(pid)

    def thaw(self):
        for pid in self.frozen:
            try:
                os.kill(pid, signal.SIGCONT)
            except OSError:
                pass
        self.frozen = []

    def stop(self):
        self.thaw()
        self._nobody(os.path.join(PGBIN, "pg_ctl"), "-D", self.data, "-w",
                     "-s", "-m", "fast", "stop", check=False)
        self.running = False

    def psql(self, sql, db=None):
        r = subprocess.run(
            [os.path.join(PGBIN, "psql"), "-X", "-q", "-t", "-A", "-v",
             "ON_ERROR_STOP=1", "-c", sql,
             "postgresql:///%s?host=%s&user=tlspolicyd&passfile=%s" %
             (db or self.db, self.sock, self.passfile)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            raise RuntimeError("psql %s: %s" % (sql, r.stdout))
        return r.stdout.strip()
