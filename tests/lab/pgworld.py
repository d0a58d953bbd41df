# SPDX-License-Identifier: BSD-2-Clause
"""A PostgreSQL 15 for a test: initdb in a temporary directory, run as
nobody, a Unix socket in that directory (no TCP listener), a password in
a libpq passfile; pg_ctl starts and stops it (no system service)."""
import os
import shutil
import subprocess

PGBIN = "/usr/lib/postgresql/15/bin"


def installed():
    return os.path.exists(os.path.join(PGBIN, "initdb"))


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

    def stop(self):
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
