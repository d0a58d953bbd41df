/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The strict HTTPS policy fetch (SPEC A4, RFC 8461 §3.2, §3.3, §7): libcurl's
 * multi_socket API driven by the daemon's libevent loop.
 *
 * One GET of https://HOST[:PORT]/PATH over HTTP/1.1 and TLS >= 1.2, to the
 * addresses the caller resolved with our DNS module (handed to libcurl with
 * CURLOPT_RESOLVE; libcurl never resolves, and a socket to any other address
 * is refused). The certificate must chain to the configured CA file (or the
 * system store) and carry HOST in a subjectAltName dNSName: no CN fallback
 * (SPEC A4.24, F6). Only status 200 with Content-Type text/plain succeeds;
 * the body is limited while it streams (over the limit is a failure, never
 * a truncated body); connect, total and low-speed timeouts bound the time.
 * No redirects, no proxy (unless configured), no cookies, no conditional
 * requests, no content encoding, no connection or TLS session reuse.
 *
 * At most HTTPS_MAX_ACTIVE fetches run at once; up to HTTPS_MAX_QUEUED more
 * wait in order. A waiting fetch's time counts against its total timeout.
 */
#ifndef NET_HTTPS_H
#define NET_HTTPS_H

#include <stddef.h>
#include <stdint.h>

struct event_base;

/* Fetches in flight at once (each one is a TCP + TLS connection). */
#define HTTPS_MAX_ACTIVE 128
/* Fetches waiting for a slot; https_fetch() fails beyond this. */
#define HTTPS_MAX_QUEUED 8192
/* Addresses handed to libcurl for one host. */
#define HTTPS_MAX_ADDRS 16
/* Response header bytes accepted (all lines together). */
#define HTTPS_MAX_HEADER_BYTES 16384
/* SAN dNSNames reported from the peer certificate. */
#define HTTPS_MAX_NAMES 32
/* Longest path (after the leading '/'). */
#define HTTPS_MAX_PATH 1024

enum https_err {
	HTTPS_OK = 0,
	HTTPS_ERR_CONNECT,   /* no TCP connection to any address */
	HTTPS_ERR_TLS,	     /* TLS handshake failed (version, cipher, …) */
	HTTPS_ERR_CERT,	     /* untrusted, expired, name not in a SAN */
	HTTPS_ERR_TIMEOUT,   /* connect, total or low-speed timeout */
	HTTPS_ERR_STATUS,    /* HTTP status other than 200 (3xx included) */
	HTTPS_ERR_TYPE,	     /* Content-Type missing or not text/plain */
	HTTPS_ERR_TOO_LARGE, /* body (or headers) over the limit */
	HTTPS_ERR_PROTOCOL,  /* malformed or short HTTP response */
	HTTPS_ERR_INTERNAL,  /* memory, libcurl set-up */
};

/* Creation-time settings. Strings are copied. */
struct https_config {
	const char *ca_file; /* NULL or "": the system store ([sts] ca_file) */
	const char *proxy;   /* NULL or "": never a proxy (env ignored) */
};

/* Per-fetch limits; https_limits_default() fills the defaults. */
struct https_limits {
	long timeout_ms;	 /* total, from https_fetch() to the last
				    byte ([sts] fetch_timeout); default 20 s */
	long connect_timeout_ms; /* TCP + TLS; 0: min(10 s, timeout) */
	size_t max_size;	 /* body bytes ([sts] max_policy_size) */
	long low_speed_bytes;	 /* abort below this many bytes/s … */
	long low_speed_secs;	 /* … sustained this long; 0: off */
};

/*
 * What a fetch produced. Borrowed by the callback until it returns, except
 * BODY: a malloc'd buffer the callback may keep by setting res->body to
 * NULL (it then frees it with free()).
 */
struct https_result {
	enum https_err err;
	const char *reason;	  /* "" on success, else a short sanitised
				     text ("status 404", "hostname mismatch") */
	long status;		  /* final HTTP status, 0 when none */
	const char *content_type; /* as received (sanitised), NULL if none */
	char *body;		  /* NUL-terminated; NULL unless HTTPS_OK */
	size_t size;		  /* body bytes received (also on failure) */
	uint64_t elapsed_ms;	  /* from https_fetch() to completion */
	const char *addr;	  /* address connected to, "" if none */
	const char *const *names; /* peer certificate's SAN dNSNames */
	size_t nnames;		  /* (sanitised; also on CERT failures) */
};

struct https;
struct https_fetch;

/*
 * Completion callback: runs exactly once per fetch that was not cancelled,
 * always from the event loop, never inside https_fetch(). The fetch handle
 * is freed when it returns. It may start and cancel other fetches, but
 * must not call https_free().
 */
typedef void https_cb(struct https_result *res, void *arg);

/*
 * Fill LIM with the defaults: 20 s total, 10 s connect, LIM_POLICY_BODY
 * bytes, abort below 64 bytes/s sustained for 10 s.
 */
void https_limits_default(struct https_limits *lim);

/*
 * Create a fetcher on BASE (libcurl is initialised on first use). NULL with
 * a reason in ERR on failure. Free with https_free().
 */
struct https *https_new(struct event_base *base, const struct https_config *c,
			char *err, size_t errsz);

/*
 * Cancel every fetch (no callbacks run) and free H. https_free(NULL) does
 * nothing. Not from inside an https_cb.
 */
void https_free(struct https *h);

/*
 * Start GET https://HOST[:PORT]/PATH. HOST is the A-label name (also the
 * SNI and the name the certificate must carry); ADDRS are NADDRS (1 ..
 * HTTPS_MAX_ADDRS) IPv4/IPv6 addresses in presentation form; PORT 0 means
 * 443; PATH is the absolute path ("/.well-known/mta-sts.txt"); LIM NULL
 * means the defaults. Everything is copied. Returns a handle valid until
 * the callback starts or https_cancel(); NULL (nothing will be called)
 * when the arguments are invalid, memory runs out or the queue is full.
 */
struct https_fetch *https_fetch(struct https *h, const char *host,
				const char *const *addrs, size_t naddrs,
				int port, const char *path,
				const struct https_limits *lim, https_cb *cb,
				void *arg);

/*
 * POST BODY (LEN bytes, copied) with CONTENT_TYPE to
 * https://HOST[:PORT]/PATH (PATH may carry a query string): the TLS-RPT
 * report upload (RFC 8460 §5.4). The same TLS, address, redirect and time
 * rules as https_fetch(). Any 2xx is HTTPS_OK (the response body, limited
 * to LIM's max_size, is handed over as for a fetch); any other status is
 * HTTPS_ERR_STATUS with res->status set. Cancel with https_cancel().
 */
struct https_fetch *https_post(struct https *h, const char *host,
			       const char *const *addrs, size_t naddrs,
			       int port, const char *path,
			       const char *content_type, const void *body,
			       size_t len, const struct https_limits *lim,
			       https_cb *cb, void *arg);

/* Abort a fetch; its callback will not run. F must still be valid. */
void https_cancel(struct https_fetch *f);

/* Fetches running and waiting (for tests and tlspolicy check). */
size_t https_active(const struct https *h);
size_t https_queued(const struct https *h);

/* A short name for an error: "ok", "connect", "tls", "cert", "timeout",
 * "status", "type", "too-large", "protocol", "internal". */
const char *https_strerror(enum https_err e);

#endif /* NET_HTTPS_H */
