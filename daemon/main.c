/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * tlspolicyd: the daemon's start-up, signals and shutdown.
 *
 * Start-up order follows the privilege design (DESIGN 6.7): read the
 * config, open the store and bind every socket as root, hand the files to
 * [server] user, drop privileges, and only then start serving. Every
 * failure before serving is fatal with a message that names the file or
 * socket; nothing a client sends afterwards can stop the daemon.
 */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "cache/cache.h"
#include "util/cfg.h"
#include "util/postconf.h"
#include "net/dns.h"
#include "net/https.h"
#include "resolver/pol.h"
#include "daemon/adm.h"
#include "daemon/srv.h"
#include "tlsrpt/rpt_collect.h"
#include "util/db.h"
#include "daemon/met.h"
#include "util/sdnotify.h"
#include "util/ev.h"
#include "util/limits.h"
#include "util/log.h"
#include "util/sock.h"

/* How often the trust anchor self-test is retried while DNS is silent. */
#define SELFTEST_RETRY_S 60
/* How often changes the store refused (a full disk) are written again. */
#define STORE_RETRY_S 5
/* A shared store (PostgreSQL): how often the rows other hosts changed are
 * read (plus up to PG_JITTER_MS, so hosts started together spread out),
 * and the delays between connection attempts while it cannot be reached
 * (doubling from the first to the last). */
#define PG_POLL_S	   10
#define PG_JITTER_MS	   1000
#define PG_RECONNECT_MIN_S 1
#define PG_RECONNECT_MAX_S 60

struct daemon {
	const char *cfgpath; /* file to (re)read, or NULL for defaults */
	struct cfg *cfg;
	struct cache *cache;
	struct dns *dns;     /* NULL when neither DANE nor MTA-STS runs */
	struct https *https; /* NULL when [sts] enabled = no */
	struct pol *pol;
	struct srv *srv;
	struct adm *adm;
	struct rpt_collect *rpt; /* NULL when [tlsrpt] enabled = no */
	struct met *met;	 /* the metrics endpoint's counters */
	struct event_base *base;
	struct event *selftest;	   /* trust anchor self-test retry */
	struct event *store_retry; /* writes the store refused, again */
	int store_trouble;	   /* 1: refused writes logged, 2: full too */
	unsigned long long store_unsaved; /* unsaved_writes at its end */
	struct event *shared;		  /* PostgreSQL: poll, reconnect */
	int shared_down;		  /* 1: outage logged, 2: refusal */
	int shared_delay;		  /* next reconnect delay, seconds */
	int shared_poll_failed;		  /* a failed poll was logged */
	/* PostgreSQL on the loop (cache_set_async()): the socket of the
	 * call in flight, and the event that starts the next call. */
	struct event *pg_io, *pg_kick;
	int pg_io_fd;
	short pg_io_events;
	int pg_io_failed;  /* a failed batch or poll page was logged */
	int verbose_flags; /* -v count */
	int stopping;
	/* Start-up warming of the memory index (warm_timer). */
	struct event *warm;
	char warm_after[LIM_DOMAIN_MAX + 2];
	size_t warm_rows;
	uint64_t warm_t0;
};

static void selftest_later(struct daemon *d);
static void pg_arm(struct daemon *d);

static void
usage(FILE *fp)
{
	fprintf(fp,
		"usage: tlspolicyd [-c FILE] [-f] [-n] [-v]... [-V] "
		"[--fresh-store]\n"
		"  -c FILE  config file (default %s)\n"
		"  -f       stay in the foreground, log to stderr\n"
		"  -n       check the config, print the effective "
		"settings, exit\n"
		"  -v       more verbose (repeat for more)\n"
		"  -V       print the version and exit\n"
		"  --fresh-store  move a damaged store aside "
		"(FILE.damaged-TIME)\n"
		"                 and start with an empty one\n",
		cfg_default_path());
}

/*
 * Which file to read: -c FILE must exist; without -c the default file is
 * read when it exists, otherwise the embedded defaults apply.
 */
static struct cfg *
load_config(const char *explicit_path, const char **used, char *err,
	    size_t errsz)
{
	const char *def = cfg_default_path();

	if (explicit_path != NULL) {
		*used = explicit_path;
		return cfg_load(explicit_path, err, errsz);
	}
	if (access(def, F_OK) == 0) {
		*used = def;
		return cfg_load(def, err, errsz);
	}
	*used = NULL;
	return cfg_load(NULL, err, errsz);
}

/* The directory part of PATH in BUF, or "." */
static const char *
dirname_of(const char *path, char *buf, size_t bufsz)
{
	const char *slash = strrchr(path, '/');
	size_t len;

	if (slash == NULL)
		return ".";
	len = slash == path ? 1 : (size_t)(slash - path);
	if (len >= bufsz)
		return ".";
	memcpy(buf, path, len);
	buf[len] = '\0';
	return buf;
}

/*
 * Issue 10 item 3: take every descriptor the hard limit allows; what that
 * leaves for clients after the outbound reserve is logged by srv_start().
 */
static void
raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max)
		return;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		log_warn("cannot raise the file descriptor limit to %llu",
			 (unsigned long long)rl.rlim_max);
}

