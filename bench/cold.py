# SPDX-License-Identifier: BSD-2-Clause
"""bench/cold.py: cold resolution, tlspolicyd against postfix-mta-sts-resolver.

Run by bench/cold.sh inside a network namespace that has only loopback
(nothing can leave the machine). In one run, against the same signed zones,
the same policy hosts and the same client (bench/loadgen -o: every key once,
BENCH_CONNS connections):

  dane     tlspolicyd, empty store, [dns] resolvers = the world's unbound
           (forwarded through libunbound), DANE on, [sts] ca_file = the test CA
  nodane   the same with [dane] enabled = no
  rec      the same as dane in full recursion ([dns] resolvers empty,
           root_hints = the world's root), if this tlspolicyd has the
           option (tlspolicyd -n); it asks NSD directly, not unbound
  dane-pg  dane with its policy store in PostgreSQL 15 ([cache] path = a
           libpq URI; tests/lab/pgworld.py: initdb in the temp directory,
           a Unix socket, a fresh database per pass): issue 13's "cold
           resolutions with PostgreSQL writes" against dane's SQLite
  peer     postfix-mta-sts-resolver's mta-sts-daemon (internal cache), in a
           mount namespace whose /etc/resolv.conf names the world's unbound,
           SSL_CERT_FILE = the test CA

Before each server unbound's caches are emptied, so each one starts from
the same cold resolver. For each it prints resolutions/s (keys / time of
the pass), latency, the replies by kind, CPU seconds per domain of the
server (utime + stime from /proc/PID/stat), of unbound and of nginx, the
queries that reached unbound per domain by type (its query log), and
whether every answer is the expected one (each key asked again afterwards).
BENCH_PERF=1 adds two passes of tlspolicyd with DANE on: one under
`perf record --call-graph dwarf` (broken down by bench/perfsplit.py), one
with uprobes on library entry points (signature verifications, getdns
queries, SSL_CTX per fetch) counted by `perf stat`.

Environment: BENCH_DOMAINS (2000), BENCH_DANE_PCT (50: share of DANE
domains, the rest MTA-STS enforce), BENCH_CONNS (100), BENCH_SERVERS
("dane nodane rec peer"), BENCH_PERF (0), BENCH_PERF_FREQ (199),
BENCH_PERF_MODE ("dane"; "rec": profile full recursion), BENCH_CERT ("host":
one certificate per policy host; "shared": one naming every host),
BENCH_KEEP (0), BENCH_VERBOSE (0: tlspolicyd's [server] verbose, for
diagnosis only), BENCH_PERF_OUT (a path: keep perf.data and its perf script
dump there), BENCH_RPT_RATE (0; N > 0: TLS-RPT datagrams per second sent
during each tlspolicyd pass, see below), BENCH_RPT_SECS (10),
BENCH_RPT_QLEN (512: net.unix.max_dgram_qlen in the namespace),
BENCH_CACHED (0; N > 0: after the cold pass, N seconds of cached lookups,
closed loop over BENCH_CONNS connections, every key already resolved:
requests/s and p99, for issue 13's "cached lookups with the PostgreSQL
store" against SQLite's).

With BENCH_RPT_RATE, each tlspolicyd runs with its TLS-RPT collector on
and bench/rptsend (8 non-blocking senders, like libtlsrpt in Postfix's
smtp processes) sends BENCH_RPT_RATE datagrams per second for
BENCH_RPT_SECS seconds from the start of the cold pass: the datagrams the
kernel refused (lost), those counted in the report store afterwards, and
the daemon's queue-full count are printed with the pass (issue 10 item
15: no loss while the daemon resolves cold domains).
"""
import atexit
import collections
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time

SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(SRC, "tests", "lab"))
from dnsworld import DNSWorld  # noqa: E402
import pki  # noqa: E402

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else ".")
N = int(os.environ.get("BENCH_DOMAINS", "2000"))
DANE_PCT = int(os.environ.get("BENCH_DANE_PCT", "50"))
CONNS = int(os.environ.get("BENCH_CONNS", "100"))
SERVERS = os.environ.get("BENCH_SERVERS",
                         "dane nodane rec peer fetch").split()
PERF = os.environ.get("BENCH_PERF", "0") == "1"
PERF_FREQ = int(os.environ.get("BENCH_PERF_FREQ", "199"))
PERF_MODE = os.environ.get("BENCH_PERF_MODE", "dane")   # or "rec"
CERT = os.environ.get("BENCH_CERT", "host")
KEEP = os.environ.get("BENCH_KEEP", "0") == "1"
RPT_RATE = int(os.environ.get("BENCH_RPT_RATE", "0"))
RPT_SECS = int(os.environ.get("BENCH_RPT_SECS", "10"))
RPT_QLEN = int(os.environ.get("BENCH_RPT_QLEN", "512"))
RPTSEND = os.path.join(BUILD, "bench", "rptsend")
CACHED = int(os.environ.get("BENCH_CACHED", "0"))
pgw = None          # the PostgreSQL of the -pg servers, started on demand
pg_dbs = 0
ZONE = "secure.test"
TICK = os.sysconf("SC_CLK_TCK")
ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C", "TZ": "UTC"}
LOADGEN = os.path.join(BUILD, "bench", "loadgen")
DAEMON = os.path.join(BUILD, "tlspolicyd")
PEER = shutil.which("mta-sts-daemon")
NCPU = len(os.sched_getaffinity(0))
NGINX = shutil.which("nginx", path="/usr/sbin:/usr/bin")

