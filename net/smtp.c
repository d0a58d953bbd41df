/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * SMTP submission to the local MTA (see smtp.h): one libcurl easy handle
 * per transaction in one multi handle, driven through the multi_socket
 * API by libevent (an event per socket libcurl asks us to watch, one timer
 * libcurl sets), the same pattern as net/https.c. Nothing is resolved: the
 * server is an address literal, checked before libcurl sees it.
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "net/curlev.h"
#include "net/smtp.h"
#include "util/log.h"

struct smtp {
	struct event_base *base;
	struct curlev *cev;
	CURLM *multi; /* curlev_multi(cev) */
	struct smtp_send *active;
	size_t nactive;
};

struct smtp_send {
	struct smtp *s;
	struct smtp_send *next, *prev;
	CURL *easy;
	struct curl_slist *rcpts;
	smtp_cb *cb;
	void *arg;
	char *msg;
	size_t len, off;
	char url[SMTP_MAX_ARG * 2 + 16];
	char from[SMTP_MAX_ARG + 3];
	char errbuf[CURL_ERROR_SIZE];
};

const char *
smtp_strerror(enum smtp_err e)
{
	switch (e) {
	case SMTP_OK:
		return "ok";
	case SMTP_ERR_CONNECT:
		return "connect";
	case SMTP_ERR_REJECTED:
		return "rejected";
	case SMTP_ERR_TIMEOUT:
		return "timeout";
	case SMTP_ERR_PROTOCOL:
		return "protocol";
	case SMTP_ERR_INTERNAL:
		return "internal";
	}
	return "unknown";
}

size_t
smtp_active(const struct smtp *s)
{
	return s->nactive;
}

/* --- one transaction ------------------------------------------------ */

static void
send_unlink(struct smtp_send *t)
{
	struct smtp *s = t->s;

	if (t->prev != NULL)
		t->prev->next = t->next;
	else
		s->active = t->next;
	if (t->next != NULL)
		t->next->prev = t->prev;
	t->next = t->prev = NULL;
	s->nactive--;
}

static void
send_release(struct smtp_send *t)
{
	if (t->easy != NULL)
		curl_easy_cleanup(t->easy);
	curl_slist_free_all(t->rcpts);
	free(t->msg);
	free(t);
}

/* CURLOPT_READFUNCTION: the message, from our copy. */
static size_t
read_cb(char *buf, size_t sz, size_t nmemb, void *arg)
{
	struct smtp_send *t = arg;
	size_t n = sz * nmemb;

	if (n > t->len - t->off)
		n = t->len - t->off;
	memcpy(buf, t->msg + t->off, n);
	t->off += n;
	return n;
}

/* libcurl's outcome in our words; the callback runs, T is freed. */
static void
send_finish(struct smtp_send *t, CURLcode rc)
{
	struct smtp_result res;
	char why[CURL_ERROR_SIZE + 64], clean[CURL_ERROR_SIZE + 64];
	long code = 0;

	memset(&res, 0, sizeof(res));
	curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &code);
	res.code = code;
	if (rc == CURLE_OK && (code == 0 || (code >= 200 && code < 300))) {
		res.err = SMTP_OK;
		res.reason = "";
	} else {
		if (rc == CURLE_COULDNT_CONNECT)
			res.err = SMTP_ERR_CONNECT;
		else if (rc == CURLE_OPERATION_TIMEDOUT)
			res.err = SMTP_ERR_TIMEOUT;
		else if (code >= 400)
			res.err = SMTP_ERR_REJECTED;
		else if (rc == CURLE_OUT_OF_MEMORY || rc == CURLE_FAILED_INIT)
			res.err = SMTP_ERR_INTERNAL;
		else
			res.err = SMTP_ERR_PROTOCOL;
		if (res.err == SMTP_ERR_REJECTED)
			snprintf(why, sizeof(why), "reply %ld (%s)", code,
				 t->errbuf[0] ? t->errbuf
					      : curl_easy_strerror(rc));
		else
			snprintf(why, sizeof(why), "%s",
				 t->errbuf[0] ? t->errbuf
					      : curl_easy_strerror(rc));
		log_sanitize(why, strlen(why), clean, sizeof(clean));
		res.reason = clean;
	}
	t->cb(&res, t->arg);
	send_release(t);
}

