#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-2-Clause
"""known.py: known answers never wait (DESIGN 6.9), measured in one run;
started by bench/known.sh inside a network namespace with only loopback.

A store of BENCH_POLICIES MTA-STS enforce policies whose TXT re-checks
are due (fetched an hour ago) and no DANE verdicts, so every first lookup
has background work to start. The domains are in the test world's
unsigned zone insecure.test (tests/lab/dnsworld.py: a private signed
root, NSD, a validating unbound), each with an MX record and its
_mta-sts TXT record carrying the stored id. Each pass is a cold pass
over every key (loadgen -o, BENCH_CONNS connections):

  up-1       first lookups with DNS up (the world's unbound answers)
  silent-1   the same first lookups, from the same store, with the
             resolver silent (a UDP socket on loopback that never answers)
  silent-2   the same keys again, re-checks still hanging
  restart-1  after a restart with the populated store, DNS still silent
  restart-2  the same keys again

Targets (issue 9): p99 of silent-1 within 2x of up-1, and of restart-1
within 2x of restart-2. Every answer must be the stored policy's.
"""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else ".")
SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(SRC, "tests", "lab"))
from dnsworld import DNSWorld  # noqa: E402

N = int(os.environ.get("BENCH_POLICIES", "20000"))
CONNS = int(os.environ.get("BENCH_CONNS", "100"))
KEEP = os.environ.get("BENCH_KEEP", "0") == "1"
LOADGEN = os.path.join(BUILD, "bench", "loadgen")
DAEMON = os.path.join(BUILD, "tlspolicyd")
ZONE = "insecure.test"
ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C", "TZ": "UTC"}

tmp = tempfile.mkdtemp(prefix="tlspolicyd-known-")
procs = []


def log(*a):
    print(*a, flush=True)


def cleanup():
    for p in procs:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
    if KEEP:
        print("known.py: kept", tmp, file=sys.stderr)
    else:
        shutil.rmtree(tmp, ignore_errors=True)


# --- the world and the store ---------------------------------------------

w = DNSWorld(workdir=os.path.join(tmp, "dns"), cache_size="64m")
mxaddr = w.addr("mx1.dane311.secure.test")
for i in range(1, N + 1):
    d = "d%d.%s" % (i, ZONE)
    w.add_record(ZONE, "%s. MX 10 mx1.%s." % (d, d))
    w.add_record(ZONE, "mx1.%s. A %s" % (d, mxaddr))
    w.add_record(ZONE, '_mta-sts.%s. TXT "v=STSv1; id=id%d;"' % (d, i))

template = os.path.join(tmp, "template.db")
keys = os.path.join(tmp, "keys")
subprocess.run([os.path.join(SRC, "bench", "filldb.sh"), "-D", template,
                str(N), keys + ".in", str(N)], check=True,
               stdout=subprocess.DEVNULL)
hour_ago = int(time.time()) - 3600
subprocess.run(["sqlite3", template,
                "UPDATE sts_policy SET domain = replace(domain, "
                "'.bench.example', '.%s'), mx = replace(mx, '.bench.example', "
                "'.%s'), fetched_at = %d; PRAGMA wal_checkpoint(TRUNCATE);"
                % (ZONE, ZONE, hour_ago)], check=True,
               stdout=subprocess.DEVNULL)
with open(keys + ".in") as f, open(keys, "w") as g:
    g.write(f.read().replace(".bench.example", "." + ZONE))

