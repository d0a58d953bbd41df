/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * tlspolicy check: the live STARTTLS probe of one MX address (issue 11).
 * First connection: banner, EHLO, STARTTLS, a handshake as Postfix would
 * make it (with the host's TLSA records handed to OpenSSL's DANE code),
 * the chain checked against the CA store and the host name. Second
 * connection, only when STARTTLS was offered: a handshake capped at
 * TLS 1.1 (security level 0) to see whether the server still accepts it.
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "cli/probe.h"

#define PROBE_LINE_MAX	  1024 /* longest reply line kept */
#define PROBE_REPLY_MAX	  8192
#define PROBE_EXPIRY_WARN (14 * 86400)

struct conn {
	int fd;
	time_t deadline;
	char buf[PROBE_REPLY_MAX];
	size_t len;
	char err[256];
};

static int
left_ms(const struct conn *c)
{
	time_t now = time(NULL);

	return c->deadline > now ? (int)(c->deadline - now) * 1000 : 0;
}

static int
wait_fd(struct conn *c, short ev)
{
	struct pollfd p = {c->fd, ev, 0};
	int ms, r;

	for (;;) {
		if ((ms = left_ms(c)) <= 0) {
			snprintf(c->err, sizeof(c->err), "timed out");
			return -1;
		}
		r = poll(&p, 1, ms);
		if (r > 0)
			return 0;
		if (r == 0 || errno != EINTR) {
			snprintf(c->err, sizeof(c->err), "timed out");
			return -1;
		}
	}
}

