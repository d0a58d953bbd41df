/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Configuration: one declarative option table (STYLE rule 12), an INI file
 * read through inih, and the free-form [policy] section.
 *
 * Every option has a default written as text in the table; defaults are
 * applied by parsing that text through the same setter as the file, so a
 * default can never be a value the file could not hold. After the defaults
 * the file's lines are applied; anything we do not understand is an error
 * ("FILE:LINE: [section] name: reason"), never a warning, because a
 * mistyped option silently ignored is a policy silently not applied.
 *
 * inih is fed by our own line reader, which is where we guard against its
 * sharp edges (see cfg_read_line): it would cut a long line at its buffer
 * size and parse the tail as another line, stop at a NUL byte, and join
 * indented lines onto the previous value. The reader hands inih one clean
 * line at a time, refuses a line that does not fit inih's buffer instead
 * of letting it be truncated, and stops the parse at the first error.
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <ini.h>

#include "util/cfg.h"
#include "util/cfg_check.h"
#include "util/dom.h"
#include "util/limits.h"
#include "util/log.h"
#include "util/paths.h"

/*
 * Debian's inih (55-1) makes its line buffer size a run-time variable,
 * 200 bytes by default, used for a stack buffer of that size. Raise it so
 * a line of LIM_CONFIG_VALUE bytes fits (inih wants 3 more: CR, LF, NUL).
 * Upstream inih has no such variable; the weak reference is then NULL and
 * longer lines are refused by cfg_ini_reader() with a clear error.
 */
extern int ini_max_line;
#pragma weak ini_max_line
#define CFG_INI_LINE (LIM_CONFIG_VALUE + 3)

/* Most [dns] resolvers; more is a mistake, not a configuration. */
#define CFG_RESOLVERS_MAX 16
/* How much of an offending value an error message quotes. */
#define CFG_QUOTE 64

enum cfg_type {
	CFG_T_STRING, /* char *, one value */
	CFG_T_WORDS,  /* char *, space-separated words, min..max of them */
	CFG_T_INT,    /* long, min..max */
	CFG_T_MODE,   /* unsigned, octal file mode, min..max */
	CFG_T_BOOL,   /* int, 0 or 1 */
	CFG_T_ENUM,   /* int, index into enums */
};

/* A check on a string value, or on each word of a word list. */
typedef int (*cfg_check_fn)(const char *s, size_t len, char *why, size_t whysz);

struct cfg_opt {
	const char *section;
	const char *name;
	enum cfg_type type;
	const char *defval;
	long min, max;
	size_t off;
	const char *const *enums;
	cfg_check_fn check;
	const char *help;
};

/*
 * offsetof() plus a compile-time check that the field has the type the
 * option's setter will write through.
 */
#define CFG_OFF(field, type)                                                   \
	(offsetof(struct cfg, field) +                                         \
	 0 * sizeof(char[__builtin_types_compatible_p(                         \
			     __typeof__(((struct cfg *)0)->field), type)       \
			     ? 1                                               \
			     : -1]))
#define CFG_STR(f)  CFG_OFF(f, char *)
#define CFG_LONG(f) CFG_OFF(f, long)
#define CFG_UINT(f) CFG_OFF(f, unsigned)
#define CFG_INT(f)  CFG_OFF(f, int)

static const char *const cfg_testing_names[] = {"report", "enforce", NULL};
static const char *const cfg_dane_names[] = {"strict", "opportunistic", NULL};

/* Sections in the order cfg_print() writes them; [policy] is last. */
static const char *const cfg_sections[] = {
    "server", "dns", "sts", "dane", "cache", "tlsrpt", NULL,
};

