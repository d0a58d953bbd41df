/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The strict HTTPS policy fetch: libcurl easy handles in one multi handle,
 * driven through the multi_socket API by libevent (one event per socket
 * libcurl asks us to watch, one timer libcurl sets), the pattern curl's
 * documentation describes for event loops.
 *
 * Every rule of SPEC A4 is an option set in fetch_setup() or a check in a
 * callback: the host's addresses arrive through CURLOPT_RESOLVE and the
 * open-socket callback refuses any other address; the TLS context gets an
 * OpenSSL host check that never looks at the subject CN; the header and
 * write callbacks enforce the size limits and stop early on a wrong status
 * or content type, so a hostile server cannot make us store anything.
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "net/curlev.h"
#include "net/https.h"
#include "util/ev.h"
#include "util/limits.h"
#include "util/log.h"

#define USER_AGENT   "tlspolicyd/" PACKAGE_VERSION
#define REASON_MAX   160
#define CTYPE_MAX    128
#define NAME_MAX_LEN (LIM_DOMAIN_MAX + 1)

/* Why we aborted a transfer from inside a callback. */
enum abort_why {
	ABORT_NONE = 0,
	ABORT_STATUS,
	ABORT_TYPE,
	ABORT_BODY,
	ABORT_HEADERS,
	ABORT_MEMORY,
	ABORT_ADDR,
};

struct https {
	struct event_base *base;
	struct curlev *cev; /* the multi handle on the loop */
	CURLM *multi;	    /* curlev_multi(cev) */
	struct event *kick; /* starts waiting fetches from the loop */
	char *ca_file;	    /* "": OpenSSL's default paths */
	char *proxy;	    /* NULL: none */
	size_t nactive;
	size_t nqueued;
	struct https_fetch *qhead, *qtail; /* waiting, FIFO */
	struct https_fetch *active;	   /* running, doubly linked */
};

/* The SSL_CTX ex_data slot that points from a TLS context to its fetch
 * (libcurl makes one context per connection). */
static int ssl_idx = -1;

struct https_fetch {
	struct https *h;
	struct https_fetch *next, *prev;
	CURL *easy;
	struct curl_slist *resolve;
	https_cb *cb;
	void *arg;
	struct https_limits lim;
	uint64_t started_ms; /* https_fetch() call, monotonic */
	char host[LIM_DOMAIN_MAX + 1];
	char url[LIM_DOMAIN_MAX + HTTPS_MAX_PATH + 32];
	int port;
	char addrs[HTTPS_MAX_ADDRS][INET6_ADDRSTRLEN];
	size_t naddrs;
	/* Response state. */
	char *body;
	size_t size, cap;
	size_t header_bytes;
	int checked; /* status and type looked at (first body byte) */
	enum abort_why why;
	long status;
	int verify_err; /* X509_V_ERR_* seen by the verify callback */
	int no_san;	/* leaf certificate has no dNSName SAN at all */
	char names[HTTPS_MAX_NAMES][NAME_MAX_LEN];
	const char *namep[HTTPS_MAX_NAMES];
	size_t nnames;
	char errbuf[CURL_ERROR_SIZE];
	/* https_post(): the request body and its Content-Type header. */
	int post;
	char *post_body;
	size_t post_len;
	struct curl_slist *post_hdrs;
};

static void kick_schedule(struct https *);

const char *
https_strerror(enum https_err e)
{
	switch (e) {
	case HTTPS_OK:
		return "ok";
	case HTTPS_ERR_CONNECT:
		return "connect";
	case HTTPS_ERR_TLS:
		return "tls";
	case HTTPS_ERR_CERT:
		return "cert";
	case HTTPS_ERR_TIMEOUT:
		return "timeout";
	case HTTPS_ERR_STATUS:
		return "status";
	case HTTPS_ERR_TYPE:
		return "type";
	case HTTPS_ERR_TOO_LARGE:
		return "too-large";
	case HTTPS_ERR_PROTOCOL:
		return "protocol";
	case HTTPS_ERR_INTERNAL:
		return "internal";
	}
	return "unknown";
}