/* A transfer ended (curlev). */
static void
transfer_done(void *arg, CURL *easy, CURLcode rc)
{
	struct smtp *s = arg;
	struct smtp_send *t = NULL;

	curl_easy_getinfo(easy, CURLINFO_PRIVATE, &t);
	if (t == NULL)
		log_panic("smtp: finished transfer without a send");
	curl_multi_remove_handle(s->multi, t->easy);
	send_unlink(t);
	send_finish(t, rc);
}

/* --- the API -------------------------------------------------------- */

/* "IP:PORT" or "[IPv6]:PORT" into an smtp:// URL with HELO as the path
 * (libcurl's EHLO name). 0, or -1 when it is not an address literal. */
static int
make_url(const char *server, const char *helo, char *url, size_t sz)
{
	unsigned char bin[sizeof(struct in6_addr)];
	char host[INET6_ADDRSTRLEN + 1];
	const char *colon, *p;
	size_t hl;
	long port;
	char *end;
	int v6 = 0;

	if (*server == '[') {
		p = strchr(server, ']');
		if (p == NULL || p[1] != ':')
			return -1;
		hl = (size_t)(p - server - 1);
		if (hl == 0 || hl >= sizeof(host))
			return -1;
		memcpy(host, server + 1, hl);
		colon = p + 1;
		v6 = 1;
	} else {
		colon = strrchr(server, ':');
		if (colon == NULL)
			return -1;
		hl = (size_t)(colon - server);
		if (hl == 0 || hl >= sizeof(host))
			return -1;
		memcpy(host, server, hl);
	}
	host[hl] = '\0';
	if (inet_pton(v6 ? AF_INET6 : AF_INET, host, bin) != 1)
		return -1;
	port = strtol(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end != '\0' || port < 1 || port > 65535)
		return -1;
	if (snprintf(url, sz, "smtp://%s%s%s:%ld/%s", v6 ? "[" : "", host,
		     v6 ? "]" : "", port, helo) >= (int)sz)
		return -1;
	return 0;
}

/* An address for MAIL FROM / RCPT TO: no controls, spaces or brackets. */
static int
valid_addr(const char *a)
{
	size_t i, n = strlen(a);

	if (n == 0 || n > SMTP_MAX_ARG || strchr(a, '@') == NULL)
		return 0;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)a[i];

		if (c <= ' ' || c >= 0x7f || c == '<' || c == '>')
			return 0;
	}
	return 1;
}

static int
valid_helo(const char *h)
{
	size_t i, n = strlen(h);

	if (n == 0 || n > SMTP_MAX_ARG)
		return 0;
	for (i = 0; i < n; i++)
		if (!(isalnum((unsigned char)h[i]) || h[i] == '-' ||
		      h[i] == '.'))
			return 0;
	return 1;
}

#define SET(opt, val)                                                          \
	do {                                                                   \
		if (curl_easy_setopt(e, opt, val) != CURLE_OK)                 \
			return -1;                                             \
	} while (0)