tmp = tempfile.mkdtemp(prefix="tlspolicyd-cold-")
if not KEEP:
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
else:
    atexit.register(print, "cold.py: kept", tmp, file=sys.stderr)


def log(*a):
    print(*a, flush=True)


# --- the world ------------------------------------------------------------

t0 = time.time()
# unbound's caches as a real resolver would have them (the tests' 1 MB
# would evict during a pass over thousands of domains).
w = DNSWorld(workdir=os.path.join(tmp, "dns"), log_queries=True,
             cache_size="64m")
POLICY_ADDR = "127.%d.48.1" % w.slot
MXADDR = w.addr("mx1.dane311.secure.test")
n_dane = N * DANE_PCT // 100
domains = []            # (domain, kind, expected answers by server)
for i in range(N):
    # interleaved, so the mix is the same over the whole pass
    if n_dane and i * n_dane // N != (i + 1) * n_dane // N:
        d = w.add_dane_domain("bd%05d" % i, ZONE)
        domains.append((d, "dane"))
    else:
        d = "bs%05d.%s" % (i, ZONE)
        w.add_record(ZONE, "%s. MX 10 mx1.%s." % (d, d))
        w.add_record(ZONE, "mx1.%s. A %s" % (d, MXADDR))
        w.add_record(ZONE, '_mta-sts.%s. TXT "v=STSv1; id=%d;"' % (d, i))
        w.add_record(ZONE, "mta-sts.%s. A %s" % (d, POLICY_ADDR))
        domains.append((d, "sts"))
sts_domains = [d for d, k in domains if k == "sts"]


def expected(server, d, kind):
    if kind == "sts":
        return "OK secure match=mx1.%s servername=hostname" % d
    if server not in ("nodane", "peer"):
        return "OK dane-only"
    return "NOTFOUND "


# Policy hosts: nginx (one worker) with a certificate per host from a test
# CA, all with one key (nginx loads the certificate named by SNI per
# handshake), or one certificate naming every host (BENCH_CERT=shared).
ca = pki.CA(os.path.join(tmp, "ca"), name="cold bench CA")
www = os.path.join(tmp, "www")
certdir = os.path.join(tmp, "certs")
os.makedirs(certdir)
hostkey = os.path.join(tmp, "host.key")
subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                "ec_paramgen_curve:P-256", "-out", hostkey], check=True,
               capture_output=True)
for d in sts_domains:
    p = os.path.join(www, d, ".well-known")
    os.makedirs(p)
    with open(os.path.join(p, "mta-sts.txt"), "w") as f:
        f.write("version: STSv1\nmode: enforce\nmx: mx1.%s\n"
                "max_age: 86400\n" % d)


def issue_all():
    csr = os.path.join(tmp, "host.csr")
    subprocess.run(["openssl", "req", "-new", "-key", hostkey, "-subj",
                    "/CN=policy host", "-out", csr], check=True,
                   capture_output=True)
    groups = ([[d] for d in sts_domains] if CERT == "host"
              else [sts_domains])
    procs = []
    for n, group in enumerate(groups):
        ext = os.path.join(certdir, "%d.ext" % n)
        with open(ext, "w") as f:
            f.write("[e]\nbasicConstraints = critical, CA:FALSE\n"
                    "keyUsage = critical, digitalSignature\n"
                    "extendedKeyUsage = serverAuth\n"
                    "subjectAltName = %s\n" %
                    ", ".join("DNS:mta-sts." + d for d in group))
        out = os.path.join(certdir, ("mta-sts.%s.crt" % group[0])
                           if CERT == "host" else "shared.crt")
        procs.append(subprocess.Popen(
            ["openssl", "x509", "-req", "-in", csr, "-CA", ca.cert_path,
             "-CAkey", ca.key_path, "-set_serial", str(1000 + n), "-days",
             "30", "-extfile", ext, "-extensions", "e", "-out", out],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        if len(procs) >= 8:
            for p in procs:
                if p.wait() != 0:
                    sys.exit("cold.py: openssl x509 failed")
            procs = []
    for p in procs:
        if p.wait() != 0:
            sys.exit("cold.py: openssl x509 failed")


issue_all()
cert = (os.path.join(certdir, "$ssl_server_name.crt") if CERT == "host"
        else os.path.join(certdir, "shared.crt"))
nginx_dir = os.path.join(tmp, "nginx")
os.makedirs(nginx_dir)
with open(os.path.join(nginx_dir, "nginx.conf"), "w") as f:
    f.write("""daemon off;
master_process on;
worker_processes 1;
user root root;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {d}/tmp-body;
  proxy_temp_path {d}/tmp-proxy;
  fastcgi_temp_path {d}/tmp-fcgi;
  uwsgi_temp_path {d}/tmp-uwsgi;
  scgi_temp_path {d}/tmp-scgi;
  server_tokens off;
  keepalive_timeout 5;
  ssl_protocols TLSv1.2 TLSv1.3;
  server {{
    listen {a}:443 ssl default_server;
    server_name ~^mta-sts\\.(?<dom>.+)$;
    ssl_certificate {c};
    ssl_certificate_key {k};
    root {www}/$dom;
    types {{ }}
    default_type text/plain;
    location / {{ try_files $uri =404; }}
  }}
}}
""".format(d=nginx_dir, a=POLICY_ADDR, c=cert, k=hostkey, www=www))

procs = []          # every process we started, stopped by pid at exit


def stop_proc(p, sig=signal.SIGTERM, timeout=10):
    if p.poll() is None:
        p.send_signal(sig)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def cleanup():
    for p in procs:
        stop_proc(p)


atexit.register(cleanup)
signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))

