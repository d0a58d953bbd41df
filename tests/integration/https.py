# SPDX-License-Identifier: BSD-2-Clause
"""The strict HTTPS policy fetch (SPEC A4) against real servers on loopback:
nginx for the well-behaved and the plainly wrong hosts, Python ssl servers
for the hostile ones, all driven through tests/lab/fetch (the https module
on one libevent loop). Every case asserts the exact outcome; the slow and
silent ones also their time bounds. fetch_timeout is 3 s here.
"""
import atexit
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lab"))
import tlstest  # noqa: E402
from tlstest import ok, is_eq, done, bail  # noqa: E402
import pki  # noqa: E402
import httpsworld  # noqa: E402
import hostile_https  # noqa: E402

FETCH = os.path.join(tlstest.TOP_BUILDDIR, "tests", "lab", "fetch")
PATH = "/.well-known/mta-sts.txt"
TIMEOUT = 3.0
SLACK = 1.5

ENFORCE = ("version: STSv1\nmode: enforce\nmx: mx1.enforce.test\n"
           "max_age: 86400\n")
TESTING = "version: STSv1\nmode: testing\nmx: mx.testing.test\nmax_age: 600\n"
NONE = "version: STSv1\nmode: none\nmax_age: 86400\n"
TWO_MX = ("version: STSv1\r\nmode: enforce\r\nmx: mx1.two.test\r\n"
          "mx: *.mx.two.test\r\nmax_age: 604800\r\n")


def free_base():
    """A 127.44.X.0/24 whose .1 and .10-.21 are free on port 443."""
    for _ in range(50):
        net = "127.44.%d." % random.randrange(1, 255)
        addrs = [net + "1"] + [net + str(10 + i) for i in range(13)]
        try:
            socks = []
            for a in addrs:
                s = socket.socket()
                socks.append(s)
                s.bind((a, 443))
            return net
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    bail("no free 127.44.x.0/24 on port 443")


def fetch(jobs, env=None, timeout=60):
    """Run tests/lab/fetch; JOBS is a list of argument lists; returns the
    JSON lines (in completion order) and the wall time."""
    args = [FETCH]
    for j in jobs:
        args += j
    e = dict(os.environ)
    if env:
        e.update(env)
    t0 = time.monotonic()
    p = subprocess.run(args, capture_output=True, text=True, env=e,
                       timeout=timeout)
    wall = time.monotonic() - t0
    if p.returncode != 0:
        print("# fetch exited %d: %s" % (p.returncode, p.stderr.strip()))
    return [json.loads(line) for line in p.stdout.splitlines()], wall