/* clang-format off */
static const struct cfg_opt cfg_opts[] = {
	/* [server] */
	{ "server", "socketmap", CFG_T_WORDS,
	  "unix:" LOCALSTATEDIR "/spool/postfix/private/tlspolicy",
	  1, LIM_LISTENERS, CFG_STR(socketmap), NULL, cfg_check_socketmap,
	  "socketmap endpoints: unix:/PATH or inet:IP:PORT on loopback" },
	{ "server", "socketmap_mode", CFG_T_MODE, "0660", 0, 0777,
	  CFG_UINT(socketmap_mode), NULL, NULL,
	  "file mode of the unix socketmap sockets" },
	{ "server", "socketmap_group", CFG_T_STRING, "postfix", 0, 0,
	  CFG_STR(socketmap_group), NULL, cfg_check_account,
	  "group of the unix socketmap sockets; empty: leave it alone" },
	{ "server", "socketmap_names", CFG_T_WORDS, "postfix",
	  1, LIM_MAP_NAMES, CFG_STR(socketmap_names), NULL, cfg_check_mapname,
	  "socketmap names answered; other names get PERM" },
	{ "server", "tlsrpt_names", CFG_T_WORDS, "", 0, LIM_MAP_NAMES,
	  CFG_STR(tlsrpt_names), NULL, cfg_check_mapname,
	  "socketmap names whose answers carry TLS-RPT attributes "
	  "(Postfix 3.10 and later)" },
	{ "server", "query_socket", CFG_T_STRING,
	  "unix:" RUNSTATEDIR "/tlspolicyd/query.sock", 0, 0,
	  CFG_STR(query_socket), NULL, cfg_check_query_socket,
	  "JSON-lines query socket, unix:/PATH; empty disables it" },
	{ "server", "query_socket_mode", CFG_T_MODE, "0660", 0, 0777,
	  CFG_UINT(query_socket_mode), NULL, NULL,
	  "file mode of the query socket" },
	{ "server", "query_socket_group", CFG_T_STRING, "", 0, 0,
	  CFG_STR(query_socket_group), NULL, cfg_check_account,
	  "group of the query socket; empty: leave it alone" },
	{ "server", "query_max_connections", CFG_T_INT, "1024", 1, 65536,
	  CFG_LONG(query_max_connections), NULL, NULL,
	  "most query socket connections open at once (counted apart from "
	  "the socketmap's)" },
	{ "server", "query_max_per_peer", CFG_T_INT, "256", 0, 65536,
	  CFG_LONG(query_max_per_peer), NULL, NULL,
	  "most query socket connections of one client user (uid); 0: no "
	  "limit per user" },
	{ "server", "admin_socket", CFG_T_STRING,
	  "unix:" RUNSTATEDIR "/tlspolicyd/admin.sock", 0, 0,
	  CFG_STR(admin_socket), NULL, cfg_check_query_socket,
	  "admin socket for tlspolicy (flush, cache and report commands), "
	  "unix:/PATH, mode 0600, root and [server] user only; empty "
	  "disables it" },
	{ "server", "metrics", CFG_T_STRING, "", 0, 0,
	  CFG_STR(metrics), NULL, cfg_check_metrics,
	  "Prometheus metrics endpoint (GET /metrics over HTTP), "
	  "inet:IP:PORT on loopback or unix:/PATH (mode 0660); empty: off" },
	{ "server", "user", CFG_T_STRING, "tlspolicyd", 0, 0,
	  CFG_STR(user), NULL, cfg_check_account,
	  "user to run as after binding; empty: do not drop privileges" },
	{ "server", "verbose", CFG_T_INT, "0", 0, 2,
	  CFG_LONG(verbose), NULL, NULL,
	  "log verbosity; each -v on the command line adds one" },
	{ "server", "lookup_timeout", CFG_T_INT, "10", 1, 90,
	  CFG_LONG(lookup_timeout), NULL, NULL,
	  "seconds a cold lookup may take before the answer is decided" },
	{ "server", "max_connections", CFG_T_INT, "4096", 1, 65536,
	  CFG_LONG(max_connections), NULL, NULL,
	  "most client connections open at once" },
	{ "server", "idle_timeout", CFG_T_INT, "60", 1, 86400,
	  CFG_LONG(idle_timeout), NULL, NULL,
	  "seconds an idle client connection stays open" },
	{ "server", "write_timeout", CFG_T_INT, "30", 1, 3600,
	  CFG_LONG(write_timeout), NULL, NULL,
	  "seconds a client that does not read its answers is kept" },
	{ "server", "request_timeout", CFG_T_INT, "10", 1, 3600,
	  CFG_LONG(request_timeout), NULL, NULL,
	  "seconds a client may take to send one whole request, however "
	  "slowly it trickles in" },
	{ "server", "max_queued_output", CFG_T_INT, "67108864", 1048576,
	  1073741824, CFG_LONG(max_queued_output), NULL, NULL,
	  "bytes of unread replies queued for all clients together before "
	  "clients with replies pending are no longer read" },
	{ "server", "protocols", CFG_T_STRING, "", 0, 0,
	  CFG_STR(protocols), NULL, cfg_check_protocols,
	  "TLS protocols Postfix may use where DANE or MTA-STS asks for "
	  "authenticated TLS, e.g. \">=TLSv1.2\" (Postfix syntax, colons "
	  "between items); empty: Postfix's own setting" },
	/* [dns] */
	{ "dns", "resolvers", CFG_T_WORDS, "", 0, CFG_RESOLVERS_MAX,
	  CFG_STR(resolvers), NULL, cfg_check_resolver,
	  "validating resolvers IP or IP@PORT; empty: full recursion" },
	{ "dns", "trust_anchor", CFG_T_STRING, "/usr/share/dns/root.key", 0, 0,
	  CFG_STR(trust_anchor), NULL, cfg_check_abspath,
	  "DNSSEC root trust anchor file" },
	{ "dns", "timeout", CFG_T_INT, "5", 1, 60,
	  CFG_LONG(dns_timeout), NULL, NULL,
	  "seconds one DNS query may take" },
	{ "dns", "selftest_name", CFG_T_STRING, "", 0, 0,
	  CFG_STR(selftest_name), NULL, cfg_check_dnsname,
	  "name whose SOA must validate as secure at start-up; empty: the "
	  "zone the trust anchor is for" },
	{ "dns", "root_hints", CFG_T_STRING, "", 0, 0,
	  CFG_STR(root_hints), NULL, cfg_check_abspath_or_empty,
	  "root hints file: full recursion from these root servers instead "
	  "of the built-in ones (private roots, test worlds)" },
	/* [sts] */
	{ "sts", "enabled", CFG_T_BOOL, "yes", 0, 0,
	  CFG_INT(sts_enabled), NULL, NULL,
	  "discover and fetch MTA-STS policies (RFC 8461)" },
	{ "sts", "ca_file", CFG_T_STRING, "", 0, 0,
	  CFG_STR(ca_file), NULL, cfg_check_abspath_or_empty,
	  "CA bundle for policy hosts; empty: the system store" },
	{ "sts", "fetch_timeout", CFG_T_INT, "20", 1, 120,
	  CFG_LONG(fetch_timeout), NULL, NULL,
	  "seconds one MTA-STS policy fetch may take" },
	{ "sts", "max_policy_size", CFG_T_INT, "65536", 1024, LIM_POLICY_BODY,
	  CFG_LONG(max_policy_size), NULL, NULL,
	  "largest MTA-STS policy body accepted, in bytes" },
	{ "sts", "testing", CFG_T_ENUM, "report", 0, 0,
	  CFG_INT(sts_testing), cfg_testing_names, NULL,
	  "mode: testing policies: report (no policy) or enforce" },
	{ "sts", "smarthost_policy", CFG_T_BOOL, "yes", 0, 0,
	  CFG_INT(smarthost_policy), NULL, NULL,
	  "[host]:port next hops use the host as policy domain" },
	/* [dane] */
	{ "dane", "enabled", CFG_T_BOOL, "yes", 0, 0,
	  CFG_INT(dane_enabled), NULL, NULL,
	  "resolve MX and TLSA with DNSSEC and answer DANE policies" },
	{ "dane", "mode", CFG_T_ENUM, "strict", 0, 0,
	  CFG_INT(dane_mode), cfg_dane_names, NULL,
	  "strict: dane-only when every MX has usable TLSA; "
	  "opportunistic: always dane" },
	/* [cache] */
	{ "cache", "path", CFG_T_STRING,
	  LOCALSTATEDIR "/lib/tlspolicyd/cache.db", 0, 0,
	  CFG_STR(cache_path), NULL, cfg_check_store,
	  "policy store: a SQLite file, or a postgresql:// URI" },
	{ "cache", "memory_entries", CFG_T_INT, "100000", 1, 100000000,
	  CFG_LONG(memory_entries), NULL, NULL,
	  "most policies kept in memory" },
	{ "cache", "refresh", CFG_T_INT, "86400", 3600, 604800,
	  CFG_LONG(refresh), NULL, NULL,
	  "age at which a cached MTA-STS policy is fetched again" },
	/* [tlsrpt] */
	{ "tlsrpt", "enabled", CFG_T_BOOL, "no", 0, 0,
	  CFG_INT(tlsrpt_enabled), NULL, NULL,
	  "collect TLS results and send TLS-RPT reports" },
	{ "tlsrpt", "socket", CFG_T_STRING,
	  LOCALSTATEDIR "/spool/postfix/run/tlsrpt/tlsrpt.sock", 0, 0,
	  CFG_STR(tlsrpt_socket), NULL, cfg_check_abspath_or_empty,
	  "libtlsrpt datagram socket" },
	{ "tlsrpt", "socket_mode", CFG_T_MODE, "0660", 0, 0777,
	  CFG_UINT(tlsrpt_socket_mode), NULL, NULL,
	  "file mode of the datagram socket" },
	{ "tlsrpt", "socket_group", CFG_T_STRING, "postfix", 0, 0,
	  CFG_STR(tlsrpt_socket_group), NULL, cfg_check_account,
	  "group of the datagram socket; empty: leave it alone" },
	{ "tlsrpt", "store", CFG_T_STRING, "", 0, 0,
	  CFG_STR(tlsrpt_store), NULL, cfg_check_store_or_empty,
	  "report store: an SQLite file or a postgresql:// URI; empty: "
	  "tlsrpt.db beside [cache] path" },
	{ "tlsrpt", "spool", CFG_T_STRING, "", 0, 0, CFG_STR(tlsrpt_spool),
	  NULL, cfg_check_abspath_or_empty,
	  "with a postgresql:// report store: the local SQLite file that "
	  "counts until the counts are added to the shared tables; empty: "
	  "tlsrpt.db beside [cache] path (in the state directory when that "
	  "is a URI)" },
	{ "tlsrpt", "grace", CFG_T_INT, "900", 0, 86400,
	  CFG_LONG(tlsrpt_grace), NULL, NULL,
	  "seconds after 00:00 UTC before a day's counts are closed" },
	{ "tlsrpt", "delay", CFG_T_INT, "14400", 0, 86400,
	  CFG_LONG(tlsrpt_delay), NULL, NULL,
	  "most seconds of random delay before a closed day is sent" },
	{ "tlsrpt", "postfix_log", CFG_T_STRING, "", 0, 0,
	  CFG_STR(postfix_log), NULL, cfg_check_abspath_or_empty,
	  "mail log to follow for Postfix before 3.10; empty: none" },
	{ "tlsrpt", "organization", CFG_T_STRING, "Example Org", 0, 0,
	  CFG_STR(organization), NULL, NULL,
	  "organization-name in reports" },
	{ "tlsrpt", "contact", CFG_T_STRING, "mailto:postmaster@example.org",
	  0, 0, CFG_STR(contact), NULL, NULL,
	  "contact-info in reports" },
	{ "tlsrpt", "submitter", CFG_T_STRING, "example.org", 0, 0,
	  CFG_STR(submitter), NULL, NULL,
	  "submitter domain in report subjects and file names" },
	{ "tlsrpt", "from", CFG_T_STRING, "tlsrpt-noreply@example.org", 0, 0,
	  CFG_STR(from), NULL, NULL,
	  "From: address of report mail" },
	{ "tlsrpt", "smtp", CFG_T_STRING, "127.0.0.1:25", 0, 0,
	  CFG_STR(tlsrpt_smtp), NULL, cfg_check_smtp,
	  "IP:PORT of the MTA that takes report mail over SMTP" },
	{ "tlsrpt", "sendmail", CFG_T_STRING, "", 0, 0,
	  CFG_STR(sendmail), NULL, cfg_check_abspath_or_empty,
	  "sendmail program for report mail instead of SMTP; empty: SMTP" },
};
/* clang-format on */

