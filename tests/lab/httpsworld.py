# SPDX-License-Identifier: BSD-2-Clause
"""MTA-STS policy hosts served by Debian's nginx, made at test time.

    ca = pki.CA(dir)
    w = HTTPSWorld(dir, ca, addr="127.0.44.1", port=443)
    w.policy("enforce.test", "version: STSv1\\nmode: enforce\\n...")
    w.policy("html.test", body, content_type="text/html")
    w.policy("notype.test", body, content_type=None)   # no Content-Type
    w.status("e404.test", 404)
    w.redirect("redir.test", "https://mta-sts.enforce.test/.well-known/"
                             "mta-sts.txt")
    w.start()            # one nginx master + 1 worker, pid in w.pid
    w.host("enforce.test") -> "mta-sts.enforce.test"
    w.stop()             # also registered with atexit

Every policy host is https://mta-sts.<domain>/.well-known/mta-sts.txt on
ADDR:PORT. One certificate from CA carries every host name (plus EXTRA_SANS)
as a SAN; plain text/plain policies are all served by one server block with
a regex server_name (TESTING.md: scales to thousands of hosts); each special
case (other content type, status, redirect) gets its own small server block.
Policies may be changed after start(); w.reload() picks up new hosts.
"""
import atexit
import os
import shutil
import signal
import subprocess
import time

NGINX = shutil.which("nginx", path="/usr/sbin:/usr/bin:/sbin:/bin")
WELL_KNOWN = "/.well-known/mta-sts.txt"


def _q(s):
    """An nginx string literal."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


class HTTPSWorld:
    def __init__(self, dir, ca, addr="127.0.44.1", port=443, extra_sans=(),
                 name="policy-hosts"):
        self.dir = os.path.abspath(dir)
        self.ca = ca
        self.addr = addr
        self.port = port
        self.extra_sans = list(extra_sans)
        self.name = name
        self.root = os.path.join(self.dir, "www")
        self.conf = os.path.join(self.dir, "nginx.conf")
        self.log = os.path.join(self.dir, "nginx-error.log")
        self.proc = None
        self.pid = None
        self.domains = {}   # domain -> dict(kind, ...)
        self.cert = self.key = None
        os.makedirs(self.root, exist_ok=True)
        atexit.register(self.stop)

    # --- content -------------------------------------------------------

    def host(self, domain):
        return "mta-sts." + domain

    def url(self, domain):
        p = "" if self.port == 443 else ":%d" % self.port
        return "https://%s%s%s" % (self.host(domain), p, WELL_KNOWN)

    def _file(self, domain):
        d = os.path.join(self.root, domain, ".well-known")
        os.makedirs(d, exist_ok=True)
        return os.path.join(d, "mta-sts.txt")

    def policy(self, domain, body, content_type="text/plain"):
        """Serve BODY (str or bytes) as DOMAIN's policy. CONTENT_TYPE None
        sends no Content-Type header at all."""
        if isinstance(body, str):
            body = body.encode()
        with open(self._file(domain), "wb") as f:
            f.write(body)
        self.domains[domain] = {"kind": "file", "ctype": content_type}

    def status(self, domain, code, body="error\n"):
        """Answer DOMAIN's policy URL with status CODE."""
        self.domains[domain] = {"kind": "status", "code": code,
                                "body": body}

    def redirect(self, domain, location, code=301):
        self.domains[domain] = {"kind": "redirect", "code": code,
                                "location": location}

    def remove(self, domain):
        """Make DOMAIN's policy URL a 404 (the name stays in the cert)."""
        try:
            os.unlink(self._file(domain))
        except FileNotFoundError:
            pass

    # --- nginx ---------------------------------------------------------

    def _make_cert(self):
        sans = [self.host(d) for d in sorted(self.domains)] + self.extra_sans
        if not sans:
            sans = ["mta-sts.invalid"]
        self.cert, self.key = self.ca.issue(self.name, sans=sans)

    def _config(self):
        listen = "%s:%d ssl" % (self.addr, self.port)
        tls = ("    ssl_certificate %s;\n    ssl_certificate_key %s;\n" %
               (self.cert, self.key))
        out = []
        for d in sorted(self.domains):
            spec = self.domains[d]
            if spec["kind"] == "file" and spec["ctype"] == "text/plain":
                continue    # the regex server block serves it
            out.append("  server {\n    listen %s;\n    server_name %s;\n%s"
                       % (listen, self.host(d), tls))
            if spec["kind"] == "file":
                # default_type "" with an empty types map: no header.
                out.append("    root %s;\n    types { }\n"
                           "    default_type %s;\n"
                           % (os.path.join(self.root, d),
                              _q(spec["ctype"] or "")))
            elif spec["kind"] == "status":
                out.append("    default_type text/plain;\n"
                           "    location / { return %d %s; }\n"
                           % (spec["code"], _q(spec["body"])))
            else:
                out.append("    location / { return %d %s; }\n"
                           % (spec["code"], _q(spec["location"])))
            out.append("  }\n")
        return """\
daemon off;
master_process on;
worker_processes 1;
user root root;
pid {dir}/nginx.pid;
error_log {log} warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {dir}/tmp-body;
  proxy_temp_path {dir}/tmp-proxy;
  fastcgi_temp_path {dir}/tmp-fcgi;
  uwsgi_temp_path {dir}/tmp-uwsgi;
  scgi_temp_path {dir}/tmp-scgi;
  server_tokens off;
  keepalive_timeout 5;
  ssl_protocols TLSv1.2 TLSv1.3;
  server {{
    listen {listen} default_server;
    server_name ~^mta-sts\\.(?<dom>.+)$;
{tls}    root {root}/$dom;
    types {{ }}
    default_type text/plain;
    location / {{ try_files $uri =404; }}
  }}
{special}}}
""".format(dir=self.dir, log=self.log, listen=listen, tls=tls,
           root=self.root, special="".join(out))

    def _write(self):
        self._make_cert()
        with open(self.conf, "w") as f:
            f.write(self._config())

    def start(self, timeout=10.0):
        self._write()
        test = subprocess.run([NGINX, "-t", "-q", "-c", self.conf,
                               "-p", self.dir, "-e", self.log],
                              capture_output=True)
        if test.returncode != 0:
            raise RuntimeError("nginx -t: %s" % test.stderr.decode())
        logf = open(os.path.join(self.dir, "nginx.out"), "ab")
        self.proc = subprocess.Popen([NGINX, "-c", self.conf, "-p",
                                      self.dir, "-e", self.log],
                                     stdin=subprocess.DEVNULL, stdout=logf,
                                     stderr=subprocess.STDOUT)
        logf.close()
        self.pid = self.proc.pid
        self._wait_listening(timeout)
        return self.pid

    def _wait_listening(self, timeout):
        # nginx writes its pid file only once it holds every listening
        # socket: a connection before that could reach another server on
        # the same address (the machine's own nginx, say).
        import socket
        pidfile = os.path.join(self.dir, "nginx.pid")
        end = time.time() + timeout
        while time.time() < end:
            if self.proc.poll() is not None:
                raise RuntimeError("nginx exited: %s" % self.read_log())
            try:
                with open(pidfile) as f:
                    if f.read().strip() != str(self.proc.pid):
                        raise OSError("not yet")
                s = socket.create_connection((self.addr, self.port), 0.5)
                s.close()
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("nginx did not listen on %s:%d" %
                           (self.addr, self.port))

    def reload(self):
        """Re-issue the certificate and reload nginx (new hosts)."""
        self._write()
        self.proc.send_signal(signal.SIGHUP)
        time.sleep(0.3)

    def read_log(self):
        try:
            with open(self.log, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
