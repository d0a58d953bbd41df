/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * tlspolicy(1): the administrator's command-line tool, a thin client of
 * the running daemon (issue 8, DESIGN 6.11): lookups go over the query
 * socket (doc/PROTOCOL.md §3), the store and report commands over the
 * admin socket (§4), and the daemon answers them from its own store
 * handles and sends reports with its own delivery engine. Only when no
 * daemon listens on the admin socket (absent, or connection refused) do
 * the store commands open the stores directly:
 *
 *   tlspolicy [-c FILE] [-s SOCKET] [-a SOCKET] [-d DBPATH] [-j] COMMAND
 *     query DOMAIN        ask the daemon what it answers
 *     stats               the daemon's counters
 *     cache list          every stored domain, one per line
 *     cache show DOMAIN   every stored field for one domain
 *     cache flush DOMAIN  forget a domain (store and daemon memory)
 *     pin DOMAIN ANSWER   answer ANSWER for DOMAIN until unpinned
 *     exempt DOMAIN       apply no policy to DOMAIN until unpinned
 *     unpin DOMAIN        remove a pin or exemption
 *     report list         TLS-RPT days, domains, counts, delivery state
 *     report show --day YYYY-MM-DD --domain D    the report JSON
 *     report send --day YYYY-MM-DD [--domain D]  build and deliver now
 *
 * Exit status: 0 success, 1 a negative result (the daemon answered an
 * error, nothing stored), 2 an error (usage, config, daemon unreachable,
 * store unreadable). This is the top layer: it prints the errors the
 * modules return.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "cache/cache.h"
#include "cache/cache_json.h"
#include "util/cfg.h"
#include "cli/check.h"
#include "cli/cli.h"
#include "net/dns.h"
#include "util/dom.h"
#include "net/https.h"
#include "tlsrpt/rpt_deliver.h"
#include "tlsrpt/rpt_report.h"
#include "tlsrpt/rpt_store.h"
#include "util/ev.h"
#include "util/limits.h"
#include "util/log.h"

/* How long we wait for the daemon to answer one request. A cold query
 * may take up to [server] lookup_timeout (10 s by default) first. */
#define TOOL_TIMEOUT_MS 15000
/* Largest admin reply read (a listing of a large store). */
#define ADMIN_REPLY_MAX (256 * 1024 * 1024)

static const char *opt_config;
static const char *opt_socket;
static const char *opt_admin;
static const char *opt_db;
int cli_opt_json;
struct cfg *cli_cfg;