w.start()
nginx = subprocess.Popen([NGINX, "-c", os.path.join(nginx_dir, "nginx.conf"),
                          "-p", nginx_dir], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
procs.append(nginx)
for _ in range(200):
    try:
        socket.create_connection((POLICY_ADDR, 443), 0.5).close()
        break
    except OSError:
        time.sleep(0.05)
else:
    sys.exit("cold.py: nginx does not listen")

keys = os.path.join(tmp, "keys")
with open(keys, "w") as f:
    f.write("".join(d + "\n" for d, _ in domains))
ready_keys = os.path.join(tmp, "ready.keys")
with open(ready_keys, "w") as f:
    f.write("ready.%s\n" % ZONE)
log("world ready in %.0f s: %d domains (%d DANE, %d MTA-STS enforce) in "
    "%s, certificates: %s" % (time.time() - t0, N, n_dane, N - n_dane,
                              ZONE, CERT))


# --- measuring ------------------------------------------------------------

def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        st = f.read()
    fields = st[st.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])      # utime + stime


def children(ppid):
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open("/proc/%s/stat" % p) as f:
                    st = f.read()
            except OSError:
                continue
            if int(st[st.rindex(")") + 2:].split()[1]) == ppid:
                out.append(int(p))
    return out


def machine_busy():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v), v[3] + v[4]          # total, idle + iowait


def udp_counters():
    """This namespace's UDP counters (only our servers use it)."""
    with open("/proc/net/snmp") as f:
        rows = [ln.split() for ln in f if ln.startswith("Udp:")]
    return dict(zip(rows[0][1:], (int(x) for x in rows[1][1:])))


def udp_drops():
    """Datagrams dropped per UDP socket ("ADDR:PORT" -> drops), from the
    last column of /proc/net/udp (this namespace only)."""
    out = collections.Counter()
    with open("/proc/net/udp") as f:
        next(f)
        for ln in f:
            c = ln.split()
            a, port = c[1].split(":")
            ip = socket.inet_ntoa(bytes.fromhex(a)[::-1])
            out["%s:%d" % (ip, int(port, 16))] += int(c[-1])
    return out


def nginx_ticks():
    return sum(cpu_ticks(p) for p in [nginx.pid] + children(nginx.pid))


def nsd_ticks():
    """NSD forks its server and transfer processes, and they fork again:
    every descendant counts."""
    todo, seen = [w.procs["nsd"].pid], []
    while todo:
        p = todo.pop()
        seen.append(p)
        todo.extend(children(p))
    total = 0
    for p in seen:
        try:
            total += cpu_ticks(p)
        except OSError:
            pass            # ended meanwhile
    return total


def unbound_queries(start):
    c = collections.Counter()
    with open(w.unbound_log, errors="replace") as f:
        f.seek(start)
        for line in f:
            m = re.search(r"info: (\S+) (\S+) (\S+) IN$", line)
            if m:
                c[m.group(3)] += 1
    return c


def ask_all(port, server):
    """Each key once more over one connection: the answers the pass left
    in the server's store; returns (wrong count, first few wrong)."""
    s = socket.create_connection(("127.0.0.1", port), 10)
    s.settimeout(30)
    f = s.makefile("rb")
    bad = []
    for d, kind in domains:
        q = ("postfix " + d).encode()
        s.sendall(b"%d:%s," % (len(q), q))
        n = b""
        while not n.endswith(b":"):
            c = f.read(1)
            if not c:
                raise RuntimeError("%s closed the connection" % server)
            n += c
        r = f.read(int(n[:-1]) + 1)[:-1].decode()
        if r != expected(server, d, kind):
            bad.append((d, r))
    s.close()
    return len(bad), bad[:3]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def pg_store():
    """A fresh, empty PostgreSQL database for one pass: its libpq URI."""
    global pgw, pg_dbs
    if pgw is None:
        import pgworld
        if not pgworld.installed():
            sys.exit("cold.py: PostgreSQL 15 is not installed")
        os.chmod(tmp, 0o755)    # PostgreSQL runs as nobody below it
        pgw = pgworld.PGWorld(tmp)
        pgw.start()
        atexit.register(pgw.stop)
    pg_dbs += 1
    db = "tlspolicyd%d" % pg_dbs
    pgw.psql("CREATE DATABASE %s" % db, db="postgres")
    return pgw.uri(db=db)