#define CFG_NOPTS (sizeof(cfg_opts) / sizeof(cfg_opts[0]))

/* A [policy] entry while parsing: where it was, to report duplicates. */
struct cfg_pending {
	struct cfg_static st;
	int line;
};

/* Parser state, shared by the reader and the inih handler. */
struct cfg_ps {
	struct cfg *cfg;
	const char *name;
	/* The line source: a buffer, or a file. */
	const char *buf;
	size_t len, off;
	FILE *fp;
	int lineno;
	int stop;    /* the reader returns EOF from now on */
	int errline; /* line of the first error we reported, 0 if none */
	char *err;
	size_t errsz;
	int setline[CFG_NOPTS];
	struct cfg_pending *pend;
	size_t npend, cappend;
	char line[LIM_CONFIG_VALUE + 2];
};

/* Write a reason into WHY (which may be NULL or empty). */
int LOG_PRINTF(3, 4) cfg_why(char *why, size_t whysz, const char *fmt, ...)
{
	va_list ap;

	if (why != NULL && whysz > 0) {
		va_start(ap, fmt);
		vsnprintf(why, whysz, fmt, ap);
		va_end(ap);
	}
	return 0;
}

/* Quote at most CFG_QUOTE bytes of S, made printable. */
static const char *
cfg_quote(const char *s, size_t len, char *out, size_t outsz)
{
	return log_sanitize(s, len, out, outsz < CFG_QUOTE ? outsz : CFG_QUOTE);
}

/* The first error wins; later ones are not reported. */
static void LOG_PRINTF(2, 3) cfg_error(struct cfg_ps *ps, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (ps->errline != 0)
		return;
	ps->errline = ps->lineno > 0 ? ps->lineno : 1;
	ps->stop = 1;
	if (ps->err == NULL || ps->errsz == 0)
		return;
	n = snprintf(ps->err, ps->errsz, "%s:%d: ", ps->name, ps->lineno);
	if (n < 0 || (size_t)n >= ps->errsz)
		return;
	va_start(ap, fmt);
	vsnprintf(ps->err + n, ps->errsz - (size_t)n, fmt, ap);
	va_end(ap);
}