__attribute__((format(printf, 1, 2))) void
cli_errx_msg(const char *fmt, ...)
{
	va_list ap;

	fputs("tlspolicy: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void
usage(FILE *fp)
{
	fputs("usage: tlspolicy [-j] [-c FILE] [-s SOCKET] [-a SOCKET] "
	      "[-d DBPATH] COMMAND ...\n"
	      "\n"
	      "commands:\n"
	      "  query DOMAIN        ask the running daemon for DOMAIN's "
	      "answer\n"
	      "  check [--json] [--no-probe] [--port N] [--timeout N] DOMAIN\n"
	      "                      the answer the daemon gives DOMAIN and "
	      "why, DANE,\n"
	      "                      MTA-STS and TLS-RPT, and a STARTTLS "
	      "probe of every MX\n"
	      "                      (exit 1: problems found)\n"
	      "  stats               print the running daemon's counters\n"
	      "  cache list          list every domain in the store\n"
	      "  cache show DOMAIN   show every stored field for DOMAIN\n"
	      "  cache flush DOMAIN  forget what is stored for DOMAIN\n"
	      "  pin DOMAIN ANSWER   answer ANSWER for DOMAIN until "
	      "unpinned\n"
	      "  exempt DOMAIN       apply no TLS policy to DOMAIN until "
	      "unpinned\n"
	      "  unpin DOMAIN        remove DOMAIN's pin or exemption\n"
	      "  report list         TLS-RPT days, domains, counts and "
	      "delivery state\n"
	      "  report show --day YYYY-MM-DD --domain D\n"
	      "                      print the RFC 8460 report JSON\n"
	      "  report send --day YYYY-MM-DD [--domain D]\n"
	      "                      build and deliver that day's reports "
	      "now\n"
	      "\n"
	      "options:\n"
	      "  -c FILE    config file (default: the system config if it "
	      "exists)\n"
	      "  -s SOCKET  daemon query socket, PATH or unix:PATH\n"
	      "             (overrides [server] query_socket)\n"
	      "  -a SOCKET  daemon admin socket, PATH or unix:PATH\n"
	      "             (overrides [server] admin_socket)\n"
	      "  -d DBPATH  store path (overrides [cache] path)\n"
	      "  -j         print JSON, one object per line\n"
	      "  -V         print the version\n"
	      "  -h         print this help\n"
	      "\n"
	      "exit status: 0 success, 1 negative result (daemon error, "
	      "nothing stored),\n"
	      "             2 usage, config, connection or store error\n",
	      fp);
}

/* ---- config ---- */

/* Load the config once, when a value it holds is needed. */
int
cli_need_cfg(void)
{
	char err[512];
	const char *path = opt_config;

	if (cli_cfg != NULL)
		return 0;
	if (path == NULL && access(cfg_default_path(), F_OK) == 0)
		path = cfg_default_path();
	cli_cfg = cfg_load(path, err, sizeof(err));
	if (cli_cfg == NULL) {
		cli_errx_msg("%s", err[0] != '\0' ? err : "cannot load config");
		return -1;
	}
	return 0;
}

const char *
cli_store_path(void)
{
	if (opt_db != NULL)
		return opt_db;
	if (cli_need_cfg() < 0)
		return NULL;
	return cli_cfg->cache_path;
}

/* The query socket path, without "unix:"; NULL (message printed) when
 * there is none. */
static const char *
socket_path(void)
{
	const char *p = opt_socket;

	if (p == NULL) {
		if (cli_need_cfg() < 0)
			return NULL;
		p = cli_cfg->query_socket;
		if (p == NULL || p[0] == '\0') {
			cli_errx_msg(
			    "the query socket is disabled "
			    "([server] query_socket is empty); use -s");
			return NULL;
		}
	}
	if (strncmp(p, "unix:", 5) == 0)
		p += 5;
	if (p[0] == '\0') {
		cli_errx_msg("empty query socket path");
		return NULL;
	}
	return p;
}

/* ---- output helpers ---- */

/* Print S (from the daemon or the store) without control bytes. */
static void
print_wide(int width, const char *label, const char *s)
{
	char buf[4 * LIM_QUERY_LINE];

	log_sanitize(s, strlen(s), buf, sizeof(buf));
	printf("%-*s%s\n", width, label, buf);
}

/* "label:  value" as tlspolicy query prints it. */
static void
print_field(const char *label, const char *s)
{
	print_wide(9, label, s);
}

const char *
cli_fmt_time(long long t, char *buf, size_t bufsz, int iso)
{
	struct tm tm;
	time_t tt = (time_t)t;

	if (gmtime_r(&tt, &tm) == NULL ||
	    strftime(buf, bufsz,
		     iso ? "%Y-%m-%dT%H:%M:%SZ" : "%Y-%m-%d %H:%M:%S UTC",
		     &tm) == 0)
		snprintf(buf, bufsz, "%lld", t);
	return buf;
}

int
cli_print_json(json_t *o)
{
	char *txt = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);

	if (txt == NULL) {
		cli_errx_msg("out of memory");
		return -1;
	}
	puts(txt);
	free(txt);
	return 0;
}

/* ---- talking to the daemon ---- */

static long
ms_left(const struct timespec *deadline)
{
	struct timespec now;
	long ms;

	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (long)(deadline->tv_sec - now.tv_sec) * 1000 +
	     (deadline->tv_nsec - now.tv_nsec) / 1000000;
	return ms > 0 ? ms : 0;
}

/* Wait until FD is ready for EVENTS or the deadline passes. */
static int
wait_fd(int fd, short events, const struct timespec *deadline)
{
	struct pollfd pfd = {.fd = fd, .events = events};
	int rc;

	do {
		rc = poll(&pfd, 1, (int)ms_left(deadline));
	} while (rc < 0 && errno == EINTR);
	if (rc == 0)
		errno = ETIMEDOUT;
	return rc > 0 ? 0 : -1;
}

/* Connect to the daemon's socket at PATH: the descriptor, or -1 with
 * *TS TALK_UNREACHABLE (errno set: no daemon listens) or TALK_ERROR
 * (message printed). */
static int
talk_connect(const char *path, enum talk_status *ts)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int fd, saved;

	*ts = TALK_ERROR;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		cli_errx_msg("%s: socket path too long", path);
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		cli_errx_msg("socket: %s", strerror(errno));
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
		return fd;
	saved = errno;
	close(fd);
	errno = saved;
	if (saved == ENOENT || saved == ECONNREFUSED)
		*ts = TALK_UNREACHABLE;
	else if (saved == EACCES || saved == EPERM)
		cli_errx_msg("cannot reach the daemon at %s: %s (the admin "
			     "socket is for root and the daemon's user)",
			     path, strerror(saved));
	else
		cli_errx_msg("cannot reach the daemon at %s: %s", path,
			     strerror(saved));
	return -1;
}

