# SPDX-License-Identifier: BSD-2-Clause
"""bench/perfsplit.py FILE: cost centres of a `perf script -F ip,sym,dso`
dump of a `perf record --call-graph dwarf` profile (bench/cold.py).

Each sample is charged to
  - the library its innermost frame is in (libcrypto, libc, kernel, ...),
  - its *owner*: the innermost frame in code that decides what to do
    (tlspolicyd, libgetdns, libcurl, libsqlite3, libevent, libjansson),
  - for libcrypto and libssl samples, the *entry*: the outermost
    libssl/libcrypto function on the stack, the call the owner made.
and the shares of all samples are printed, largest first.
"""
import collections
import os
import re
import sys

OWNERS = ("tlspolicyd", "libgetdns", "libcurl", "libsqlite3", "libevent",
          "libjansson", "libunbound")
# Cost centres: the first rule whose owner matches and whose pattern
# matches a function anywhere on the stack (or the innermost library,
# "leaf:NAME") takes the sample.
CENTRES = [
    ("libgetdns", r"^EC_KEY_new_by_curve_name",
     "getdns validator: EC key and group built per signature"),
    ("libgetdns", r"^EVP_DigestVerifyInit",
     "getdns validator: verification set-up per signature"),
    ("libgetdns", r"^EVP_DigestVerify(Final)?$",
     "getdns validator: ECDSA verification"),
    ("libgetdns", r"leaf:lib(crypto|ssl)",
     "getdns validator: other libcrypto (key decode, digests)"),
    ("libgetdns", r"leaf:kernel", "getdns: kernel (a UDP socket per query)"),
    ("libgetdns", r"leaf:libc", "getdns: libc (malloc, free, strings)"),
    ("libgetdns", r"", "getdns itself"),
    ("libcurl", r"^(ASN1_item_d2i|d2i_|OSSL_DECODER|PEM_)",
     "libcurl/OpenSSL: certificate and key decoding"),
    ("libcurl", r"^X509_verify_cert$",
     "libcurl/OpenSSL: certificate chain verification"),
    ("libcurl", r"^(SSL_CTX_new|SSL_CTX_free|SSL_CTX_load_verify|"
     r"X509_STORE_load|X509_load_cert)",
     "libcurl/OpenSSL: SSL_CTX and CA store per fetch"),
    ("libcurl", r"^(EVP_PKEY_generate|EVP_PKEY_derive|EVP_PKEY_keygen)",
     "libcurl/OpenSSL: TLS key exchange"),
    ("libcurl", r"^EVP_DigestVerify",
     "libcurl/OpenSSL: handshake signature verification"),
    ("libcurl", r"leaf:kernel", "libcurl: kernel (connect, socket I/O)"),
    ("libcurl", r"", "libcurl: other (TLS records, HTTP, libc)"),
    (r"libunbound|\?", r"leaf:lib(hogweed|gmp|nettle)",
     "libunbound validator: signature verification (nettle, gmp)"),
    ("libunbound", r"leaf:kernel", "libunbound: kernel (sockets)"),
    ("libunbound", r"", "libunbound itself (recursion, caches, libc)"),
    ("libsqlite3", r"", "SQLite store"),
    ("tlspolicyd|libevent|libjansson", r"leaf:kernel",
     "our code: kernel (epoll, sockets, writes)"),
    ("tlspolicyd|libevent|libjansson", r"",
     "our code (tlspolicyd, libevent, jansson)"),
    ("", r"", "other"),
]

FRAME = re.compile(r"^\s*([0-9a-f]+)\s+(.*?)\s+\((.*)\)\s*$")


def lib(dso):
    b = os.path.basename(dso)
    if b.startswith("[kernel"):
        return "kernel"
    b = re.sub(r"\.so(\.[0-9.]+)?$", "", b)
    if b.startswith("libc") and b in ("libc", "libc-2"):
        return "libc"
    if b.startswith("ld-linux"):
        return "ld.so"
    return b or "?"


def sym(s):
    s = re.sub(r"\+0x[0-9a-f]+$", "", s)
    return s if s != "[unknown]" else "?"


def samples(path):
    frames = []
    with open(path, errors="replace") as f:
        for line in f:
            m = FRAME.match(line)
            if m:
                frames.append((sym(m.group(2)), lib(m.group(3))))
            elif not line.strip():
                if frames:
                    yield frames
                frames = []
    if frames:
        yield frames


def main():
    total = 0
    by_lib = collections.Counter()
    by_owner_lib = collections.Counter()
    by_entry = collections.Counter()
    by_leaf = collections.Counter()
    ours = collections.Counter()
    centres = collections.Counter()
    for fr in samples(sys.argv[1]):
        total += 1
        leaf_sym, leaf_lib = fr[0]
        owner = "?"
        for s, l in fr:
            if l in OWNERS:
                owner = l
                break
        by_lib[leaf_lib] += 1
        names = [s for s, _ in fr] + ["leaf:" + leaf_lib]
        for own, pat, what in CENTRES:
            if re.fullmatch(own, owner.split("_")[0]) if own else True:
                if not pat or any(re.search(pat, n) for n in names):
                    centres[what] += 1
                    break
        by_owner_lib[(owner, leaf_lib)] += 1
        by_leaf[(leaf_sym, leaf_lib)] += 1
        if leaf_lib == "tlspolicyd":
            ours[leaf_sym] += 1
        if leaf_lib in ("libcrypto", "libssl"):
            entry = None
            for s, l in fr:
                if l in ("libcrypto", "libssl"):
                    entry = s
                elif entry is not None:
                    break
            by_entry[(owner, entry)] += 1
    if not total:
        sys.exit("perfsplit: no samples in %s" % sys.argv[1])

    def pct(n):
        return 100.0 * n / total

    print("samples: %d" % total)
    print("-- cost centres")
    for k, n in centres.most_common():
        print("  %5.1f %%  %s" % (pct(n), k))
    print("-- by library of the innermost frame")
    for k, n in by_lib.most_common(12):
        print("  %5.1f %%  %s" % (pct(n), k))
    print("-- by owner (innermost tlspolicyd/getdns/curl/sqlite/libevent "
          "frame) and library")
    for (o, l), n in by_owner_lib.most_common(20):
        print("  %5.1f %%  %-12s %s" % (pct(n), o, l))
    print("-- libcrypto/libssl by owner and entry (outermost libssl/"
          "libcrypto function)")
    for (o, e), n in by_entry.most_common(25):
        print("  %5.1f %%  %-12s %s" % (pct(n), o, e))
    print("-- innermost functions")
    for (s, l), n in by_leaf.most_common(25):
        print("  %5.1f %%  %-40s %s" % (pct(n), s, l))
    print("-- our code (innermost frame in tlspolicyd)")
    for s, n in ours.most_common(12):
        print("  %5.1f %%  %s" % (pct(n), s))


main()
