# SPDX-License-Identifier: BSD-2-Clause
"""The daemon on its default DNS settings (full recursion from the public
root, DNSSEC against /usr/share/dns/root.key) on a machine with no
network. make check runs every integration test in a network namespace
that has only loopback (tests/lab/isolated), so nothing here can leave the
machine; run by hand elsewhere, the test refuses to start. The daemon
starts, warns that DNS does not answer, and a domain it knows nothing
about gets "OK dane" at once (a failed lookup, SPEC B D6): getdns's
recursion hands back its own query when no server can be reached, which
must not read as "no records", i.e. as a domain without DANE."""
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from tlstest import Daemon, bail, done, is_eq, ok  # noqa

with open("/proc/self/net/dev") as f:
    ifaces = [line.split(":")[0].strip() for line in f if ":" in line]
if ifaces != ["lo"]:
    bail("needs a network namespace with only loopback (make check runs "
         "it through tests/lab/isolated); interfaces here: %s" % ifaces)

d = Daemon(name="offline", dane=True)
d.start()
log = d.read_log()
ok("no answer for . SOA" in log,
   "it starts without DNS and says DNS does not answer", log[-800:])
ok("does not validate" not in log,
   "no answer is not taken for a trust anchor that does not validate",
   log[-800:])
t = time.time()
is_eq(d.ask("example.com"), "OK dane",
      "an unknown domain gets dane (the lookup failed)")
ok(time.time() - t < 5, "at once, not after a timeout (%.1f s)" %
   (time.time() - t))
ok("DANE lookup failed" in d.read_log(), "the failed lookup is logged",
   d.read_log()[-800:])
ok(d.alive(), "the daemon keeps running")
is_eq(d.stop(), 0, "stop")
done()
