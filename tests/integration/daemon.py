# SPDX-License-Identifier: BSD-2-Clause
"""The daemon's life cycle: config checking, start-up failures, the store
across restarts, SIGHUP reload with open connections, privilege drop,
socket ownership, and clean shutdown."""
import atexit
import grp
import json
import os
import pwd
import signal
import stat
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tlstest import (DAEMON, Daemon, done, is_eq, ok,  # noqa
                     read_netstring, run_daemon_cmd, netstring)


def no_network_child():
    """Inside `unshare -n` (loopback only): the daemon on its embedded
    defaults, only its paths moved to a temporary directory, with DANE and
    MTA-STS on (full recursion from the public root, which is unreachable
    here). Prints one JSON line with what happened."""
    res = {}
    p = subprocess.run(["ip", "-o", "route", "show", "table", "all"],
                       capture_output=True)
    res["routes"] = [x for x in p.stdout.decode().splitlines()
                     if "dev lo" not in x]
    if res["routes"]:
        # Not inside a loopback-only namespace: the daemon on its
        # defaults would recurse from the public root. Never start it.
        print(json.dumps(res))
        sys.exit(0)
    d = Daemon(name="nonet", policy="static.example = dane-only\n")
    paths_only = ("[server]\nsocketmap = unix:%s\nquery_socket = unix:%s\n"
                  "socketmap_group =\n[cache]\npath = %s\n"
                  "[policy]\nstatic.example = dane-only\n"
                  % (d.smap, d.query, d.db))

    def start():
        with open(d.conf, "w") as f:
            f.write(paths_only)
        d.start(wait=False)
        try:
            d.wait_ready(timeout=20)
            return True
        except SystemExit:
            return False

    res["started"] = start()
    if res["started"]:
        d.stop()
        d.put_sts("kept.example", "enforce", ["mx.kept.example"])
        d.put_dane("dane.example", "dane-only")
        res["started"] = start()
    if res["started"]:
        res["stored"] = d.ask("kept.example")
        res["stored_dane"] = d.ask("dane.example")
        res["static"] = d.ask("static.example")
        res["unknown"] = d.ask("unknown.example")
        # The DANE lookup behind the stored enforce policy fails (no
        # route): from then on SPEC B D6 with MTA-STS enforce is TEMP.
        d.settle()
        res["stored_after"] = d.ask("kept.example")
        time.sleep(1)
        res["alive"] = d.alive()
        res["rc"] = d.stop()
    res["log"] = d.read_log()
    print(json.dumps(res))
    sys.exit(0)


if len(sys.argv) > 1 and sys.argv[1] == "--no-network":
    no_network_child()

# --- config checking (-n) ------------------------------------------------------
d = Daemon(policy="example.com = dane-only\n", name="life")
rc, out, err = run_daemon_cmd(["-n", "-c", d.conf])
ok(rc == 0 and "[server]" in out and "example.com = dane-only" in out,
   "-n prints the effective settings", out + err)
ok("lookup_timeout = 10" in out, "-n shows defaults too", out)

bad = os.path.join(d.dir, "bad.conf")
with open(bad, "w") as f:
    f.write("[server]\nlookup_timeout = 10\n\n[server]\nno_such_key = 1\n")
rc, out, err = run_daemon_cmd(["-n", "-c", bad])
ok(rc == 1 and "bad.conf:5" in err and "no_such_key" in err,
   "unknown key rejected with file, line and key", err)
with open(bad, "w") as f:
    f.write("[server]\nlookup_timeout = soon\n")
rc, out, err = run_daemon_cmd(["-f", "-c", bad])
ok(rc == 1 and "bad.conf:2" in err and "lookup_timeout" in err,
   "bad value refuses to start", err)
with open(bad, "w") as f:
    f.write("[policy]\nexample.com = bogus-level\n")