void
https_limits_default(struct https_limits *lim)
{
	lim->timeout_ms = 20000;
	lim->connect_timeout_ms = 10000;
	lim->max_size = LIM_POLICY_BODY;
	lim->low_speed_bytes = 64;
	lim->low_speed_secs = 10;
}

size_t
https_active(const struct https *h)
{
	return h->nactive;
}

size_t
https_queued(const struct https *h)
{
	return h->nqueued;
}

/* --- content type --------------------------------------------------- */

/*
 * SPEC A4.28: the media type must be text/plain; type and subtype compare
 * case-insensitively, parameters (charset) are ignored.
 */
static int
is_text_plain(const char *ct)
{
	static const char want[] = "text/plain";
	size_t i;

	if (ct == NULL)
		return 0;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	for (i = 0; i < sizeof(want) - 1; i++)
		if (tolower((unsigned char)ct[i]) != want[i])
			return 0;
	ct += i;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	return *ct == '\0' || *ct == ';';
}

/* --- libcurl callbacks ---------------------------------------------- */

/*
 * Look at the status and content type once, before the first body byte is
 * accepted: a 404 page or an HTML body is never read further.
 */
static int
check_response(struct https_fetch *f)
{
	const char *ct = NULL;

	f->checked = 1;
	curl_easy_getinfo(f->easy, CURLINFO_RESPONSE_CODE, &f->status);
	if (f->post) {
		/* RFC 8460 §5.4: any 2xx is delivered; the body is not ours
		 * to read beyond the limit. */
		if (f->status < 200 || f->status > 299) {
			f->why = ABORT_STATUS;
			return -1;
		}
		return 0;
	}
	if (f->status != 200) { /* SPEC A4.26 */
		f->why = ABORT_STATUS;
		return -1;
	}
	curl_easy_getinfo(f->easy, CURLINFO_CONTENT_TYPE, &ct);
	if (!is_text_plain(ct)) { /* SPEC A4.28 */
		f->why = ABORT_TYPE;
		return -1;
	}
	return 0;
}

static size_t
write_cb(char *data, size_t sz, size_t nmemb, void *arg)
{
	struct https_fetch *f = arg;
	size_t n = sz * nmemb, ncap;
	char *nb;

	if (!f->checked && check_response(f) == -1)
		return 0;
	/* SPEC A4.29: the limit holds while streaming, whatever
	 * Content-Length or the chunk sizes claimed. */
	if (n > f->lim.max_size - f->size) {
		f->size += n;
		f->why = ABORT_BODY;
		return 0;
	}
	if (f->size + n + 1 > f->cap) {
		ncap = f->cap ? f->cap : 1024;
		while (ncap < f->size + n + 1)
			ncap *= 2;
		if (ncap > f->lim.max_size + 1)
			ncap = f->lim.max_size + 1;
		if ((nb = realloc(f->body, ncap)) == NULL) {
			f->why = ABORT_MEMORY;
			return 0;
		}
		f->body = nb;
		f->cap = ncap;
	}
	memcpy(f->body + f->size, data, n);
	f->size += n;
	f->body[f->size] = '\0';
	return n;
}

static size_t
header_cb(char *data, size_t sz, size_t nmemb, void *arg)
{
	struct https_fetch *f = arg;
	size_t n = sz * nmemb;

	(void)data;
	f->header_bytes += n;
	if (f->header_bytes > HTTPS_MAX_HEADER_BYTES) {
		f->why = ABORT_HEADERS;
		return 0;
	}
	return n;
}

/*
 * Only the addresses our DNS module gave may be connected to (DESIGN 5:
 * no lookup bypasses the configured resolver), whatever libcurl's DNS
 * cache holds.
 */
static curl_socket_t
opensocket_cb(void *arg, curlsocktype purpose, struct curl_sockaddr *sa)
{
	struct https_fetch *f = arg;
	char buf[INET6_ADDRSTRLEN];
	const void *a;
	size_t i;

	if (purpose != CURLSOCKTYPE_IPCXN)
		goto refuse;
	if (sa->family == AF_INET)
		a = &((const struct sockaddr_in *)(void *)&sa->addr)->sin_addr;
	else if (sa->family == AF_INET6)
		a = &((const struct sockaddr_in6 *)(void *)&sa->addr)
			 ->sin6_addr;
	else
		goto refuse;
	if (inet_ntop(sa->family, a, buf, sizeof(buf)) == NULL)
		goto refuse;
	for (i = 0; i < f->naddrs; i++)
		if (strcmp(buf, f->addrs[i]) == 0)
			return socket(sa->family, sa->socktype, sa->protocol);
refuse:
	f->why = ABORT_ADDR;
	return CURL_SOCKET_BAD;
}