def tlspolicyd_conf(d, port, dane, rec, store=None):
    """tlspolicyd's configuration; REC: full recursion from the world's
    root ([dns] root_hints) instead of forwarding to its unbound; STORE:
    [cache] path (default: a SQLite file in D)."""
    dns = ("resolvers =\nroot_hints = %s\n" % os.path.join(w.dir,
                                                           "root.hints")
           if rec else "resolvers = %s\n" % w.resolver)
    conf = os.path.join(d, "tlspolicyd.conf")
    with open(conf, "w") as f:
        f.write("[server]\nsocketmap = inet:127.0.0.1:%d\n"
                "query_socket = unix:%s/query.sock\n"
                "socketmap_group =\nuser =\nverbose = %s\n"
                "[dns]\n%strust_anchor = %s\n"
                "[dane]\nenabled = %s\n"
                "[sts]\nca_file = %s\n"
                "[cache]\npath = %s\n" %
                (port, d, os.environ.get("BENCH_VERBOSE", "0"), dns,
                 w.trust_anchor, "yes" if dane else "no", ca.cert_path,
                 store or os.path.join(d, "cache.db")))
        if RPT_RATE > 0:
            f.write("[tlsrpt]\nenabled = yes\nsocket = %s/tlsrpt.sock\n"
                    "socket_group =\ngrace = 86400\n"
                    "organization = Bench Org\n"
                    "contact = mailto:tlsrpt@bench.example\n"
                    "submitter = bench.example\n"
                    "from = tlsrpt@bench.example\n" % d)
    return conf


def rpt_start(d):
    """bench/rptsend against D's daemon for the pass (BENCH_RPT_RATE)."""
    if RPT_RATE <= 0:
        return None
    return subprocess.Popen(
        [RPTSEND, "-s", os.path.join(d, "tlsrpt.sock"), "-n",
         str(RPT_RATE * RPT_SECS), "-p", "8", "-r", str(RPT_RATE), "-d",
         "1000"], stdout=subprocess.PIPE, text=True)


def rpt_result(p, d):
    """What rptsend sent and had refused, and what D's store counted."""
    out = p.communicate(timeout=RPT_SECS + 60)[0]
    m = re.search(r"^RESULT (.*)$", out, re.M)
    r = dict(kv.split("=") for kv in m.group(1).split()) if m else {}
    sent = int(r.get("sent", -1))
    db = os.path.join(d, "tlsrpt.db")
    counted = full = -1
    for _ in range(60):     # the daemon commits every half second
        con = sqlite3.connect(db, timeout=10)
        counted = con.execute("SELECT coalesce(sum(total), 0) FROM "
                              "policies").fetchone()[0]
        full = con.execute("SELECT coalesce(sum(value), 0) FROM counters "
                           "WHERE name = 'queue-full'").fetchone()[0]
        con.close()
        if counted >= sent:
            break
        time.sleep(0.5)
    return {"sent": sent, "refused": int(r.get("refused", -1)),
            "counted": counted, "queue_full": full}


def has_root_hints():
    """Whether this tlspolicyd knows [dns] root_hints (tlspolicyd -n)."""
    d = tempfile.mkdtemp(dir=tmp)
    r = subprocess.run([DAEMON, "-n", "-c", tlspolicyd_conf(d, 1, True,
                                                            True)],
                       env=ENV, capture_output=True)
    return r.returncode == 0


def start_tlspolicyd(name, dane, rec=False, pg=False):
    d = os.path.join(tmp, name)
    while os.path.exists(d):
        d += "+"
    os.makedirs(d)
    port = free_port()
    conf = tlspolicyd_conf(d, port, dane, rec, pg_store() if pg else None)
    logf = open(os.path.join(d, "daemon.log"), "ab")
    p = subprocess.Popen([DAEMON, "-f", "-c", conf], env=ENV,
                         stdin=subprocess.DEVNULL, stdout=logf,
                         stderr=subprocess.STDOUT)
    logf.close()
    return p, port, d