/* Descriptors outbound work may need at once (util/limits.h). */
static long
fd_reserve(const struct daemon *d)
{
	long r = LIM_FD_BASE;

	if (d->dns != NULL)
		r += LIM_FD_DNS;
	if (d->https != NULL)
		r += LIM_FD_HTTPS;
	if (d->rpt != NULL)
		r += LIM_FD_TLSRPT + (d->dns == NULL ? LIM_FD_DNS : 0) +
		     (d->https == NULL ? LIM_FD_HTTPS : 0);
	return r;
}

/*
 * Drop root for good (OpenSMTPD's order): supplementary groups, then the
 * group, then the user, each checked. The store and its directory go to
 * the user first so SQLite can write its WAL after the drop.
 */
/* Look the user up before anything is bound, so a typo leaves nothing
 * behind. NULL when no drop is configured. */
static struct passwd *
find_user(const char *user)
{
	struct passwd *pw;

	if (*user == '\0') {
		if (geteuid() == 0)
			log_warnx("running as root: set [server] user to drop "
				  "privileges");
		return NULL;
	}
	if ((pw = getpwnam(user)) == NULL)
		log_fatalx("[server] user: no such user '%s' (create it with "
			   "'useradd --system %s' or set user =)",
			   user, user);
	return pw;
}

static void
drop_privileges(struct daemon *d, const struct passwd *pw)
{
	const char *user = d->cfg->user;
	char dbuf[4096];
	const char *dir;

	if (pw == NULL)
		return;
	if (geteuid() != 0) {
		if (geteuid() != pw->pw_uid)
			log_fatalx("[server] user = %s needs the daemon to "
				   "start as root",
				   user);
		return;
	}
	/* A PostgreSQL store has no directory of ours. */
	dir = dirname_of(d->cfg->cache_path, dbuf, sizeof(dbuf));
	if (!cfg_is_pg_uri(d->cfg->cache_path) &&
	    chown(dir, pw->pw_uid, pw->pw_gid) != 0)
		log_fatal("chown %s", dir);
	if (cache_chown(d->cache, pw->pw_uid, pw->pw_gid) != 0)
		log_fatal("chown %s", d->cfg->cache_path);
	if (srv_chown(d->srv, pw->pw_uid, pw->pw_gid) != 0)
		log_fatal("chown %s", d->cfg->admin_socket);
	if (d->rpt != NULL &&
	    rpt_collect_chown(d->rpt, pw->pw_uid, pw->pw_gid) != 0)
		log_fatal("chown the tlsrpt store");
	/* The user's supplementary groups too: on Debian the mail log is
	 * root:adm 0640 and the install step adds the user to adm. */
	if (initgroups(pw->pw_name, pw->pw_gid) != 0 ||
	    setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) != 0 ||
	    setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) != 0)
		log_fatal("cannot drop privileges to %s", user);
	if (setuid(0) == 0)
		log_fatalx("privilege drop to %s did not stick", user);
}