/* Keep the leaf certificate's dNSNames, for the result. */
static void
collect_names(struct https_fetch *f, X509 *cert)
{
	GENERAL_NAMES *gens;
	const GENERAL_NAME *g;
	int i, n;

	f->nnames = 0;
	f->no_san = 1;
	gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	if (gens == NULL)
		return;
	n = sk_GENERAL_NAME_num(gens);
	for (i = 0; i < n; i++) {
		g = sk_GENERAL_NAME_value(gens, i);
		if (g->type != GEN_DNS)
			continue;
		f->no_san = 0;
		if (f->nnames == HTTPS_MAX_NAMES)
			continue;
		log_sanitize((const char *)ASN1_STRING_get0_data(g->d.dNSName),
			     (size_t)ASN1_STRING_length(g->d.dNSName),
			     f->names[f->nnames], NAME_MAX_LEN);
		f->namep[f->nnames] = f->names[f->nnames];
		f->nnames++;
	}
	GENERAL_NAMES_free(gens);
}

/*
 * OpenSSL verify callback: OpenSSL decides (chain, dates and, through the
 * X509_VERIFY_PARAM set in sslctx_cb, the host name); we only remember the
 * leaf's names and the first error, for an exact failure reason.
 */
static int
verify_cb(int ok, X509_STORE_CTX *xs)
{
	SSL *ssl;
	struct https_fetch *f;
	X509 *cert;

	ssl = X509_STORE_CTX_get_ex_data(xs,
					 SSL_get_ex_data_X509_STORE_CTX_idx());
	if (ssl == NULL ||
	    (f = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ssl_idx)) == NULL)
		return ok;
	if (X509_STORE_CTX_get_error_depth(xs) == 0 &&
	    (cert = X509_STORE_CTX_get_current_cert(xs)) != NULL)
		collect_names(f, cert);
	if (!ok && f->verify_err == 0)
		f->verify_err = X509_STORE_CTX_get_error(xs);
	return ok;
}

/*
 * SPEC A4.24, F6: the name must be in a SAN dNSName. libcurl's own check
 * falls back to the CN, so OpenSSL checks the host first with
 * X509_CHECK_FLAG_NEVER_CHECK_SUBJECT (and no partial wildcards).
 */
static CURLcode
sslctx_cb(CURL *easy, void *sslctx, void *arg)
{
	struct https_fetch *f = arg;
	SSL_CTX *ctx = sslctx;
	X509_VERIFY_PARAM *param;

	(void)easy;
	param = SSL_CTX_get0_param(ctx);
	X509_VERIFY_PARAM_set_hostflags(
	    param, X509_CHECK_FLAG_NEVER_CHECK_SUBJECT |
		       X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (X509_VERIFY_PARAM_set1_host(param, f->host, 0) != 1)
		return CURLE_OUT_OF_MEMORY;
	if (SSL_CTX_set_ex_data(ctx, ssl_idx, f) != 1)
		return CURLE_OUT_OF_MEMORY;
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, verify_cb);
	return CURLE_OK;
}

/* --- finishing -------------------------------------------------------- */

static void
fetch_release(struct https_fetch *f)
{
	if (f->easy != NULL)
		curl_easy_cleanup(f->easy);
	curl_slist_free_all(f->resolve);
	curl_slist_free_all(f->post_hdrs);
	free(f->post_body);
	free(f->body);
	free(f);
}

static void
active_unlink(struct https_fetch *f)
{
	struct https *h = f->h;

	if (f->prev != NULL)
		f->prev->next = f->next;
	else
		h->active = f->next;
	if (f->next != NULL)
		f->next->prev = f->prev;
	f->next = f->prev = NULL;
	h->nactive--;
}