def start_peer(name):
    d = os.path.join(tmp, name)
    while os.path.exists(d):
        d += "+"
    os.makedirs(d)
    port = free_port()
    conf = os.path.join(d, "mta-sts-daemon.yml")
    with open(conf, "w") as f:
        f.write("host: 127.0.0.1\nport: %d\n"
                "cache:\n  type: internal\n  options:\n"
                "    cache_size: %d\n" % (port, max(N * 2, 10000)))
    empty = os.path.join(d, "no-cert-dir")
    os.makedirs(empty)
    env = dict(ENV, SSL_CERT_FILE=ca.cert_path, SSL_CERT_DIR=empty)
    # Its resolver (c-ares for TXT, getaddrinfo for the policy host) reads
    # /etc/resolv.conf: a private mount namespace gets the world's.
    inner = "mount --bind %s /etc/resolv.conf && exec %s -c %s -v warn" % (
        w.resolv_conf, PEER, conf)
    logf = open(os.path.join(d, "daemon.log"), "ab")
    p = subprocess.Popen(["unshare", "-m", "--propagation", "private",
                          "/bin/sh", "-c", inner], env=env,
                         stdin=subprocess.DEVNULL, stdout=logf,
                         stderr=subprocess.STDOUT)
    logf.close()
    return p, port, d


def wait_ready(p, port, d):
    r = subprocess.run([LOADGEN, "-t", "127.0.0.1:%d" % port, "-R", "30",
                        "-k", ready_keys, "-n", "1"], capture_output=True)
    if r.returncode != 0 or p.poll() is not None:
        with open(os.path.join(d, "daemon.log"), errors="replace") as f:
            sys.exit("cold.py: server in %s did not answer:\n%s" %
                     (d, f.read()[-3000:]))


def stats(d):
    try:
        s = socket.socket(socket.AF_UNIX)
        s.connect(os.path.join(d, "query.sock"))
        s.sendall(b'{"cmd":"stats"}\n')
        r = json.loads(s.makefile().readline())
        s.close()
        return r
    except (OSError, ValueError):
        return None


def cached_pass(port):
    """CACHED seconds of lookups of keys already resolved (closed loop)."""
    r = subprocess.run([LOADGEN, "-t", "127.0.0.1:%d" % port, "-c",
                        str(CONNS), "-d", str(CACHED), "-w", "1", "-k", keys,
                        "-n", str(N), "-q"], capture_output=True, text=True)
    m = re.search(r"^RESULT (.*)$", r.stdout, re.M)
    if not m:
        sys.exit("cold.py: loadgen (cached): %s" % r.stderr)
    return dict(kv.split("=") for kv in m.group(1).split())


def loadgen_pass(port):
    r = subprocess.run([LOADGEN, "-t", "127.0.0.1:%d" % port, "-c",
                        str(CONNS), "-o", "-k", keys, "-n", str(N), "-q"],
                       capture_output=True, text=True)
    m = re.search(r"^RESULT (.*)$", r.stdout, re.M)
    if not m:
        sys.exit("cold.py: loadgen: %s" % r.stderr)
    return dict(kv.split("=") for kv in m.group(1).split())


results = collections.defaultdict(list)      # name -> one per round

# Call counts (BENCH_PERF=1): uprobes on library entry points, counted by
# perf stat in a pass of its own, removed at exit.
TRACEFS = "/sys/kernel/tracing/uprobe_events"
PROBES = [("libcrypto.so.3", "EVP_DigestVerifyFinal"),
          ("libcrypto.so.3", "EVP_DigestVerify"),
          ("libcrypto.so.3", "EC_KEY_new_by_curve_name_ex"),
          ("libcrypto.so.3", "X509_verify_cert"),
          ("libssl.so.3", "SSL_CTX_new_ex"),
          ("libssl.so.3", "SSL_new"),
          ("libgetdns.so.10", "getdns_general")]
probes_added = []


def lib_path(name):
    out = subprocess.run(["ldd", DAEMON], capture_output=True,
                         text=True).stdout
    m = re.search(r"%s => (\S+)" % re.escape(name), out)
    return os.path.realpath(m.group(1))


def file_offset(path, fn):
    nm = subprocess.run(["nm", "-D", path], capture_output=True,
                        text=True).stdout
    m = re.search(r"^([0-9a-f]+) T %s(@@\S+)?$" % fn, nm, re.M)
    va = int(m.group(1), 16)
    rl = subprocess.run(["readelf", "-lW", path], capture_output=True,
                        text=True).stdout
    for ln in rl.splitlines():
        f = ln.split()
        if f and f[0] == "LOAD":
            off, vaddr, size = int(f[1], 16), int(f[2], 16), int(f[5], 16)
            if vaddr <= va < vaddr + size:
                return va - vaddr + off
    raise RuntimeError("%s: %s not in a segment" % (path, fn))


