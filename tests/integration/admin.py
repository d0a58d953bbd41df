# SPDX-License-Identifier: BSD-2-Clause
"""The admin socket and the thin CLI (DESIGN 6.11, issue 10 item 8, issue 8).

The query socket is read-only: flush and the store commands get a clear
error there and change nothing. The admin socket is mode 0600, owned by
[server] user, and a peer that is neither root nor that user is refused by
its credentials even when the file mode would let it in. While the daemon
runs, tlspolicy answers cache list/show/flush, stats and report
list/show/send through the admin socket (proved by pointing -d at a store
that does not exist); when the daemon is stopped it opens the store.
"""
import json
import os
import pwd
import sqlite3
import stat
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tlstest import TOOL, Daemon, done, is_eq, ok  # noqa

nobody = pwd.getpwnam("nobody")
other = pwd.getpwnam("daemon")
d = Daemon(name="admin", user="nobody", policy="example.com = dane-only\n")
rsock = os.path.join(d.dir, "run", "tlsrpt.sock")
d.write_config(extra=("[tlsrpt]\n"
                      "enabled = yes\n"
                      "socket = %s\n"
                      "socket_group =\n"
                      "organization = Test Org\n"
                      "contact = mailto:tlsrpt@sender.test\n"
                      "submitter = sender.test\n"
                      "from = tlsrpt-noreply@sender.test\n" % rsock))
# The daemon's user owns the socket directory, as systemd's
# RuntimeDirectory= arranges for /run/tlspolicyd.
os.chown(d.dir, nobody.pw_uid, nobody.pw_gid)
d.start()
d.stop()
d.put_sts("sts.example", "enforce", ["mx.sts.example"])
# A store whose listing is one reply larger than a lookup connection may
# queue (256 KiB plus one reply).
con = sqlite3.connect(d.db)
now = int(time.time())
con.executemany("INSERT INTO sts_policy(domain, policy_id, mode, mx, "
                "max_age, fetched_at, expires_at) VALUES (?,?,?,?,?,?,?)",
                [("bulk%05d.example" % i, "id1", 2,
                  "mx1.bulk%05d.example\nmx2.bulk%05d.example" % (i, i),
                  86400, now, now + 86400) for i in range(4000)])
con.commit()
con.close()
d.start()
NODB = os.path.join(d.dir, "nonexistent", "cache.db")

st = os.stat(d.admin)
ok(stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == nobody.pw_uid,
   "admin socket mode 0600, owned by the daemon's user",
   "mode %o uid %d" % (st.st_mode, st.st_uid))

# --- the query socket is read-only --------------------------------------------
want = ("flush is an administrative command: it is answered on the admin "
        "socket only ([server] admin_socket; use tlspolicy as root or the "
        "daemon's user)")
is_eq(d.jq({"cmd": "flush", "domain": "sts.example"}), {"error": want},
      "flush on the query socket: a clear error")
is_eq(d.jq({"cmd": "cache_list"}),
      {"error": want.replace("flush", "cache_list", 1)},
      "cache_list on the query socket: the same error")
is_eq(d.jq({"cmd": "report_send", "day": "2026-01-01"}),
      {"error": want.replace("flush", "report_send", 1)},
      "report_send on the query socket: the same error")
is_eq(d.ask("sts.example"),
      "OK secure match=mx.sts.example servername=hostname",
      "the policy is still applied after the refused flush")
r = d.jq({"cmd": "stats"})
ok(r is not None and "requests" in r, "stats stays readable on the query "
   "socket", r)
is_eq(d.jq({"cmd": "ping"}), {"pong": True}, "ping on the query socket")

# --- who may use the admin socket --------------------------------------------------


def as_user(uid, code):
    """Run Python CODE as UID; its stdout."""
    p = subprocess.run(["/usr/bin/python3", "-c",
                        "import os; os.setgid(%d); os.setuid(%d)\n%s"
                        % (uid, uid, code)],
                       capture_output=True, timeout=20)
    return p.stdout.decode(), p.stderr.decode()


probe = ("import socket\n"
         "s = socket.socket(socket.AF_UNIX)\n"
         "try:\n"
         "    s.connect(%r)\n"
         "    try:\n"
         "        s.sendall(b'{\"cmd\":\"stats\"}\\n')\n"
         "    except (BrokenPipeError, ConnectionResetError):\n"
         "        pass  # refused before the request went out\n"
         "    s.settimeout(5)\n"
         "    print(s.recv(4096).decode().strip())\n"
         "    try:\n"
         "        print('eof' if s.recv(10) == b'' else 'open')\n"
         "    except ConnectionResetError:\n"
         "        print('eof')\n"
         "except OSError as e:\n"
         "    print('error', e.errno)\n" % d.admin)
out, err = as_user(other.pw_uid, probe)
is_eq(out.split("\n")[0], "error 13",
      "another user cannot connect (EACCES from the file mode)")
# Defence in depth: even with the mode opened, the peer's uid is checked.
os.chmod(d.admin, 0o666)
out, err = as_user(other.pw_uid, probe)
is_eq(out.split("\n")[:2],
      ['{"error":"the admin socket is for root and the daemon\'s user '
       'only"}', "eof"],
      "another user refused by SO_PEERCRED when the mode lets it in")