/* Map libcurl's result and our own abort reasons to a result. */
static void
classify(struct https_fetch *f, CURLcode rc, struct https_result *res,
	 char *reason, size_t rsz)
{
	res->err = HTTPS_OK;
	reason[0] = '\0';
	if (f->why == ABORT_STATUS || f->why == ABORT_TYPE ||
	    (rc == CURLE_OK && !f->checked && check_response(f) == -1)) {
		if (f->why == ABORT_STATUS) {
			res->err = HTTPS_ERR_STATUS;
			snprintf(reason, rsz, "status %ld", f->status);
		} else {
			res->err = HTTPS_ERR_TYPE;
			snprintf(reason, rsz, "content type %s",
				 res->content_type ? res->content_type
						   : "missing");
		}
		return;
	}
	switch (f->why) {
	case ABORT_BODY:
		res->err = HTTPS_ERR_TOO_LARGE;
		snprintf(reason, rsz, "body larger than %zu bytes",
			 f->lim.max_size);
		return;
	case ABORT_HEADERS:
		res->err = HTTPS_ERR_TOO_LARGE;
		snprintf(reason, rsz, "headers larger than %d bytes",
			 HTTPS_MAX_HEADER_BYTES);
		return;
	case ABORT_MEMORY:
		res->err = HTTPS_ERR_INTERNAL;
		snprintf(reason, rsz, "out of memory");
		return;
	default:
		break;
	}
	if (f->verify_err != 0) {
		res->err = HTTPS_ERR_CERT;
		if (f->verify_err == X509_V_ERR_HOSTNAME_MISMATCH && f->no_san)
			snprintf(reason, rsz,
				 "certificate has no subjectAltName dNSName");
		else
			snprintf(reason, rsz, "certificate: %s",
				 X509_verify_cert_error_string(f->verify_err));
		return;
	}
	if (rc == CURLE_OK)
		return;
	switch (rc) {
	case CURLE_OPERATION_TIMEDOUT:
		res->err = HTTPS_ERR_TIMEOUT;
		break;
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
		res->err = f->why == ABORT_ADDR ? HTTPS_ERR_INTERNAL
						: HTTPS_ERR_CONNECT;
		break;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
		res->err = HTTPS_ERR_CERT;
		break;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_USE_SSL_FAILED:
		res->err = HTTPS_ERR_TLS;
		break;
	case CURLE_OUT_OF_MEMORY:
	case CURLE_FAILED_INIT:
		res->err = HTTPS_ERR_INTERNAL;
		break;
	default:
		/* PARTIAL_FILE (a Content-Length longer than the body),
		 * GOT_NOTHING, RECV_ERROR, WEIRD_SERVER_REPLY, … */
		res->err = HTTPS_ERR_PROTOCOL;
		break;
	}
	log_sanitize(f->errbuf[0] ? f->errbuf : curl_easy_strerror(rc),
		     strlen(f->errbuf[0] ? f->errbuf : curl_easy_strerror(rc)),
		     reason, rsz);
}

/* Deliver the result of F (done or failed before starting) and free it. */
static void
fetch_finish(struct https_fetch *f, CURLcode rc)
{
	struct https_result res;
	char reason[REASON_MAX], ctype[CTYPE_MAX], addr[INET6_ADDRSTRLEN];
	const char *s;

	memset(&res, 0, sizeof(res));
	ctype[0] = addr[0] = '\0';
	if (f->easy != NULL) {
		s = NULL;
		if (curl_easy_getinfo(f->easy, CURLINFO_CONTENT_TYPE, &s) ==
			CURLE_OK &&
		    s != NULL) {
			log_sanitize(s, strlen(s), ctype, sizeof(ctype));
			res.content_type = ctype;
		}
		s = NULL;
		if (curl_easy_getinfo(f->easy, CURLINFO_PRIMARY_IP, &s) ==
			CURLE_OK &&
		    s != NULL)
			log_sanitize(s, strlen(s), addr, sizeof(addr));
		if (f->status == 0)
			curl_easy_getinfo(f->easy, CURLINFO_RESPONSE_CODE,
					  &f->status);
	}
	res.status = f->status;
	res.addr = addr;
	classify(f, rc, &res, reason, sizeof(reason));
	res.reason = reason;
	res.size = f->size;
	res.names = f->namep;
	res.nnames = f->nnames;
	res.elapsed_ms = ev_mono_ms() - f->started_ms;
	if (res.err == HTTPS_OK) {
		if (f->body == NULL && (f->body = calloc(1, 1)) == NULL) {
			res.err = HTTPS_ERR_INTERNAL;
			res.reason = "out of memory";
		} else {
			res.body = f->body;
			f->body = NULL;
		}
	}
	f->cb(&res, f->arg);
	free(res.body); /* unless the callback took it */
	fetch_release(f);
}