/*
 * Send REQ as one line to the daemon at PATH and read one reply line
 * (at most LIM_QUERY_REPLY bytes) into *LINE (malloc'd, without the LF).
 * TALK_UNREACHABLE (errno set) when no daemon listens there; TALK_ERROR
 * (message printed) on any other failure.
 */
static enum talk_status
talk(const char *path, json_t *req, char **line, size_t max)
{
	struct timespec deadline;
	enum talk_status ts;
	char *out = NULL, *buf = NULL, *nl, *nb;
	size_t outlen, off = 0, len = 0, cap = 65536;
	ssize_t n;
	int fd;

	*line = NULL;
	if ((fd = talk_connect(path, &ts)) < 0)
		return ts;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += TOOL_TIMEOUT_MS / 1000;

	out = json_dumps(req, JSON_COMPACT);
	if (cap > max)
		cap = max;
	buf = malloc(cap + 1);
	if (out == NULL || buf == NULL) {
		cli_errx_msg("out of memory");
		goto fail;
	}
	outlen = strlen(out);
	out[outlen++] = '\n'; /* replaces the NUL: sent by length */
	while (off < outlen) {
		if (wait_fd(fd, POLLOUT, &deadline) < 0)
			goto io_fail;
		n = send(fd, out + off, outlen - off, MSG_NOSIGNAL);
		if (n < 0 && errno != EINTR && errno != EAGAIN)
			goto io_fail;
		if (n > 0)
			off += (size_t)n;
	}
	for (;;) {
		if (wait_fd(fd, POLLIN, &deadline) < 0)
			goto io_fail;
		if (len == cap + 1 && cap < max) {
			cap = cap * 2 < max ? cap * 2 : max;
			if ((nb = realloc(buf, cap + 1)) == NULL) {
				cli_errx_msg("out of memory");
				goto fail;
			}
			buf = nb;
		}
		n = read(fd, buf + len, cap + 1 - len);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			goto io_fail;
		if (n == 0) {
			cli_errx_msg("the daemon at %s closed the connection "
				     "without an answer",
				     path);
			goto fail;
		}
		nl = memchr(buf + len, '\n', (size_t)n);
		len += (size_t)n;
		if (nl != NULL) {
			*nl = '\0';
			break;
		}
		if (len > max) {
			cli_errx_msg(
			    "the daemon's reply is longer than %zu bytes", max);
			goto fail;
		}
	}
	free(out);
	close(fd);
	*line = buf;
	return TALK_OK;
io_fail:
	cli_errx_msg("talking to the daemon at %s: %s", path, strerror(errno));
fail:
	free(out);
	free(buf);
	close(fd);
	return TALK_ERROR;
}

/* Parse a reply line into an object; NULL (message printed) if it is not
 * one. */
static json_t *
parse_reply(const char *line)
{
	json_error_t jerr;
	json_t *o = json_loads(line, 0, &jerr);

	if (o == NULL || !json_is_object(o)) {
		cli_errx_msg("the daemon sent a malformed reply");
		json_decref(o);
		return NULL;
	}
	return o;
}

/* A string member or "-" (null, absent, or not a string). */
const char *
cli_jstr(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s != NULL ? s : "-";
}

static int
cmd_query(const char *key)
{
	char *line = NULL, tbuf[64], mx[4 * LIM_QUERY_LINE];
	const char *path;
	json_t *req, *rep, *v;
	enum talk_status ts;
	size_t i, n;
	int rc = 0;

	if (key[0] == '\0' || strlen(key) > LIM_KEY_MAX) {
		cli_errx_msg("the domain must be 1 to %d bytes", LIM_KEY_MAX);
		return EXIT_ERROR;
	}
	if ((path = socket_path()) == NULL)
		return EXIT_ERROR;
	req = json_pack("{s:s,s:s}", "cmd", "query", "domain", key);
	if (req == NULL) {
		cli_errx_msg("the domain is not valid UTF-8");
		return EXIT_ERROR;
	}
	ts = talk(path, req, &line, LIM_QUERY_REPLY);
	json_decref(req);
	if (ts == TALK_UNREACHABLE) {
		cli_errx_msg("cannot reach the daemon at %s: %s (is tlspolicyd "
			     "running?)",
			     path, strerror(errno));
		return EXIT_ERROR;
	}
	if (ts != TALK_OK)
		return EXIT_ERROR;
	if ((rep = parse_reply(line)) == NULL) {
		free(line);
		return EXIT_ERROR;
	}
	if ((v = json_object_get(rep, "error")) != NULL) {
		if (cli_opt_json)
			puts(line);
		else
			cli_errx_msg("the daemon answered: %s",
				     json_is_string(v) ? json_string_value(v)
						       : "an error");
		rc = EXIT_NEGATIVE;
	} else if (cli_opt_json) {
		puts(line);
	} else {
		print_field("domain:", cli_jstr(rep, "domain"));
		print_field("answer:", cli_jstr(rep, "answer"));
		print_field("source:", cli_jstr(rep, "source"));
		if (json_is_string(json_object_get(rep, "reason")))
			print_field("reason:", cli_jstr(rep, "reason"));
		print_field("mode:", cli_jstr(rep, "mode"));
		mx[0] = '\0';
		v = json_object_get(rep, "mx");
		n = 0;
		for (i = 0; json_is_array(v) && i < json_array_size(v); i++) {
			const char *s = json_string_value(json_array_get(v, i));

			if (s == NULL)
				continue;
			n += (size_t)snprintf(
			    mx + n, n < sizeof(mx) ? sizeof(mx) - n : 0, "%s%s",
			    n > 0 ? ", " : "", s);
			if (n >= sizeof(mx))
				break;
		}
		print_field("mx:", mx[0] != '\0' ? mx : "-");
		v = json_object_get(rep, "expires");
		print_field("expires:",
			    json_is_integer(v)
				? cli_fmt_time(json_integer_value(v), tbuf,
					       sizeof(tbuf), 0)
				: "-");
	}
	json_decref(rep);
	free(line);
	return rc;
}