rc, out, err = run_daemon_cmd(["-n", "-c", bad])
ok(rc == 1 and "example.com" in err, "bad static answer rejected", err)
rc, out, err = run_daemon_cmd(["-n", "-c", os.path.join(d.dir, "missing")])
ok(rc == 1 and "missing" in err, "missing -c file is an error", err)
empty = os.path.join(d.dir, "empty.conf")
open(empty, "w").close()
rc, out, err = run_daemon_cmd(["-n", "-c", empty])
ok(rc == 0 and "[cache]" in out, "an empty file runs on defaults", err)

# Issue 10 item 16: a missing or non-PEM [sts] ca_file is refused with
# FILE:LINE, at -n and at start-up.
notpem = os.path.join(d.dir, "ca.txt")
with open(notpem, "w") as f:
    f.write("this is not a certificate\n")
with open(bad, "w") as f:
    f.write("[sts]\nenabled = no\nca_file = %s\n" % notpem)
rc, out, err = run_daemon_cmd(["-n", "-c", bad])
is_eq((rc, err.strip()),
      (1, "tlspolicyd: %s:3: [sts] ca_file: %s holds no PEM certificate "
          "(no \"-----BEGIN CERTIFICATE-----\" line)" % (bad, notpem)),
      "-n refuses a non-PEM ca_file, with file and line")
rc, out, err = run_daemon_cmd(["-f", "-c", bad])
ok(rc == 1 and "holds no PEM certificate" in err,
   "start-up refuses a non-PEM ca_file", err)
with open(bad, "w") as f:
    f.write("[sts]\nca_file = %s/none.pem\n" % d.dir)
rc, out, err = run_daemon_cmd(["-n", "-c", bad])
is_eq((rc, err.strip()),
      (1, "tlspolicyd: %s:2: [sts] ca_file: %s/none.pem: No such file or "
          "directory" % (bad, d.dir)),
      "-n refuses a missing ca_file, with file and line")

# --- the store across restarts ----------------------------------------------------
d.start()
is_eq(d.ask("example.com"), "OK dane-only", "first start answers")
is_eq(d.stop(), 0, "first stop exits 0")
d.put_sts("kept.example", "enforce", ["mx.kept.example"])
d.start()
is_eq(d.ask("kept.example"),
      "OK secure match=mx.kept.example servername=hostname",
      "restart: stored policy answered")
d.stop()
d.start()
is_eq(d.ask("kept.example"),
      "OK secure match=mx.kept.example servername=hostname",
      "second restart: still answered")

# --- SIGHUP: reload keeps open connections -------------------------------------
s = d.connect()
is_eq(d.ask("example.com", sock=s), "OK dane-only", "before reload")
d.write_config(policy="example.com = dane\nnew.example = dane-only\n")
d.signal(signal.SIGHUP)
deadline = time.time() + 5
while time.time() < deadline and "reloaded" not in d.read_log():
    time.sleep(0.05)
is_eq(d.ask("example.com", sock=s), "OK dane",
      "after reload: new answer on the same connection")
is_eq(d.ask("new.example"), "OK dane-only", "after reload: new static entry")
with open(d.conf, "a") as f:
    f.write("garbage line without equals\n")
d.signal(signal.SIGHUP)
deadline = time.time() + 5
while time.time() < deadline and "reload failed" not in d.read_log():
    time.sleep(0.05)
ok("reload failed" in d.read_log(), "broken config on reload is logged")
is_eq(d.ask("example.com", sock=s), "OK dane",
      "broken config on reload keeps the old one")
s.close()

# --- clean shutdown with a reply owed --------------------------------------------
s = d.connect()
s.sendall(netstring("postfix example.com"))
time.sleep(0.2)
rc = d.stop()
is_eq(rc, 0, "SIGTERM exits 0")
is_eq(read_netstring(s), "OK dane", "reply owed before SIGTERM delivered")
s.close()
ok(not os.path.exists(d.smap) and not os.path.exists(d.query),
   "sockets removed at exit")