/* A transfer ended (curlev): finish it, and start what waits. */
static void
transfer_done(void *arg, CURL *easy, CURLcode rc)
{
	struct https *h = arg;
	struct https_fetch *f = NULL;

	curl_easy_getinfo(easy, CURLINFO_PRIVATE, &f);
	if (f == NULL)
		log_panic("https: finished transfer without a fetch");
	curl_multi_remove_handle(h->multi, f->easy);
	active_unlink(f);
	fetch_finish(f, rc);
	if (h->qhead != NULL)
		kick_schedule(h);
}

/* --- starting -------------------------------------------------------- */

#define SET(opt, val)                                                          \
	do {                                                                   \
		if (curl_easy_setopt(e, opt, val) != CURLE_OK)                 \
			return -1;                                             \
	} while (0)

/* Every SPEC A4 rule that is a libcurl option. */
static int
fetch_setup(struct https_fetch *f, long timeout_ms)
{
	struct https *h = f->h;
	CURL *e = f->easy;
	long connect_ms, low_secs;

	SET(CURLOPT_PRIVATE, f);
	SET(CURLOPT_URL, f->url);
	SET(CURLOPT_ERRORBUFFER, f->errbuf);
	SET(CURLOPT_NOSIGNAL, 1L);
	/* SPEC A4.26: https only, redirects never followed. */
#if LIBCURL_VERSION_NUM >= 0x075500
	SET(CURLOPT_PROTOCOLS_STR, "https");
	/* libcurl refuses "" here; FOLLOWLOCATION 0 is what forbids
	 * redirects, this only narrows them further. */
	SET(CURLOPT_REDIR_PROTOCOLS_STR, "https");
#else
	SET(CURLOPT_PROTOCOLS, (long)CURLPROTO_HTTPS);
	SET(CURLOPT_REDIR_PROTOCOLS, (long)CURLPROTO_HTTPS);
#endif
	SET(CURLOPT_FOLLOWLOCATION, 0L);
	SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	/* DESIGN 5: our addresses only. */
	SET(CURLOPT_RESOLVE, f->resolve);
	SET(CURLOPT_OPENSOCKETFUNCTION, opensocket_cb);
	SET(CURLOPT_OPENSOCKETDATA, f);
	/* SPEC A4.27: no proxy unless configured, no caches, no cookies;
	 * a fresh connection so every fetch sees the certificate. */
	SET(CURLOPT_PROXY, h->proxy ? h->proxy : "");
	if (h->proxy == NULL)
		SET(CURLOPT_NOPROXY, "*");
	SET(CURLOPT_FRESH_CONNECT, 1L);
	SET(CURLOPT_FORBID_REUSE, 1L);
	SET(CURLOPT_SSL_SESSIONID_CACHE, 0L);
	SET(CURLOPT_USERAGENT, USER_AGENT);
	/* SPEC A4.29: count raw bytes, never decode. */
	SET(CURLOPT_HTTP_CONTENT_DECODING, 0L);
	SET(CURLOPT_HTTP_TRANSFER_DECODING, 1L);
	/* SPEC A4.24, A4.25: TLS >= 1.2, verified chain and name. */
	SET(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	SET(CURLOPT_SSL_VERIFYPEER, 1L);
	SET(CURLOPT_SSL_VERIFYHOST, 2L);
	if (h->ca_file[0] != '\0') {
		/* Only this file, no CA directory: SSL_CERT_FILE and the
		 * like never add to it, and libcurl caches the parsed
		 * store across fetches. */
		SET(CURLOPT_CAINFO, h->ca_file);
		SET(CURLOPT_CAPATH, (char *)NULL);
	}
	SET(CURLOPT_SSL_CTX_FUNCTION, sslctx_cb);
	SET(CURLOPT_SSL_CTX_DATA, f);
	/* SPEC A4.29: time limits. */
	SET(CURLOPT_TIMEOUT_MS, timeout_ms);
	connect_ms = f->lim.connect_timeout_ms;
	if (connect_ms <= 0 || connect_ms > timeout_ms)
		connect_ms = timeout_ms;
	SET(CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
	if (f->lim.low_speed_secs > 0 && f->lim.low_speed_bytes > 0) {
		low_secs = f->lim.low_speed_secs;
		SET(CURLOPT_LOW_SPEED_LIMIT, f->lim.low_speed_bytes);
		SET(CURLOPT_LOW_SPEED_TIME, low_secs);
	}
	SET(CURLOPT_WRITEFUNCTION, write_cb);
	SET(CURLOPT_WRITEDATA, f);
	SET(CURLOPT_HEADERFUNCTION, header_cb);
	SET(CURLOPT_HEADERDATA, f);
	if (f->post) {
		SET(CURLOPT_POST, 1L);
		SET(CURLOPT_POSTFIELDS, f->post_body);
		SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)f->post_len);
		SET(CURLOPT_HTTPHEADER, f->post_hdrs);
	}
	return 0;
}