/* ---- the store ---- */

/* A PostgreSQL store: nothing to stat or chown. */
static struct cache *
pg_open(const char *uri)
{
	char err[512];
	struct cache *c = cache_open(uri, 16, err, sizeof(err));

	if (c == NULL)
		cli_errx_msg("%s", err);
	return c;
}

static struct cache *
store_open(void)
{
	char err[512];
	const char *path = cli_store_path();
	struct cache *c;
	struct stat st;

	if (path == NULL)
		return NULL;
	/* Do not create an empty store as a side effect of looking. */
	if (cfg_is_pg_uri(path))
		return pg_open(path);
	if (strcmp(path, ":memory:") != 0 && stat(path, &st) < 0) {
		cli_errx_msg("%s: %s", path, strerror(errno));
		return NULL;
	}
	c = cache_open(path, 16, err, sizeof(err));
	if (c == NULL) {
		cli_errx_msg("%s", err);
		return NULL;
	}
	/* Run as root on the daemon's store, keep the -wal and -shm files
	 * we may have created owned like the store itself, or the daemon
	 * (running unprivileged) could no longer write it. */
	if (strcmp(path, ":memory:") != 0 && geteuid() == 0 && st.st_uid != 0 &&
	    cache_chown(c, st.st_uid, st.st_gid) < 0)
		cli_errx_msg("%s: chown: %s", path, strerror(errno));
	return c;
}

/* ---- the admin socket ---- */

/* The admin socket path without "unix:", or NULL when it is disabled
 * (then every store command works on the store directly). */
static const char *
admin_path(void)
{
	const char *p = opt_admin;

	if (p == NULL) {
		if (cli_need_cfg() < 0)
			return NULL;
		p = cli_cfg->admin_socket;
	}
	if (p == NULL)
		return NULL;
	if (strncmp(p, "unix:", 5) == 0)
		p += 5;
	return p[0] != '\0' ? p : NULL;
}

/*
 * Send REQ (consumed) to the daemon's admin socket. TALK_OK with the reply
 * object in *REP; TALK_UNREACHABLE when no daemon listens there (the
 * caller then works on the store); TALK_ERROR, message printed, on any
 * other failure, an "error" reply included.
 */
enum talk_status
cli_admin_call(json_t *req, json_t **rep)
{
	const char *path;
	char *line = NULL;
	enum talk_status ts;
	json_t *v;

	*rep = NULL;
	if (req == NULL) {
		cli_errx_msg("out of memory");
		return TALK_ERROR;
	}
	if (opt_admin == NULL && cli_need_cfg() < 0) {
		json_decref(req);
		return TALK_ERROR;
	}
	if ((path = admin_path()) == NULL) {
		json_decref(req);
		return TALK_UNREACHABLE;
	}
	ts = talk(path, req, &line, ADMIN_REPLY_MAX);
	json_decref(req);
	if (ts != TALK_OK)
		return ts;
	*rep = parse_reply(line);
	free(line);
	if (*rep == NULL)
		return TALK_ERROR;
	if ((v = json_object_get(*rep, "error")) != NULL) {
		cli_errx_msg("the daemon answered: %s",
			     json_is_string(v) ? json_string_value(v)
					       : "an error");
		json_decref(*rep);
		*rep = NULL;
		return TALK_ERROR;
	}
	return TALK_OK;
}

/* An integer member, or 0. */
long long
cli_jint(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_integer(v) ? (long long)json_integer_value(v) : 0;
}