static void
daemonize(void)
{
	pid_t pid;
	int fd;

	if ((pid = fork()) < 0)
		log_fatal("fork");
	if (pid > 0)
		_exit(0);
	if (setsid() < 0)
		log_fatal("setsid");
	if ((pid = fork()) < 0)
		log_fatal("fork");
	if (pid > 0)
		_exit(0);
	if (chdir("/") != 0)
		log_fatal("chdir /");
	if ((fd = open("/dev/null", O_RDWR)) >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
}

/* The settings SIGHUP cannot change: they were used to bind and open. */
static void
warn_restart_needed(const struct cfg *old, const struct cfg *new)
{
	static const struct {
		const char *name;
		size_t off;
	} fixed[] = {
	    {"[server] socketmap", offsetof(struct cfg, socketmap)},
	    {"[server] socketmap_group", offsetof(struct cfg, socketmap_group)},
	    {"[server] query_socket", offsetof(struct cfg, query_socket)},
	    {"[server] query_socket_group",
	     offsetof(struct cfg, query_socket_group)},
	    {"[server] admin_socket", offsetof(struct cfg, admin_socket)},
	    {"[server] user", offsetof(struct cfg, user)},
	    {"[cache] path", offsetof(struct cfg, cache_path)},
	    {"[dns] resolvers", offsetof(struct cfg, resolvers)},
	    {"[dns] trust_anchor", offsetof(struct cfg, trust_anchor)},
	    /* The TLS-RPT collector and sender copy theirs at start. */
	    {"[tlsrpt] socket", offsetof(struct cfg, tlsrpt_socket)},
	    {"[tlsrpt] socket_group",
	     offsetof(struct cfg, tlsrpt_socket_group)},
	    {"[tlsrpt] store", offsetof(struct cfg, tlsrpt_store)},
	    {"[tlsrpt] spool", offsetof(struct cfg, tlsrpt_spool)},
	    {"[tlsrpt] postfix_log", offsetof(struct cfg, postfix_log)},
	    {"[tlsrpt] organization", offsetof(struct cfg, organization)},
	    {"[tlsrpt] contact", offsetof(struct cfg, contact)},
	    {"[tlsrpt] submitter", offsetof(struct cfg, submitter)},
	    {"[tlsrpt] from", offsetof(struct cfg, from)},
	    {"[tlsrpt] smtp", offsetof(struct cfg, tlsrpt_smtp)},
	    {"[tlsrpt] sendmail", offsetof(struct cfg, sendmail)},
	};
	size_t i;

	for (i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
		const char *a =
		    *(char *const *)((const char *)old + fixed[i].off);
		const char *b =
		    *(char *const *)((const char *)new + fixed[i].off);

		if (strcmp(a, b) != 0)
			log_warnx("reload: %s changed; restart tlspolicyd to "
				  "apply it",
				  fixed[i].name);
	}
	if (old->dane_enabled != new->dane_enabled ||
	    old->sts_enabled != new->sts_enabled ||
	    strcmp(old->ca_file, new->ca_file) != 0 ||
	    old->dns_timeout != new->dns_timeout)
		log_warnx("reload: [dane] enabled, [sts] enabled, ca_file or "
			  "[dns] timeout changed; "
			  "restart tlspolicyd to apply it");
	if (old->tlsrpt_enabled != new->tlsrpt_enabled ||
	    old->tlsrpt_socket_mode != new->tlsrpt_socket_mode ||
	    old->tlsrpt_grace != new->tlsrpt_grace ||
	    old->tlsrpt_delay != new->tlsrpt_delay)
		log_warnx("reload: [tlsrpt] enabled, socket_mode, grace or "
			  "delay changed; restart tlspolicyd to apply it");
	if (old->socketmap_mode != new->socketmap_mode ||
	    old->query_socket_mode != new->query_socket_mode)
		log_warnx("reload: socket modes changed; restart tlspolicyd "
			  "to apply them");
}

/* sd_notify(3) (issue 12): a failure is worth a line, never a stop. */
static void
notify(const char *state)
{
	if (sdn_notify(state) < 0)
		log_warn("cannot tell systemd \"%s\" ($NOTIFY_SOCKET)", state);
}

/* systemd wants the monotonic clock with RELOADING=1 (sd_notify(3)). */
static void
notify_reloading(void)
{
	struct timespec ts;
	char buf[64];

	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(buf, sizeof(buf), "RELOADING=1\nMONOTONIC_USEC=%llu",
		 (unsigned long long)ts.tv_sec * 1000000ULL +
		     (unsigned long long)ts.tv_nsec / 1000ULL);
	notify(buf);
}

static void
reload(struct daemon *d)
{
	struct cfg *ncfg, *old = d->cfg;
	const char *used;
	char err[512];

	notify_reloading();
	ncfg = load_config(d->cfgpath, &used, err, sizeof(err));
	if (ncfg == NULL) {
		log_warnx("reload failed, keeping the running config: %s", err);
		notify("READY=1");
		return;
	}
	warn_restart_needed(old, ncfg);
	d->cfg = ncfg;
	pol_reconfigure(d->pol, ncfg);
	srv_reconfigure(d->srv, ncfg);
	adm_reconfigure(d->adm, ncfg);
	cache_set_memory_entries(d->cache, ncfg->memory_entries);
	log_set_verbose((int)ncfg->verbose + d->verbose_flags);
	cfg_free(old);
	log_info("reloaded %s: %zu static policies", ncfg->source,
		 ncfg->nstatics);
	notify("READY=1");
}

/* DESIGN 6.1: Postfix does its own TLSA lookups for dane answers, so
 * without DNSSEC on its side they silently weaken; say so at start-up. */
static void
warn_postfix_dns(void)
{
	char level[64];

	if (pfx_dns_support_level(level, sizeof(level)) == 0 &&
	    strcmp(level, "dnssec") != 0)
		log_warnx("Postfix has smtp_dns_support_level = %s: its dane "
			  "and dane-only policies need \"dnssec\" and a "
			  "validating resolver",
			  *level ? level : "(empty)");
}

/*
 * The start-up self-test again, asynchronously, until DNS answers
 * (SPEC A9.66). A trust anchor found wrong then stops the daemon: running
 * on would make every signed domain look unsigned, a silent downgrade.
 */
static void selftest_timer(evutil_socket_t fd, short what, void *arg);

static void
selftest_answer(const struct dns_result *r, void *arg)
{
	struct daemon *d = arg;
	char err[1024];

	/* The same judgement as at start-up: only an answer that arrived
	 * and does not validate stops the daemon (issue 10). */
	switch (dns_selftest_judge(d->dns, r, err, sizeof(err))) {
	case 0:
		log_info("dns: trust anchor %s validates %s now",
			 d->cfg->trust_anchor, r->qname);
		return;
	case -2:
		log_debug("dns: self-test: %s; trying again in %d s", err,
			  SELFTEST_RETRY_S);
		selftest_later(d);
		return;
	default:
		log_fatalx("dns: %s", err);
	}
}

static void
selftest_timer(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;

	(void)fd;
	(void)what;
	if (dns_query(d->dns, dns_selftest_name(d->dns, d->cfg->selftest_name),
		      DNS_T_SOA, selftest_answer, d) == NULL)
		selftest_later(d);
}

static void
selftest_later(struct daemon *d)
{
	struct timeval tv = {SELFTEST_RETRY_S, 0};

	if (d->selftest == NULL &&
	    (d->selftest = evtimer_new(d->base, selftest_timer, d)) == NULL)
		log_fatalx("out of memory");
	evtimer_add(d->selftest, &tv);
}

/*
 * [dns] root_hints are read by getdns's libunbound at its first query,
 * which comes after the privilege drop: prove now, as [server] user (its
 * group only, as after the drop), that it can read them, rather than
 * failing every lookup later.
 */
static void
selftest_hints_readable(const struct cfg *cfg, const struct passwd *pw)
{
	gid_t groups[NGROUPS_MAX];
	int ngroups, fd, saved;

	if (*cfg->root_hints == '\0' || pw == NULL || geteuid() != 0)
		return;
	if ((ngroups = getgroups(NGROUPS_MAX, groups)) < 0)
		log_fatal("getgroups");
	if (setgroups(1, &pw->pw_gid) != 0 || setegid(pw->pw_gid) != 0 ||
	    seteuid(pw->pw_uid) != 0)
		log_fatal("cannot test [dns] root_hints as %s", cfg->user);
	fd = open(cfg->root_hints, O_RDONLY | O_CLOEXEC);
	saved = errno;
	if (seteuid(0) != 0 || setegid(0) != 0 ||
	    setgroups((size_t)ngroups, groups) != 0)
		log_fatal("cannot return to root after testing [dns] "
			  "root_hints");
	if (fd < 0)
		log_fatalx("dns: [dns] root_hints %s is not readable by "
			   "[server] user %s (%s); the resolver reads it "
			   "again after the privilege drop",
			   cfg->root_hints, cfg->user, strerror(saved));
	close(fd);
}

/*
 * DESIGN 6.10: a write the store refused (a full disk) still applies from
 * memory; this timer writes it when the store takes writes again. The
 * condition is logged once when it starts (and once more if the queue
 * fills up) and once when it ends; stats show the counters.
 */
static void
store_retry_timer(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;
	struct cache_stats st;
	enum cache_err e;

	(void)fd;
	(void)what;
	cache_get_stats(d->cache, &st);
	if (st.pending == 0 && !d->store_trouble)
		return;
	/* A shared store out of reach: its own timer reconnects, writes,
	 * and logs the outage (shared_reconnect). */
	if (!cache_online(d->cache))
		return;
	if (cfg_is_pg_uri(d->cfg->cache_path)) {
		/* The writes go out in batches on the loop (pg_io_cb), which
		 * logs a failure; after one, they wait for this timer. */
		cache_io_retry(d->cache);
		pg_arm(d);
		return;
	}
	e = cache_retry_writes(d->cache);
	cache_get_stats(d->cache, &st);
	if (e == CACHE_OK && st.pending == 0) {
		if (d->store_trouble)
			log_info("store: the store takes writes again; every "
				 "change kept in memory is written");
		d->store_trouble = 0;
		d->store_unsaved = st.unsaved_writes;
		return;
	}
	if (!d->store_trouble) {
		log_warnx("store: %s; %ld changes are applied from memory and "
			  "written when the store takes them (retried every "
			  "%d s)",
			  cache_errmsg(d->cache), st.pending, STORE_RETRY_S);
		d->store_trouble = 1;
	}
	if (d->store_trouble == 1 && st.unsaved_writes > d->store_unsaved) {
		log_warnx("store: %d changes wait for the store, the most it "
			  "keeps; newer ones apply only while they stay in "
			  "memory and are lost at a restart",
			  LIM_CACHE_PENDING);
		d->store_trouble = 2;
	}
}

static void
store_retry_start(struct daemon *d)
{
	struct timeval tv = {STORE_RETRY_S, 0};

	d->store_retry =
	    event_new(d->base, -1, EV_PERSIST, store_retry_timer, d);
	if (d->store_retry == NULL || evtimer_add(d->store_retry, &tv) != 0)
		log_fatalx("out of memory");
}

/* The shared store's timer fires again after S seconds and MS ms. */
static void
shared_arm(struct daemon *d, int s, long ms)
{
	struct timeval tv = {s + ms / 1000, (ms % 1000) * 1000};

	evtimer_add(d->shared, &tv);
}

/*
 * The shared store cannot be reached, or refuses us: try to connect, at
 * growing intervals. Once connected, what waits in memory is written and
 * the poll catches up with what other hosts wrote meanwhile (issue 13).
 */
static void
shared_connected(struct daemon *d, enum cache_err e)
{
	struct cache_stats st;

	if (e == CACHE_OK) {
		cache_io_start(d->cache);
		pg_arm(d);
		cache_get_stats(d->cache, &st);
		if (d->shared_down)
			log_info("store: the shared store is reachable again; "
				 "%ld changes still wait in memory; reading "
				 "what other hosts changed meanwhile",
				 st.pending);
		else
			log_info("store: the connection to the shared store "
				 "was lost and is open again");
		d->shared_down = 0;
		d->shared_delay = 0;
		shared_arm(d, 0, 0);
		return;
	}
	d->shared_delay = d->shared_delay == 0 ? PG_RECONNECT_MIN_S
			  : d->shared_delay * 2 > PG_RECONNECT_MAX_S
			      ? PG_RECONNECT_MAX_S
			      : d->shared_delay * 2;
	if (e == CACHE_EDB && d->shared_down != 2) {
		log_warnx("store: %s; answering without the shared store, "
			  "and trying again (up to every %d s)",
			  cache_errmsg(d->cache), PG_RECONNECT_MAX_S);
		d->shared_down = 2;
	} else if (e != CACHE_EDB && d->shared_down == 0) {
		log_warnx("store: the shared store cannot be reached: %s; "
			  "answering from memory and from what can be "
			  "fetched, keeping writes in memory, and trying to "
			  "connect again (up to every %d s)",
			  cache_errmsg(d->cache), PG_RECONNECT_MAX_S);
		d->shared_down = 1;
	}
	shared_arm(d, d->shared_delay, random() % PG_JITTER_MS);
}

/* Start an attempt: it ends in pg_io_cb (shared_connected). */
static void
shared_reconnect(struct daemon *d)
{
	enum cache_err e = cache_reconnect(d->cache);

	if (e == CACHE_DEFERRED) {
		pg_arm(d);
		return;
	}
	shared_connected(d, e);
}

/* Every PG_POLL_S: the rows other hosts changed, one bounded step per
 * turn of the loop while a backlog lasts. */
static void
shared_timer(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;
	int rc;

	(void)fd;
	(void)what;
	if (!cache_online(d->cache)) {
		shared_reconnect(d);
		return;
	}
	rc = cache_poll(d->cache);
	pg_arm(d);
	if (rc < 0) {
		if (!cache_online(d->cache)) {
			shared_reconnect(d);
			return;
		}
		if (!d->shared_poll_failed)
			log_warnx("store: cannot read what other hosts "
				  "changed: %s; trying again every %d s",
				  cache_errmsg(d->cache), PG_POLL_S);
		d->shared_poll_failed = 1;
	} else
		d->shared_poll_failed = 0;
	if (rc > 0)
		shared_arm(d, 0, 0);
	else
		shared_arm(d, PG_POLL_S, random() % PG_JITTER_MS);
}

/* A shared store that could not be reached at start: said plainly, and
 * the first attempt to connect comes soon. */
static void
shared_start(struct daemon *d)
{
	if (!cfg_is_pg_uri(d->cfg->cache_path))
		return;
	if ((d->shared = evtimer_new(d->base, shared_timer, d)) == NULL)
		log_fatalx("out of memory");
	if (cache_online(d->cache)) {
		shared_arm(d, PG_POLL_S, random() % PG_JITTER_MS);
		return;
	}
	log_warnx("store: the shared store cannot be reached: %s; starting "
		  "anyway: answering from memory and from what can be "
		  "fetched, keeping writes in memory, and trying to connect "
		  "again (after %d s, then less often, up to every %d s)",
		  cache_errmsg(d->cache), PG_RECONNECT_MIN_S,
		  PG_RECONNECT_MAX_S);
	d->shared_down = 1;
	d->shared_delay = PG_RECONNECT_MIN_S;
	shared_arm(d, PG_RECONNECT_MIN_S, random() % PG_JITTER_MS);
}

/*
 * PostgreSQL on the loop (issue 13): the call in flight is watched on its
 * socket with a bound (LIM_PG_IO_MS; a read of domains not in memory,
 * LIM_PG_READ_MS); writes, the poll and those reads never wait for the
 * database inside a client's request.
 */
static void pg_io_cb(evutil_socket_t fd, short what, void *arg);

static void
pg_arm(struct daemon *d)
{
	struct timeval tv;
	int ww, fd = cache_io_fd(d->cache, &ww);
	short ev = (short)(EV_READ | (ww ? EV_WRITE : 0));
	long ms = cache_io_timeout(d->cache);

	if (fd < 0 || ms < 0) {
		if (d->pg_io != NULL)
			event_del(d->pg_io);
		return;
	}
	/* The cache keeps the deadlines (the call's, a waiting read's). */
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	if (d->pg_io == NULL || fd != d->pg_io_fd || ev != d->pg_io_events) {
		if (d->pg_io != NULL)
			event_free(d->pg_io);
		d->pg_io = event_new(d->base, fd, ev, pg_io_cb, d);
		if (d->pg_io == NULL)
			log_fatalx("out of memory");
		d->pg_io_fd = fd;
		d->pg_io_events = ev;
	}
	event_add(d->pg_io, &tv);
}

/* The outcome of a call that ended, in the log: a failure once until a
 * call succeeds again; a lost connection goes to the reconnect timer. */
static void
pg_outcome(struct daemon *d, int rc)
{
	struct cache_stats st;

	cache_get_stats(d->cache, &st);
	if (rc == 0) {
		/* Back once everything that waited is written (a poll that
		 * works says nothing about writes the server refuses). */
		if (d->pg_io_failed && st.pending == 0 &&
		    cache_online(d->cache)) {
			log_info("store: the shared store takes writes again; "
				 "every change kept in memory is written");
			d->pg_io_failed = 0;
		}
		return;
	}
	if (!d->pg_io_failed)
		log_warnx("store: %s; %ld changes wait in memory and are "
			  "written when the shared store takes them",
			  cache_errmsg(d->cache), st.pending);
	d->pg_io_failed = 1;
	if (!cache_online(d->cache) && d->shared != NULL)
		shared_arm(d, 0, 0);
}

static void
pg_io_cb(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;
	enum cache_err e;
	int rc;

	(void)fd;
	rc = cache_io(d->cache, (what & EV_TIMEOUT) != 0);
	if (cache_io_connected(d->cache, &e))
		shared_connected(d, e);
	else
		pg_outcome(d, rc);
	pg_arm(d);
}

/* WAKE from the cache: new writes wait, or a synchronous call ended the
 * call in flight. */
static void
pg_kick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;

	(void)fd;
	(void)what;
	pg_outcome(d, cache_io(d->cache, 0));
	cache_io_start(d->cache);
	/* A synchronous call (a lookup of a domain not in memory) gave the
	 * connection up: the outage is logged and the reconnecting starts
	 * now, not at the next poll. */
	if (!cache_online(d->cache) && d->shared_down == 0 && d->shared != NULL)
		shared_arm(d, 0, 0);
	pg_arm(d);
}