try:
    w.start()
    # The silent resolver: bound, never read, never answers (UDP and TCP).
    silent_u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent_u.bind(("127.0.0.1", 0))
    silent_port = silent_u.getsockname()[1]
    silent_t = socket.socket()
    silent_t.bind(("127.0.0.1", silent_port))
    silent_t.listen(1)

    # --- passes ----------------------------------------------------------

    def start(d, resolver):
        conf = os.path.join(d, "tlspolicyd.conf")
        with open(conf, "w") as f:
            f.write("[server]\nsocketmap = unix:%(d)s/smap.sock\n"
                    "query_socket = unix:%(d)s/query.sock\n"
                    "admin_socket = unix:%(d)s/admin.sock\n"
                    "socketmap_group =\nuser =\nlookup_timeout = 10\n"
                    "[dns]\nresolvers = %(r)s\ntrust_anchor = %(ta)s\n"
                    "timeout = 5\n[cache]\npath = %(d)s/cache.db\n" % {
                        "d": d, "r": resolver, "ta": w.trust_anchor})
        logf = open(os.path.join(d, "daemon.log"), "ab")
        p = subprocess.Popen([DAEMON, "-f", "-c", conf], env=ENV,
                             stdin=subprocess.DEVNULL, stdout=logf,
                             stderr=subprocess.STDOUT)
        logf.close()
        procs.append(p)
        r = subprocess.run([LOADGEN, "-u", os.path.join(d, "smap.sock"),
                            "-R", "30", "-k", keys, "-n", "1"],
                           capture_output=True)
        if r.returncode != 0 or p.poll() is not None:
            with open(os.path.join(d, "daemon.log"), errors="replace") as f:
                sys.exit("known.py: the daemon did not answer:\n%s" %
                         f.read()[-3000:])
        return p

    def stop(p):
        p.terminate()
        p.wait(30)

    def background(d):
        """The daemon's resolution counters (is the background work
        running, or done?)."""
        s = socket.socket(socket.AF_UNIX)
        s.connect(os.path.join(d, "query.sock"))
        s.sendall(b'{"cmd":"stats"}\n')
        r = json.loads(s.makefile().readline())
        s.close()
        res = r.get("resolutions", {})
        log("            resolutions: %s" % ", ".join(
            "%s %s" % (k, res.get(k)) for k in (
                "background_started", "active", "waited", "timeouts")))

    results = {}

    def run_pass(name, d):
        r = subprocess.run([LOADGEN, "-u", os.path.join(d, "smap.sock"), "-c",
                            str(CONNS), "-o", "-k", keys, "-n", str(N), "-q"],
                           capture_output=True, text=True)
        m = re.search(r"^RESULT (.*)$", r.stdout, re.M)
        if not m:
            sys.exit("known.py: loadgen: %s" % r.stderr)
        res = dict(kv.split("=") for kv in m.group(1).split())
        results[name] = res
        log("  %-9s p50 %6.2f ms  p99 %6.2f ms  ok %s of %d, other "
            "answers %d, errors %s" % (
                name, int(res["p50_us"]) / 1e3, int(res["p99_us"]) / 1e3,
                res["ok"], N, int(res["notfound"]) + int(res["temp"]) +
                int(res["other"]), res["errors"]))

    def fresh(name):
        d = os.path.join(tmp, name)
        os.makedirs(d)
        shutil.copy(template, os.path.join(d, "cache.db"))
        return d

    log("== known answers: %d stored enforce policies, re-checks due, %d "
        "connections, %s" % (N, CONNS,
                             time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime())))
    d = fresh("up")
    p = start(d, w.resolver)
    run_pass("up-1", d)
    background(d)
    stop(p)
    d = fresh("silent")
    p = start(d, "127.0.0.1@%d" % silent_port)
    run_pass("silent-1", d)
    run_pass("silent-2", d)
    background(d)
    stop(p)
    p = start(d, "127.0.0.1@%d" % silent_port)
    run_pass("restart-1", d)
    run_pass("restart-2", d)
    background(d)
    stop(p)

    def ratio(a, b):
        return int(results[a]["p99_us"]) / max(1, int(results[b]["p99_us"]))

    log("p99 silent-1 / up-1:       %.2f  (target <= 2)" %
        ratio("silent-1", "up-1"))
    log("p99 restart-1 / restart-2: %.2f  (target <= 2)" %
        ratio("restart-1", "restart-2"))
    log("p99 silent-1 / silent-2:   %.2f" % ratio("silent-1", "silent-2"))
    bad = [k for k, r in results.items() if int(r["ok"]) != N]
    if bad:
        log("known.py: not every answer was the stored policy in: %s" %
            " ".join(bad))
        sys.exit(1)
finally:
    cleanup()
    w.stop()