def main():
    if not os.access(FETCH, os.X_OK):
        bail("%s is not built" % FETCH)
    tmp = tempfile.mkdtemp(prefix="tlspolicyd-https-")
    if not os.environ.get("KEEP_TMP"):
        # Registered first, so it runs after the servers have stopped.
        atexit.register(shutil.rmtree, tmp, True)
    net = free_base()
    ca = pki.CA(os.path.join(tmp, "ca"))
    ok(os.path.exists(ca.cert_path), "pki: test CA made")
    r = pki.tlsa_rdata(ca.cert_path, 2, 0, 1)
    ok(r.startswith("2 0 1 ") and len(r) == 6 + 64, "pki: TLSA rdata")

    w = httpsworld.HTTPSWorld(os.path.join(tmp, "nginx"), ca,
                              addr=net + "1", port=443)
    w.policy("enforce.test", ENFORCE)
    w.policy("testing.test", TESTING)
    w.policy("none.test", NONE)
    w.policy("two.test", TWO_MX)
    w.policy("charset.test", ENFORCE,
             content_type="Text/Plain ; charset=UTF-8")
    w.policy("html.test", ENFORCE, content_type="text/html")
    w.policy("plainish.test", ENFORCE, content_type="text/plainx")
    w.policy("notype.test", ENFORCE, content_type=None)
    w.policy("big.test", "x" * 70000)
    w.policy("empty.test", "")
    w.status("e404.test", 404)
    w.status("e500.test", 500)
    w.redirect("redir.test", w.url("enforce.test"))
    w.start()
    h = hostile_https.Hostile(os.path.join(tmp, "hostile"), ca,
                              base_addr=net + "10", port=443)
    h.start()
    A = ["-A", ca.cert_path, "-t", str(TIMEOUT)]

    def job(dom, *extra):
        return A + list(extra) + ["-r", net + "1", "mta-sts." + dom, PATH]

    def hjob(case, *extra):
        return A + list(extra) + ["-r", h.addr(case)[0], h.host(case), PATH]

    # --- nginx: the good and the plainly wrong, all at once --------------
    want = {
        # domain: (err, status, content_type, size)
        "enforce.test": ("ok", 200, "text/plain", len(ENFORCE)),
        "testing.test": ("ok", 200, "text/plain", len(TESTING)),
        "none.test": ("ok", 200, "text/plain", len(NONE)),
        "two.test": ("ok", 200, "text/plain", len(TWO_MX)),
        "charset.test": ("ok", 200, "Text/Plain ; charset=UTF-8",
                         len(ENFORCE)),
        "empty.test": ("ok", 200, "text/plain", 0),
        "html.test": ("type", 200, "text/html", 0),
        "plainish.test": ("type", 200, "text/plainx", 0),
        "notype.test": ("type", 200, None, 0),
        "e404.test": ("status", 404, "text/plain", 0),
        "e500.test": ("status", 500, "text/plain", 0),
        "redir.test": ("status", 301, "text/html", 0),
        "nosuch.test": ("cert", 0, None, 0),
    }
    res, wall = fetch([job(d, "-b") for d in sorted(want)])
    got = {r["host"][len("mta-sts."):]: r for r in res}
    is_eq(sorted(got), sorted(want), "nginx: one result per fetch")
    for d, (err, status, ctype, size) in sorted(want.items()):
        r = got.get(d, {})
        is_eq((r.get("err"), r.get("status"), r.get("content_type"),
               r.get("size")), (err, status, ctype, size),
              "nginx %s: err, status, type, size" % d)
    is_eq(got["enforce.test"].get("body"), ENFORCE, "enforce: exact body")
    is_eq(got["two.test"].get("body"), TWO_MX, "two mx + wildcard: body")
    ok("body" not in got["html.test"], "a failed fetch has no body")
    ok("mta-sts.enforce.test" in got["enforce.test"].get("names", []),
       "certificate SAN names reported")
    is_eq(got["enforce.test"].get("addr"), net + "1", "peer address")
    is_eq(got["nosuch.test"].get("reason"), "certificate: hostname mismatch",
          "a name not in the certificate: hostname mismatch")
    ok(wall < 5, "nginx cases in %.2f s" % wall)

    # --- the size limit is exact and holds while streaming ---------------
    res, _ = fetch([job("enforce.test", "-m", str(len(ENFORCE))),
                    job("enforce.test", "-m", str(len(ENFORCE) - 1)),
                    job("big.test", "-m", "65536")])
    is_eq([r["err"] for r in sorted(res, key=lambda r: r["job"])],
          ["ok", "too-large", "too-large"],
          "limit: body == max ok, max-1 too large, 70,000 bytes too large")
    big = [r for r in res if r["job"] == 2][0]
    is_eq(big.get("reason"), "body larger than 65536 bytes",
          "70,000-byte body: reason")

    # --- hostile servers, all concurrently on one loop -------------------
    hwant = {
        "good": ("ok", 200, len(hostile_https.POLICY)),
        "endless": ("too-large", 200, None),
        # HTTP framing: the body is the 10 bytes Content-Length announced
        # (the STS parser rejects them); nothing past it is read.
        "cl_short": ("ok", 200, 10),
        "cl_long": ("protocol", 200, len(hostile_https.POLICY)),
        "slow": ("timeout", 0, None),
        "silent": ("timeout", 0, 0),
        "tls_silent": ("timeout", 0, 0),
        "expired": ("cert", 0, 0),
        "wrongname": ("cert", 0, 0),
        "cnonly": ("cert", 0, 0),
        "selfsigned": ("cert", 0, 0),
        "tls10": ("tls", 0, 0),
    }
    reasons = {
        "expired": "certificate: certificate has expired",
        "wrongname": "certificate: hostname mismatch",
        "cnonly": "certificate has no subjectAltName dNSName",
        "selfsigned": "certificate: self-signed certificate",
    }
    res, wall = fetch([hjob(c) for c in h.cases])
    got = {h.cases[r["job"]]: r for r in res}
    is_eq(sorted(got), sorted(h.cases), "hostile: one result per fetch")
    for c, (err, status, size) in hwant.items():
        r = got.get(c, {})
        is_eq(r.get("err"), err, "hostile %s: %s" % (c, err))
        is_eq(r.get("status"), status, "hostile %s: status" % c)
        if size is not None:
            is_eq(r.get("size"), size, "hostile %s: size" % c)
        if c in reasons:
            is_eq(r.get("reason"), reasons[c], "hostile %s: reason" % c)
    ok(got.get("endless", {}).get("size", 0) > 65536,
       "endless: stopped just past the limit")
    is_eq(got.get("cnonly", {}).get("names"), [], "cnonly: no SAN names")
    is_eq(got.get("wrongname", {}).get("names"), ["other.hostile.test"],
          "wrongname: the names it has")
    for c in ("slow", "silent", "tls_silent"):
        e = got.get(c, {}).get("elapsed_ms", -1) / 1000.0
        ok(TIMEOUT - 0.1 <= e <= TIMEOUT + SLACK,
           "hostile %s: failed after %.2f s (timeout %.1f s)" %
           (c, e, TIMEOUT))
    for c in ("good", "endless", "cl_short", "cl_long", "expired",
              "cnonly", "tls10"):
        e = got.get(c, {}).get("elapsed_ms", -1) / 1000.0
        ok(0 <= e < 2, "hostile %s: decided in %.2f s" % (c, e))
    ok(wall < TIMEOUT + SLACK + 1, "hostile cases together in %.2f s" % wall)

    # --- the loop is not blocked by a hanging fetch ----------------------
    res, wall = fetch([hjob("slow"), job("enforce.test", "-d", "500"),
                       job("none.test", "-d", "1500")])
    is_eq([r["job"] for r in res], [1, 2, 0],
          "while slowloris hangs, later fetches complete first")
    ok(all(r["elapsed_ms"] < 1000 for r in res if r["job"] != 0),
       "and quickly")

    # --- cancellation ----------------------------------------------------
    res, wall = fetch([hjob("slow", "-c", "300"),
                       hjob("silent", "-c", "300", "-n", "3"),
                       job("enforce.test", "-d", "600")])
    is_eq(sorted((r["job"], r["err"]) for r in res),
          [(0, "cancelled"), (1, "cancelled"), (1, "cancelled"),
           (1, "cancelled"), (2, "ok")],
          "cancelled fetches never call back; the loop goes on")
    ok(wall < 2, "cancel is immediate (%.2f s)" % wall)

    # --- many at once (beyond HTTPS_MAX_ACTIVE: the queue) ---------------
    res, wall = fetch([job("enforce.test", "-n", "50")])
    is_eq(sum(1 for r in res if r["err"] == "ok"), 50,
          "50 concurrent fetches complete")
    res, wall = fetch([job("two.test", "-n", "200")], timeout=90)
    is_eq(sum(1 for r in res if r["err"] == "ok"), 200,
          "200 fetches, 128 at a time, all complete (%.2f s)" % wall)

    # --- trust and proxies -----------------------------------------------
    res, _ = fetch([["-t", str(TIMEOUT), "-r", net + "1",
                     "mta-sts.enforce.test", PATH]])
    is_eq(res[0]["err"] if res else None, "cert",
          "system store does not trust the test CA")
    env = {"https_proxy": "http://127.0.0.9:9", "HTTPS_PROXY":
           "http://127.0.0.9:9", "ALL_PROXY": "http://127.0.0.9:9",
           "SSL_CERT_FILE": ca.cert_path, "CURL_CA_BUNDLE": ca.cert_path}
    res, _ = fetch([job("enforce.test")], env=env)
    is_eq(res[0]["err"] if res else None, "ok",
          "proxy environment variables are ignored")
    res, _ = fetch([["-t", str(TIMEOUT), "-r", net + "1",
                     "mta-sts.enforce.test", PATH]], env=env)
    is_eq(res[0]["err"] if res else None, "cert",
          "SSL_CERT_FILE does not add to the system store")

    # --- bad arguments are refused at once ------------------------------
    res, _ = fetch([A + ["-r", "not-an-address", "mta-sts.enforce.test",
                         PATH],
                    A + ["-r", net + "1", "mta-sts.enforce.test", "nopath"],
                    A + ["-r", net + "1", "bad host", PATH]])
    is_eq([r["err"] for r in res], ["refused"] * 3, "bad arguments refused")

    h.stop()
    w.stop()
    done()


if __name__ == "__main__":
    main()