def tracefs_write(line):
    # tracefs refuses the seek that Python's append mode makes
    fd = os.open(TRACEFS, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def remove_probes():
    for ev in probes_added:
        try:
            tracefs_write("-:tlspbench/%s\n" % ev)
        except OSError:
            pass
    del probes_added[:]


def add_probes():
    atexit.register(remove_probes)
    for lib, fn in PROBES:
        path = lib_path(lib)
        tracefs_write("p:tlspbench/%s %s:0x%x\n" % (fn, path,
                                                     file_offset(path, fn)))
        probes_added.append(fn)


def run(name, perf=False, count=False):
    w.flush()
    if name == "peer":
        p, port, d = start_peer(name)
    else:
        p, port, d = start_tlspolicyd(name, name != "nodane",
                                      name.endswith("rec"),
                                      name.endswith("-pg"))
    procs.append(p)
    wait_ready(p, port, d)
    time.sleep(0.5)         # start-up work (self-test) settles
    ub = w.procs["unbound"].pid
    with open(w.unbound_log, "rb") as f:
        f.seek(0, 2)
        log_at = f.tell()
    perf_p = None
    if perf:
        perf_data = os.path.join(tmp, "perf.data")
        perf_p = subprocess.Popen(
            ["perf", "record", "-F", str(PERF_FREQ), "--call-graph",
             "dwarf", "-p", str(p.pid), "-o", perf_data],
            stdout=subprocess.DEVNULL, stderr=open(
                os.path.join(tmp, "perf.err"), "w"))
        procs.append(perf_p)
        time.sleep(1.0)
    if count:
        stat_out = os.path.join(tmp, "perf-stat.csv")
        perf_p = subprocess.Popen(
            ["perf", "stat", "-x", ",", "-o", stat_out, "-e",
             ",".join("tlspbench:" + fn for fn in probes_added),
             "-p", str(p.pid)], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        procs.append(perf_p)
        time.sleep(1.0)
    mt0, mi0 = machine_busy()
    u0 = udp_counters()
    dr0 = udp_drops()
    c0 = (cpu_ticks(p.pid), cpu_ticks(ub), nginx_ticks(), nsd_ticks())
    t = time.time()
    rpt_p = rpt_start(d) if name != "peer" else None
    res = loadgen_pass(port)
    wall = time.time() - t
    c1 = (cpu_ticks(p.pid), cpu_ticks(ub), nginx_ticks(), nsd_ticks())
    u1 = udp_counters()
    dr1 = udp_drops()
    res["drops"] = {k: v - dr0.get(k, 0) for k, v in dr1.items()
                    if v > dr0.get(k, 0)}
    res["udp"] = {k: u1[k] - u0[k] for k in u1 if u1[k] != u0[k]}
    mt1, mi1 = machine_busy()
    if perf_p is not None:
        perf_p.send_signal(signal.SIGINT)
        perf_p.wait(120)
    time.sleep(0.3)
    res["calls"] = []
    if count:
        with open(stat_out) as f:
            for ln in f:
                c = ln.split(",")
                if len(c) > 2 and c[2].startswith("tlspbench:"):
                    res["calls"].append(
                        "calls: %-28s %8s  %6.1f per domain" % (
                            c[2][10:], c[0], float(c[0]) / N
                            if c[0].isdigit() else 0))
    res["wall"] = wall
    res["cpu"] = [(b - a) / TICK for a, b in zip(c0, c1)]
    res["machine"] = 100.0 * (1 - (mi1 - mi0) / max(1, mt1 - mt0))
    res["queries"] = unbound_queries(log_at)
    res["stats"] = stats(d) if name != "peer" else None
    res["wrong"] = ask_all(port, name)
    res["cached"] = cached_pass(port) if CACHED > 0 else None
    res["rpt"] = rpt_result(rpt_p, d) if rpt_p is not None else None
    stop_proc(p)
    with open(os.path.join(d, "daemon.log"), errors="replace") as f:
        res["warnings"] = [ln.rstrip() for ln in f
                           if re.search(r"warn|error", ln, re.I) and
                           "running as root" not in ln and
                           "gracefully" not in ln and
                           "client handlers" not in ln and
                           "ready." + ZONE not in ln]
    results[name].append(res)
    q = res["queries"]
    log("  %-7s %6.1f resolutions/s  %5.1f s  p50 %6.0f ms  p99 %6.0f ms  "
        "cpu/domain: server %.2f ms, unbound %.2f ms, nginx %.2f ms, "
        "nsd %.2f ms; machine %.0f%% busy" % (
            name, float(res["rps"]), wall, int(res["p50_us"]) / 1e3,
            int(res["p99_us"]) / 1e3, res["cpu"][0] * 1e3 / N,
            res["cpu"][1] * 1e3 / N, res["cpu"][2] * 1e3 / N,
            res["cpu"][3] * 1e3 / N, res["machine"]))
    log("          replies ok %s notfound %s temp %s other %s errors %s; "
        "wrong answers afterwards %d %s" % (
            res["ok"], res["notfound"], res["temp"], res["other"],
            res["errors"], res["wrong"][0], res["wrong"][1] or ""))
    log("          queries at unbound: %d (%.2f per domain): %s" % (
        sum(q.values()), sum(q.values()) / N,
        ", ".join("%s %d" % kv for kv in q.most_common())))
    log("          UDP counters (namespace): %s" % " ".join(
        "%s +%d" % kv for kv in sorted(res["udp"].items())))
    if res["drops"]:
        log("          datagrams dropped by the socket on %s" % ", ".join(
            "%s: %d" % kv for kv in sorted(res["drops"].items())))
    if res["cached"]:
        log("          cached lookups afterwards (%d s, %d connections): "
            "%s requests/s, p50 %s us, p99 %s us, errors %s" % (
                CACHED, CONNS, res["cached"]["rps"],
                res["cached"]["p50_us"], res["cached"]["p99_us"],
                res["cached"]["errors"]))
    if res["rpt"]:
        log("          TLS-RPT meanwhile (%d/s for %d s, qlen %d): sent %d, "
            "refused %d, counted %d, queue-full %d" % (
                RPT_RATE, RPT_SECS, RPT_QLEN, res["rpt"]["sent"],
                res["rpt"]["refused"], res["rpt"]["counted"],
                res["rpt"]["queue_full"]))
    for ln in res["calls"]:
        log("          " + ln)
    if res["warnings"]:
        log("          %d warnings in its log, e.g.:" % len(res["warnings"]))
        for ln in res["warnings"][:5]:
            log("            " + ln)
    if res["stats"]:
        log("          stats: %s" % json.dumps(res["stats"],
                                               sort_keys=True))
    return res


def run_fetch(name):
    """A reference for the HTTPS part: curl(1) alone fetches every
    policy (100 at a time, the addresses given, the test CA), no DNS and
    no policy work: what a bare libcurl client spends per fetch here."""
    cfg = os.path.join(tmp, "fetch.cfg")
    with open(cfg, "w") as f:
        f.write('parallel\nparallel-max = %d\ncacert = "%s"\n'
                'silent\nshow-error\nfail\nhttp1.1\n' % (
                    CONNS, ca.cert_path))
        for d in sts_domains:
            f.write('resolve = "mta-sts.%s:443:%s"\n' % (d, POLICY_ADDR))
        for d in sts_domains:
            f.write('url = "https://mta-sts.%s/.well-known/mta-sts.txt"\n'
                    'output = "/dev/null"\n' % d)
    mt0, mi0 = machine_busy()
    c0 = (0, cpu_ticks(w.procs["unbound"].pid), nginx_ticks(), nsd_ticks())
    t = time.time()
    p = subprocess.Popen(["curl", "-K", cfg], stdin=subprocess.DEVNULL,
                         env=dict(os.environ, SSL_CERT_FILE=ca.cert_path,
                                  SSL_CERT_DIR=""))
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    wall = time.time() - t
    c1 = (0, cpu_ticks(w.procs["unbound"].pid), nginx_ticks(), nsd_ticks())
    mt1, mi1 = machine_busy()
    if p.returncode != 0:
        sys.exit("cold.py: curl failed (%d)" % p.returncode)
    res = {"rps": str(N / wall), "wall": wall, "machine":
           100.0 * (1 - (mi1 - mi0) / max(1, mt1 - mt0))}
    res["cpu"] = [ru.ru_utime + ru.ru_stime] + [
        (b - a) / TICK for a, b in zip(c0[1:], c1[1:])]
    results[name].append(res)
    log("  %-7s %6.1f domains/s   %5.1f s  (curl alone, the %d policies)  "
        "cpu/domain: curl %.2f ms (%.2f per fetch), nginx %.2f ms; "
        "machine %.0f%% busy" % (
            name, N / wall, wall, len(sts_domains), res["cpu"][0] * 1e3 / N,
            res["cpu"][0] * 1e3 / max(1, len(sts_domains)),
            res["cpu"][2] * 1e3 / N, res["machine"]))
    return res


with open("/proc/loadavg") as f:
    log("load average before: %s" % " ".join(f.read().split()[:3]))
CRYPTO = {}
r = subprocess.run(["openssl", "speed", "-seconds", "1", "-mr", "ecdsap256",
                    "ecdhx25519"], capture_output=True, text=True)
for ln in r.stdout.splitlines():
    f = ln.split(":")
    if ln.startswith("+F4:") and f[2] == "256":
        CRYPTO["verify"] = 1 / float(f[4])          # P-256 verifies/s
    elif ln.startswith("+F5:"):
        CRYPTO["x25519"] = 1 / float(f[3])          # X25519 ops/s
if len(CRYPTO) != 2:
    CRYPTO = {}
else:
    log("openssl speed on this machine: P-256 verify %.3f ms, X25519 %.3f ms"
        % (CRYPTO["verify"] * 1e3, CRYPTO["x25519"] * 1e3))
if RPT_RATE > 0:
    if not os.access(RPTSEND, os.X_OK):
        sys.exit("cold.py: %s missing (make bench/rptsend)" % RPTSEND)
    # A per-namespace setting: this namespace's only.
    with open("/proc/sys/net/unix/max_dgram_qlen", "w") as f:
        f.write("%d\n" % RPT_QLEN)
log("== cold resolution: %d domains, %d connections, %s" % (
    N, CONNS, time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime())))
for name in SERVERS:
    if name == "peer" and not PEER:
        log("  peer    not run: mta-sts-daemon is not installed")
        continue
    if name == "fetch":
        if shutil.which("curl"):
            run_fetch(name)
        else:
            log("  fetch   not run: curl is not installed")
        continue
    if name == "rec" and not has_root_hints():
        log("  rec     not run: this tlspolicyd has no [dns] root_hints "
            "(full recursion from the world's root)")
        continue
    run(name)


def rps(name, i):
    return float(results[name][i]["rps"])


for i in range(max([len(v) for v in results.values()] or [0])):
    have = [k for k in results if len(results[k]) > i]
    if "dane" in have and "peer" in have:
        log("round %d: ratio tlspolicyd (DANE on) / peer:  %.2f  "
            "(target >= 2)" % (i + 1, rps("dane", i) / rps("peer", i)))
    if "rec" in have and "peer" in have:
        log("round %d: ratio tlspolicyd (recursion) / peer: %.2f  "
            "(target >= 2)" % (i + 1, rps("rec", i) / rps("peer", i)))
    if "dane" in have and "dane-pg" in have:
        log("round %d: ratio PostgreSQL store / SQLite store, cold: %.2f" % (
            i + 1, rps("dane-pg", i) / rps("dane", i)))
        if CACHED > 0:
            log("round %d: ratio PostgreSQL store / SQLite store, cached: "
                "%.2f" % (i + 1, float(results["dane-pg"][i]["cached"]["rps"])
                          / float(results["dane"][i]["cached"]["rps"])))
    if "nodane" in have and "peer" in have:
        log("round %d: ratio tlspolicyd (DANE off) / peer: %.2f" % (
            i + 1, rps("nodane", i) / rps("peer", i)))
    for name in have:
        log("round %d: cpu per cold domain, %-7s %.2f ms%s" % (
            i + 1, name, results[name][i]["cpu"][0] * 1e3 / N,
            "" if name in ("peer", "fetch") else "  (target <= 5 ms)"))
    # What the machine allows: at twice the peer's rate, the server and
    # the world (unbound, NSD, nginx) together get NCPU / (2 x rate) of
    # CPU per domain. What the world alone needs is spent before the
    # server does anything; what is left must pay at least for the
    # signature checks a validating server cannot skip.
    if "peer" in have:
        budget = NCPU / (2 * rps("peer", i)) * 1e3
        log("round %d: twice the peer's rate leaves %.2f ms of CPU per "
            "domain on %d CPUs, for the server and the world together" % (
                i + 1, budget, NCPU))
        for name in have:
            if name == "fetch":
                continue
            c = results[name][i]["cpu"]
            world = sum(c[1:]) * 1e3 / N
            log("round %d: %-7s world %.2f ms + server %.2f ms per domain; "
                "the world alone allows at most %.2f x the peer, and "
                "leaves %.2f ms for the server" % (
                    i + 1, name, world, c[0] * 1e3 / N,
                    NCPU / (world / 1e3) / rps("peer", i) if world > 0
                    else float("inf"), budget - world))
        if CRYPTO and "dane" in have:
            q = results["dane"][i]["queries"]
            answers = sum(q.values()) / N
            fetches = len(sts_domains) / N
            need = (answers * CRYPTO["verify"] + fetches *
                    (2 * CRYPTO["verify"] + 2 * CRYPTO["x25519"])) * 1e3
            log("round %d: signature checks alone, at openssl speed's "
                "rates (P-256 verify %.3f ms, X25519 %.3f ms): %.2f "
                "answers and %.2f fetches per domain need %.2f ms" % (
                    i + 1, CRYPTO["verify"] * 1e3, CRYPTO["x25519"] * 1e3,
                    answers, fetches, need))

if PERF:
    log("== perf: tlspolicyd (%s), DANE on, cold pass, -F %d --call-graph "
        "dwarf" % (PERF_MODE, PERF_FREQ))
    run("perf-" + PERF_MODE, perf=True)
    try:
        add_probes()
        run("count-" + PERF_MODE, count=True)
    except (OSError, RuntimeError, AttributeError) as e:
        log("  call counts not taken: %s" % e)
    remove_probes()
    out = os.path.join(tmp, "perf.script")
    with open(out, "w") as f:
        subprocess.run(["perf", "script", "-i", os.path.join(tmp,
                                                             "perf.data"),
                        "-F", "ip,sym,dso", "--no-inline"], stdout=f,
                       stderr=subprocess.DEVNULL)
    subprocess.run([sys.executable, os.path.join(SRC, "bench",
                                                 "perfsplit.py"), out])
    dst = os.environ.get("BENCH_PERF_OUT")
    if dst:
        shutil.copy(os.path.join(tmp, "perf.data"), dst)
        shutil.copy(out, dst + ".script")