static void
pg_wake(void *arg)
{
	struct daemon *d = arg;

	if (!event_pending(d->pg_kick, EV_TIMEOUT, NULL))
		event_active(d->pg_kick, EV_TIMEOUT, 0);
}

static void
pg_async_start(struct daemon *d)
{
	if (!cfg_is_pg_uri(d->cfg->cache_path))
		return;
	if ((d->pg_kick = event_new(d->base, -1, 0, pg_kick_cb, d)) == NULL)
		log_fatalx("out of memory");
	cache_set_async(d->cache, pg_wake, d);
}

/* Log what moving a damaged store aside did (--fresh-store). */
static void
store_notice(const char *msg)
{
	log_warnx("store: %s", msg);
}

/*
 * The policy a logged session was under: what the daemon answers for its
 * domain now, from the same decision (issue 8), never a fresh lookup (the
 * follower's call does not wait). Static and pinned answers carry no
 * policy text: DANE ones count as TLSA, others as no policy found.
 */
/* The TLS-RPT policy of ANS, the daemon's answer (rpt_collect_set_policy). */
static void
answered_as(const struct pol_answer *ans, struct rpt_answer *out)
{
	if (ans->kind == POL_TEMP && ans->rule == POL_RULE_STORE_FAILURE)
		out->type = RPT_ANSWERED_UNKNOWN;
	if (ans->kind != POL_OK)
		return;
	if (ans->source == POL_SRC_DANE ||
	    (ans->data != NULL && strncmp(ans->data, "dane", 4) == 0))
		out->type = RPT_ANSWERED_TLSA;
	else if (ans->source == POL_SRC_STS && ans->mode != NULL) {
		out->type = RPT_ANSWERED_STS;
		out->mode = ans->mode;
		out->mx = ans->mx;
		out->max_age = ans->max_age;
	}
}

