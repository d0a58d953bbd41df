/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Configuration: one declarative table of options (STYLE rule 12), read
 * from an INI file with inih. Every option has a default, so an empty file
 * runs. The [policy] section is free-form: "domain = answer".
 *
 * Ownership: cfg_load() returns a struct cfg the caller frees with
 * cfg_free(); every string in it belongs to it.
 */
#ifndef UTIL_CFG_H
#define UTIL_CFG_H

#include <stddef.h>
#include <stdio.h>

enum cfg_sts_testing { CFG_TESTING_REPORT = 0, CFG_TESTING_ENFORCE = 1 };
enum cfg_dane_mode { CFG_DANE_STRICT = 0, CFG_DANE_OPPORTUNISTIC = 1 };

/* One [policy] line: a normalised domain and its answer. */
/* Longest [server] protocols value (it is appended to policy answers). */
#define CFG_PROTOCOLS_MAX 100

struct cfg_static {
	char *domain; /* A-label, lowercase, no trailing dot */
	char *answer; /* as written: "dane-only", "secure match=…", "none" */
	int exempt;   /* "none": never apply a policy (NOTFOUND) */
};

struct cfg {
	/* [server] */
	char *socketmap; /* space-separated endpoints unix:PATH inet:IP:PORT */
	unsigned socketmap_mode;
	char *socketmap_group; /* empty: leave the group alone */
	char *socketmap_names; /* space-separated map names we answer */
	char *tlsrpt_names; /* names whose answers carry TLS-RPT attributes */
	char *query_socket; /* unix:PATH, or empty to disable */
	unsigned query_socket_mode;
	char *query_socket_group;
	long query_max_connections; /* a pool apart from the socketmap's */
	long query_max_per_peer;    /* per SO_PEERCRED uid; 0: none */
	char *metrics;		    /* inet:IP:PORT, unix:PATH, or empty */
	char *admin_socket;	    /* unix:PATH, or empty to disable */
	char *user;		    /* empty: do not drop privileges */
	long verbose;		    /* 0..2, -v adds */
	long lookup_timeout;
	long max_connections;
	long idle_timeout;
	long write_timeout;
	long request_timeout;	/* whole-request deadline, seconds */
	long max_queued_output; /* unread output, all connections */
	char *protocols; /* Postfix "protocols=" value for authenticated TLS
			    answers; empty: none */
	/* [dns] */
	char *resolvers;
	char *trust_anchor;
	long dns_timeout;
	char *selftest_name; /* SOA that must validate at start-up; empty:
				the trust anchor's owner (dns_selftest_name) */
	char *root_hints;    /* empty: the built-in root servers */
	/* [sts] */
	int sts_enabled; /* live discovery and fetch (issue 4) */
	char *ca_file;
	long fetch_timeout;
	long max_policy_size;
	int sts_testing; /* enum cfg_sts_testing */
	int smarthost_policy;
	/* [dane] */
	int dane_enabled; /* live DNSSEC resolution (issue 3) */
	int dane_mode;	  /* enum cfg_dane_mode */
	/* [cache] */
	char *cache_path;
	long memory_entries;
	long refresh;
	/* [tlsrpt] */
	int tlsrpt_enabled;
	char *tlsrpt_socket;
	unsigned tlsrpt_socket_mode;
	char *tlsrpt_socket_group; /* empty: leave the group alone */
	char *tlsrpt_store;	   /* empty: tlsrpt.db beside [cache] path */
	char *tlsrpt_spool; /* PostgreSQL store's spool; empty: as store */
	long tlsrpt_grace;  /* seconds after 00:00 UTC a day closes */
	long tlsrpt_delay;  /* most random delay before sending */
	char *postfix_log;
	char *organization;
	char *contact;
	char *submitter;
	char *from;
	char *tlsrpt_smtp; /* "IP:PORT" of the MTA for report mail */
	char *sendmail;	   /* set: used instead of SMTP */
	/* [policy] */
	struct cfg_static *statics;
	size_t nstatics;
	/* Where it came from: the path, or "(embedded defaults)". */
	char *source;
};

/*
 * Read PATH (NULL: embedded defaults only). On error returns NULL and writes
 * "FILE:LINE: [section] key: reason" into ERR (size ERRSZ).
 */
struct cfg *cfg_load(const char *path, char *err, size_t errsz);

/*
 * Parse an in-memory config (pure, for tests and the fuzz target). NAME is
 * used in error messages.
 */
struct cfg *cfg_parse(const char *name, const char *buf, size_t len, char *err,
		      size_t errsz);

/* 1 when S names a PostgreSQL database (a libpq URI, "postgresql://…" or
 * "postgres://…") rather than a SQLite file; 0 otherwise. */
int cfg_is_pg_uri(const char *s);
/* S for a log line: a libpq URI without its password (in user:password@
 * or a password= parameter, each shown as ***); anything else as it is.
 * Returns OUT (at most OUTSZ - 1 characters). */
const char *cfg_uri_redacted(const char *s, char *out, size_t outsz);
/* The daemon's state directory: the directory of CACHE_PATH ([cache]
 * path), or the default one when the store is in PostgreSQL. In BUF
 * (BUFSZ bytes), or "." when it does not fit. */
const char *cfg_state_dir(const char *cache_path, char *buf, size_t bufsz);

/* Release everything; cfg_free(NULL) does nothing. */
void cfg_free(struct cfg *cfg);

/* Write the effective settings as a valid config file (tlspolicyd -n). */
void cfg_print(const struct cfg *cfg, FILE *fp);

/*
 * Walk the option table: calls FN for every option with its section, name,
 * default value as text and help text. For docs and the test that checks
 * contrib/tlspolicyd.conf and the man page list every option.
 */
void cfg_foreach_option(void (*fn)(const char *section, const char *name,
				   const char *defval, const char *help,
				   void *arg),
			void *arg);

/* The default config file path (SYSCONFDIR/tlspolicyd/tlspolicyd.conf). */
const char *cfg_default_path(void);

/* Look up a static policy; NULL when DOMAIN (normalised) has none. */
const struct cfg_static *cfg_static_find(const struct cfg *cfg,
					 const char *domain);

/*
 * Is NAME one of the space-separated words in LIST? (Used for map names.)
 */
int cfg_word_in(const char *list, const char *name, size_t namelen);

/*
 * Check a [policy] answer: a Postfix TLS policy the daemon may hand out.
 * The first word must be one of none, may, encrypt, dane, dane-only,
 * fingerprint, verify, secure; every further word is attribute=value (as
 * in Postfix's smtp_tls_policy_maps); printable ASCII only (no control
 * bytes, no newline), at most LIM_ANSWER_MAX bytes. Returns 1 when
 * acceptable, else 0 with a reason in ERR (which may be NULL).
 */
int cfg_static_answer_valid(const char *answer, char *err, size_t errsz);

#endif /* UTIL_CFG_H */