/* One line of "cache list" from an entry object (daemon or store). */
static int
print_entry_row(json_t *e)
{
	char t1[32] = "-", t2[32] = "-", dom[4 * (LIM_DOMAIN_MAX + 1)];
	char verdict[64], pinned[4 * 80];
	json_t *sts = json_object_get(e, "sts"),
	       *dane = json_object_get(e, "dane"),
	       *pin = json_object_get(e, "pin");
	const char *d = cli_jstr(e, "domain"), *v;

	if (cli_opt_json)
		return cli_print_json(e);
	if (json_is_object(sts))
		cli_fmt_time(cli_jint(sts, "expires_at"), t1, sizeof(t1), 1);
	if (json_is_object(dane))
		cli_fmt_time(cli_jint(dane, "expires_at"), t2, sizeof(t2), 1);
	log_sanitize(d, strlen(d), dom, sizeof(dom));
	v = json_is_object(dane) ? cli_jstr(dane, "verdict") : "-";
	log_sanitize(v, strlen(v), verdict, sizeof(verdict));
	v = !json_is_object(pin) ? ""
	    : json_is_true(json_object_get(pin, "exempt"))
		? "exempt"
		: cli_jstr(pin, "answer");
	log_sanitize(v, strlen(v) < 60 ? strlen(v) : 60, pinned,
		     sizeof(pinned));
	printf("%-32s %-8s %-20s %-9s %-20s%s%s\n", dom,
	       json_is_object(sts) ? cli_jstr(sts, "mode") : "-", t1, verdict,
	       t2, pinned[0] != '\0' ? " pin: " : "", pinned);
	return 0;
}

static int
list_one(const struct cache_entry *e, void *arg)
{
	json_t *o = cache_entry_json(e);
	int *failed = arg;

	if (o == NULL || print_entry_row(o) < 0)
		*failed = 1;
	json_decref(o);
	return *failed;
}

static int
cmd_cache_list(void)
{
	struct cache *c;
	enum cache_err ce;
	enum talk_status ts;
	json_t *rep, *v;
	size_t i;
	int failed = 0;

	ts = cli_admin_call(json_pack("{s:s}", "cmd", "cache_list"), &rep);
	if (ts == TALK_ERROR)
		return EXIT_ERROR;
	if (ts == TALK_OK) {
		json_array_foreach(json_object_get(rep, "entries"), i, v)
		{
			if (print_entry_row(v) < 0)
				failed = 1;
		}
		if (json_is_true(json_object_get(rep, "truncated")))
			cli_errx_msg(
			    "the list is cut short: the store holds more "
			    "entries than one reply carries");
		json_decref(rep);
		return failed ? EXIT_ERROR : 0;
	}
	if ((c = store_open()) == NULL)
		return EXIT_ERROR;
	ce = cache_foreach(c, list_one, &failed);
	if (ce != CACHE_OK)
		cli_errx_msg("%s", cache_errmsg(c));
	cache_close(c);
	return ce != CACHE_OK || failed ? EXIT_ERROR : 0;
}

/* Normalise DOMAIN as the daemon would (SPEC A2). */
static int
normalise(const char *domain, char *out, size_t outsz)
{
	enum dom_status ds;

	ds = dom_normalize(domain, strlen(domain), DOM_SMARTHOST_POLICY, out,
			   outsz);
	if (ds != DOM_OK) {
		char buf[256];

		log_sanitize(domain, strlen(domain), buf, sizeof(buf));
		cli_errx_msg("%s: %s", buf, dom_strerror(ds));
		return -1;
	}
	return 0;
}

static void
show_str(const char *label, const char *s)
{
	print_wide(18, label, s[0] != '\0' ? s : "-");
}

static void
show_time(const char *label, long long t)
{
	char buf[64], line[96];

	if (t == 0) {
		show_str(label, "-");
		return;
	}
	snprintf(line, sizeof(line), "%s (%lld)",
		 cli_fmt_time(t, buf, sizeof(buf), 0), t);
	show_str(label, line);
}

