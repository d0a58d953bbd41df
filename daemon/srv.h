/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Listeners and client connections: socketmap endpoints (unix: and
 * loopback inet:), the JSON-lines query socket (read-only, for MTAs) and
 * the admin socket (daemon/adm.h), each kind with a connection pool of
 * its own. Framing, limits,
 * timeouts and ordering live here; answers come from the policy module.
 */
#ifndef DAEMON_SRV_H
#define DAEMON_SRV_H

#include <stddef.h>
#include <sys/types.h>

#include "util/hist.h"

struct event_base;
struct adm;
struct cfg;
struct pol;
struct cache;

struct srv;

/*
 * Bind every endpoint in CFG (as root, before the privilege drop): stale
 * unix sockets are removed, missing parent directories created, mode and
 * group applied. Returns NULL with a reason in ERR on failure. CFG, POL and
 * CACHE are borrowed.
 */
struct srv *srv_new(struct event_base *base, const struct cfg *cfg,
		    struct pol *pol, struct cache *cache, char *err,
		    size_t errsz);

/* Start accepting (after the privilege drop). The connection pools are
 * sized then from RLIMIT_NOFILE, the descriptors open and the reserve. */
void srv_start(struct srv *s);

/* Descriptors to keep free for outbound work (DNS, HTTPS, TLS-RPT), sized
 * by the caller from what runs (util/limits.h LIM_FD_*). */
void srv_set_fd_reserve(struct srv *s, long reserve);

/* The admin socket's commands (daemon/adm.h), borrowed; without them
 * administrative requests get an error. */
void srv_set_admin(struct srv *s, struct adm *adm);

/* Give the admin socket to UID:GID (before the privilege drop); 0, or -1
 * with errno. */
int srv_chown(struct srv *s, uid_t uid, gid_t gid);

/* New limits and map names from a reloaded config; open connections stay. */
void srv_reconfigure(struct srv *s, const struct cfg *cfg);

/*
 * Stop accepting, finish the replies already owed, then call DONE(ARG)
 * once every connection is closed (or after a few seconds at most).
 */
void srv_shutdown(struct srv *s, void (*done)(void *), void *arg);

/*
 * The handler of the query socket's "report" request (issue 5): FN(ARG,
 * JSON, LEN, ERR, ERRSZ) counts one TLS result and returns 0, or -1 with a
 * reason. Without a handler the request is answered with an error.
 */
typedef int srv_report_fn(void *arg, const char *json, size_t len, char *err,
			  size_t errsz);
void srv_set_report(struct srv *s, srv_report_fn *fn, void *arg);

/*
 * The metrics endpoint's handler ([server] metrics): FN(ARG, REQ, LEN,
 * OUTLEN) gets the request line and headers (LEN bytes, not terminated)
 * and returns a whole HTTP response, malloc'd (the caller frees), with
 * its length in *OUTLEN; NULL answers 503. The connection closes after.
 */
typedef char *srv_http_fn(void *arg, const char *req, size_t len,
			  size_t *outlen);
void srv_set_http(struct srv *s, srv_http_fn *fn, void *arg);

/* The listener kinds: socketmap, query, admin, metrics. */
#define SRV_LISTENER_KINDS 4
const char *srv_listener_name(unsigned kind);

/* What the listeners counted, for the metrics (daemon/met.h). */
struct srv_metrics {
	int configured[SRV_LISTENER_KINDS];
	long open[SRV_LISTENER_KINDS];
	unsigned long long accepted[SRV_LISTENER_KINDS];
	unsigned long long refused[SRV_LISTENER_KINDS];
	/* Answers by kind (enum pol_kind) and source (enum pol_source). */
	unsigned long long answers[5][6];
	unsigned long long framing_errors, request_timeouts;
	struct hist latency; /* lookups: request to answer */
};
void srv_get_metrics(const struct srv *s, struct srv_metrics *m);

/* Close everything and remove our unix sockets; srv_free(NULL) is a no-op. */
void srv_free(struct srv *s);

#endif /* DAEMON_SRV_H */