#undef SET

/* Hand F to libcurl; on failure finish it (only ever from the loop or
 * before https_fetch() returns a handle, see https_fetch). */
static int
fetch_start(struct https_fetch *f)
{
	struct https *h = f->h;
	long left;

	left = f->lim.timeout_ms - (long)(ev_mono_ms() - f->started_ms);
	if (left <= 0)
		return -2; /* waited out its whole time in the queue */
	if ((f->easy = curl_easy_init()) == NULL)
		return -1;
	if (fetch_setup(f, left) == -1)
		return -1;
	f->prev = NULL;
	f->next = h->active;
	if (h->active != NULL)
		h->active->prev = f;
	h->active = f;
	h->nactive++;
	if (curl_multi_add_handle(h->multi, f->easy) != CURLM_OK) {
		active_unlink(f);
		return -1;
	}
	return 0;
}

/* Start waiting fetches while there are free slots (from the loop). */
static void
kick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct https *h = arg;
	struct https_fetch *f;
	int r;

	(void)fd;
	(void)what;
	while (h->qhead != NULL && h->nactive < HTTPS_MAX_ACTIVE) {
		f = h->qhead;
		h->qhead = f->next;
		if (h->qhead == NULL)
			h->qtail = NULL;
		f->next = NULL;
		h->nqueued--;
		if ((r = fetch_start(f)) != 0)
			fetch_finish(f, r == -2 ? CURLE_OPERATION_TIMEDOUT
						: CURLE_FAILED_INIT);
	}
}

static void
kick_schedule(struct https *h)
{
	struct timeval tv = {0, 0};

	evtimer_add(h->kick, &tv);
}

/* --- the API -------------------------------------------------------- */

static int
valid_host(const char *host)
{
	size_t i, n = strlen(host);

	if (n == 0 || n > LIM_DOMAIN_MAX)
		return 0;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)host[i];

		if (!(isalnum(c) || c == '-' || c == '.' || c == '_'))
			return 0;
	}
	return 1;
}

static int
valid_path(const char *path)
{
	size_t i, n = strlen(path);

	if (n == 0 || n > HTTPS_MAX_PATH || path[0] != '/')
		return 0;
	for (i = 0; i < n; i++)
		if ((unsigned char)path[i] <= 0x20 ||
		    (unsigned char)path[i] >= 0x7f || path[i] == '#' ||
		    path[i] == '?')
			return 0;
	return 1;
}

/* "HOST:PORT:addr1,[v6],…" for CURLOPT_RESOLVE. */
static int
make_resolve(struct https_fetch *f)
{
	char line[LIM_DOMAIN_MAX + 16 +
		  HTTPS_MAX_ADDRS * (INET6_ADDRSTRLEN + 3)];
	size_t len, i;
	int n;

	n = snprintf(line, sizeof(line), "%s:%d:", f->host, f->port);
	if (n < 0 || (size_t)n >= sizeof(line))
		return -1;
	len = (size_t)n;
	for (i = 0; i < f->naddrs; i++) {
		int v6 = strchr(f->addrs[i], ':') != NULL;

		n = snprintf(line + len, sizeof(line) - len, "%s%s%s%s",
			     i ? "," : "", v6 ? "[" : "", f->addrs[i],
			     v6 ? "]" : "");
		if (n < 0 || (size_t)n >= sizeof(line) - len)
			return -1;
		len += (size_t)n;
	}
	f->resolve = curl_slist_append(NULL, line);
	return f->resolve == NULL ? -1 : 0;
}