/* "cache show" from an entry object (daemon or store). */
static int
show_entry(json_t *e)
{
	json_t *sts = json_object_get(e, "sts"),
	       *dane = json_object_get(e, "dane");
	char num[32], mx[4 * LIM_QUERY_LINE];
	json_t *v;
	size_t i, n = 0;

	if (cli_opt_json)
		return cli_print_json(e);
	show_str("domain:", cli_jstr(e, "domain"));
	if (!json_is_object(sts)) {
		show_str("sts:", "none stored");
	} else {
		show_str("sts.policy_id:", cli_jstr(sts, "policy_id"));
		show_str("sts.mode:", cli_jstr(sts, "mode"));
		mx[0] = '\0';
		json_array_foreach(json_object_get(sts, "mx"), i, v)
		{
			const char *p = json_string_value(v);

			if (p == NULL || n >= sizeof(mx))
				continue;
			n += (size_t)snprintf(mx + n, sizeof(mx) - n, "%s%s",
					      n > 0 ? ", " : "", p);
		}
		show_str("sts.mx:", mx);
		snprintf(num, sizeof(num), "%lld", cli_jint(sts, "max_age"));
		show_str("sts.max_age:", num);
		show_time("sts.fetched_at:", cli_jint(sts, "fetched_at"));
		show_time("sts.expires_at:", cli_jint(sts, "expires_at"));
		show_str(
		    "sts.last_error:",
		    json_is_string(json_object_get(sts, "last_error"))
			? json_string_value(json_object_get(sts, "last_error"))
			: "");
		show_time("sts.next_retry:", cli_jint(sts, "next_retry"));
	}
	if (!json_is_object(dane)) {
		show_str("dane:", "none stored");
	} else {
		show_str("dane.verdict:", cli_jstr(dane, "verdict"));
		show_str("dane.detail:", cli_jstr(dane, "detail"));
		show_time("dane.checked_at:", cli_jint(dane, "checked_at"));
		show_time("dane.expires_at:", cli_jint(dane, "expires_at"));
	}
	v = json_object_get(e, "pin");
	if (!json_is_object(v)) {
		show_str("pin:", "none");
	} else {
		show_str("pin:", json_is_true(json_object_get(v, "exempt"))
				     ? "exempt (no TLS policy)"
				     : cli_jstr(v, "answer"));
		show_time("pin.pinned_at:", cli_jint(v, "pinned_at"));
	}
	return 0;
}

static int
cmd_cache_show(const char *domain)
{
	char dom[LIM_DOMAIN_MAX + 1];
	const struct cache_entry *e = NULL;
	struct cache *c;
	enum cache_err ce;
	enum talk_status ts;
	json_t *o;
	int rc = 0;

	if (normalise(domain, dom, sizeof(dom)) < 0)
		return EXIT_ERROR;
	ts = cli_admin_call(
	    json_pack("{s:s,s:s}", "cmd", "cache_show", "domain", dom), &o);
	if (ts == TALK_ERROR)
		return EXIT_ERROR;
	if (ts == TALK_OK) {
		if (!json_is_true(json_object_get(o, "found"))) {
			cli_errx_msg("%s: nothing stored", dom);
			rc = EXIT_NEGATIVE;
		} else if (show_entry(json_object_get(o, "entry")) < 0) {
			rc = EXIT_ERROR;
		}
		json_decref(o);
		return rc;
	}
	if ((c = store_open()) == NULL)
		return EXIT_ERROR;
	ce = cache_lookup(c, dom, &e);
	if (ce != CACHE_OK) {
		cli_errx_msg("%s", cache_errmsg(c)[0] != '\0'
				       ? cache_errmsg(c)
				       : cache_strerror(ce));
		rc = EXIT_ERROR;
	} else if (e == NULL) {
		cli_errx_msg("%s: nothing stored", dom);
		rc = EXIT_NEGATIVE;
	} else {
		o = cache_entry_json(e);
		if (o == NULL || show_entry(o) < 0)
			rc = EXIT_ERROR;
		json_decref(o);
	}
	cache_close(c);
	return rc;
}

static int
flush_result(const char *dom, int flushed, const char *how)
{
	json_t *o;

	if (cli_opt_json) {
		o = json_pack("{s:b,s:s}", "flushed", flushed, "domain", dom);
		if (o == NULL || cli_print_json(o) < 0) {
			json_decref(o);
			return EXIT_ERROR;
		}
		json_decref(o);
	} else if (flushed) {
		printf("%s: flushed (%s)\n", dom, how);
	} else {
		printf("%s: nothing stored\n", dom);
	}
	return flushed ? 0 : EXIT_NEGATIVE;
}

/*
 * Safe while the daemon runs: it must forget its memory record too, so ask
 * it over the admin socket; only when no daemon listens there do we change
 * the store ourselves.
 */
