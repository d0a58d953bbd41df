# SPDX-License-Identifier: BSD-2-Clause
"""Misbehaving MTA-STS policy hosts, with Python's ssl and socket.

Each case listens on its own address (BASE_ADDR, BASE_ADDR+1, … in case
order) and PORT, for the host mta-sts.<case>.<suffix> ("_" in a case name
becomes "-"):

  good        200 text/plain, the policy (control case)
  endless     200 text/plain, chunked, never ends
  cl_short    Content-Length 10, then the whole policy, then close
  cl_long     Content-Length policy+1000, the policy, then close
  slow        the whole response at 1 byte per second
  silent      TCP accepted, no TLS, nothing ever sent
  tls_silent  TLS handshake done, then nothing ever sent
  expired     a CA certificate for the host that expired in 2020
  wrongname   a CA certificate for another name only
  cnonly      a CA certificate with CN=host and no subjectAltName
  selfsigned  a self-signed certificate for the host
  tls10       TLS 1.0 only (SECLEVEL=0), a good certificate

In a test:
    h = Hostile(dir, ca, base_addr="127.0.45.1", port=443)
    h.start()                       # threads in this process
    addr, port = h.addr("slow"); h.host("slow"); h.domain("slow")
As a process (for a daemon test): python3 hostile_https.py DIR CADIR
BASE_ADDR PORT prints one JSON line {case: [addr, port, host]} once every
listener is up and serves until SIGTERM.
"""
import ipaddress
import json
import os
import signal
import socket
import ssl
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pki  # noqa: E402

CASES = ("good", "endless", "cl_short", "cl_long", "slow", "silent",
         "tls_silent", "expired", "wrongname", "cnonly", "selfsigned",
         "tls10")

POLICY = (b"version: STSv1\nmode: enforce\nmx: mx1.hostile.test\n"
          b"max_age: 86400\n")


class Hostile:
    def __init__(self, dir, ca, base_addr="127.0.45.1", port=443,
                 suffix="hostile.test", cases=CASES, body=POLICY):
        self.dir = os.path.abspath(dir)
        os.makedirs(self.dir, exist_ok=True)
        self.ca = ca
        self.port = port
        self.suffix = suffix
        self.cases = list(cases)
        self.body = body
        base = ipaddress.IPv4Address(base_addr)
        self._addr = {c: str(base + i) for i, c in enumerate(self.cases)}
        self._socks = []
        self._stop = threading.Event()

    def domain(self, case):
        return "%s.%s" % (case.replace("_", "-"), self.suffix)

    def host(self, case):
        return "mta-sts." + self.domain(case)

    def addr(self, case):
        return self._addr[case], self.port

    # --- certificates --------------------------------------------------

    def _context(self, case):
        host = self.host(case)
        name = "hostile-" + case
        if case == "silent":
            return None
        if case == "expired":
            cert, key = self.ca.issue(name, sans=[host],
                                      not_before="20200101000000Z",
                                      not_after="20200201000000Z")
        elif case == "wrongname":
            cert, key = self.ca.issue(name, sans=["other." + self.suffix])
        elif case == "cnonly":
            cert, key = self.ca.issue(name, sans=[], cn=host)
        elif case == "selfsigned":
            cert, key = pki.self_signed(self.dir, name, [host])
        else:
            cert, key = self.ca.issue(name, sans=[host])
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        if case == "tls10":
            # OpenSSL 3 allows TLS 1.0 only at security level 0.
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
            ctx.minimum_version = ssl.TLSVersion.TLSv1
            ctx.maximum_version = ssl.TLSVersion.TLSv1
        ctx.load_cert_chain(cert, key)
        return ctx

    # --- serving -------------------------------------------------------

    def start(self):
        for case in self.cases:
            ctx = self._context(case)
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(self.addr(case))
            s.listen(128)
            self._socks.append(s)
            t = threading.Thread(target=self._accept, args=(s, case, ctx),
                                 daemon=True)
            t.start()

    def stop(self):
        self._stop.set()
        for s in self._socks:
            try:
                s.close()
            except OSError:
                pass

    def _accept(self, lsock, case, ctx):
        while not self._stop.is_set():
            try:
                conn, _ = lsock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn, case, ctx),
                             daemon=True).start()

    def _hold(self, conn):
        """Say nothing until the peer goes away (or 60 s)."""
        conn.settimeout(60)
        try:
            while conn.recv(4096):
                pass
        except (OSError, ssl.SSLError):
            pass

    def _serve(self, conn, case, ctx):
        try:
            conn.settimeout(30)
            if case == "silent":
                self._hold(conn)
                return
            conn = ctx.wrap_socket(conn, server_side=True)
            if case == "tls_silent":
                self._hold(conn)
                return
            req = b""
            while b"\r\n\r\n" not in req and len(req) < 16384:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                req += chunk
            getattr(self, "_resp_" + case, self._resp_good)(conn)
        except (OSError, ssl.SSLError, ValueError):
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def _head(self, length, extra=b""):
        return (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                b"Content-Length: %d\r\nConnection: close\r\n%s\r\n" %
                (length, extra))

    def _resp_good(self, conn):
        conn.sendall(self._head(len(self.body)) + self.body)

    def _resp_endless(self, conn):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b"mx: endless.hostile.test\n" * 160
        frame = b"%x\r\n%s\r\n" % (len(chunk), chunk)
        while not self._stop.is_set():
            conn.sendall(frame)

    def _resp_cl_short(self, conn):
        conn.sendall(self._head(10) + self.body)

    def _resp_cl_long(self, conn):
        conn.sendall(self._head(len(self.body) + 1000) + self.body)

    def _resp_slow(self, conn):
        data = self._head(len(self.body)) + self.body
        for i in range(len(data)):
            if self._stop.is_set():
                return
            conn.sendall(data[i:i + 1])
            time.sleep(1)


def main(argv):
    if len(argv) != 5:
        print("usage: hostile_https.py DIR CADIR BASE_ADDR PORT",
              file=sys.stderr)
        return 2
    ca = pki.CA(argv[2])
    h = Hostile(argv[1], ca, base_addr=argv[3], port=int(argv[4]))
    h.start()
    print(json.dumps({c: [h.addr(c)[0], h.port, h.host(c)]
                      for c in h.cases}), flush=True)
    signal.sigwait([signal.SIGTERM, signal.SIGINT])
    h.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
