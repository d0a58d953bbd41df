# SPDX-License-Identifier: BSD-2-Clause
"""Socketmap answers through Postfix's own client (postmap -q) and a raw
client: static policies, store answers, key normalisation (SPEC A2),
framing (SPEC A1) and limits. After each hostile case the daemon must
still answer another client."""
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tlstest import (Daemon, done, is_closed, is_eq, netstring, ok,  # noqa
                     read_netstring)

POLICY = """example.com = dane-only
example.net = secure match=mx.example.net servername=hostname
example.org = none
xn--bcher-kva.example = dane
relay.example = encrypt
"""

d = Daemon(policy=POLICY, name="smap",
           server_extra="idle_timeout = 2\nwrite_timeout = 2\n"
                        "socketmap_names = postfix postfix310\n"
                        "tlsrpt_names = postfix310\n")
d.start()
d.stop()
# Rows the resolvers of later issues will write; the daemon must serve them.
d.put_sts("sts.example", "enforce",
          ["mx1.sts.example", "*.sts.example", "MX1.sts.example"])
d.put_sts("testing.example", "testing", ["mx.testing.example"])
d.put_sts("none.example", "none", [])
d.put_sts("expired.example", "enforce", ["mx.expired.example"],
          max_age=60, fetched_at=int(time.time()) - 3600)
d.put_dane("dane.example", "dane-only")
d.put_dane("both.example", "dane")
d.put_sts("both.example", "enforce", ["mx.both.example"])
d.put_dane("danenone.example", "none")
d.put_sts("danenone.example", "enforce", ["mx.danenone.example"])
d.start()


def healthy(what):
    is_eq(d.ask("example.com"), "OK dane-only",
          "still serving other clients after %s" % what)


# --- Postfix's own client ----------------------------------------------------
cases = [
    ("example.com", 0, "dane-only", "static dane-only"),
    ("example.net", 0, "secure match=mx.example.net servername=hostname",
     "static secure"),
    ("example.org", 1, "", "static none answers NOTFOUND"),
    ("unknown.example", 1, "", "unknown domain NOTFOUND"),
    ("EXAMPLE.COM.", 0, "dane-only", "case and trailing dot folded"),
    ("[example.com]", 0, "dane-only", "[host] uses the host"),
    ("[Example.Com]:587", 0, "dane-only", "[host]:port uses the host"),
    (".example.com", 1, "", "parent-domain probe NOTFOUND"),
    ("[192.0.2.1]", 1, "", "IPv4 literal NOTFOUND"),
    ("[ipv6:2001:db8::1]", 1, "", "IPv6 literal NOTFOUND"),
    ("bücher.example", 0, "dane", "U-label converted to A-label"),
    ("sts.example", 0,
     "secure match=mx1.sts.example:.sts.example servername=hostname",
     "cached MTA-STS enforce policy"),
    ("testing.example", 1, "", "MTA-STS testing answers NOTFOUND"),
    ("none.example", 1, "", "MTA-STS none answers NOTFOUND"),
    ("expired.example", 1, "", "expired MTA-STS policy not applied"),
    ("dane.example", 0, "dane-only", "cached DANE verdict"),
    ("both.example", 0, "dane", "DANE wins over MTA-STS"),
    ("danenone.example", 0,
     "secure match=mx.danenone.example servername=hostname",
     "no-DANE verdict leaves MTA-STS"),
    ("relay.example", 0, "encrypt", "static encrypt"),
]
for key, status, out, name in cases:
    rc, got, err = d.postmap(key)
    ok(rc == status and got == out, "postmap: %s (%s)" % (name, key),
       "rc %d out %r err %r" % (rc, got, err))

rc, got, err = d.postmap("example.com", name="nosuchmap")
ok(rc != 0 and "permanent error: unknown socketmap name" in err,
   "postmap: unknown map name is a lookup error (PERM)",
   "rc %d out %r err %r" % (rc, got, err))

# --- TLS-RPT attributes only on the name configured for Postfix >= 3.10 ------
is_eq(d.ask("sts.example", name="postfix310"),
      "OK secure match=mx1.sts.example:.sts.example servername=hostname"
      " policy_type=sts policy_domain=sts.example"
      " mx_host_pattern=mx1.sts.example mx_host_pattern=*.sts.example"
      " mx_host_pattern=MX1.sts.example"
      " { policy_string = version: STSv1 } { policy_string = mode: enforce }"
      " { policy_string = mx: mx1.sts.example }"
      " { policy_string = mx: *.sts.example }"
      " { policy_string = mx: MX1.sts.example }"
      " { policy_string = max_age: 86400 }",
      "tlsrpt name: MTA-STS answer carries the TLS-RPT attributes, "
      "patterns as stored")
is_eq(d.ask("example.com", name="postfix310"), "OK dane-only",
      "tlsrpt name: non-STS answers carry no attributes")
