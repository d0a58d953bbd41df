/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Mail submission over SMTP to the local MTA (RFC 5321): libcurl's smtp://
 * through its multi_socket API on the daemon's libevent loop, as net/https
 * does. Used for TLS-RPT report mail ([tlsrpt] smtp), so that reports go
 * out under a hardened unit where a setgid sendmail cannot run (issue 10
 * item 11).
 *
 * One transaction per call: connect to SERVER (an address literal, never a
 * name: nothing is resolved here), EHLO, MAIL FROM, one RCPT TO, DATA with
 * the message as given (CRLF line ends; libcurl dot-stuffs), QUIT. No TLS
 * and no authentication: the server is the MTA on this host. No proxy.
 *
 * At most SMTP_MAX_ACTIVE transactions run at once; smtp_send() fails
 * beyond that (the caller retries later).
 */
#ifndef NET_SMTP_H
#define NET_SMTP_H

#include <stddef.h>

struct event_base;

/* Transactions in flight at once. */
#define SMTP_MAX_ACTIVE 64
/* Default whole-transaction and connect time limits (ms). */
#define SMTP_TIMEOUT_MS 60000
#define SMTP_CONNECT_MS 10000
/* Longest SERVER, FROM, RCPT and HELO strings accepted. */
#define SMTP_MAX_ARG 320

enum smtp_err {
	SMTP_OK = 0,
	SMTP_ERR_CONNECT,  /* no TCP connection */
	SMTP_ERR_REJECTED, /* the server answered with a 4xx or 5xx */
	SMTP_ERR_TIMEOUT,  /* connect or whole-transaction time limit */
	SMTP_ERR_PROTOCOL, /* connection lost, malformed reply */
	SMTP_ERR_INTERNAL, /* memory, libcurl set-up */
};

/* The outcome; borrowed by the callback until it returns. */
struct smtp_result {
	enum smtp_err err;
	long code;	    /* the server's last reply code, 0 if none */
	const char *reason; /* "" on success, else short sanitised words */
};

struct smtp;
struct smtp_send;

/*
 * Runs exactly once per transaction that was not cancelled, always from
 * the event loop, never inside smtp_send(). The handle is freed when it
 * returns.
 */
typedef void smtp_cb(const struct smtp_result *res, void *arg);

/* A submitter on BASE (libcurl initialised on first use); NULL with a
 * reason in ERR. */
struct smtp *smtp_new(struct event_base *base, char *err, size_t errsz);

/* Cancel every transaction (no callbacks) and free; NULL does nothing. */
void smtp_free(struct smtp *s);

/*
 * Submit MSG (LEN bytes, copied) from FROM to RCPT (plain addresses,
 * checked by the caller; a CR, LF or angle bracket is refused) through
 * SERVER, "IP:PORT" or "[IPv6]:PORT". HELO is the EHLO name. TIMEOUT_MS
 * 0 means SMTP_TIMEOUT_MS. Returns a handle valid until the callback
 * starts or smtp_cancel(); NULL (nothing will be called) on bad arguments,
 * memory shortage or SMTP_MAX_ACTIVE reached.
 */
struct smtp_send *smtp_send(struct smtp *s, const char *server,
			    const char *helo, const char *from,
			    const char *rcpt, const void *msg, size_t len,
			    long timeout_ms, smtp_cb *cb, void *arg);

/* Abort; its callback will not run. */
void smtp_cancel(struct smtp_send *t);

/* Transactions running (for tests). */
size_t smtp_active(const struct smtp *s);

/* "ok", "connect", "rejected", "timeout", "protocol", "internal". */
const char *smtp_strerror(enum smtp_err e);

#endif /* NET_SMTP_H */