/* Setters --------------------------------------------------------------- */

static int
cfg_space(char c)
{
	return c == ' ' || c == '\t';
}

/* Split on blanks, check each word, join with single spaces. */
static int
cfg_set_words(const struct cfg_opt *o, const char *v, char **out, char *why,
	      size_t whysz)
{
	char q[CFG_QUOTE], *res, *w;
	const char *p = v, *start;
	long n = 0;

	if ((res = malloc(strlen(v) + 1)) == NULL)
		return cfg_why(why, whysz, "out of memory");
	w = res;
	for (;;) {
		while (cfg_space(*p))
			p++;
		if (*p == '\0')
			break;
		start = p;
		while (*p != '\0' && !cfg_space(*p))
			p++;
		if (++n > o->max) {
			free(res);
			return cfg_why(why, whysz, "more than %ld entries",
				       o->max);
		}
		if (o->check != NULL &&
		    !o->check(start, (size_t)(p - start), why, whysz)) {
			char reason[160];

			snprintf(reason, sizeof(reason), "%s", why ? why : "");
			free(res);
			return cfg_why(
			    why, whysz, "\"%s\": %s",
			    cfg_quote(start, (size_t)(p - start), q, sizeof(q)),
			    reason);
		}
		if (w != res)
			*w++ = ' ';
		memcpy(w, start, (size_t)(p - start));
		w += p - start;
	}
	*w = '\0';
	if (n < o->min) {
		free(res);
		return cfg_why(why, whysz, "want at least %ld entr%s", o->min,
			       o->min == 1 ? "y" : "ies");
	}
	*out = res;
	return 1;
}

static int
cfg_set_int(const struct cfg_opt *o, const char *v, long *out, char *why,
	    size_t whysz)
{
	char *end, q[CFG_QUOTE];
	long n;

	errno = 0;
	n = strtol(v, &end, 10);
	/* strtol skips leading blanks; inih already stripped them. */
	if (end == v || *end != '\0' || errno != 0 || n < o->min ||
	    n > o->max || cfg_space(*v))
		return cfg_why(
		    why, whysz, "\"%s\": want an integer from %ld to %ld",
		    cfg_quote(v, strlen(v), q, sizeof(q)), o->min, o->max);
	*out = n;
	return 1;
}

static int
cfg_set_mode(const struct cfg_opt *o, const char *v, unsigned *out, char *why,
	     size_t whysz)
{
	char q[CFG_QUOTE];
	unsigned long n = 0;
	size_t i, len = strlen(v);

	for (i = 0; i < len; i++) {
		if (v[i] < '0' || v[i] > '7' || n > (unsigned long)o->max)
			break;
		n = n * 8 + (unsigned long)(v[i] - '0');
	}
	if (len == 0 || i < len || n < (unsigned long)o->min ||
	    n > (unsigned long)o->max)
		return cfg_why(why, whysz,
			       "\"%s\": want an octal mode from 0 to 0777 "
			       "(like 0660)",
			       cfg_quote(v, len, q, sizeof(q)));
	*out = (unsigned)n;
	return 1;
}

static int
cfg_set_bool(const char *v, int *out, char *why, size_t whysz)
{
	static const char *const yes[] = {"yes", "true", "on", "1"};
	static const char *const no[] = {"no", "false", "off", "0"};
	char q[CFG_QUOTE];
	size_t i;

	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(v, yes[i]) == 0) {
			*out = 1;
			return 1;
		}
		if (strcasecmp(v, no[i]) == 0) {
			*out = 0;
			return 1;
		}
	}
	return cfg_why(why, whysz, "\"%s\": want yes or no",
		       cfg_quote(v, strlen(v), q, sizeof(q)));
}

static int
cfg_set_enum(const struct cfg_opt *o, const char *v, int *out, char *why,
	     size_t whysz)
{
	char q[CFG_QUOTE], list[128] = "";
	size_t i, n;

	for (i = 0; o->enums[i] != NULL; i++) {
		if (strcasecmp(v, o->enums[i]) == 0) {
			*out = (int)i;
			return 1;
		}
		n = strlen(list);
		snprintf(list + n, sizeof(list) - n, "%s%s", i ? " or " : "",
			 o->enums[i]);
	}
	return cfg_why(why, whysz, "\"%s\": want %s",
		       cfg_quote(v, strlen(v), q, sizeof(q)), list);
}

/* Parse V for option O into CFG. Returns 1, or 0 with a reason in WHY. */
static int
cfg_set(struct cfg *cfg, const struct cfg_opt *o, const char *v, char *why,
	size_t whysz)
{
	char *base = (char *)cfg + o->off, *s = NULL;
	char **sp = (char **)(void *)base;
	size_t len = strlen(v);

	if (len > LIM_CONFIG_VALUE)
		return cfg_why(why, whysz, "value longer than %d bytes",
			       LIM_CONFIG_VALUE);
	/*
	 * cfg_print() writes "name = value"; inih would read a value starting
	 * with ';' there as a comment (found by fuzz_cfg).
	 */
	if (v[0] == ';' && (o->type == CFG_T_STRING || o->type == CFG_T_WORDS))
		return cfg_why(why, whysz, "a value cannot start with ';'");
	switch (o->type) {
	case CFG_T_STRING:
		if (o->check != NULL && !o->check(v, len, why, whysz)) {
			char q[CFG_QUOTE], reason[160];

			snprintf(reason, sizeof(reason), "%s", why ? why : "");
			return cfg_why(why, whysz, "\"%s\": %s",
				       cfg_quote(v, len, q, sizeof(q)), reason);
		}
		if ((s = strdup(v)) == NULL)
			return cfg_why(why, whysz, "out of memory");
		free(*sp);
		*sp = s;
		return 1;
	case CFG_T_WORDS:
		if (!cfg_set_words(o, v, &s, why, whysz))
			return 0;
		free(*sp);
		*sp = s;
		return 1;
	case CFG_T_INT:
		return cfg_set_int(o, v, (long *)(void *)base, why, whysz);
	case CFG_T_MODE:
		return cfg_set_mode(o, v, (unsigned *)(void *)base, why, whysz);
	case CFG_T_BOOL:
		return cfg_set_bool(v, (int *)(void *)base, why, whysz);
	case CFG_T_ENUM:
		return cfg_set_enum(o, v, (int *)(void *)base, why, whysz);
	}
	return cfg_why(why, whysz, "bad option type");
}

