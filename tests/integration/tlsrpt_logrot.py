# SPDX-License-Identifier: BSD-2-Clause
"""The Postfix 3.7 log follower across a rotation it cannot read (issue 10
item 12).

Debian 12's rsyslog creates each new mail.log root:adm 0640 at rotation,
which the daemon's user cannot read unless it is in group adm. The daemon
starts as root, opens the mail log and drops to user nobody. Sessions are
logged, the file is rotated (renamed to mail.log.1) and a new mail.log is
created root-only (0600) while more sessions are logged to it: the old
file is read to its end, the new one cannot be opened, which is logged as
a warning in plain words, once however many ticks it lasts (rate-limited),
and counted each time (the "log-unreadable" counter). Once the file is
made readable the follower reads it from its start: every session is
counted, none twice.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tlstest import Daemon, done, is_eq, ok  # noqa: E402

d = Daemon(name="tlsrpt-logrot", user="nobody")
maillog = os.path.join(d.dir, "mail.log")
with open(maillog, "w"):
    pass
os.chmod(maillog, 0o600)        # root only, like a real mail log
d.write_config(extra=("[tlsrpt]\n"
                      "enabled = yes\n"
                      "socket =\n"
                      "postfix_log = %s\n"
                      "organization = Test Org\n"
                      "contact = mailto:tlsrpt@sender.test\n"
                      "submitter = sender.test\n"
                      "from = tlsrpt-noreply@sender.test\n"
                      "sendmail = /bin/false\n" % maillog))
d.start()
CIPHER = (": TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) "
          "key-exchange X25519 server-signature RSA-PSS (2048 bits) "
          "server-digest SHA256")
pid = [600]


def sessions(path, n):
    """Append N finished sessions to rot.example, each its own process."""
    stamp = time.strftime("%b %d %H:%M:%S")
    with open(path, "a") as f:
        for _ in range(n):
            pid[0] += 1
            f.write("%s mta postfix/smtp[%d]: Verified TLS connection "
                    "established to mx.rot.example[192.0.2.10]:25%s\n"
                    % (stamp, pid[0], CIPHER))
            f.write("%s mta postfix/smtp[%d]: 1A%04d: to=<u@rot.example>, "
                    "relay=mx.rot.example[192.0.2.10]:25, delay=1, "
                    "delays=0/0/1/0, dsn=2.0.0, status=sent (250 ok)\n"
                    % (stamp, pid[0], pid[0]))


def listing():
    rc, out, err = d.tool("-j", "report", "list")
    rows = [json.loads(x) for x in out.splitlines() if x.strip()]
    counted = next((x.get("success") for x in rows
                    if x.get("domain") == "rot.example" and
                    "success" in x), 0)
    counters = {x["counter"]: x["value"] for x in rows if "counter" in x}
    return counted, counters


def wait_for(pred, secs=15):
    end = time.time() + secs
    got = listing()
    while time.time() < end and not pred(got):
        time.sleep(0.2)
        got = listing()
    return got


sessions(maillog, 5)
counted, _ = wait_for(lambda g: g[0] >= 5)
is_eq(counted, 5, "five sessions read as user nobody (opened as root)")

# Rotation: the rest of the old file, then a new file root-only.
sessions(maillog, 2)
os.rename(maillog, maillog + ".1")
fd = os.open(maillog, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
os.close(fd)
sessions(maillog, 4)
mark = len(d.read_log())
counted, counters = wait_for(lambda g: g[1].get("log-unreadable", 0) >= 4)
is_eq(counted, 7, "the old file read to its end after the rotation")
ok(counters.get("log-unreadable", 0) >= 4,
   "each failed try counted (log-unreadable)", counters)
log = d.read_log()[mark:]
warn = [x for x in log.splitlines() if "cannot read the mail log" in x]
is_eq(len(warn), 1, "one warning while it lasts (rate-limited)")
ok(warn and "Permission denied" in warn[0] and maillog in warn[0] and
   "adduser tlspolicyd adm" in warn[0], "the warning says what to do",
   warn)
ok(warn and "warning" in warn[0], "logged as a warning", warn)

# Readable again (e.g. the user was added to adm): nothing was lost.
sessions(maillog, 3)
os.chmod(maillog, 0o644)
counted, counters = wait_for(lambda g: g[0] >= 14)
is_eq(counted, 14, "every session counted once the file is readable")
time.sleep(1.2)
counted, _ = listing()
is_eq(counted, 14, "none counted twice")
ok("reading the mail log %s again" % maillog in d.read_log(),
   "the recovery is logged")
sessions(maillog, 1)
counted, _ = wait_for(lambda g: g[0] >= 15)
is_eq(counted, 15, "followed on after the recovery")
ok(d.alive(), "daemon alive")
d.stop()
done()
