# SPDX-License-Identifier: BSD-2-Clause
"""Runtime pin and exempt (issue 12): tlspolicy pin DOMAIN ANSWER,
exempt DOMAIN and unpin DOMAIN go over the admin socket, change the answer
at once, are kept in the store across restarts, are listed by cache
list/show, are refused on the read-only query socket, are checked like
[policy] answers, and a [policy] line in the config still wins (the tool
says so). No DNS: DANE and MTA-STS come from stored rows."""
import json
import os
import sqlite3
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tlstest import Daemon, done, is_eq, ok  # noqa

SEC = "OK secure match=mx.sts.example servername=hostname"
d = Daemon(name="pin", policy="static.example = dane-only\n")
d.start()
d.stop()
d.put_sts("sts.example", "enforce", ["mx.sts.example"])
d.put_dane("dane.example", "dane-only")
d.start()

is_eq(d.ask("sts.example"), SEC, "before: the stored MTA-STS policy")
is_eq(d.ask("dane.example"), "OK dane-only", "before: the stored verdict")

# --- pin and exempt over the admin socket, answers change at once -----------
rc, out, err = d.tool("pin", "STS.Example.", "dane-only")
ok(rc == 0 and out == "sts.example: pinned\n" and err == "",
   "tlspolicy pin: pinned (domain normalised)", out + err)
is_eq(d.ask("sts.example"), "OK dane-only", "pinned: the answer changed at "
      "once")
r = d.jq({"domain": "sts.example"})
ok(r.get("source") == "pin" and r.get("rule") == "pin"
   and r.get("reason") == "pinned by the operator (tlspolicy pin)",
   "query socket: source and rule pin, reason in words", r)
rc, out, err = d.tool("exempt", "dane.example")
ok(rc == 0 and "dane.example: exempted" in out, "tlspolicy exempt",
   out + err)
is_eq(d.ask("dane.example"), "NOTFOUND ", "exempted: NOTFOUND at once")
r = d.jq({"domain": "dane.example"})
is_eq((r.get("source"), r.get("rule")), ("pin", "exempt"),
      "exempt: source pin, rule exempt")
rc, out, err = d.tool("pin", "new.example", "secure match=.new.example")
is_eq(d.ask("new.example"), "OK secure match=.new.example",
      "a pin for a domain nothing was learned about answers at once")
ok("sts.example pinned by the operator to 'dane-only'" in d.read_log()
   and "dane.example exempted by the operator" in d.read_log(),
   "pins and exemptions are logged", d.read_log()[-800:])

# --- checked like [policy] answers -------------------------------------------
rc, out, err = d.tool("pin", "sts.example", "bogus")
ok(rc == 2 and "answer must start with none, may, encrypt" in err,
   "a bad answer is refused with the [policy] reason", out + err)
rc, out, err = d.tool("pin", "sts.example", "dane\tonly")
ok(rc == 2 and "control character" in err, "a control character refused",
   out + err)
is_eq(d.ask("sts.example"), "OK dane-only", "a refused pin changes nothing")
r = d.aq({"cmd": "pin", "domain": "[192.0.2.1]", "answer": "encrypt"})
ok("error" in r, "an IP literal cannot be pinned", r)
r = d.aq({"cmd": "pin", "domain": "x.example", "answer": "none"})
ok(r.get("exempt") is True, "pin DOMAIN none is an exemption", r)
d.aq({"cmd": "unpin", "domain": "x.example"})

# --- the query socket stays read-only ---------------------------------------
for req in ({"cmd": "pin", "domain": "q.example", "answer": "encrypt"},
            {"cmd": "exempt", "domain": "q.example"},
            {"cmd": "unpin", "domain": "sts.example"}):
    r = d.jq(req)
    ok("administrative command" in r.get("error", ""),
       "%s on the query socket: refused" % req["cmd"], r)
is_eq(d.ask("q.example"), "NOTFOUND ", "nothing pinned through the query "
      "socket")
is_eq(d.ask("sts.example"), "OK dane-only", "nothing unpinned through it")