/* [policy] -------------------------------------------------------------- */

int
cfg_static_answer_valid(const char *answer, char *err, size_t errsz)
{
	static const char *const kinds[] = {
	    "none",	   "may",    "encrypt", "dane", "dane-only",
	    "fingerprint", "verify", "secure",	NULL,
	};
	const char *p, *w;
	size_t len, i, wlen;

	if (answer == NULL || (len = strlen(answer)) == 0)
		return cfg_why(err, errsz, "empty answer");
	if (len > LIM_ANSWER_MAX)
		return cfg_why(err, errsz, "answer longer than %d bytes",
			       LIM_ANSWER_MAX);
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)answer[i];

		/* The answer goes into a socketmap reply as is (SPEC A1). */
		if (c < 0x20 || c == 0x7f)
			return cfg_why(err, errsz,
				       "control character 0x%02x in answer", c);
		if (c >= 0x80)
			return cfg_why(err, errsz,
				       "non-ASCII byte 0x%02x in answer", c);
	}
	wlen = strcspn(answer, " ");
	for (i = 0; kinds[i] != NULL; i++)
		if (strlen(kinds[i]) == wlen &&
		    memcmp(kinds[i], answer, wlen) == 0)
			break;
	if (kinds[i] == NULL)
		return cfg_why(err, errsz,
			       "answer must start with none, may, encrypt, "
			       "dane, dane-only, fingerprint, verify or "
			       "secure");
	/* Postfix smtp_tls_policy_maps: the rest are name=value attributes. */
	for (p = answer + wlen; *p != '\0';) {
		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		w = p;
		p += strcspn(p, " ");
		if (*w == '=' || memchr(w, '=', (size_t)(p - w)) == NULL) {
			char q[CFG_QUOTE];

			return cfg_why(
			    err, errsz, "\"%s\": want attribute=value",
			    cfg_quote(w, (size_t)(p - w), q, sizeof(q)));
		}
	}
	return 1;
}

static void
cfg_policy_add(struct cfg_ps *ps, const char *key, const char *answer)
{
	char dom[LIM_DOMAIN_MAX + 1], why[256], q[CFG_QUOTE];
	enum dom_status st;
	struct cfg_pending *p;

	st = dom_normalize(key, strlen(key), 0, dom, sizeof(dom));
	if (st != DOM_OK) {
		cfg_error(ps, "[policy] %s: not a domain name: %s",
			  cfg_quote(key, strlen(key), q, sizeof(q)),
			  dom_strerror(st));
		return;
	}
	if (!cfg_static_answer_valid(answer, why, sizeof(why))) {
		cfg_error(ps, "[policy] %s: %s", dom, why);
		return;
	}
	if (ps->npend == ps->cappend) {
		size_t ncap = ps->cappend ? ps->cappend * 2 : 16;

		if (ps->npend >= LIM_STATIC_POLICIES) {
			cfg_error(ps, "[policy] %s: more than %d entries", dom,
				  LIM_STATIC_POLICIES);
			return;
		}
		if (ncap > LIM_STATIC_POLICIES)
			ncap = LIM_STATIC_POLICIES;
		if ((p = realloc(ps->pend, ncap * sizeof(*p))) == NULL) {
			cfg_error(ps, "[policy] %s: out of memory", dom);
			return;
		}
		ps->pend = p;
		ps->cappend = ncap;
	}
	p = &ps->pend[ps->npend];
	p->st.domain = strdup(dom);
	p->st.answer = strdup(answer);
	p->st.exempt = strcmp(answer, "none") == 0;
	p->line = ps->lineno;
	if (p->st.domain == NULL || p->st.answer == NULL) {
		free(p->st.domain);
		free(p->st.answer);
		cfg_error(ps, "[policy] %s: out of memory", dom);
		return;
	}
	ps->npend++;
}

static int
cfg_pending_cmp(const void *a, const void *b)
{
	const struct cfg_pending *x = a, *y = b;
	int c = strcmp(x->st.domain, y->st.domain);

	if (c != 0)
		return c;
	return (x->line > y->line) - (x->line < y->line);
}

/*
 * Sort the entries for cfg_static_find()'s binary search and refuse a
 * domain given twice (at the later of the two lines).
 */
static int
cfg_policy_finish(struct cfg_ps *ps)
{
	struct cfg *cfg = ps->cfg;
	size_t i;

	if (ps->npend == 0)
		return 1;
	qsort(ps->pend, ps->npend, sizeof(*ps->pend), cfg_pending_cmp);
	for (i = 1; i < ps->npend; i++) {
		if (strcmp(ps->pend[i].st.domain, ps->pend[i - 1].st.domain) ==
		    0) {
			ps->lineno = ps->pend[i].line;
			cfg_error(ps,
				  "[policy] %s: given twice (first at "
				  "line %d)",
				  ps->pend[i].st.domain, ps->pend[i - 1].line);
			return 0;
		}
	}
	if ((cfg->statics = calloc(ps->npend, sizeof(*cfg->statics))) == NULL) {
		cfg_error(ps, "[policy]: out of memory");
		return 0;
	}
	for (i = 0; i < ps->npend; i++)
		cfg->statics[i] = ps->pend[i].st;
	cfg->nstatics = ps->npend;
	ps->npend = 0;
	return 1;
}

/* inih glue ------------------------------------------------------------- */

static int
cfg_known_section(const char *s, size_t len)
{
	size_t i;

	if (len == 6 && memcmp(s, "policy", 6) == 0)
		return 1;
	for (i = 0; cfg_sections[i] != NULL; i++)
		if (strlen(cfg_sections[i]) == len &&
		    memcmp(cfg_sections[i], s, len) == 0)
			return 1;
	return 0;
}