static struct https_fetch *request(struct https *h, const char *host,
				   const char *const *addrs, size_t naddrs,
				   int port, const char *path,
				   const struct https_limits *lim, https_cb *cb,
				   void *arg, const char *ctype,
				   const void *body, size_t len);

struct https_fetch *
https_fetch(struct https *h, const char *host, const char *const *addrs,
	    size_t naddrs, int port, const char *path,
	    const struct https_limits *lim, https_cb *cb, void *arg)
{
	if (path == NULL || !valid_path(path))
		return NULL;
	return request(h, host, addrs, naddrs, port, path, lim, cb, arg, NULL,
		       NULL, 0);
}

/* A POST path may carry a query string (RFC 8460 §3 rua URIs). */
static int
valid_post_path(const char *path)
{
	size_t i, n = strlen(path);

	if (n == 0 || n > HTTPS_MAX_PATH || path[0] != '/')
		return 0;
	for (i = 0; i < n; i++)
		if ((unsigned char)path[i] <= 0x20 ||
		    (unsigned char)path[i] >= 0x7f || path[i] == '#')
			return 0;
	return 1;
}

struct https_fetch *
https_post(struct https *h, const char *host, const char *const *addrs,
	   size_t naddrs, int port, const char *path, const char *ctype,
	   const void *body, size_t len, const struct https_limits *lim,
	   https_cb *cb, void *arg)
{
	size_t i;

	if (path == NULL || !valid_post_path(path) || ctype == NULL ||
	    body == NULL || strlen(ctype) > 100)
		return NULL;
	for (i = 0; ctype[i]; i++)
		if ((unsigned char)ctype[i] < 0x20 ||
		    (unsigned char)ctype[i] >= 0x7f)
			return NULL;
	return request(h, host, addrs, naddrs, port, path, lim, cb, arg, ctype,
		       body, len);
}

static struct https_fetch *
request(struct https *h, const char *host, const char *const *addrs,
	size_t naddrs, int port, const char *path,
	const struct https_limits *lim, https_cb *cb, void *arg,
	const char *ctype, const void *body, size_t len)
{
	struct https_fetch *f;
	unsigned char bin[sizeof(struct in6_addr)];
	char hdr[128];
	size_t i;
	int n;

	if (h == NULL || host == NULL || addrs == NULL || cb == NULL ||
	    naddrs == 0 || naddrs > HTTPS_MAX_ADDRS || port < 0 ||
	    port > 65535 || !valid_host(host))
		return NULL;
	if (h->nqueued >= HTTPS_MAX_QUEUED)
		return NULL;
	if ((f = calloc(1, sizeof(*f))) == NULL)
		return NULL;
	f->h = h;
	f->cb = cb;
	f->arg = arg;
	f->started_ms = ev_mono_ms();
	if (lim != NULL)
		f->lim = *lim;
	else
		https_limits_default(&f->lim);
	if (f->lim.timeout_ms <= 0)
		f->lim.timeout_ms = 20000;
	f->port = port ? port : 443;
	snprintf(f->host, sizeof(f->host), "%s", host);
	for (i = 0; i < naddrs; i++) {
		/* Canonical presentation form, as opensocket_cb prints. */
		int af = strchr(addrs[i], ':') ? AF_INET6 : AF_INET;

		if (inet_pton(af, addrs[i], bin) != 1 ||
		    inet_ntop(af, bin, f->addrs[i], sizeof(f->addrs[i])) ==
			NULL) {
			free(f);
			return NULL;
		}
	}
	f->naddrs = naddrs;
	if (ctype != NULL) {
		f->post = 1;
		f->post_len = len;
		snprintf(hdr, sizeof(hdr), "Content-Type: %s", ctype);
		if ((f->post_body = malloc(len ? len : 1)) == NULL ||
		    (f->post_hdrs = curl_slist_append(NULL, hdr)) == NULL) {
			fetch_release(f);
			return NULL;
		}
		memcpy(f->post_body, body, len);
	}
	if (f->port == 443)
		n = snprintf(f->url, sizeof(f->url), "https://%s%s", host,
			     path);
	else
		n = snprintf(f->url, sizeof(f->url), "https://%s:%d%s", host,
			     f->port, path);
	if (n < 0 || (size_t)n >= sizeof(f->url) || make_resolve(f) == -1) {
		fetch_release(f);
		return NULL;
	}
	/* FIFO behind anything already waiting, so order is kept. */
	if (h->qhead == NULL && h->nactive < HTTPS_MAX_ACTIVE) {
		if (fetch_start(f) != 0) {
			fetch_release(f);
			return NULL;
		}
		return f;
	}
	if (h->qtail != NULL)
		h->qtail->next = f;
	else
		h->qhead = f;
	h->qtail = f;
	h->nqueued++;
	return f;
}

