# SPDX-License-Identifier: BSD-2-Clause
"""The JSON-lines query protocol (doc/PROTOCOL.md) and the tlspolicy tool
against a running daemon and offline."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tlstest import Daemon, done, is_eq, is_closed, ok  # noqa

d = Daemon(policy="example.com = dane-only\nexample.org = none\n",
           name="query")
d.start()
d.stop()
d.put_sts("sts.example", "enforce", ["mx.sts.example", "*.sts.example"],
          max_age=86400)
d.start()

# --- JSON lines ---------------------------------------------------------------
r = d.jq("example.com")
ok(r is not None and r["answer"] == "OK dane-only" and r["result"] == "OK"
   and r["policy"] == "dane-only" and r["source"] == "static"
   and r["domain"] == "example.com", "bare domain line", r)
r = d.jq({"domain": "Sts.Example."})
ok(r is not None and r["answer"] ==
   "OK secure match=mx.sts.example:.sts.example servername=hostname"
   and r["mode"] == "enforce" and r["mx"] == ["mx.sts.example",
                                              "*.sts.example"]
   and isinstance(r["expires"], int) and r["expires"] > time.time()
   and r["source"] == "sts", "object request with STS details", r)
r = d.jq({"cmd": "query", "domain": ".example.com"})
ok(r is not None and r["answer"] == "NOTFOUND " and r["result"] == "NOTFOUND"
   and r["policy"] is None and r["source"] == "key", "parent probe", r)
r = d.jq({"cmd": "query", "domain": "example.org"})
ok(r is not None and r["result"] == "NOTFOUND" and r["source"] == "static",
   "static none", r)
r = d.jq({"cmd": "ping"})
is_eq(r, {"pong": True}, "ping")
r = d.jq("{not json")
ok(r is not None and "error" in r, "malformed JSON gets an error", r)
r = d.jq({"cmd": "explode"})
ok(r is not None and "error" in r, "unknown command gets an error", r)
r = d.jq({"cmd": "query"})
ok(r is not None and "error" in r, "query without domain gets an error", r)

s = d.connect(d.query)
s.sendall(b"example.com\n{\"domain\":\"example.org\"}\r\nexample.com\n")
s.settimeout(5)
buf = b""
while buf.count(b"\n") < 3:
    chunk = s.recv(65536)
    if not chunk:
        break
    buf += chunk
lines = [json.loads(x) for x in buf.decode().splitlines()]
is_eq([x.get("result") for x in lines], ["OK", "NOTFOUND", "OK"],
      "pipelined lines answered in order (CRLF accepted)")
s.close()

# Issue 10 item 20: JSON that is not an object is an error, never a key
# ("null" must not be looked up in DNS).
for line in ("[1,2,3]", "null", '"x"', "1", '["example.com"]'):
    is_eq(d.jq(line), {"error": "request is not a JSON object"},
          "%s: not a JSON object" % line)
r = d.jq("xn--0.example")
is_eq((r["answer"], r["source"], r["reason"]),
      ("NOTFOUND ", "key", "invalid domain name"),
      "invalid Punycode in an A-label: refused at normalisation")
is_eq(d.ask("xn--zz.example"), "NOTFOUND ",
      "invalid Punycode over the socketmap: NOTFOUND without a lookup")

# EOF inside a netstring and inside a request line: logged and counted.
before = d.jq({"cmd": "stats"})
s = d.connect()
s.sendall(b"19:postfix exa")
s.shutdown(1)
ok(is_closed(s), "EOF inside a netstring: connection closed")
s.close()
s = d.connect(d.query)
s.sendall(b"example.co")
s.shutdown(1)
ok(is_closed(s), "EOF inside a request line: connection closed")
s.close()
time.sleep(0.2)
after = d.jq({"cmd": "stats"})
is_eq((after["eof_in_request"] - before["eof_in_request"],
       after["framing_errors"] - before["framing_errors"]), (2, 2),
      "stats: both counted as framing errors (eof_in_request)")
log = d.read_log()
ok("end of file in the middle of a netstring" in log and
   "end of file in the middle of a request line" in log,
   "both logged in plain words", log[-600:])

s = d.connect(d.query)
s.sendall(b"x" * 5000)
ok(is_closed(s), "line over 4096 bytes closes the connection")
s.close()
r = d.jq({"cmd": "stats"})
ok(r is not None and r.get("requests", 0) >= 5 and "cache" in r,
   "stats counters", r)

# --- the tool against the running daemon ------------------------------------------
rc, out, err = d.tool("query", "example.com")
ok(rc == 0 and "OK dane-only" in out and "static" in out,
   "tlspolicy query", out + err)
rc, out, err = d.tool("-j", "query", "sts.example")
ok(rc == 0 and json.loads(out)["mode"] == "enforce", "tlspolicy -j query",
   out + err)
rc, out, err = d.tool("cache", "list")
ok(rc == 0 and "sts.example" in out, "tlspolicy cache list", out + err)
rc, out, err = d.tool("cache", "show", "STS.example.")
ok(rc == 0 and "mx.sts.example" in out and "enforce" in out,
   "tlspolicy cache show", out + err)
rc, out, err = d.tool("cache", "flush", "sts.example")
ok(rc == 0, "tlspolicy cache flush while running", out + err)
is_eq(d.ask("sts.example"), "NOTFOUND ",
      "flushed domain no longer answered (memory index too)")
rc, out, err = d.tool("cache", "flush", "sts.example")
is_eq(rc, 1, "flushing again: nothing stored")
rc, out, err = d.tool("cache", "show", "sts.example")
is_eq(rc, 1, "cache show after flush: nothing stored")

# --- offline ----------------------------------------------------------------------
is_eq(d.stop(), 0, "daemon stopped")
rc, out, err = d.tool("query", "example.com")
ok(rc == 2 and err.strip() != "", "query with no daemon: exit 2 and a message",
   "rc %d err %r" % (rc, err))
d.put_sts("off.example", "testing", ["mx.off.example"])
rc, out, err = d.tool("cache", "flush", "off.example")
ok(rc == 0, "offline flush works on the store", out + err)
rc, out, err = d.tool("cache", "show", "off.example")
is_eq(rc, 1, "offline flush removed the row")
done()
