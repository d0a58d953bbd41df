# SPDX-License-Identifier: BSD-2-Clause
"""No TLS-RPT reports in the example's name (issue 10 item 13).

[tlsrpt] enabled = yes with organization, contact, submitter or from left
empty or at the example value is refused by `tlspolicyd -n`, refuses to
start, and a SIGHUP reload to such a file keeps the running config (the
daemon goes on counting). The error names the options in plain words. A
reload that changes the report store or the identity says, per setting,
that a restart applies it.
"""
import os
import signal
import socket
import subprocess
import sys
import time
import json

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tlstest import DAEMON, Daemon, done, is_eq, ok  # noqa: E402

d = Daemon(name="tlsrpt-config")
rsock = os.path.join(d.dir, "run", "tlsrpt.sock")
BASE = ("[tlsrpt]\n"
        "enabled = yes\n"
        "socket = %s\n"
        "socket_group =\n"
        "sendmail = /bin/false\n" % rsock)
GOOD = BASE + ("organization = Test Org\n"
               "contact = mailto:tlsrpt@sender.test\n"
               "submitter = sender.test\n"
               "from = tlsrpt-noreply@sender.test\n")
WANT = ("[tlsrpt] enabled = yes, but organization, contact, submitter, from "
        "are empty or still the example value: set [tlsrpt] organization, "
        "contact, submitter and from to your own before reports are sent "
        "in your name")

# The example identity: -n and start refuse.
d.write_config(extra=BASE)
p = subprocess.run([DAEMON, "-n", "-c", d.conf], capture_output=True,
                   timeout=30)
is_eq(p.returncode, 1, "-n refuses the example identity")
err = p.stderr.decode()
ok(WANT in err, "-n names the options", err)
p = subprocess.run([DAEMON, "-f", "-c", d.conf], capture_output=True,
                   timeout=30)
is_eq(p.returncode, 1, "start refused")
ok(WANT in p.stderr.decode(), "start says why", p.stderr.decode())
ok(not os.path.exists(rsock), "no datagram socket bound")

# Only submitter missing: named alone.
d.write_config(extra=GOOD.replace("submitter = sender.test\n",
                                  "submitter =\n"))
p = subprocess.run([DAEMON, "-n", "-c", d.conf], capture_output=True,
                   timeout=30)
is_eq(p.returncode, 1, "-n refuses an empty submitter")
ok("but submitter is empty or still the example value" in
   p.stderr.decode(), "only submitter named", p.stderr.decode())

# A good identity starts; a reload to the example identity is refused.
d.write_config(extra=GOOD)
p = subprocess.run([DAEMON, "-n", "-c", d.conf], capture_output=True,
                   timeout=30)
is_eq(p.returncode, 0, "-n accepts an identity of one's own")
d.start()
d.write_config(extra=BASE)
mark = len(d.read_log())
d.signal(signal.SIGHUP)
end = time.time() + 10
while time.time() < end and "reload failed" not in d.read_log()[mark:]:
    time.sleep(0.1)
log = d.read_log()[mark:]
ok("reload failed, keeping the running config" in log and WANT in log,
   "reload refused, running config kept", log)
ok(d.alive(), "daemon still running")
c = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
c.sendto(b'{"d":"after.example","policies":[{"policy-type":9,"t":0,'
         b'"f":0}]}', rsock)
c.close()
d.write_config(extra=GOOD)     # the tool reads the store through it
end = time.time() + 10
rows = []
while time.time() < end:
    rc, out, _ = d.tool("-j", "report", "list")
    rows = [json.loads(x) for x in out.splitlines() if x.strip()]
    if any(x.get("domain") == "after.example" for x in rows):
        break
    time.sleep(0.2)
ok(any(x.get("domain") == "after.example" and x.get("success") == 1
       for x in rows), "still collecting with the running config", rows)

# A reload that changes the report store or the reporting identity: they
# were opened and copied at start, so the daemon says a restart applies
# them, naming each one.
d.write_config(extra=GOOD.replace("Test Org", "Other Org") +
               "store = %s\n" % os.path.join(d.dir, "other-tlsrpt.db"))
mark = len(d.read_log())
d.signal(signal.SIGHUP)
end = time.time() + 10
while time.time() < end and "reloaded" not in d.read_log()[mark:]:
    time.sleep(0.1)
log = d.read_log()[mark:]
ok("[tlsrpt] store changed; restart tlspolicyd to apply it" in log and
   "[tlsrpt] organization changed; restart tlspolicyd to apply it" in log,
   "a reload names the [tlsrpt] settings that need a restart", log)
ok(not os.path.exists(os.path.join(d.dir, "other-tlsrpt.db")),
   "and does not open the new store meanwhile")
ok(d.alive(), "daemon still running")
d.stop()
done()