/*
 * Read one raw line into ps->line (without its newline). Returns its
 * length, -1 at the end, -2 after reporting an error.
 */
static long
cfg_read_line(struct cfg_ps *ps)
{
	size_t n = 0;
	int c;

	if (ps->fp == NULL) {
		const char *p = ps->buf + ps->off, *nl;
		size_t rest = ps->len - ps->off;

		if (rest == 0)
			return -1;
		nl = memchr(p, '\n', rest);
		n = nl ? (size_t)(nl - p) : rest;
		ps->lineno++;
		if (n > LIM_CONFIG_VALUE) {
			cfg_error(ps, "line longer than %d bytes",
				  LIM_CONFIG_VALUE);
			return -2;
		}
		memcpy(ps->line, p, n);
		ps->off += n + (nl != NULL);
	} else {
		while ((c = getc(ps->fp)) != EOF && c != '\n') {
			if (n == LIM_CONFIG_VALUE) {
				ps->lineno++;
				cfg_error(ps, "line longer than %d bytes",
					  LIM_CONFIG_VALUE);
				return -2;
			}
			ps->line[n++] = (char)c;
		}
		if (ferror(ps->fp)) {
			ps->lineno++;
			cfg_error(ps, "read error: %s", strerror(errno));
			return -2;
		}
		if (c == EOF && n == 0)
			return -1;
		ps->lineno++;
	}
	ps->line[n] = '\0';
	return (long)n;
}

/*
 * inih's reader: give it one line at a time, cleaned, so that what inih
 * sees is exactly what the file says or the parse stops with an error.
 */
static char *
cfg_ini_reader(char *str, int num, void *stream)
{
	struct cfg_ps *ps = stream;
	char *p, q[CFG_QUOTE];
	long r;
	size_t n, i;

	if (ps->stop || (r = cfg_read_line(ps)) < 0) {
		ps->stop = 1;
		return NULL;
	}
	n = (size_t)r;
	p = ps->line;
	if (n > 0 && p[n - 1] == '\r')
		p[--n] = '\0';
	/* The BOM inih would strip; we look at the line ourselves below. */
	if (ps->lineno == 1 && n >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0) {
		p += 3;
		n -= 3;
	}
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		/* A NUL would end inih's line early: a silent truncation. */
		if ((c < 0x20 && c != '\t') || c == 0x7f) {
			cfg_error(ps, "control character 0x%02x in line", c);
			return NULL;
		}
	}
	/*
	 * Leading blanks would make inih append the line to the previous
	 * value (multi-line values); we do not want that surprise.
	 */
	while (n > 0 && cfg_space(*p)) {
		p++;
		n--;
	}
	/* inih does not tell us about a section with no keys: check here. */
	if (n > 0 && p[0] == '[') {
		char *rb = memchr(p, ']', n);

		if (rb != NULL &&
		    !cfg_known_section(p + 1, (size_t)(rb - p - 1))) {
			cfg_error(ps, "[%s]: unknown section",
				  cfg_quote(p + 1, (size_t)(rb - p - 1), q,
					    sizeof(q)));
			return NULL;
		}
	}
	if (num < 2 || n + 2 > (size_t)num) {
		cfg_error(ps, "line longer than %d bytes (inih limit)",
			  num > 3 ? num - 3 : 0);
		return NULL;
	}
	memcpy(str, p, n);
	str[n] = '\n';
	str[n + 1] = '\0';
	return str;
}

static const struct cfg_opt *
cfg_find_opt(const char *section, const char *name, size_t *idx)
{
	size_t i;

	for (i = 0; i < CFG_NOPTS; i++) {
		if (strcmp(cfg_opts[i].section, section) == 0 &&
		    strcmp(cfg_opts[i].name, name) == 0) {
			*idx = i;
			return &cfg_opts[i];
		}
	}
	return NULL;
}

static int
cfg_ini_handler(void *user, const char *section, const char *name,
		const char *value)
{
	struct cfg_ps *ps = user;
	const struct cfg_opt *o;
	char why[512], q[CFG_QUOTE], qs[CFG_QUOTE];
	size_t idx;

	if (ps->stop)
		return 0;
	if (strcmp(section, "policy") == 0) {
		cfg_policy_add(ps, name, value);
		return ps->stop ? 0 : 1;
	}
	cfg_quote(name, strlen(name), q, sizeof(q));
	if (*section == '\0') {
		cfg_error(ps, "%s: option before any [section]", q);
		return 0;
	}
	cfg_quote(section, strlen(section), qs, sizeof(qs));
	if ((o = cfg_find_opt(section, name, &idx)) == NULL) {
		cfg_error(ps, "[%s] %s: unknown option", qs, q);
		return 0;
	}
	if (ps->setline[idx] != 0) {
		cfg_error(ps, "[%s] %s: set twice (first at line %d)", qs, q,
			  ps->setline[idx]);
		return 0;
	}
	ps->setline[idx] = ps->lineno;
	if (!cfg_set(ps->cfg, o, value, why, sizeof(why))) {
		cfg_error(ps, "[%s] %s: %s", qs, q, why);
		return 0;
	}
	return 1;
}

/* Checks that involve more than one option, after the whole file. */
static int
cfg_cross_check(struct cfg_ps *ps)
{
	struct cfg *cfg = ps->cfg;
	const char *p = cfg->tlsrpt_names, *w;
	char q[CFG_QUOTE];
	size_t i, idx = 0;

	/* Root hints steer full recursion; with resolvers set they would
	 * be silently ignored. */
	if (*cfg->root_hints != '\0' && *cfg->resolvers != '\0') {
		for (i = 0; i < CFG_NOPTS; i++)
			if (cfg_opts[i].off == offsetof(struct cfg, root_hints))
				idx = i;
		ps->lineno = ps->setline[idx];
		cfg_error(ps, "[dns] root_hints: only for full recursion; "
			      "[dns] resolvers is set (empty it, or remove "
			      "root_hints)");
		return 0;
	}
	idx = 0;

	/* DESIGN 6.6: TLS-RPT attributes only on names we answer. */
	while (*p != '\0') {
		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		w = p;
		p += strcspn(p, " ");
		if (!cfg_word_in(cfg->socketmap_names, w, (size_t)(p - w))) {
			for (i = 0; i < CFG_NOPTS; i++)
				if (cfg_opts[i].off ==
				    offsetof(struct cfg, tlsrpt_names))
					idx = i;
			ps->lineno = ps->setline[idx];
			cfg_error(ps,
				  "[server] tlsrpt_names: \"%s\" is not in "
				  "socketmap_names",
				  cfg_quote(w, (size_t)(p - w), q, sizeof(q)));
			return 0;
		}
	}
	return 1;
}

