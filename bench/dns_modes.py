# SPDX-License-Identifier: BSD-2-Clause
"""CPU per cold domain: getdns stub mode against full recursion (issue 9).

Builds the test DNS world (tests/lab/dnsworld.py) with N extra signed
domains in secure.test (each: MX 10 mx.<label>, A, TLSA 3 1 1), then
classifies all N with tests/lab/daneq (dane_resolve(), as the daemon does)
in each mode, one fresh daneq process per run:

  stub       [dns] resolvers = the world's validating unbound; getdns
             validates every answer itself against the private anchor
  recursion  [dns] root_hints = the world's root (NSD); getdns's embedded
             libunbound iterates and validates, with its key cache

and reads CPU seconds (user + system) of daneq from wait4(), of unbound
and NSD from /proc/PID/stat before and after. Prints one table and the
ratios. Not part of make check; nothing leaves 127.0.0.0/8.

    /usr/bin/python3 bench/dns_modes.py BUILDDIR [N]     (N <= 1000)

Run it as root (port 53) on a quiet machine; BENCH_KEEP=1 keeps the
world's directory.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "lab"))
import dnsworld  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid):
    """utime + stime of PID (and its waited-for children), seconds."""
    with open("/proc/%d/stat" % pid) as f:
        st = f.read()
    f = st[st.rindex(")") + 2:].split()
    return sum(int(x) for x in f[11:15]) / TICK


def group_cpu(pgid):
    """CPU seconds of every process in group PGID (NSD forks)."""
    total = 0.0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % pid) as f:
                st = f.read()
        except OSError:
            continue
        f = st[st.rindex(")") + 2:].split()
        if int(f[2]) == pgid:
            total += sum(int(x) for x in f[11:13]) / TICK
    return total


def run(daneq, conf, domains):
    """(daneq CPU s, wall s, results) for one cold run over DOMAINS."""
    t0 = time.monotonic()
    p = subprocess.Popen([daneq, "-c", conf] + domains,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = p.stdout.read()
    err = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - t0
    res = [json.loads(x) for x in out.decode().splitlines() if x.strip()]
    if p.returncode != 0 or err:
        print("daneq: exit %d: %s" % (p.returncode, err.decode()[-500:]))
    return ru.ru_utime + ru.ru_stime, wall, res


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    build = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 500
    daneq = os.path.join(build, "tests", "lab", "daneq")
    if not os.access(daneq, os.X_OK) or not 0 < n <= 1000:
        sys.exit("need %s (make tests/lab/daneq) and 0 < N <= 1000" % daneq)
    w = dnsworld.DNSWorld()
    domains = [w.add_dane_domain("b%04d" % i) for i in range(n)]
    warm = {m: [w.add_dane_domain("w%s%02d" % (m[0], i)) for i in range(20)]
            for m in ("stub", "recursion")}
    w.start()
    tmp = tempfile.mkdtemp(prefix="bench-dns-")
    common = "[cache]\npath = %s/state/cache.db\n[dns]\ntrust_anchor = %s\n" \
             "timeout = 10\n" % (tmp, w.trust_anchor)
    confs = {"stub": "resolvers = %s\n" % w.resolver,
             "recursion": "root_hints = %s\n" % w.root_hints}
    unbound = w.procs["unbound"].pid
    nsd = w.procs["nsd"].pid
    rows = {}
    for mode in ("stub", "recursion"):
        path = os.path.join(tmp, mode + ".conf")
        with open(path, "w") as f:
            f.write(common + confs[mode])
        # An untimed warm-up over other domains (page cache, NSD), then
        # unbound is emptied: the measured run starts cold everywhere.
        run(daneq, path, warm[mode])
        w.flush()
        u0, n0 = proc_cpu(unbound), group_cpu(nsd)
        cpu, wall, res = run(daneq, path, domains)
        u1, n1 = proc_cpu(unbound), group_cpu(nsd)
        good = sum(1 for r in res if r.get("kind") == "dane-only")
        rows[mode] = dict(cpu=cpu, wall=wall, good=good, unbound=u1 - u0,
                          nsd=n1 - n0)
        bad = {}
        for r in res:
            if r.get("kind") != "dane-only":
                k = "%s: %s" % (r.get("kind"), r.get("why", "")[:70])
                bad[k] = bad.get(k, 0) + 1
        for k, c in sorted(bad.items(), key=lambda x: -x[1])[:3]:
            print("%s: %d not dane-only: %s" % (mode, c, k))
    with open("/proc/loadavg") as f:
        print("load average at the end: %s" % " ".join(f.read().split()[:3]))
    print("%d cold signed domains (MX, A, AAAA, TLSA each), one run per "
          "mode" % n)
    print("%-10s %9s %9s %9s %9s %9s %7s" % (
        "mode", "daneq s", "ms/domain", "unbound s", "nsd s", "wall s",
        "right"))
    for mode, r in rows.items():
        print("%-10s %9.2f %9.2f %9.2f %9.2f %9.2f %4d/%d" % (
            mode, r["cpu"], 1000 * r["cpu"] / n, r["unbound"], r["nsd"],
            r["wall"], r["good"], n))
    s, rc = rows["stub"], rows["recursion"]
    if rc["cpu"] > 0:
        print("daneq CPU, stub / recursion: %.1fx" % (s["cpu"] / rc["cpu"]))
    tot_s = s["cpu"] + s["unbound"] + s["nsd"]
    tot_r = rc["cpu"] + rc["unbound"] + rc["nsd"]
    if tot_r > 0:
        print("all DNS CPU on the machine (daneq + unbound + NSD), "
              "stub / recursion: %.1fx" % (tot_s / tot_r))
    if rc["wall"] > 0:
        print("wall time, stub / recursion: %.1fx" % (s["wall"] / rc["wall"]))
    w.stop()
    if not os.environ.get("BENCH_KEEP"):
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
