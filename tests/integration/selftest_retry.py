# SPDX-License-Identifier: BSD-2-Clause
"""The trust anchor self-test retried while DNS is silent (issue 10): a
resolver that does not answer at start-up is no answer (the daemon starts,
warns, serves from its store and tries again every 60 s); when the same
resolver later answers SERVFAIL for the anchor's zone, that is an answer
that cannot validate, and the daemon stops with the reason in words.

The resolver is a few lines here on 127.0.0.1 (silent first, then
SERVFAIL to everything); nothing else is asked. Takes about a minute: the
retry interval is the daemon's own."""
import os
import socket
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lab"))
from tlstest import Daemon, done, is_eq, ok  # noqa: E402
from dnsworld import _Servfail  # noqa: E402

RETRY = 60  # SELFTEST_RETRY_S in daemon/main.c


class Flip:
    """UDP on 127.0.0.1:PORT: drops queries until .servfail is set, then
    answers each with SERVFAIL."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.servfail = False
        self.asked = 0
        self.stopping = False
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while not self.stopping:
            try:
                q, peer = self.sock.recvfrom(65535)
            except (socket.timeout, OSError):
                continue
            self.asked += 1
            r = _Servfail.answer(q) if self.servfail else None
            if r is not None:
                self.sock.sendto(r, peer)

    def close(self):
        self.stopping = True
        self.thread.join(2)
        self.sock.close()


f = Flip()
d = Daemon(name="stretry", dane=True, policy="static.example = dane-only\n",
           extra="[dns]\nresolvers = 127.0.0.1@%d\ntimeout = 1\n" % f.port)
d.start(wait=False)
d.wait_ready(timeout=20)
log = d.read_log()
ok("dns: no answer for . SOA: timeout; answering from the store until DNS "
   "answers" in log, "silent resolver at start-up: a warning, the daemon "
   "runs", log[-600:])
ok(f.asked > 0, "the resolver was asked")
is_eq(d.ask("static.example"), "OK dane-only", "serving while DNS is silent")

# The resolver now answers, with SERVFAIL: the next retry must stop the
# daemon (before, a SERVFAIL was read as "no answer" forever).
f.servfail = True
t0 = time.time()
try:
    rc = d.proc.wait(RETRY + 20)
except Exception:  # noqa: BLE001
    rc = None
took = time.time() - t0
log = d.read_log()
is_eq(rc, 1, "the retry got SERVFAIL: the daemon stopped (exit 1)")
ok(took <= RETRY + 15, "stopped at the next retry (%.0f s)" % took)
ok("the resolver 127.0.0.1@%d answered rcode SERVFAIL for . SOA, the zone "
   "the trust anchor is for" % f.port in log and
   "point [dns] resolvers at a resolver that resolves ." in log,
   "it says which resolver answered what, and what to change", log[-800:])
f.close()
done()