out, err = as_user(nobody.pw_uid, probe)
ok(out.startswith("{") and '"requests"' in out,
   "the daemon's own user is let in", out + err)
os.chmod(d.admin, 0o600)
ok("admin socket: refused a client running as uid %d" % other.pw_uid
   in d.read_log(), "the refusal is logged", d.read_log()[-400:])
p = subprocess.run(["setpriv", "--reuid=%d" % other.pw_uid,
                    "--regid=%d" % other.pw_gid, "--clear-groups",
                    TOOL, "-c", d.conf, "cache", "list"],
                   capture_output=True, timeout=20)
ok(p.returncode == 2 and b"Permission denied (the admin socket is for "
   b"root and the daemon's user)" in p.stderr,
   "tlspolicy as another user: exit 2 and says why",
   (p.returncode, p.stderr))

# --- the thin CLI while the daemon runs --------------------------------------------
rc, out, err = d.tool("-d", NODB, "cache", "list")
ok(rc == 0 and "\nsts.example " in out and "enforce" in out,
   "cache list through the daemon (no store opened)", out + err)
rc, out, err = d.tool("-d", NODB, "-j", "cache", "list")
ok(rc == 0 and len(out.splitlines()) == 4001 and len(out) > 900000,
   "cache list of 4001 entries (one reply of 900 KB) through the daemon",
   (rc, len(out.splitlines()), len(out), err))
rc, out, err = d.tool("-d", NODB, "-j", "cache", "show", "STS.example.")
r = json.loads(out) if rc == 0 else {}
is_eq((r.get("domain"), (r.get("sts") or {}).get("mx")),
      ("sts.example", ["mx.sts.example"]),
      "cache show -j through the daemon")
rc, out, err = d.tool("-d", NODB, "cache", "show", "sts.example")
ok(rc == 0 and "sts.mode:         enforce" in out,
   "cache show through the daemon", out + err)
rc, out, err = d.tool("-d", NODB, "cache", "flush", "sts.example")
ok(rc == 0 and out == "sts.example: flushed (by the daemon)\n",
   "cache flush through the daemon", out + err)
is_eq(d.ask("sts.example"), "NOTFOUND ", "flushed from memory too")
rc, out, err = d.tool("-d", NODB, "cache", "show", "sts.example")
ok(rc == 1 and "sts.example: nothing stored" in err,
   "cache show after the flush: nothing stored (1)", (rc, err))
rc, out, err = d.tool("-d", NODB, "stats")
ok(rc == 0 and "flushes: 1\n" in out and "open.admin: 1\n" in out,
   "tlspolicy stats through the admin socket", out + err)
is_eq(d.aq({"cmd": "flush", "domain": ".example.com"}),
      {"error": "parent domain probe"}, "admin flush of a non-domain: error")

# Reports: one result over the query socket, then list and show through
# the daemon's own report store.
today = time.strftime("%Y-%m-%d", time.gmtime())
res = {"d": "rpt.example", "pr": "v=TLSRPTv1; rua=mailto:r@rpt.example",
       "policies": [{"policy-type": 9, "t": 1, "f": 0}]}
is_eq(d.jq({"cmd": "report", "result": res}), {"counted": True},
      "report request counted on the query socket")
time.sleep(1.2)  # the collector commits on its next tick
rc, out, err = d.tool("-d", NODB, "-j", "report", "list")
rows = [json.loads(x) for x in out.splitlines() if x.strip()]
row = [x for x in rows if x.get("domain") == "rpt.example"]
ok(rc == 0 and len(row) == 1 and row[0]["success"] == 1
   and row[0]["day"] == today,
   "report list through the daemon", out + err)
rc, out, err = d.tool("-d", NODB, "report", "show", "--day", today,
                      "--domain", "rpt.example")
rep = json.loads(out) if rc == 0 else {}
is_eq((rep.get("organization-name"), rep.get("policies", [{}])[0]
       .get("summary")),
      ("Test Org", {"total-successful-session-count": 1,
                    "total-failure-session-count": 0}),
      "report show through the daemon")
rc, out, err = d.tool("-d", NODB, "report", "send", "--day", "2020-01-01")
ok(rc == 1 and "nothing counted on that day" in err,
   "report send through the daemon: nothing counted (1)", (rc, err))

# --- the daemon stopped: the tool opens the store ------------------------------------
is_eq(d.stop(), 0, "daemon stopped")
ok(not os.path.exists(d.admin), "admin socket removed at exit")
d.put_sts("off.example", "testing", ["mx.off.example"])
rc, out, err = d.tool("cache", "list")
ok(rc == 0 and "off.example" in out, "cache list offline reads the store",
   out + err)
rc, out, err = d.tool("-d", NODB, "cache", "list")
ok(rc == 2 and "nonexistent" in err, "offline: the -d store is the one "
   "opened", err)
rc, out, err = d.tool("stats")
ok(rc == 2 and "the daemon is not running" in err,
   "stats without a daemon: exit 2 and says why", err)
done()