# --- a [policy] line wins, and says so ---------------------------------------
rc, out, err = d.tool("pin", "static.example", "encrypt")
ok(rc == 0 and "the [policy] line 'dane-only' in the config wins over this "
   "pin" in err, "pin of a [policy] domain: the tool says the line wins",
   out + err)
r = d.aq({"cmd": "exempt", "domain": "static.example"})
ok(r.get("overridden_by_config") is True
   and r.get("config_answer") == "dane-only",
   "admin reply: overridden_by_config", r)
is_eq(d.ask("static.example"), "OK dane-only", "the [policy] line wins")
ok("static.example exempted by the operator: no TLS policy is applied (but "
   "a [policy] line in the config wins over it)" in d.read_log(),
   "the log says the line wins", d.read_log()[-600:])

# --- shown by cache list and show ------------------------------------------
rc, out, err = d.tool("cache", "list")
lines = {ln.split()[0]: ln for ln in out.splitlines() if ln.strip()}
ok(rc == 0 and "pin: dane-only" in lines.get("sts.example", "")
   and "pin: exempt" in lines.get("dane.example", "")
   and "pin: secure match=.new.example" in lines.get("new.example", ""),
   "cache list shows pins and exemptions", out + err)
rc, out, err = d.tool("cache", "show", "dane.example")
ok(rc == 0 and "exempt (no TLS policy)" in out and "dane.verdict:" in out
   and "pin.pinned_at:" in out, "cache show shows the exemption", out + err)
rc, out, err = d.tool("-j", "cache", "show", "sts.example")
r = json.loads(out) if rc == 0 else {}
ok(r.get("pin", {}).get("answer") == "dane-only"
   and r.get("pin", {}).get("exempt") is False
   and r.get("sts", {}).get("mode") == "enforce",
   "cache show -j: the pin next to the learned policy", out + err)

# --- flush keeps the pin ---------------------------------------------------
rc, out, err = d.tool("cache", "flush", "sts.example")
is_eq(d.ask("sts.example"), "OK dane-only",
      "flush forgets the learned policy, not the operator's pin")

# --- restart keeps them -------------------------------------------------------
d.stop()
con = sqlite3.connect(d.db)
rows = dict((r[0], (r[1], r[2])) for r in
            con.execute("SELECT domain, exempt, answer FROM pin"))
ver = con.execute("PRAGMA user_version").fetchone()[0]
con.close()
ok(rows.get("sts.example") == (0, "dane-only")
   and rows.get("dane.example") == (1, "") and ver == 3,
   "the pins are rows in the store (schema 3)", (rows, ver))
d.start()
is_eq(d.ask("sts.example"), "OK dane-only", "after a restart: still pinned")
is_eq(d.ask("dane.example"), "NOTFOUND ", "after a restart: still exempt")

# --- unpin -----------------------------------------------------------------
rc, out, err = d.tool("unpin", "dane.example")
ok(rc == 0 and out == "dane.example: unpinned\n", "tlspolicy unpin",
   out + err)
is_eq(d.ask("dane.example"), "OK dane-only",
      "unpinned: the learned verdict answers again at once")
rc, out, err = d.tool("unpin", "dane.example")
ok(rc == 1 and "was not pinned" in out, "unpin again: exit 1", out + err)
rc, out, err = d.tool("unpin", "sts.example")
# Its learned policy was flushed above and there is no DNS here.
is_eq(d.ask("sts.example"), "NOTFOUND ",
      "unpinned after a flush: nothing learned, no policy")
ok("dane.example unpinned by the operator" in d.read_log(),
   "unpin is logged", d.read_log()[-400:])

# --- with the daemon stopped, the tool writes the store ----------------------
d.stop()
rc, out, err = d.tool("pin", "off.example", "encrypt")
ok(rc == 0 and "(in the store)" in out, "pin with no daemon: in the store",
   out + err)
d.start()
is_eq(d.ask("off.example"), "OK encrypt", "the daemon reads it at start")
d.stop()
done()