# --- start-up failures are clear --------------------------------------------------
d.write_config(policy="example.com = dane\n")
with open(d.db, "r+b") as f:
    f.write(b"this is not a sqlite database at all" * 10)
for p in (d.db + "-wal", d.db + "-shm"):
    if os.path.exists(p):
        os.unlink(p)
rc, out, err = run_daemon_cmd(["-f", "-c", d.conf])
ok(rc == 1 and "cache.db" in err, "corrupt store: refuses to start", err)

d2 = Daemon(name="user", user="nosuchuser-tlspolicyd")
rc, out, err = run_daemon_cmd(["-f", "-c", d2.conf])
ok(rc == 1 and "nosuchuser-tlspolicyd" in err, "unknown user refused", err)
ok(not os.path.exists(d2.smap), "no socket left behind after a failed start")

# Another daemon on the same socket must not steal it.
d3 = Daemon(name="dup")
d3.start()
rc, out, err = run_daemon_cmd(["-f", "-c", d3.conf])
ok(rc == 1 and "listening" in err, "second daemon on one socket refused", err)
is_eq(d3.ask("x.example"), "NOTFOUND ", "first daemon still serving")
d3.stop()

# --- privilege drop and socket ownership --------------------------------------------
nobody = pwd.getpwnam("nobody")
group = grp.getgrgid(nobody.pw_gid).gr_name
d4 = Daemon(name="drop", user="nobody")
with open(d4.conf, "w") as f:
    f.write(d4.config_text(
        server_extra="socketmap_group = %s\n"
                     "socketmap_mode = 0660\n" % group,
        policy="example.com = dane-only\n").replace(
            "socketmap_group =\n", ""))
d4.start()
st = os.stat(d4.smap)
ok(stat.S_IMODE(st.st_mode) == 0o660 and st.st_gid == nobody.pw_gid,
   "socket mode and group applied", "mode %o gid %d" % (st.st_mode, st.st_gid))
with open("/proc/%d/status" % d4.proc.pid) as f:
    status = f.read()
uid_line = [x for x in status.splitlines() if x.startswith("Uid:")][0]
ok(uid_line.split()[1:] == [str(nobody.pw_uid)] * 4,
   "all user ids dropped to nobody", uid_line)
is_eq(d4.ask("example.com"), "OK dane-only", "serves after the drop")
d4.stop()
d4.put_sts("w.example", "enforce", ["mx.w.example"])
d4.start()
r = d4.aq({"cmd": "flush", "domain": "w.example"})
ok(r == {"flushed": True, "domain": "w.example"},
   "store writable after the privilege drop", r)
is_eq(d4.stop(), 0, "dropped daemon stops cleanly")

# --- issue 10 item 17: a relative -c path, reloaded after chdir("/") --------------
d6 = Daemon(name="relcfg", policy="example.com = dane-only\n")
p6 = subprocess.Popen([DAEMON, "-v", "-c", "tlspolicyd.conf"], cwd=d6.dir,
                      stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                      stderr=subprocess.DEVNULL)
p6.wait(10)  # the parent exits once the daemon has forked away
pid6 = None
end = time.time() + 10
while pid6 is None and time.time() < end:
    for e in os.listdir("/proc"):
        try:
            with open("/proc/%s/cmdline" % e, "rb") as f:
                argv = f.read().split(b"\0")
            cwd = os.readlink("/proc/%s/cwd" % e)
        except OSError:
            continue
        if argv[:4] == [DAEMON.encode(), b"-v", b"-c",
                        b"tlspolicyd.conf"] and cwd == "/":
            pid6 = int(e)
    time.sleep(0.1)
ok(pid6 is not None, "daemon started with a relative -c runs in /")


def kill6():
    try:
        os.kill(pid6, signal.SIGKILL)
    except (OSError, TypeError):
        pass


atexit.register(kill6)
while time.time() < end and not os.path.exists(d6.smap):
    time.sleep(0.05)