/* A logged session waiting for its domain's row in the shared store. */
struct answered_wait {
	struct pol_req *req;
	rpt_answer_cb *done;
	void *arg;
};

static void
answered_read(const struct pol_answer *ans, void *arg)
{
	struct answered_wait *w = arg;
	struct rpt_answer a;

	memset(&a, 0, sizeof(a));
	answered_as(ans, &a);
	w->done(w->arg, &a);
	free(w);
}

static int
rpt_answered(void *arg, const char *domain, struct rpt_answer *out,
	     rpt_answer_cb *done, void *done_arg, void **handle)
{
	struct daemon *d = arg;
	struct answered_wait *w = NULL;
	struct pol_answer ans;

	/* What the store holds decides; no resolution starts for a logged
	 * session, and a domain the shared store must read first is read
	 * on the loop like a client's. */
	if (done != NULL && (w = calloc(1, sizeof(*w))) != NULL) {
		w->done = done;
		w->arg = done_arg;
		if (pol_lookup_stored(d->pol, domain, strlen(domain), &ans,
				      answered_read, w,
				      &w->req) == POL_PENDING) {
			*handle = w;
			return 1;
		}
		free(w);
	} else
		pol_lookup(d->pol, domain, strlen(domain), &ans, NULL, NULL,
			   NULL);
	answered_as(&ans, out);
	return 0;
}