/* Non-blocking connect to ADDR:PORT within the deadline. */
static int
conn_open(struct conn *c, const char *addr, unsigned port)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int e = 0;
	socklen_t el = sizeof(e);

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, addr, &((struct sockaddr_in *)&ss)->sin_addr) ==
	    1) {
		((struct sockaddr_in *)&ss)->sin_family = AF_INET;
		((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
		sl = sizeof(struct sockaddr_in);
	} else if (inet_pton(AF_INET6, addr,
			     &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
		((struct sockaddr_in6 *)&ss)->sin6_family = AF_INET6;
		((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
		sl = sizeof(struct sockaddr_in6);
	} else {
		snprintf(c->err, sizeof(c->err), "not an IP address");
		return -1;
	}
	c->fd =
	    socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		snprintf(c->err, sizeof(c->err), "%s", strerror(errno));
		return -1;
	}
	if (connect(c->fd, (struct sockaddr *)&ss, sl) == 0)
		return 0;
	if (errno != EINPROGRESS) {
		snprintf(c->err, sizeof(c->err), "%s", strerror(errno));
		return -1;
	}
	if (wait_fd(c, POLLOUT) != 0)
		return -1;
	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &el) != 0 || e != 0) {
		snprintf(c->err, sizeof(c->err), "%s", strerror(e ? e : errno));
		return -1;
	}
	return 0;
}

static void
conn_close(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

static int
conn_send(struct conn *c, const char *s)
{
	size_t len = strlen(s), off = 0;
	ssize_t n;

	while (off < len) {
		n = send(c->fd, s + off, len - off, MSG_NOSIGNAL);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			if (wait_fd(c, POLLOUT) != 0)
				return -1;
			continue;
		}
		snprintf(c->err, sizeof(c->err), "sending failed: %s",
			 strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * Read one whole SMTP reply (RFC 5321 §4.2: lines "NNN-text", the last
 * "NNN text") into C->buf, NUL-terminated, CRs removed. Returns the code
 * or -1 (C->err says why). Reads byte by byte up to the reply's end, so
 * nothing of the TLS handshake that follows is consumed.
 */
static int
read_reply(struct conn *c)
{
	size_t line = 0;
	char ch;
	ssize_t n;
	int code;

	c->len = 0;
	for (;;) {
		n = recv(c->fd, &ch, 1, 0);
		if (n == 0) {
			snprintf(c->err, sizeof(c->err),
				 "the server closed the connection");
			return -1;
		}
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR) {
				if (wait_fd(c, POLLIN) != 0)
					return -1;
				continue;
			}
			snprintf(c->err, sizeof(c->err), "%s", strerror(errno));
			return -1;
		}
		if (ch == '\r')
			continue;
		if (c->len + 2 >= sizeof(c->buf)) {
			snprintf(c->err, sizeof(c->err), "reply too long");
			return -1;
		}
		c->buf[c->len++] = ch;
		c->buf[c->len] = '\0';
		if (ch != '\n')
			continue;
		if ((code = probe_reply_line(c->buf + line, c->len - line)) <
		    0) {
			snprintf(c->err, sizeof(c->err),
				 "not an SMTP reply: %.60s", c->buf + line);
			return -1;
		}
		if (code > 0)
			return code;
		line = c->len;
	}
}

int
probe_reply_line(const char *s, size_t len)
{
	if (len > 0 && s[len - 1] == '\n')
		len--;
	if (len < 3 || s[0] < '2' || s[0] > '5' ||
	    !isdigit((unsigned char)s[1]) || !isdigit((unsigned char)s[2]) ||
	    (len > 3 && s[3] != ' ' && s[3] != '-'))
		return -1;
	if (len > 3 && s[3] == '-')
		return 0;
	return (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
}

/* The first line of the reply in C->buf, printable, for reports. */
static void
first_line(const struct conn *c, char *out, size_t outsz)
{
	size_t i, n = strcspn(c->buf, "\n");

	if (n >= outsz)
		n = outsz - 1;
	for (i = 0; i < n; i++)
		out[i] = isprint((unsigned char)c->buf[i]) ? c->buf[i] : '?';
	out[n] = '\0';
}

int
probe_ehlo_starttls(const char *reply)
{
	const char *p = reply;

	while (*p != '\0') {
		size_t n = strcspn(p, "\n");

		if (n >= 12 && strncasecmp(p + 4, "STARTTLS", 8) == 0 &&
		    (n == 12 || p[12] == ' '))
			return 1;
		p += n + (p[n] == '\n');
	}
	return 0;
}

static void add_problem(json_t *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
add_problem(json_t *o, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	json_array_append_new(json_object_get(o, "problems"), json_string(buf));
}

/*
 * Connect and talk SMTP up to the point where TLS starts. Returns 1 when
 * the server said 220 to STARTTLS, 0 when it offers no STARTTLS (or
 * refused it), -1 when the dialogue failed (C->err). With O (the report)
 * non-NULL, fills "connect", "banner", "ehlo" and "starttls".
 */
static int
smtp_to_tls(struct conn *c, const struct probe_opts *po, const char *addr,
	    json_t *o)
{
	char line[PROBE_LINE_MAX], cmd[300];
	int code;

	c->fd = -1;
	c->deadline = time(NULL) + po->timeout;
	if (c->deadline > po->deadline)
		c->deadline = po->deadline;
	if (conn_open(c, addr, po->port) != 0) {
		if (o)
			json_object_set_new(o, "connect", json_string(c->err));
		return -1;
	}
	if (o)
		json_object_set_new(o, "connect", json_string("ok"));
	if ((code = read_reply(c)) < 0)
		return -1;
	first_line(c, line, sizeof(line));
	if (o)
		json_object_set_new(o, "banner", json_string(line));
	if (code != 220) {
		snprintf(c->err, sizeof(c->err),
			 "the banner is not 220: %.200s", line);
		return -1;
	}
	snprintf(cmd, sizeof(cmd), "EHLO %s\r\n", po->helo);
	if (conn_send(c, cmd) != 0 || (code = read_reply(c)) < 0)
		return -1;
	if (code != 250) {
		first_line(c, line, sizeof(line));
		snprintf(c->err, sizeof(c->err), "EHLO refused: %.200s", line);
		return -1;
	}
	if (!probe_ehlo_starttls(c->buf)) {
		if (o)
			json_object_set_new(o, "starttls",
					    json_string("not offered"));
		conn_send(c, "QUIT\r\n");
		return 0;
	}
	if (conn_send(c, "STARTTLS\r\n") != 0 || (code = read_reply(c)) < 0)
		return -1;
	if (code != 220) {
		first_line(c, line, sizeof(line));
		if (o)
			json_object_set_new(o, "starttls",
					    json_string("refused"));
		snprintf(c->err, sizeof(c->err), "STARTTLS refused: %.200s",
			 line);
		return 0;
	}
	if (o)
		json_object_set_new(o, "starttls", json_string("offered"));
	return 1;
}

/* Drive SSL_connect on the non-blocking socket within the deadline. */
static int
tls_connect(struct conn *c, SSL *ssl)
{
	int r, e;

	for (;;) {
		ERR_clear_error();
		if ((r = SSL_connect(ssl)) == 1)
			return 0;
		e = SSL_get_error(ssl, r);
		if (e == SSL_ERROR_WANT_READ) {
			if (wait_fd(c, POLLIN) != 0)
				return -1;
		} else if (e == SSL_ERROR_WANT_WRITE) {
			if (wait_fd(c, POLLOUT) != 0)
				return -1;
		} else {
			unsigned long l = ERR_peek_last_error();

			if (l != 0)
				snprintf(c->err, sizeof(c->err), "%s",
					 ERR_reason_error_string(l)
					     ? ERR_reason_error_string(l)
					     : "handshake failed");
			else
				snprintf(c->err, sizeof(c->err),
					 "the server closed the connection");
			return -1;
		}
	}
}

static char *
name_text(const X509_NAME *n, char *out, size_t outsz)
{
	BIO *b = BIO_new(BIO_s_mem());
	int len;

	out[0] = '\0';
	if (b == NULL)
		return out;
	X509_NAME_print_ex(b, n, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
	len = BIO_read(b, out, (int)outsz - 1);
	out[len > 0 ? len : 0] = '\0';
	BIO_free(b);
	return out;
}

static time_t
asn1_time_t(const ASN1_TIME *t)
{
	struct tm tm;

	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
		return 0;
	return timegm(&tm);
}

static json_t *
iso_time(time_t t)
{
	char b[32];

	strftime(b, sizeof(b), "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
	return json_string(b);
}

static json_t *
cert_json(X509 *x)
{
	char buf[1024];
	json_t *o = json_object(), *sans = json_array();
	GENERAL_NAMES *gn;
	int i;

	json_object_set_new(
	    o, "subject",
	    json_string(name_text(X509_get_subject_name(x), buf, sizeof(buf))));
	json_object_set_new(
	    o, "issuer",
	    json_string(name_text(X509_get_issuer_name(x), buf, sizeof(buf))));
	gn = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	for (i = 0; gn != NULL && i < sk_GENERAL_NAME_num(gn); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gn, i);

		if (g->type == GEN_DNS)
			json_array_append_new(
			    sans,
			    json_stringn(
				(const char *)ASN1_STRING_get0_data(
				    g->d.dNSName),
				(size_t)ASN1_STRING_length(g->d.dNSName)));
	}
	GENERAL_NAMES_free(gn);
	json_object_set_new(o, "dns_names", sans);
	json_object_set_new(o, "not_before",
			    iso_time(asn1_time_t(X509_get0_notBefore(x))));
	json_object_set_new(o, "not_after",
			    iso_time(asn1_time_t(X509_get0_notAfter(x))));
	return o;
}

/*
 * PKIX: does the presented chain lead to a trusted CA (the [sts] ca_file
 * bundle, else the system store)? "valid" or OpenSSL's reason.
 */
static const char *
pkix_verify(const struct probe_opts *po, X509 *leaf, STACK_OF(X509) * chain)
{
	X509_STORE *st = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	const char *res = "the CA store could not be loaded";

	if (st == NULL || ctx == NULL)
		goto out;
	if (po->ca_file != NULL && *po->ca_file != '\0') {
		if (X509_STORE_load_file(st, po->ca_file) != 1)
			goto out;
	} else if (X509_STORE_set_default_paths(st) != 1)
		goto out;
	if (X509_STORE_CTX_init(ctx, st, leaf, chain) != 1)
		goto out;
	X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER);
	res =
	    X509_verify_cert(ctx) == 1
		? "valid"
		: X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx));
out:
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(st);
	return res;
}

static void
tlsa_text(uint8_t u, uint8_t s, uint8_t m, const unsigned char *d, size_t n,
	  char *out, size_t outsz)
{
	size_t i, len;

	len = (size_t)snprintf(out, outsz, "%u %u %u ", u, s, m);
	for (i = 0; i < n && len + 3 <= outsz; i++)
		len += (size_t)snprintf(out + len, outsz - len, "%02x", d[i]);
}

/* The key exchange in words, and whether it gives forward secrecy. */
static void
kx_info(SSL *ssl, json_t *o)
{
	const SSL_CIPHER *ci = SSL_get_current_cipher(ssl);
	int kx = ci ? SSL_CIPHER_get_kx_nid(ci) : NID_undef;
	int grp = SSL_get_negotiated_group(ssl);
	const char *gname = grp > 0 ? SSL_group_to_name(ssl, grp) : NULL;
	char b[96];
	int fs = 0;

	switch (kx) {
	case NID_kx_any: /* TLS 1.3: always (EC)DHE */
		snprintf(b, sizeof(b), "%s", gname ? gname : "ECDHE");
		fs = 1;
		break;
	case NID_kx_ecdhe:
	case NID_kx_ecdhe_psk:
		snprintf(b, sizeof(b), "ECDHE %s", gname ? gname : "");
		fs = 1;
		break;
	case NID_kx_dhe:
	case NID_kx_dhe_psk:
		snprintf(b, sizeof(b), "DHE%s%s", gname ? " " : "",
			 gname ? gname : "");
		fs = 1;
		break;
	case NID_kx_rsa:
		snprintf(b, sizeof(b), "RSA");
		break;
	default:
		snprintf(b, sizeof(b), "%s", OBJ_nid2sn(kx));
	}
	if (b[0] != '\0' && b[strlen(b) - 1] == ' ')
		b[strlen(b) - 1] = '\0';
	json_object_set_new(o, "key_exchange", json_string(b));
	json_object_set_new(o, "forward_secrecy", json_boolean(fs));
	if (!fs)
		add_problem(o,
			    "no forward secrecy: the key exchange is %s (a "
			    "stolen server key would decrypt recorded mail)",
			    b);
}

/* What the server presented: chain, PKIX, names, expiry, DANE. */
static void
inspect(const struct probe_opts *po, const struct probe_host *h, SSL *ssl,
	json_t *o)
{
	STACK_OF(X509) *chain = SSL_get_peer_cert_chain(ssl);
	X509 *leaf = SSL_get0_peer_certificate(ssl);
	json_t *cert = json_object(), *arr = json_array();
	const char *pkix = "no certificate";
	int i, name_ok = 0;

	json_object_set_new(o, "tls_version",
			    json_string(SSL_get_version(ssl)));
	json_object_set_new(
	    o, "cipher",
	    json_string(SSL_CIPHER_get_name(SSL_get_current_cipher(ssl))));
	kx_info(ssl, o);
	for (i = 0; chain != NULL && i < sk_X509_num(chain); i++)
		json_array_append_new(arr, cert_json(sk_X509_value(chain, i)));
	json_object_set_new(cert, "chain", arr);
	if (leaf != NULL) {
		time_t na = asn1_time_t(X509_get0_notAfter(leaf));
		char d[32];

		pkix = pkix_verify(po, leaf, chain);
		name_ok = X509_check_host(leaf, h->name, 0,
					  X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS,
					  NULL) == 1;
		if (na <= po->now)
			add_problem(o, "the certificate has expired");
		else if (na - po->now < PROBE_EXPIRY_WARN) {
			snprintf(d, sizeof(d), "%lld",
				 (long long)((na - po->now) / 86400));
			add_problem(o,
				    "the certificate expires within 14 days "
				    "(in %s days)",
				    d);
		}
	}
	json_object_set_new(cert, "pkix", json_string(pkix));
	json_object_set_new(cert, "name_match", json_boolean(name_ok));
	json_object_set_new(o, "cert", cert);

	if (h->ntlsa > 0) {
		uint8_t u = 0, s = 0, m = 0;
		const unsigned char *data = NULL;
		size_t dlen = 0;
		long vr = SSL_get_verify_result(ssl);
		char rec[2 * 64 + 16];

		if (vr == X509_V_OK &&
		    SSL_get0_dane_tlsa(ssl, &u, &s, &m, &data, &dlen) >= 0 &&
		    data != NULL) {
			tlsa_text(u, s, m, data, dlen, rec, sizeof(rec));
			json_object_set_new(o, "dane_match", json_string(rec));
		} else {
			json_object_set_new(o, "dane_match", json_false());
			json_object_set_new(
			    o, "dane_error",
			    json_string(X509_verify_cert_error_string(vr)));
			add_problem(o,
				    "the certificate matches none of the "
				    "host's TLSA records (%s): Postfix defers "
				    "mail to it",
				    X509_verify_cert_error_string(vr));
		}
	} else
		json_object_set_new(o, "dane_match", json_null());

	if (h->sts) {
		int ok = h->sts_pattern != NULL && strcmp(pkix, "valid") == 0 &&
			 name_ok;

		json_object_set_new(o, "sts_match", json_boolean(ok));
		if (strcmp(pkix, "valid") != 0)
			add_problem(o,
				    "the certificate does not verify (%s): "
				    "MTA-STS delivery fails",
				    pkix);
		else if (!name_ok)
			add_problem(o,
				    "the certificate is not valid for the "
				    "host name %s: MTA-STS delivery fails",
				    h->name);
	} else
		json_object_set_new(o, "sts_match", json_null());
}

/* The second connection: does the server still accept TLS 1.0/1.1? */
static void
old_tls(const struct probe_opts *po, const struct probe_host *h,
	const char *addr, json_t *o)
{
	struct conn c;
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl = NULL;

	memset(&c, 0, sizeof(c));
	c.fd = -1;
	if (ctx == NULL ||
	    SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, TLS1_1_VERSION) != 1 ||
	    SSL_CTX_set_cipher_list(ctx, "DEFAULT:@SECLEVEL=0") != 1) {
		json_object_set_new(
		    o, "old_tls",
		    json_string("not tested: the local OpenSSL cannot offer "
				"TLS 1.0/1.1"));
		goto out;
	}
	SSL_CTX_set_security_level(ctx, 0);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	if (smtp_to_tls(&c, po, addr, NULL) != 1) {
		json_object_set_new(o, "old_tls",
				    json_string("not tested: the second "
						"connection failed"));
		goto out;
	}
	if ((ssl = SSL_new(ctx)) == NULL || SSL_set_fd(ssl, c.fd) != 1) {
		json_object_set_new(o, "old_tls", json_string("not tested"));
		goto out;
	}
	SSL_set_tlsext_host_name(ssl, h->name);
	if (tls_connect(&c, ssl) == 0) {
		char b[64];

		snprintf(b, sizeof(b), "accepted: %s", SSL_get_version(ssl));
		json_object_set_new(o, "old_tls", json_string(b));
		add_problem(o,
			    "the server still accepts %s (TLS 1.0 and 1.1 are "
			    "obsolete)",
			    SSL_get_version(ssl));
		SSL_shutdown(ssl);
	} else
		json_object_set_new(o, "old_tls", json_string("refused"));
out:
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	conn_close(&c);
}

json_t *
probe_addr(const struct probe_opts *po, const struct probe_host *h,
	   const char *addr)
{
	json_t *o = json_pack("{s:s,s:[]}", "address", addr, "problems");
	SSL_CTX *ctx = NULL;
	SSL *ssl = NULL;
	struct conn c;
	size_t i;
	int r;

	if (o == NULL)
		return NULL;
	memset(&c, 0, sizeof(c));
	c.fd = -1;
	if (time(NULL) >= po->deadline) {
		json_object_set_new(o, "connect",
				    json_string("not probed: the check ran out "
						"of time"));
		add_problem(o, "not probed: the check ran out of time");
		return o;
	}
	r = smtp_to_tls(&c, po, addr, o);
	if (r < 0) {
		add_problem(o, "the SMTP dialogue failed: %s", c.err);
		goto out;
	}
	if (r == 0) {
		add_problem(o,
			    "STARTTLS is %s: mail to this host goes "
			    "unencrypted, or is deferred where TLS is "
			    "required",
			    json_string_value(json_object_get(o, "starttls")));
		goto out;
	}
	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL ||
	    (h->ntlsa > 0 && SSL_CTX_dane_enable(ctx) <= 0)) {
		add_problem(o, "local TLS set-up failed");
		goto out;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	if ((ssl = SSL_new(ctx)) == NULL || SSL_set_fd(ssl, c.fd) != 1) {
		add_problem(o, "local TLS set-up failed");
		goto out;
	}
	SSL_set_tlsext_host_name(ssl, h->name);
	if (h->ntlsa > 0) {
		/* As Postfix does (RFC 7672 §3.2.3): DANE-EE skips name
		 * checks; DANE-TA checks the TLSA base and the MX name. */
		SSL_dane_enable(ssl, h->tlsa_base);
		if (strcasecmp(h->tlsa_base, h->name) != 0)
			SSL_add1_host(ssl, h->name);
		SSL_dane_set_flags(ssl, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
		for (i = 0; i < h->ntlsa; i++)
			SSL_dane_tlsa_add(ssl, h->tlsa[i].usage,
					  h->tlsa[i].selector, h->tlsa[i].mtype,
					  h->tlsa[i].data, h->tlsa[i].len);
	}
	if (tls_connect(&c, ssl) != 0) {
		json_object_set_new(o, "tls_error", json_string(c.err));
		add_problem(o, "the TLS handshake failed: %s", c.err);
	} else {
		inspect(po, h, ssl, o);
		SSL_shutdown(ssl);
	}
	SSL_free(ssl);
	ssl = NULL;
	conn_close(&c);
	old_tls(po, h, addr, o);
	if (json_object_get(o, "tls_error") != NULL &&
	    strncmp(json_string_value(json_object_get(o, "old_tls")),
		    "accepted", 8) == 0)
		add_problem(o, "the server offers only TLS 1.1 or older: "
			       "clients that require TLS 1.2 cannot start TLS");
out:
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	conn_close(&c);
	/* No handshake: nothing was matched or checked. */
	if (json_object_get(o, "dane_match") == NULL)
		json_object_set_new(o, "dane_match", json_null());
	if (json_object_get(o, "sts_match") == NULL)
		json_object_set_new(o, "sts_match", json_null());
	return o;
}

int
probe_sts_covers(const char *pat, size_t plen, const char *host)
{
	size_t hl = strlen(host);
	const char *dot;

	if (plen > 2 && pat[0] == '*' && pat[1] == '.') {
		/* One label, then the rest: "*.example.com" covers
		 * "mx.example.com", not "a.b.example.com" nor
		 * "example.com". */
		if ((dot = strchr(host, '.')) == NULL || dot == host)
			return 0;
		return (size_t)(hl - (size_t)(dot - host)) == plen - 1 &&
		       strncasecmp(dot, pat + 1, plen - 1) == 0;
	}
	return hl == plen && strncasecmp(host, pat, plen) == 0;
}