is_eq(d6.ask("example.com"), "OK dane-only", "relative -c: first answer")
with open(d6.conf, "w") as f:
    f.write(d6.config_text(policy="example.com = dane\n"))
if pid6:
    os.kill(pid6, signal.SIGHUP)
answer = None
end = time.time() + 5
while time.time() < end:
    answer = d6.ask("example.com")
    if answer == "OK dane":
        break
    time.sleep(0.1)
is_eq(answer, "OK dane", "relative -c: SIGHUP after chdir(\"/\") reloads")
if pid6:
    os.kill(pid6, signal.SIGTERM)
    end = time.time() + 10
    while time.time() < end and os.path.exists("/proc/%d" % pid6):
        time.sleep(0.05)

# --- DNS silent at start-up: serve from the store, test the anchor later ------
d5 = Daemon(name="nodns", dane=True, policy="example.com = dane-only\n",
            extra="[dns]\nresolvers = 127.0.0.2@5353\ntimeout = 1\n")
d5.start()
ok("answering from the store until DNS answers" in d5.read_log(),
   "silent DNS at start-up: a warning, not a refusal", d5.read_log()[-600:])
is_eq(d5.ask("example.com"), "OK dane-only", "static answers while DNS is out")
is_eq(d5.ask("unknown.example"), "OK dane",
      "unknown domain while DNS is out: SPEC B D6 (Postfix repeats the "
      "lookups)")
is_eq(d5.stop(), 0, "stops cleanly")

# --- no network at all: the embedded defaults at boot (issue 10 item 5) -----
# A machine whose network is not up yet: full recursion from the public
# root (the embedded default), but no route anywhere. Run only inside a
# network namespace that has nothing but loopback, so no packet can leave
# this machine whatever the daemon does. The child (this file with
# --no-network) reports what it saw as one JSON line.
r = subprocess.run(
    ["unshare", "-n", "sh", "-c",
     "ip link set lo up && exec /usr/bin/python3 %s --no-network"
     % os.path.abspath(__file__)],
    capture_output=True, timeout=120)
out = r.stdout.decode("utf-8", "replace").strip().splitlines()
try:
    nn = json.loads(out[-1])
except (IndexError, ValueError):
    nn = {}
ok(r.returncode == 0 and nn, "no network: the namespace run completed",
   (r.returncode, r.stderr.decode("utf-8", "replace")[-800:], out[-3:]))
ok(nn.get("routes") == [], "no network: nothing but loopback is routed",
   nn.get("routes"))
ok(nn.get("started"), "no network, embedded defaults: the daemon starts",
   nn.get("log", "")[-800:])
ok("dns: no route to any root server (the network is not up?)" in
   nn.get("log", "") and "answering from the store until DNS answers" in
   nn.get("log", ""), "no network: a warning in plain words, not a refusal",
   nn.get("log", "")[-800:])
is_eq(nn.get("stored"),
      "OK secure match=mx.kept.example servername=hostname",
      "no network: a stored MTA-STS policy is answered from the store")
is_eq(nn.get("stored_dane"), "OK dane-only",
      "no network: a stored DANE verdict is answered from the store")
is_eq(nn.get("static"), "OK dane-only", "no network: a [policy] answer")
# SPEC B D6: a lookup that fails is never "no policy"; Postfix still does
# its own DANE lookups with "dane".
is_eq(nn.get("unknown"), "OK dane",
      "no network: an unknown domain gets the failed-lookup answer")
is_eq(nn.get("stored_after"), "TEMP dnssec lookup failure for kept.example",
      "no network: once its DANE lookup has failed, the enforce domain "
      "gets TEMP (D6), never NOTFOUND")
ok(nn.get("alive"), "no network: still running after the lookups")
ok("does not validate" not in nn.get("log", "") and
   "fatal" not in nn.get("log", ""), "no network: nothing fatal logged",
   nn.get("log", "")[-800:])
is_eq(nn.get("rc"), 0, "no network: stops cleanly")
done()
