# SPDX-License-Identifier: BSD-2-Clause
"""Proactive MTA-STS refresh (SPEC A6.44): a stored policy whose last fetch
is [cache] refresh seconds old is fetched again in the background, with no
client asking, and fetched_at renews; a refresh that fails keeps the
policy and is logged. The clock is moved with TLSPOLICYD_CLOCK_OFFSET."""
import atexit
import os
import shutil
import sqlite3
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lab"))
from tlstest import Daemon, done, is_eq, ok  # noqa
from dnsworld import DNSWorld  # noqa
from httpsworld import HTTPSWorld  # noqa
import pki  # noqa

tmp = tempfile.mkdtemp(prefix="sts-refresh-")
# Registered first, so it runs last: after the servers below are stopped.
atexit.register(lambda: os.environ.get("KEEP_TMP") or
                shutil.rmtree(tmp, ignore_errors=True))
ca = pki.CA(os.path.join(tmp, "ca"))
w = DNSWorld()
hw = HTTPSWorld(os.path.join(tmp, "www"), ca,
                addr="127.%d.46.1" % w.slot)
POLICY = ("version: STSv1\nmode: enforce\nmx: mx1.%s\nmax_age: 604800\n")
for label in ("fresh", "broken"):
    dom = "r%s.insecure.test" % label
    hw.policy(dom, POLICY % dom)
    w.add_record("insecure.test", "r%s 300 IN MX 10 mx1.r%s" % (label,
                                                                 label))
    w.add_record("insecure.test", "_mta-sts.r%s 300 IN TXT "
                 "\"v=STSv1; id=1;\"" % label)
    w.add_record("insecure.test", "mta-sts.r%s 300 IN A %s" % (label,
                                                                hw.addr))
hw.start()
w.start()

d = Daemon(name="refresh", sts=True, extra="""
[dns]
resolvers = %s
trust_anchor = %s
timeout = 2
[cache]
refresh = 3600
""" % (w.resolver, w.trust_anchor))
with open(d.conf) as f:
    conf = f.read()
with open(d.conf, "w") as f:
    f.write(conf.replace("[sts]\nenabled = yes\n",
                         "[sts]\nenabled = yes\nca_file = %s\n"
                         "fetch_timeout = 3\n" % ca.cert_path))
d.start()
for label in ("fresh", "broken"):
    is_eq(d.ask("r%s.insecure.test" % label),
          "OK secure match=mx1.r%s.insecure.test servername=hostname"
          % label, "first lookup fetches r%s" % label)
ok("rfresh.insecure.test: new MTA-STS policy id" in d.read_log(),
   "a first policy is logged as new", d.read_log()[-1500:])
d.stop()


def row(domain):
    con = sqlite3.connect(d.db)
    try:
        return con.execute("SELECT fetched_at, expires_at, last_error FROM "
                           "sts_policy WHERE domain = ?", (domain,)).fetchone()
    finally:
        con.close()


before = {lab: row("r%s.insecure.test" % lab) for lab in ("fresh", "broken")}
ok(all(before.values()), "both policies stored", before)

# Two hours later: both are due. The broken one's host now fails.
hw.status("rbroken.insecure.test", 500)
hw.reload()
os.environ["TLSPOLICYD_CLOCK_OFFSET"] = "7200"
d.start()
deadline = time.time() + 30
while time.time() < deadline:
    after = row("rfresh.insecure.test")
    if after and after[0] > before["fresh"][0]:
        break
    time.sleep(0.5)
time.sleep(1)
after = {lab: row("r%s.insecure.test" % lab) for lab in ("fresh", "broken")}
ok(after["fresh"][0] >= before["fresh"][0] + 7200,
   "due policy re-fetched in the background: fetched_at renewed",
   (before["fresh"], after["fresh"]))
ok(after["fresh"][1] >= before["fresh"][1] + 7200,
   "its expiry moves with the new fetch", (before["fresh"], after["fresh"]))
ok(after["broken"][1] == before["broken"][1] and after["broken"][2] != "",
   "failed refresh keeps the policy and records the error",
   (before["broken"], after["broken"]))
ok("MTA-STS refresh failed" in d.read_log(),
   "failed refresh is logged for an enforce policy", d.read_log()[-800:])
is_eq(d.ask("rbroken.insecure.test"),
      "OK secure match=mx1.rbroken.insecure.test servername=hostname",
      "the kept policy is still enforced")
is_eq(d.stop(), 0, "stop")
del os.environ["TLSPOLICYD_CLOCK_OFFSET"]
hw.stop()
w.stop()
done()