static int
cmd_cache_flush(const char *domain)
{
	char dom[LIM_DOMAIN_MAX + 1];
	struct cache *c;
	enum cache_err ce;
	enum talk_status ts;
	json_t *rep, *v;
	int rc;

	if (normalise(domain, dom, sizeof(dom)) < 0)
		return EXIT_ERROR;
	ts = cli_admin_call(
	    json_pack("{s:s,s:s}", "cmd", "flush", "domain", dom), &rep);
	if (ts == TALK_ERROR)
		return EXIT_ERROR;
	if (ts == TALK_OK) {
		v = json_object_get(rep, "flushed");
		if (json_is_boolean(v)) {
			rc =
			    flush_result(dom, json_is_true(v), "by the daemon");
		} else {
			cli_errx_msg("the daemon sent a malformed reply");
			rc = EXIT_ERROR;
		}
		json_decref(rep);
		return rc;
	}

	/* No daemon: change the store directly. */
	if ((c = store_open()) == NULL)
		return EXIT_ERROR;
	ce = cache_delete(c, dom);
	if (ce == CACHE_OK || ce == CACHE_NOTFOUND) {
		rc = flush_result(dom, ce == CACHE_OK, "in the store");
	} else {
		cli_errx_msg("%s", cache_errmsg(c)[0] != '\0'
				       ? cache_errmsg(c)
				       : cache_strerror(ce));
		rc = EXIT_ERROR;
	}
	cache_close(c);
	return rc;
}

/*
 * pin / exempt / unpin: through the daemon, so its memory follows at
 * once; only when no daemon listens do we change the store ourselves.
 * ANSWER NULL: exempt; UNPIN: remove.
 */
static int
cmd_pin(const char *domain, const char *answer, int unpin)
{
	char dom[LIM_DOMAIN_MAX + 1], why[256];
	const struct cfg_static *st;
	struct cache_pin pn;
	struct cache *c;
	enum cache_err ce;
	enum talk_status ts;
	json_t *rep;
	int rc = 0, exempt = !unpin && answer == NULL;

	if (normalise(domain, dom, sizeof(dom)) < 0)
		return EXIT_ERROR;
	ts = cli_admin_call(
	    unpin    ? json_pack("{s:s,s:s}", "cmd", "unpin", "domain", dom)
	    : exempt ? json_pack("{s:s,s:s}", "cmd", "exempt", "domain", dom)
		     : json_pack("{s:s,s:s,s:s}", "cmd", "pin", "domain", dom,
				 "answer", answer),
	    &rep);
	if (ts == TALK_ERROR)
		return EXIT_ERROR;
	if (ts == TALK_OK) {
		if (cli_opt_json)
			rc = cli_print_json(rep) < 0 ? EXIT_ERROR : 0;
		else if (unpin)
			printf("%s: %s\n", dom,
			       json_is_true(json_object_get(rep, "unpinned"))
				   ? "unpinned"
				   : "was not pinned");
		else
			printf("%s: %s\n", dom,
			       json_is_true(json_object_get(rep, "exempt"))
				   ? "exempted: no TLS policy is applied"
				   : "pinned");
		if (!unpin &&
		    json_is_true(json_object_get(rep, "overridden_by_config")))
			cli_errx_msg("%s: the [policy] line '%s' in the config "
				     "wins over this pin while it stays there",
				     dom, cli_jstr(rep, "config_answer"));
		if (unpin && !json_is_true(json_object_get(rep, "unpinned")))
			rc = EXIT_NEGATIVE;
		json_decref(rep);
		return rc;
	}
	/* No daemon: check and write the store directly. */
	if (!unpin && !exempt &&
	    !cfg_static_answer_valid(answer, why, sizeof(why))) {
		cli_errx_msg("%s: %s", dom, why);
		return EXIT_ERROR;
	}
	if ((c = store_open()) == NULL)
		return EXIT_ERROR;
	if (unpin) {
		ce = cache_unpin(c, dom);
	} else {
		memset(&pn, 0, sizeof(pn));
		pn.exempt = exempt || strcmp(answer, "none") == 0;
		pn.answer = pn.exempt ? NULL : (char *)answer;
		pn.pinned_at = time(NULL);
		ce = cache_put_pin(c, dom, &pn);
	}
	if (ce == CACHE_OK || (unpin && ce == CACHE_NOTFOUND)) {
		printf("%s: %s (in the store)\n", dom,
		       unpin ? (ce == CACHE_OK ? "unpinned" : "was not pinned")
		       : exempt ? "exempted: no TLS policy is applied"
				: "pinned");
		rc = ce == CACHE_OK ? 0 : EXIT_NEGATIVE;
		if (!unpin && cli_cfg != NULL &&
		    (st = cfg_static_find(cli_cfg, dom)) != NULL)
			cli_errx_msg("%s: the [policy] line '%s' in the config "
				     "wins over this pin while it stays there",
				     dom, st->answer);
	} else {
		cli_errx_msg("%s", cache_errmsg(c)[0] != '\0'
				       ? cache_errmsg(c)
				       : cache_strerror(ce));
		rc = EXIT_ERROR;
	}
	cache_close(c);
	return rc;
}