/* The line an option was set on, or 0 (a default). */
static int
cfg_set_line(const struct cfg_ps *ps, size_t off)
{
	size_t i;

	for (i = 0; i < CFG_NOPTS; i++)
		if (cfg_opts[i].off == off)
			return ps->setline[i];
	return 0;
}

/*
 * Issue 10 item 16: a CA bundle that is missing or holds no PEM
 * certificate would make every MTA-STS fetch fail, logged only at -v.
 * Refuse it where the other config errors are reported. Only for a file
 * read from disk: cfg_parse() stays free of I/O for tests and fuzzing.
 */
static int
cfg_check_ca_file(struct cfg_ps *ps)
{
	static const char marker[] = "-----BEGIN CERTIFICATE-----";
	static const char trusted[] = "-----BEGIN TRUSTED CERTIFICATE-----";
	const char *path = ps->cfg->ca_file;
	char line[256];
	int found = 0, saved;
	FILE *fp;

	if (ps->fp == NULL || *path == '\0')
		return 1;
	ps->lineno = cfg_set_line(ps, offsetof(struct cfg, ca_file));
	if ((fp = fopen(path, "re")) == NULL) {
		saved = errno;
		cfg_error(ps, "[sts] ca_file: %s: %s", path, strerror(saved));
		return 0;
	}
	while (!found && fgets(line, sizeof(line), fp) != NULL)
		if (strncmp(line, marker, sizeof(marker) - 1) == 0 ||
		    strncmp(line, trusted, sizeof(trusted) - 1) == 0)
			found = 1;
	saved = ferror(fp) ? errno : 0;
	fclose(fp);
	if (saved != 0) {
		cfg_error(ps, "[sts] ca_file: %s: %s", path, strerror(saved));
		return 0;
	}
	if (!found) {
		cfg_error(ps,
			  "[sts] ca_file: %s holds no PEM certificate (no "
			  "\"%s\" line)",
			  path, marker);
		return 0;
	}
	return 1;
}

/*
 * [tlsrpt] enabled = yes sends mail in the operator's name: refuse the
 * example identity (issue 10 item 13) and a configuration with no way to
 * send mail. The example values are the built-in defaults.
 */
static int
cfg_tlsrpt_check(struct cfg_ps *ps)
{
	static const struct {
		const char *name, *example;
		size_t off;
	} id[] = {
	    {"organization", "Example Org", offsetof(struct cfg, organization)},
	    {"contact", "mailto:postmaster@example.org",
	     offsetof(struct cfg, contact)},
	    {"submitter", "example.org", offsetof(struct cfg, submitter)},
	    {"from", "tlsrpt-noreply@example.org", offsetof(struct cfg, from)},
	};
	struct cfg *cfg = ps->cfg;
	char bad[160];
	size_t i, n = 0, len = 0;

	if (!cfg->tlsrpt_enabled)
		return 1;
	bad[0] = '\0';
	for (i = 0; i < sizeof(id) / sizeof(id[0]); i++) {
		const char *v = *(char **)(void *)((char *)cfg + id[i].off);

		if (*v != '\0' && strcmp(v, id[i].example) != 0)
			continue;
		len += (size_t)snprintf(bad + len, sizeof(bad) - len, "%s%s",
					n ? ", " : "", id[i].name);
		n++;
	}
	ps->lineno = cfg_set_line(ps, offsetof(struct cfg, tlsrpt_enabled));
	if (n > 0) {
		cfg_error(ps,
			  "[tlsrpt] enabled = yes, but %s %s empty or still "
			  "the example value: set [tlsrpt] organization, "
			  "contact, submitter and from to your own before "
			  "reports are sent in your name",
			  bad, n > 1 ? "are" : "is");
		return 0;
	}
	if (*cfg->tlsrpt_smtp == '\0' && *cfg->sendmail == '\0') {
		cfg_error(ps, "[tlsrpt] enabled = yes, but smtp and sendmail "
			      "are both empty: reports could not be mailed");
		return 0;
	}
	return 1;
}

/* Defaults, then the lines from PS's source. */
static struct cfg *
cfg_run(struct cfg_ps *ps, const char *source)
{
	struct cfg *cfg;
	char why[512];
	size_t i;
	int r;

	if (ps->err != NULL && ps->errsz > 0)
		ps->err[0] = '\0';
	if ((cfg = calloc(1, sizeof(*cfg))) == NULL ||
	    (cfg->source = strdup(source)) == NULL) {
		free(cfg);
		cfg_why(ps->err, ps->errsz, "%s: out of memory", ps->name);
		return NULL;
	}
	ps->cfg = cfg;
	for (i = 0; i < CFG_NOPTS; i++) {
		if (!cfg_set(cfg, &cfg_opts[i], cfg_opts[i].defval, why,
			     sizeof(why))) {
			/* Our bug (or a strange --prefix): say so clearly. */
			cfg_why(ps->err, ps->errsz,
				"(built-in default) [%s] %s: %s",
				cfg_opts[i].section, cfg_opts[i].name, why);
			cfg_free(cfg);
			return NULL;
		}
	}
	if (&ini_max_line != NULL && ini_max_line < CFG_INI_LINE)
		ini_max_line = CFG_INI_LINE;
	r = ini_parse_stream(cfg_ini_reader, ps, cfg_ini_handler, ps);
	if (r == -2) {
		ps->lineno = 0;
		cfg_error(ps, "out of memory");
	} else if (r > 0 && (ps->errline == 0 || r < ps->errline)) {
		/* inih's own complaint: a line it could not parse. */
		ps->errline = 0;
		ps->lineno = r;
		cfg_error(ps, "syntax error: want [section], name = value "
			      "or a ; comment");
	}
	if (ps->errline == 0 && cfg_cross_check(ps) && cfg_check_ca_file(ps) &&
	    cfg_tlsrpt_check(ps))
		cfg_policy_finish(ps);
	for (i = 0; i < ps->npend; i++) {
		free(ps->pend[i].st.domain);
		free(ps->pend[i].st.answer);
	}
	free(ps->pend);
	ps->pend = NULL;
	ps->npend = 0;
	if (ps->errline != 0) {
		cfg_free(cfg);
		return NULL;
	}
	return cfg;
}