static int
send_setup(struct smtp_send *t, long timeout_ms)
{
	CURL *e = t->easy;

	SET(CURLOPT_PRIVATE, t);
	SET(CURLOPT_URL, t->url);
	SET(CURLOPT_ERRORBUFFER, t->errbuf);
	SET(CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
	SET(CURLOPT_PROTOCOLS_STR, "smtp");
#else
	SET(CURLOPT_PROTOCOLS, (long)CURLPROTO_SMTP);
#endif
	/* The MTA on this host: no proxy, no TLS, no login. */
	SET(CURLOPT_PROXY, "");
	SET(CURLOPT_NOPROXY, "*");
	SET(CURLOPT_USE_SSL, (long)CURLUSESSL_NONE);
	SET(CURLOPT_FORBID_REUSE, 1L);
	SET(CURLOPT_MAIL_FROM, t->from);
	SET(CURLOPT_MAIL_RCPT, t->rcpts);
	SET(CURLOPT_UPLOAD, 1L);
	SET(CURLOPT_READFUNCTION, read_cb);
	SET(CURLOPT_READDATA, t);
	SET(CURLOPT_INFILESIZE_LARGE, (curl_off_t)t->len);
	SET(CURLOPT_TIMEOUT_MS, timeout_ms);
	SET(CURLOPT_CONNECTTIMEOUT_MS,
	    timeout_ms < SMTP_CONNECT_MS ? timeout_ms : (long)SMTP_CONNECT_MS);
	return 0;
}

#undef SET

struct smtp_send *
smtp_send(struct smtp *s, const char *server, const char *helo,
	  const char *from, const char *rcpt, const void *msg, size_t len,
	  long timeout_ms, smtp_cb *cb, void *arg)
{
	struct smtp_send *t;
	char r[SMTP_MAX_ARG + 3];

	if (s == NULL || server == NULL || from == NULL || rcpt == NULL ||
	    msg == NULL || cb == NULL || !valid_addr(from) ||
	    !valid_addr(rcpt) || strlen(server) > SMTP_MAX_ARG)
		return NULL;
	if (helo == NULL || !valid_helo(helo))
		helo = "localhost";
	if (s->nactive >= SMTP_MAX_ACTIVE)
		return NULL;
	if ((t = calloc(1, sizeof(*t))) == NULL)
		return NULL;
	t->s = s;
	t->cb = cb;
	t->arg = arg;
	snprintf(t->from, sizeof(t->from), "<%s>", from);
	snprintf(r, sizeof(r), "<%s>", rcpt);
	if (make_url(server, helo, t->url, sizeof(t->url)) != 0 ||
	    (t->msg = malloc(len ? len : 1)) == NULL ||
	    (t->rcpts = curl_slist_append(NULL, r)) == NULL ||
	    (t->easy = curl_easy_init()) == NULL ||
	    send_setup(t, timeout_ms > 0 ? timeout_ms : SMTP_TIMEOUT_MS) != 0) {
		send_release(t);
		return NULL;
	}
	memcpy(t->msg, msg, len);
	t->len = len;
	t->next = s->active;
	if (s->active != NULL)
		s->active->prev = t;
	s->active = t;
	s->nactive++;
	/* libcurl only sets its timer here; the work starts from the loop,
	 * so the callback never runs inside this call. */
	if (curl_multi_add_handle(s->multi, t->easy) != CURLM_OK) {
		send_unlink(t);
		send_release(t);
		return NULL;
	}
	return t;
}

void
smtp_cancel(struct smtp_send *t)
{
	if (t == NULL)
		return;
	curl_multi_remove_handle(t->s->multi, t->easy);
	send_unlink(t);
	send_release(t);
}

struct smtp *
smtp_new(struct event_base *base, char *err, size_t errsz)
{
	static int curl_ready;
	struct smtp *s;

	if (!curl_ready) {
		/* Idempotent beside net/https's own call (reference
		 * counted by libcurl). */
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
			snprintf(err, errsz, "smtp: curl_global_init failed");
			return NULL;
		}
		curl_ready = 1;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL)
		goto nomem;
	s->base = base;
	if ((s->cev = curlev_new(base, transfer_done, s)) == NULL)
		goto nomem;
	s->multi = curlev_multi(s->cev);
	return s;
nomem:
	snprintf(err, errsz, "smtp: out of memory");
	smtp_free(s);
	return NULL;
}

void
smtp_free(struct smtp *s)
{
	if (s == NULL)
		return;
	while (s->active != NULL)
		smtp_cancel(s->active);
	curlev_free(s->cev);
	free(s);
}