static void
rpt_answered_cancel(void *arg, void *handle)
{
	struct answered_wait *w = handle;

	(void)arg;
	pol_cancel(w->req);
	free(w);
}

static void
stopped(void *arg)
{
	struct daemon *d = arg;

	event_base_loopexit(d->base, NULL);
}

static void
signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;

	(void)what;
	if (sig == SIGHUP) {
		reload(d);
		return;
	}
	if (d->stopping)
		return;
	d->stopping = 1;
	notify("STOPPING=1");
	log_info("%s: finishing replies and stopping",
		 sig == SIGTERM ? "SIGTERM" : "SIGINT");
	srv_shutdown(d->srv, stopped, d);
}

/* The command line. Returns -1 to go on, else the exit status. */
static int
parse_args(int argc, char **argv, struct daemon *d, const char **path,
	   int *foreground, int *check, int *fresh)
{
	static const struct option longopts[] = {
	    {"fresh-store", no_argument, NULL, 'F'},
	    {NULL, 0, NULL, 0},
	};
	int ch;

	while ((ch = getopt_long(argc, argv, "c:fnvVh", longopts, NULL)) !=
	       -1) {
		switch (ch) {
		case 'F':
			*fresh = 1;
			break;
		case 'c':
			*path = optarg;
			break;
		case 'f':
			*foreground = 1;
			break;
		case 'n':
			*check = 1;
			break;
		case 'v':
			d->verbose_flags++;
			break;
		case 'V':
			printf("tlspolicyd %s\n", PACKAGE_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	return -1;
}

/* DNS, with the trust anchor proved before serving (SPEC A9.66: getdns
 * 1.6 ignores a broken anchor file silently). */
static void
start_dns(struct daemon *d, const struct passwd *pw)
{
	char err[1024];

	d->dns = dns_new(d->base, d->cfg, err, sizeof(err));
	if (d->dns == NULL)
		log_fatalx("dns: %s", err);
	selftest_hints_readable(d->cfg, pw);
	switch (dns_selftest(d->dns, d->cfg->selftest_name, err, sizeof(err))) {
	case 0:
		break;
	case -2:
		/* A mail server must come up during a network outage, or
		 * before its network is up: serve from the store, and prove
		 * the anchor as soon as DNS answers (issue 10 item 5). */
		log_warnx("dns: %s; answering from the store until DNS "
			  "answers, then testing the trust anchor (every %d s)",
			  err, SELFTEST_RETRY_S);
		selftest_later(d);
		break;
	default:
		log_fatalx("dns: %s", err);
	}
	if (d->cfg->dane_enabled)
		warn_postfix_dns();
}

/* The store, the resolvers, the policy module, the listeners, TLS-RPT
 * and metrics, all before the privilege drop. */
static void
start_services(struct daemon *d, const struct passwd *pw, int fresh)
{
	char err[1024], dbuf[4096];

	if (!cfg_is_pg_uri(d->cfg->cache_path) &&
	    sock_mkdirs(dirname_of(d->cfg->cache_path, dbuf, sizeof(dbuf)),
			0750) != 0)
		log_fatal("cannot create the store directory %s", dbuf);
	/* Issue 10: the stores are checked whole at start-up (PRAGMA
	 * quick_check); a damaged one is refused, or moved aside when the
	 * operator said --fresh-store. Later opens (the tool) skip that. */
	db_set_startup(DB_CHECK | (fresh ? DB_FRESH : 0), store_notice);
	/* A shared store out of reach is an outage, not a reason to stay
	 * down (shared_start); one that refuses us is a configuration
	 * error. */
	d->cache = cache_open_flags(d->cfg->cache_path, d->cfg->memory_entries,
				    CACHE_OPEN_OFFLINE_OK, err, sizeof(err));
	if (d->cache == NULL)
		log_fatalx("store: %s", err);
	if (d->cfg->dane_enabled || d->cfg->sts_enabled)
		start_dns(d, pw);
	if (d->cfg->sts_enabled) {
		struct https_config hc = {d->cfg->ca_file, NULL};

		if ((d->https = https_new(d->base, &hc, err, sizeof(err))) ==
		    NULL)
			log_fatalx("https: %s", err);
	}
	if ((d->pol = pol_new(d->cfg, d->cache, d->dns, d->https)) == NULL ||
	    (d->cfg->sts_enabled && pol_start_refresh(d->pol) != 0))
		log_fatalx("out of memory");
	d->srv = srv_new(d->base, d->cfg, d->pol, d->cache, err, sizeof(err));
	if (d->srv == NULL)
		log_fatalx("listen: %s", err);
	if ((d->adm = adm_new(d->cfg, d->cache, d->pol)) == NULL)
		log_fatalx("out of memory");
	srv_set_admin(d->srv, d->adm);
	if (d->cfg->tlsrpt_enabled) {
		d->rpt = rpt_collect_new(d->base, d->cfg, d->cache, d->dns,
					 d->https, err, sizeof(err));
		if (d->rpt == NULL)
			log_fatalx("tlsrpt: %s", err);
		rpt_collect_set_policy(d->rpt, rpt_answered,
				       rpt_answered_cancel, d);
		srv_set_report(d->srv, rpt_collect_feed_cb, d->rpt);
		/* The admin socket's report commands use the daemon's own
		 * store and sender (issue 8: a thin CLI). */
		adm_set_tlsrpt(d->adm, rpt_collect_store(d->rpt),
			       rpt_collect_deliver(d->rpt));
	}
	if ((d->met = met_new(d->srv, d->pol, d->cache)) == NULL)
		log_fatalx("out of memory");
	met_set_tlsrpt(d->met, d->rpt);
	srv_set_http(d->srv, met_http, d->met);
	srv_set_fd_reserve(d->srv, fd_reserve(d));
	db_set_startup(0, NULL);
	store_retry_start(d);
	pg_async_start(d);
	shared_start(d);
}

/*
 * Start-up: the stored policies go into the memory index, so that the
 * first lookups after a restart are answered from memory like later ones
 * (issue 9). Before the daemon says it is ready it reads for up to
 * LIM_WARM_FIRST_MS in one go, which is far cheaper per row than
 * batches between client events (whose lookups then wait on each
 * batch); whatever is left goes a batch per loop turn. A lookup that
 * comes first reads its row itself, as always.
 *
 * Reads batches until none is left or BUDGET_MS has passed (at least
 * one batch). Returns 1 when all are read, 0 when some are left, -1 when
 * the store failed (logged; later lookups read it).
 */
static int
warm_for(struct daemon *d, uint64_t budget_ms)
{
	uint64_t t0 = ev_mono_ms();
	struct cache_stats st;
	size_t n;

	do {
		n = 0;
		if (cache_warm(d->cache, d->warm_after, sizeof(d->warm_after),
			       LIM_WARM_BATCH, &n) != CACHE_OK) {
			log_warnx("store: reading the stored policies into "
				  "memory stopped after %zu: %s; later lookups "
				  "read the store",
				  d->warm_rows, cache_errmsg(d->cache));
			return -1;
		}
		d->warm_rows += n;
	} while (n > 0 && ev_mono_ms() - t0 < budget_ms);
	if (n > 0)
		return 0;
	cache_get_stats(d->cache, &st);
	if (d->warm_rows > 0)
		log_info("store: %zu stored policies read into memory in %llu "
			 "ms (%ld domains in memory)",
			 d->warm_rows,
			 (unsigned long long)(ev_mono_ms() - d->warm_t0),
			 st.entries);
	return 1;
}

static void
warm_timer(evutil_socket_t fd, short what, void *arg)
{
	static const struct timeval now = {0, 0};
	struct daemon *d = arg;

	(void)fd;
	(void)what;
	if (warm_for(d, 0) == 0)
		(void)event_add(d->warm, &now);
}

static void
warm_start(struct daemon *d)
{
	static const struct timeval now = {0, 0};

	d->warm_t0 = ev_mono_ms();
	if (warm_for(d, LIM_WARM_FIRST_MS) != 0)
		return;
	if ((d->warm = evtimer_new(d->base, warm_timer, d)) == NULL ||
	    event_add(d->warm, &now) != 0)
		log_warnx("store: cannot read the rest of the stored policies "
			  "into memory; lookups read them as they come");
}

/* Free everything after the loop ends; what the store still owes is
 * tried once more. */
static void
teardown(struct daemon *d)
{
	if (d->selftest != NULL)
		event_free(d->selftest);
	event_free(d->store_retry);
	if (d->shared != NULL)
		event_free(d->shared);
	if (d->pg_io != NULL)
		event_free(d->pg_io);
	if (d->pg_kick != NULL)
		event_free(d->pg_kick);
	if (d->warm != NULL)
		event_free(d->warm);
	srv_free(d->srv);
	met_free(d->met);
	adm_free(d->adm);
	rpt_collect_free(d->rpt);
	pol_free(d->pol);
	https_free(d->https);
	dns_free(d->dns);
	if (cache_retry_writes(d->cache) != CACHE_OK) {
		struct cache_stats st;

		cache_get_stats(d->cache, &st);
		log_warnx("store: %s; %ld changes kept in memory are lost at "
			  "this stop",
			  cache_errmsg(d->cache), st.pending);
	}
	cache_close(d->cache);
	cfg_free(d->cfg);
	free((char *)d->cfgpath);
	ev_base_free();
}

int
main(int argc, char **argv)
{
	struct daemon d;
	struct passwd *pw;
	struct event *sigs[3];
	static const int signums[3] = {SIGTERM, SIGINT, SIGHUP};
	const char *explicit_path = NULL, *used;
	char err[1024], store_shown[1024];
	int foreground = 0, check = 0, fresh = 0, i, rc;

	memset(&d, 0, sizeof(d));
	if ((rc = parse_args(argc, argv, &d, &explicit_path, &foreground,
			     &check, &fresh)) >= 0)
		return rc;
	d.cfg = load_config(explicit_path, &used, err, sizeof(err));
	if (d.cfg == NULL) {
		fprintf(stderr, "tlspolicyd: %s\n", err);
		return 1;
	}
	/* Issue 10 item 17: the daemon changes to "/", so SIGHUP must find
	 * the file by its absolute name. */
	if (used != NULL && (d.cfgpath = realpath(used, NULL)) == NULL) {
		fprintf(stderr, "tlspolicyd: %s: %s\n", used, strerror(errno));
		cfg_free(d.cfg);
		return 1;
	}
	if (check) {
		cfg_print(d.cfg, stdout);
		cfg_free(d.cfg);
		free((char *)d.cfgpath);
		return 0;
	}

	log_init("tlspolicyd", foreground);
	log_set_verbose((int)d.cfg->verbose + d.verbose_flags);
	if (used == NULL)
		log_info("no config file at %s: running on embedded defaults",
			 cfg_default_path());
	signal(SIGPIPE, SIG_IGN);
	/* Jitter (refresh timing) must differ between daemons started
	 * together. */
	srandom((unsigned)(ev_mono_ms() ^ ((uint64_t)getpid() << 16)));
	raise_fd_limit();

	pw = find_user(d.cfg->user);
	d.base = ev_base_new();
	start_services(&d, pw, fresh);
	drop_privileges(&d, pw);

	for (i = 0; i < 3; i++) {
		sigs[i] = evsignal_new(d.base, signums[i], signal_cb, &d);
		if (sigs[i] == NULL || evsignal_add(sigs[i], NULL) != 0)
			log_fatalx("cannot install signal handlers");
	}
	if (!foreground) {
		daemonize();
		if (event_reinit(d.base) != 0)
			log_fatalx("event_reinit failed");
	}
	srv_start(d.srv);
	/* Threads do not survive fork(): the datagram receiver starts in the
	 * process that serves. */
	rpt_collect_start(d.rpt);
	warm_start(&d);
	/* A URI may hold a password: never in the log. */
	log_info("ready: socketmap %s; query %s; admin %s; metrics %s; "
		 "store %s; config %s; %zu static policies",
		 d.cfg->socketmap,
		 *d.cfg->query_socket ? d.cfg->query_socket : "(off)",
		 *d.cfg->admin_socket ? d.cfg->admin_socket : "(off)",
		 *d.cfg->metrics ? d.cfg->metrics : "(off)",
		 cfg_uri_redacted(d.cfg->cache_path, store_shown,
				  sizeof(store_shown)),
		 d.cfg->source, d.cfg->nstatics);
	/* Type=notify: the listeners accept now. */
	notify("READY=1");

	event_base_dispatch(d.base);

	for (i = 0; i < 3; i++)
		event_free(sigs[i]);
	teardown(&d);
	log_info("stopped");
	return 0;
}