/* API ------------------------------------------------------------------- */

struct cfg *
cfg_parse(const char *name, const char *buf, size_t len, char *err,
	  size_t errsz)
{
	struct cfg_ps *ps;
	struct cfg *cfg;

	if (name == NULL)
		name = "(config)";
	/* The state holds a line buffer: keep it off the stack. */
	if ((ps = calloc(1, sizeof(*ps))) == NULL) {
		cfg_why(err, errsz, "%s: out of memory", name);
		return NULL;
	}
	ps->name = name;
	ps->buf = buf != NULL ? buf : "";
	ps->len = buf != NULL ? len : 0;
	ps->err = err;
	ps->errsz = errsz;
	cfg = cfg_run(ps, name);
	free(ps);
	return cfg;
}

struct cfg *
cfg_load(const char *path, char *err, size_t errsz)
{
	struct cfg_ps *ps;
	struct cfg *cfg;

	if (path == NULL)
		return cfg_parse("(embedded defaults)", "", 0, err, errsz);
	if ((ps = calloc(1, sizeof(*ps))) == NULL) {
		cfg_why(err, errsz, "%s: out of memory", path);
		return NULL;
	}
	if ((ps->fp = fopen(path, "re")) == NULL) {
		cfg_why(err, errsz, "%s: %s", path, strerror(errno));
		free(ps);
		return NULL;
	}
	ps->name = path;
	ps->err = err;
	ps->errsz = errsz;
	cfg = cfg_run(ps, path);
	fclose(ps->fp);
	free(ps);
	return cfg;
}

void
cfg_free(struct cfg *cfg)
{
	size_t i;

	if (cfg == NULL)
		return;
	for (i = 0; i < CFG_NOPTS; i++)
		if (cfg_opts[i].type == CFG_T_STRING ||
		    cfg_opts[i].type == CFG_T_WORDS)
			free(*(char **)(void *)((char *)cfg + cfg_opts[i].off));
	for (i = 0; i < cfg->nstatics; i++) {
		free(cfg->statics[i].domain);
		free(cfg->statics[i].answer);
	}
	free(cfg->statics);
	free(cfg->source);
	free(cfg);
}

static void
cfg_print_opt(const struct cfg *cfg, const struct cfg_opt *o, FILE *fp)
{
	const char *base = (const char *)cfg + o->off;
	const char *s = NULL;
	char num[32];

	switch (o->type) {
	case CFG_T_STRING:
	case CFG_T_WORDS:
		s = *(char *const *)(const void *)base;
		break;
	case CFG_T_INT:
		snprintf(num, sizeof(num), "%ld",
			 *(const long *)(const void *)base);
		s = num;
		break;
	case CFG_T_MODE:
		snprintf(num, sizeof(num), "%04o",
			 *(const unsigned *)(const void *)base);
		s = num;
		break;
	case CFG_T_BOOL:
		s = *(const int *)(const void *)base ? "yes" : "no";
		break;
	case CFG_T_ENUM:
		s = o->enums[*(const int *)(const void *)base];
		break;
	}
	if (s == NULL || *s == '\0')
		fprintf(fp, "%s =\n", o->name);
	else
		fprintf(fp, "%s = %s\n", o->name, s);
}

void
cfg_print(const struct cfg *cfg, FILE *fp)
{
	char src[256];
	size_t i, j;

	log_sanitize(cfg->source, strlen(cfg->source), src, sizeof(src));
	fprintf(fp, "; tlspolicyd effective settings, read from %s\n", src);
	for (j = 0; cfg_sections[j] != NULL; j++) {
		fprintf(fp, "\n[%s]\n", cfg_sections[j]);
		for (i = 0; i < CFG_NOPTS; i++)
			if (strcmp(cfg_opts[i].section, cfg_sections[j]) == 0)
				cfg_print_opt(cfg, &cfg_opts[i], fp);
	}
	fprintf(fp, "\n[policy]\n");
	for (i = 0; i < cfg->nstatics; i++)
		fprintf(fp, "%s = %s\n", cfg->statics[i].domain,
			cfg->statics[i].answer);
}

void
cfg_foreach_option(void (*fn)(const char *section, const char *name,
			      const char *defval, const char *help, void *arg),
		   void *arg)
{
	size_t i;

	for (i = 0; i < CFG_NOPTS; i++)
		fn(cfg_opts[i].section, cfg_opts[i].name, cfg_opts[i].defval,
		   cfg_opts[i].help, arg);
}

const char *
cfg_default_path(void)
{
	return SYSCONFDIR "/tlspolicyd/tlspolicyd.conf";
}

static int
cfg_static_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const struct cfg_static *)elem)->domain);
}

const struct cfg_static *
cfg_static_find(const struct cfg *cfg, const char *domain)
{
	if (cfg == NULL || domain == NULL || cfg->nstatics == 0)
		return NULL;
	return bsearch(domain, cfg->statics, cfg->nstatics,
		       sizeof(*cfg->statics), cfg_static_cmp);
}

int
cfg_word_in(const char *list, const char *name, size_t namelen)
{
	const char *p = list, *w;

	if (list == NULL || name == NULL || namelen == 0)
		return 0;
	while (*p != '\0') {
		while (cfg_space(*p))
			p++;
		w = p;
		while (*p != '\0' && !cfg_space(*p))
			p++;
		if ((size_t)(p - w) == namelen && memcmp(w, name, namelen) == 0)
			return 1;
	}
	return 0;
}