/* The daemon's counters (admin socket). */
static int
cmd_stats(void)
{
	enum talk_status ts;
	const char *key;
	json_t *rep, *v, *w;

	ts = cli_admin_call(json_pack("{s:s}", "cmd", "stats"), &rep);
	if (ts == TALK_UNREACHABLE) {
		cli_errx_msg(
		    "the daemon is not running (no answer on the admin "
		    "socket%s%s)",
		    admin_path() ? " " : "", admin_path() ? admin_path() : "");
		return EXIT_ERROR;
	}
	if (ts != TALK_OK)
		return EXIT_ERROR;
	if (cli_opt_json) {
		cli_print_json(rep);
	} else {
		json_object_foreach(rep, key, v)
		{
			const char *k2;

			if (!json_is_object(v)) {
				printf("%s: %lld\n", key,
				       (long long)json_integer_value(v));
				continue;
			}
			json_object_foreach(v, k2, w)
			    printf("%s.%s: %lld\n", key, k2,
				   (long long)json_integer_value(w));
		}
	}
	json_decref(rep);
	return 0;
}

/* ---- report ---- */

/* ---- main ---- */

static int
cmd_cache(int argc, char **argv)
{
	if (argc < 1) {
		usage(stderr);
		return EXIT_ERROR;
	}
	if (strcmp(argv[0], "list") == 0 && argc == 1)
		return cmd_cache_list();
	if (strcmp(argv[0], "show") == 0 && argc == 2)
		return cmd_cache_show(argv[1]);
	if (strcmp(argv[0], "flush") == 0 && argc == 2)
		return cmd_cache_flush(argv[1]);
	cli_errx_msg(
	    "usage: tlspolicy cache list | show DOMAIN | flush DOMAIN");
	return EXIT_ERROR;
}

/* The options before the command; -1 to go on, else the exit status. */
static int
parse_options(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	int ch;

	while ((ch = getopt_long(argc, argv, "+c:s:a:d:jVh", longopts, NULL)) !=
	       -1) {
		switch (ch) {
		case 'c':
			opt_config = optarg;
			break;
		case 's':
			opt_socket = optarg;
			break;
		case 'a':
			opt_admin = optarg;
			break;
		case 'd':
			opt_db = optarg;
			break;
		case 'j':
			cli_opt_json = 1;
			break;
		case 'V':
			printf("tlspolicy %s\n", PACKAGE_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EXIT_ERROR;
		}
	}
	return -1;
}

int
main(int argc, char **argv)
{
	const char *cmd;
	int rc;

	if ((rc = parse_options(argc, argv)) >= 0)
		return rc;
	argc -= optind;
	argv += optind;
	if (argc < 1) {
		usage(stderr);
		return EXIT_ERROR;
	}
	cmd = argv[0];
	if (strcmp(cmd, "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(cmd, "query") == 0) {
		if (argc != 2) {
			cli_errx_msg("usage: tlspolicy query DOMAIN");
			return EXIT_ERROR;
		}
		rc = cmd_query(argv[1]);
	} else if (strcmp(cmd, "check") == 0) {
		struct chk_opts co;
		char err[160];

		if (chk_args(argc - 1, argv + 1, &co, err, sizeof(err)) != 0) {
			cli_errx_msg("check: %s", err);
			cli_errx_msg(
			    "usage: tlspolicy check [--json] [--no-probe] "
			    "[--port N] [--timeout N] DOMAIN");
			return EXIT_ERROR;
		}
		co.json |= cli_opt_json;
		rc = cli_need_cfg() < 0 ? EXIT_ERROR : chk_run(cli_cfg, &co);
	} else if (strcmp(cmd, "stats") == 0) {
		if (argc != 1) {
			cli_errx_msg("usage: tlspolicy stats");
			return EXIT_ERROR;
		}
		rc = cmd_stats();
	} else if (strcmp(cmd, "cache") == 0) {
		rc = cmd_cache(argc - 1, argv + 1);
	} else if (strcmp(cmd, "report") == 0) {
		rc = cli_cmd_report(argc - 1, argv + 1);
	} else if (strcmp(cmd, "pin") == 0) {
		if (argc != 3) {
			cli_errx_msg("usage: tlspolicy pin DOMAIN ANSWER");
			return EXIT_ERROR;
		}
		rc = cmd_pin(argv[1], argv[2], 0);
	} else if (strcmp(cmd, "exempt") == 0 || strcmp(cmd, "unpin") == 0) {
		if (argc != 2) {
			cli_errx_msg("usage: tlspolicy %s DOMAIN", cmd);
			return EXIT_ERROR;
		}
		rc = cmd_pin(argv[1], NULL, cmd[0] == 'u');
	} else {
		cli_errx_msg("unknown command '%s'", cmd);
		usage(stderr);
		return EXIT_ERROR;
	}
	cfg_free(cli_cfg);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		cli_errx_msg("writing output: %s", strerror(errno));
		return EXIT_ERROR;
	}
	return rc;
}
