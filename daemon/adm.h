/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The admin socket's commands (DESIGN 6.11): what changes or lists the
 * daemon's state is answered here, on [server] admin_socket only, never on
 * the query socket that MTAs may reach. The transport (framing, limits,
 * ordering) is the server's (daemon/srv.c); requests are the JSON lines of
 * daemon/qry.h, replies one JSON object each (doc/PROTOCOL.md §4).
 *
 *   flush        forget a domain in the store and in memory
 *   cache_list   every stored entry
 *   cache_show   one stored entry
 *   report_list  TLS-RPT days, domains, counts, delivery state
 *   report_show  the RFC 8460 report of one day and domain
 *   report_send  start the daemon's own sender on a day now
 *
 * Who may connect is checked twice: the socket is mode 0600 and owned by
 * [server] user, and each connection's SO_PEERCRED uid must be 0 or the
 * daemon's own (adm_peer_allowed()).
 *
 * Ownership: CFG, CACHE, POL and the TLS-RPT store and sender are
 * borrowed; they must outlive the adm.
 */
#ifndef DAEMON_ADM_H
#define DAEMON_ADM_H

#include <stddef.h>
#include <sys/types.h>

struct cfg;
struct cache;
struct pol;
struct rpt_store;
struct rpt_deliver;
struct qry_request;

struct adm;

/* NULL on allocation failure. */
struct adm *adm_new(const struct cfg *cfg, struct cache *cache,
		    struct pol *pol);

/* The TLS-RPT store and sender ([tlsrpt] enabled = yes); without them the
 * report commands answer that TLS-RPT is disabled. */
void adm_set_tlsrpt(struct adm *a, struct rpt_store *store,
		    struct rpt_deliver *dlv);

/* A reloaded config (report identity). */
void adm_reconfigure(struct adm *a, const struct cfg *cfg);

/*
 * Answer one administrative request (qry_cmd_admin(rq->cmd) is true): a
 * JSON object as text without a newline, malloc'd (caller frees), or NULL
 * on allocation failure (*JOB NULL). A command that waits for a shared
 * store (flush, pin, unpin, cache_show, cache_list on PostgreSQL) does
 * not hold the loop: NULL with *JOB set, and DONE(REPLY, ARG) later from
 * the loop, with REPLY as above (malloc'd, the callee's). A client that
 * goes away first calls adm_cancel(*JOB): DONE is never called.
 */
struct adm_job;
typedef void adm_done_fn(char *reply, void *arg);
char *adm_answer(struct adm *a, const struct qry_request *rq, adm_done_fn *done,
		 void *arg, struct adm_job **job);
void adm_cancel(struct adm_job *job);

/*
 * May the peer of the connected unix socket FD use the admin socket? Root
 * and the uid the daemon runs as may; 1 yes, 0 no (with the peer's uid in
 * *UID, or -1 when it could not be read).
 */
int adm_peer_allowed(int fd, long *uid);

/* Flushes answered since start (for stats). */
unsigned long long adm_flushes(const struct adm *a);

/* The report sender's state for "stats" (a new JSON object: "sending",
 * the reports being worked on; "store_calls_waiting", its store calls
 * not yet done; "sender", whether this host sends), or NULL when TLS-RPT
 * is off. */
struct json_t *adm_tlsrpt_stats(const struct adm *a);

/* adm_free(NULL) does nothing. */
void adm_free(struct adm *a);

#endif /* DAEMON_ADM_H */
