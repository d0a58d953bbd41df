# SPDX-License-Identifier: BSD-2-Clause
"""systemd integration without libsystemd (issue 12): the daemon sends
READY=1 to $NOTIFY_SOCKET once its listeners accept, RELOADING=1 (with
MONOTONIC_USEC) then READY=1 around SIGHUP, STOPPING=1 at SIGTERM; the
test reads the datagrams from a socket it creates (a path, then an
abstract name). With $JOURNAL_STREAM naming its stderr the daemon writes
"<PRI>text" lines, no "tlspolicyd[PID]:" (the journal adds that), and
warnings at priority 4; without it the lines keep the prefix."""
import os
import re
import signal
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from tlstest import Daemon, done, is_eq, ok  # noqa


def recv_all(sock, want, timeout=10.0):
    """Datagrams until one equals or starts with WANT."""
    got = []
    end = time.time() + timeout
    while time.time() < end:
        sock.settimeout(max(0.05, end - time.time()))
        try:
            m = sock.recv(4096).decode()
        except socket.timeout:
            break
        got.append(m)
        if m.split("\n")[0] == want:
            break
    return got


d = Daemon(name="notify")
path = os.path.join(d.dir, "notify.sock")
ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
ns.bind(path)
os.environ["NOTIFY_SOCKET"] = path
open(d.log, "a").close()
os.environ["JOURNAL_STREAM"] = "%d:%d" % (os.stat(d.log).st_dev,
                                          os.stat(d.log).st_ino)
# Start without waiting: READY=1 is what says it is up.
d.start(wait=False)
got = recv_all(ns, "READY=1")
is_eq(got[-1:] , ["READY=1"], "READY=1 once the daemon is up")
ok(d.connect() is not None, "the socketmap listener accepts after READY=1")
d.signal(signal.SIGHUP)
got = recv_all(ns, "READY=1")
ok(len(got) == 2 and got[0].startswith("RELOADING=1\nMONOTONIC_USEC=")
   and got[1] == "READY=1", "SIGHUP: RELOADING=1, then READY=1", got)
d.signal(signal.SIGTERM)
got = recv_all(ns, "STOPPING=1")
is_eq(got[-1:], ["STOPPING=1"], "SIGTERM: STOPPING=1")
d.proc.wait(10)

log = d.read_log()
lines = [x for x in log.splitlines() if x]
ok(lines and all(re.match(r"^<[0-7]>", x) for x in lines),
   "under journald every line starts with <PRI>", lines[:5])
ok(not any("tlspolicyd[" in x for x in lines),
   "under journald no tlspolicyd[PID]: prefix", lines[:5])
ok(any(re.match(r"^<6>ready: ", x) for x in lines), "info at <6>")
ok(any(re.match(r"^<6>reloaded ", x) for x in lines), "reload logged")

# A warning at warning priority: an unknown socketmap name.
d.start(wait=False)
recv_all(ns, "READY=1")
d.ask("x.example", name="nosuchmap")
d.stop()
log = d.read_log()
ok(re.search(r"^<4>warning: socketmap: unknown map name", log, re.M),
   "a warning is logged at <4>", log[-500:])

# The abstract namespace ("@name").
ns.close()
name = "tlspolicyd-test-%d" % os.getpid()
ab = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
ab.bind("\0" + name)
os.environ["NOTIFY_SOCKET"] = "@" + name
d.start(wait=False)
is_eq(recv_all(ab, "READY=1")[-1:], ["READY=1"],
      "READY=1 to an abstract socket")
d.stop()

# Without JOURNAL_STREAM (or naming another stream): the usual prefix.
del os.environ["NOTIFY_SOCKET"]
os.environ["JOURNAL_STREAM"] = "1:1"
mark = len(d.read_log())
d.start()
d.stop()
tail = d.read_log()[mark:]
ok(re.search(r"^tlspolicyd\[\d+\]: ready: ", tail, re.M),
   "stderr not the journal: tlspolicyd[PID]: prefix kept", tail[:300])
del os.environ["JOURNAL_STREAM"]
done()