rc, got, err = d.postmap("sts.example")
ok(rc == 0 and "policy_type" not in got,
   "Postfix 3.7 name: no TLS-RPT attributes", got + err)

# --- raw client: answers --------------------------------------------------------
is_eq(d.ask("example.org"), "NOTFOUND ", "NOTFOUND carries its space")
is_eq(d.ask("example.com", name="other"), "PERM unknown socketmap name",
      "unknown map name answers PERM")
is_eq(d.ask(b"a" * 300), "NOTFOUND ", "invalid name answers NOTFOUND")
is_eq(d.ask(b"exa\x01mple.com"), "NOTFOUND ", "control byte answers NOTFOUND")
ok("lookup key 'exa\\x01mple.com': invalid domain name" in d.read_log(),
   "malformed key logged, sanitised", d.read_log()[-600:])
is_eq(d.ask(b"\xff\xfe.example"), "NOTFOUND ",
      "invalid UTF-8 answers NOTFOUND")
is_eq(d.ask("/var/run/lmtp"), "NOTFOUND ", "unix path NOTFOUND")
key = "a." * 4999  # a 9998-byte key: within the 10000-byte request limit
is_eq(d.ask(key[:10000 - len("postfix ")]), "NOTFOUND ",
      "request of exactly 10000 bytes answered")

# --- pipelining and split requests -------------------------------------------
s = d.connect()
s.sendall(netstring("postfix example.com") + netstring("postfix example.org")
          + netstring("postfix example.net"))
got = [read_netstring(s) for _ in range(3)]
is_eq(got, ["OK dane-only", "NOTFOUND ",
            "OK secure match=mx.example.net servername=hostname"],
      "three pipelined requests answered in order")
req = netstring("postfix example.com") * 2
for b in req:
    s.sendall(bytes([b]))
    time.sleep(0.001)
is_eq([read_netstring(s), read_netstring(s)], ["OK dane-only"] * 2,
      "requests sent one byte at a time")
is_eq(d.ask("example.net", sock=s).split()[0], "OK",
      "same connection keeps serving")
s.close()

# --- hostile framing: that connection closes, the daemon keeps serving -------
hostile = [
    (b"10001:" + b"x" * 20, "declared length over 10000"),
    (b"99999999999999:", "too many length digits"),
    (b"1a:x,", "non-digit in the length"),
    (b":x,", "no length digits"),
    (b"5:hello;", "bad terminator"),
    (b"-1:x,", "negative length"),
]
for data, name in hostile:
    s = d.connect()
    s.sendall(data)
    ok(is_closed(s), "closed after %s" % name)
    s.close()
    healthy(name)
s = d.connect()
s.sendall(b"00011:postfix x.y,")
is_eq(read_netstring(s), "NOTFOUND ", "leading zeros in the length accepted")
s.close()

# --- idle timeout (idle_timeout = 2) -----------------------------------------
s = d.connect()
is_eq(d.ask("example.com", sock=s), "OK dane-only", "idle test: first answer")
t0 = time.time()
ok(is_closed(s, timeout=8) and time.time() - t0 >= 1.5,
   "idle connection closed after idle_timeout")
s.close()

# --- a client that never reads its replies is dropped -------------------------
slow = d.connect()
slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
burst = netstring("postfix example.net") * 20000
slow.setblocking(False)
sent = 0
t0 = time.time()
while sent < len(burst) and time.time() - t0 < 3:
    try:
        sent += slow.send(burst[sent:])
    except BlockingIOError:
        time.sleep(0.01)
    except (BrokenPipeError, ConnectionResetError):
        break  # already dropped
healthy("a client stopped reading")
time.sleep(4)  # write_timeout = 2: the daemon must give up on it
ok("does not read its replies" in d.read_log(),
   "client that does not read its replies dropped after write_timeout",
   d.read_log()[-2000:])
slow.close()
healthy("the non-reading client was dropped")

# --- 1000 concurrent connections -----------------------------------------------
conns = []
for i in range(1000):
    conns.append(d.connect())
results = [None] * len(conns)


def worker(lo, hi):
    for i in range(lo, hi):
        conns[i].sendall(netstring("postfix example.com"))
    for i in range(lo, hi):
        try:
            results[i] = read_netstring(conns[i], timeout=20)
        except Exception as e:  # noqa: BLE001
            results[i] = repr(e)


threads = [threading.Thread(target=worker, args=(i, i + 100))
           for i in range(0, 1000, 100)]
for t in threads:
    t.start()
for t in threads:
    t.join()
bad = [r for r in results if r != "OK dane-only"]
ok(not bad, "1000 concurrent connections all answered",
   "%d bad, first %r" % (len(bad), bad[:3]))
for c in conns:
    c.close()
healthy("1000 connections")

ok(d.alive(), "daemon still running after every hostile case")
is_eq(d.stop(), 0, "SIGTERM exits 0")
ok(not os.path.exists(d.smap), "socket removed at exit")
done()