void
https_cancel(struct https_fetch *f)
{
	struct https *h;
	struct https_fetch **pp, *prev = NULL;

	if (f == NULL)
		return;
	h = f->h;
	if (f->easy != NULL) {
		curl_multi_remove_handle(h->multi, f->easy);
		active_unlink(f);
		if (h->qhead != NULL)
			kick_schedule(h);
	} else {
		for (pp = &h->qhead; *pp != NULL; pp = &(*pp)->next) {
			if (*pp == f) {
				*pp = f->next;
				if (h->qtail == f)
					h->qtail = prev;
				h->nqueued--;
				break;
			}
			prev = *pp;
		}
	}
	fetch_release(f);
}

/*
 * The system store: libcurl's built-in CA bundle, named explicitly so that
 * the parsed store is cached across fetches (libcurl caches a store only
 * for a CA file without a CA directory). "" when libcurl has none: then
 * OpenSSL's default paths apply.
 */
static char *
default_cafile(void)
{
	CURL *e;
	const char *s = NULL;
	char *r;

	if ((e = curl_easy_init()) == NULL)
		return NULL;
#if LIBCURL_VERSION_NUM >= 0x075400
	if (curl_easy_getinfo(e, CURLINFO_CAINFO, &s) != CURLE_OK)
		s = NULL;
#endif
	r = strdup(s != NULL ? s : "");
	curl_easy_cleanup(e);
	return r;
}

struct https *
https_new(struct event_base *base, const struct https_config *c, char *err,
	  size_t errsz)
{
	static int curl_ready;
	struct https *h;

	if (!curl_ready) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
			snprintf(err, errsz, "https: curl_global_init failed");
			return NULL;
		}
		curl_ready = 1;
	}
	if ((h = calloc(1, sizeof(*h))) == NULL)
		goto nomem;
	h->base = base;
	if (ssl_idx < 0 &&
	    (ssl_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL)) < 0)
		goto nomem;
	if (c != NULL && c->ca_file != NULL && c->ca_file[0] != '\0')
		h->ca_file = strdup(c->ca_file);
	else
		h->ca_file = default_cafile();
	if (h->ca_file == NULL)
		goto nomem;
	if (c != NULL && c->proxy != NULL && c->proxy[0] != '\0' &&
	    (h->proxy = strdup(c->proxy)) == NULL)
		goto nomem;
	h->kick = evtimer_new(base, kick_cb, h);
	if (h->kick == NULL ||
	    (h->cev = curlev_new(base, transfer_done, h)) == NULL)
		goto nomem;
	h->multi = curlev_multi(h->cev);
	return h;
nomem:
	snprintf(err, errsz, "https: out of memory");
	https_free(h);
	return NULL;
}

void
https_free(struct https *h)
{
	if (h == NULL)
		return;
	while (h->active != NULL)
		https_cancel(h->active);
	while (h->qhead != NULL)
		https_cancel(h->qhead);
	curlev_free(h->cev);
	if (h->kick != NULL)
		event_free(h->kick);
	free(h->ca_file);
	free(h->proxy);
	free(h);
}
