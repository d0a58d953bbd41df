/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The TLS-RPT collector on the daemon's libevent loop (issue 5, SPEC C1,
 * C2): three sources, one path into the report store.
 *
 *   - the libtlsrpt datagram socket ([tlsrpt] socket): emptied by a
 *     receiver thread as datagrams arrive (rpt_recv.h; before it starts,
 *     drained on the loop until EAGAIN, MSG_TRUNC to see oversize), each
 *     datagram parsed by rpt_dgram_parse() and counted on the loop;
 *   - a Postfix 3.7 mail log ([tlsrpt] postfix_log), followed with a poll
 *     timer, rotation-safe (inode and offset kept in the store across
 *     restarts), each finished session from rpt_log_feed() counted with
 *     the policy the daemon itself answered for that domain (the policy
 *     store: MTA-STS row -> sts, DANE verdict -> tlsa, else
 *     no-policy-found);
 *   - rpt_collect_feed(), for the query socket's "report" request.
 *
 * Writes are batched (rpt_store: a commit every 1000 datagrams or on the
 * next tick, RPT_COLLECT_TICK_MS). Malformed, oversized, truncated and
 * unknown-version datagrams are counted per day in the store ("malformed",
 * "toobig", "version", "invalid"; "repaired" for repaired UTF-8) and
 * logged at most once a minute per kind. The same tick has the report
 * sender (rpt_deliver) close finished days and send what is due (with a
 * shared store on the sender's own thread).
 *
 * Ownership: the collector copies what it needs from CFG; CACHE, DNS and
 * HTTPS are borrowed and must outlive it (DNS and HTTPS may be NULL).
 */
#ifndef TLSRPT_RPT_COLLECT_H
#define TLSRPT_RPT_COLLECT_H

#include <stddef.h>
#include <sys/types.h>

struct event_base;
struct cfg;
struct cache;
struct dns;
struct https;
struct rpt_store;
struct rpt_deliver;

/* The poll and flush tick; the maintenance work runs every
 * RPT_COLLECT_MAINT ticks (and on the first). */
#define RPT_COLLECT_TICK_MS 500
#define RPT_COLLECT_MAINT   20
/* Bytes of the mail log read per tick at most. */
#define RPT_COLLECT_LOG_READ (1024 * 1024)
/* Datagrams received per socket event before the loop runs others. */
#define RPT_COLLECT_BURST 4096

struct rpt_collect;

/*
 * Open the report store and, as root before the privilege drop, bind the
 * datagram socket (stale socket removed, parent directory created, mode
 * and group applied) and open the mail log. NULL with a reason in ERR.
 */
struct rpt_collect *rpt_collect_new(struct event_base *base,
				    const struct cfg *cfg, struct cache *cache,
				    struct dns *dns, struct https *https,
				    char *err, size_t errsz);

/*
 * What the daemon answers for a domain, for the sessions the Postfix 3.7
 * log follower counts: the TLS-RPT policy of a session is the one the
 * daemon applied, from the same decision (DESIGN 6.1 and issue 8), not a
 * second reading of the store. MODE and MX (the policy's '\n'-separated
 * patterns) are borrowed until the next call into the daemon.
 */
enum rpt_answered {
	RPT_ANSWERED_NONE = 0,
	RPT_ANSWERED_TLSA,
	RPT_ANSWERED_STS,
	RPT_ANSWERED_UNKNOWN /* the store could not say (it is down) */
};
struct rpt_answer {
	enum rpt_answered type;
	const char *mode, *mx; /* RPT_ANSWERED_STS only */
	long long max_age;
};
typedef void rpt_answer_cb(void *arg, const struct rpt_answer *a);
/*
 * Fill *OUT and return 0; or, when the answer needs a read of a shared
 * store, return 1, set *HANDLE and call DONE(DONE_ARG, answer) later (never
 * inside this call) unless CANCEL(ARG, *HANDLE) runs first. With DONE NULL
 * the answer is always given now.
 */
typedef int rpt_policy_fn(void *arg, const char *domain, struct rpt_answer *out,
			  rpt_answer_cb *done, void *done_arg, void **handle);
typedef void rpt_policy_cancel_fn(void *arg, void *handle);
/* Set how the follower learns what was answered (daemon/main.c). Without
 * it every logged session counts as "no policy found". A session whose
 * answer comes later is counted then; one whose store could not say is
 * asked for again once the store is online, for LIM_RPT_LOG_RETRY_S, then
 * counted under no policy (at most LIM_RPT_LOG_WAIT wait; past that, or
 * when the collector is freed, the answer is asked for now). */
void rpt_collect_set_policy(struct rpt_collect *c, rpt_policy_fn *fn,
			    rpt_policy_cancel_fn *cancel, void *arg);

/* Give the report store files to UID:GID (before the privilege drop).
 * 0, or -1 with errno. */
int rpt_collect_chown(struct rpt_collect *c, uid_t uid, gid_t gid);

/*
 * Count one datagram-shaped JSON object (LEN bytes) as if it had come in
 * on the socket. Returns 0, or -1 with the reason in ERR.
 */
int rpt_collect_feed(struct rpt_collect *c, const char *buf, size_t len,
		     char *err, size_t errsz);

/* The same, with the signature srv_set_report() takes. */
int rpt_collect_feed_cb(void *arg, const char *buf, size_t len, char *err,
			size_t errsz);

/*
 * Receive what waits on the datagram socket now (at most
 * RPT_COLLECT_BURST): for long work on the loop to call in its middle, so
 * the short kernel queue never overflows behind it. NULL does nothing.
 */
void rpt_collect_drain(struct rpt_collect *c);

/* Once the daemon runs in the background: start the thread that empties
 * the datagram socket as datagrams arrive (rpt_recv.h). Until then, or
 * should it fail to start (warned), the loop drains the socket itself.
 * NULL, or a collector without a socket, does nothing. */
void rpt_collect_start(struct rpt_collect *c);

/* Counters since start (for stats and tests). queue_full: wakes that
 * found net.unix.max_dgram_qlen datagrams waiting (senders may have been
 * refused); dropped: datagrams the receiver thread held but could not
 * hand over while stopping; log_errors: failed opens
 * or reads of the mail log. */
struct rpt_collect_stats {
	unsigned long long datagrams, counted, malformed, toobig, version,
	    invalid, repaired, log_lines, log_sessions, store_errors,
	    queue_full, dropped, log_errors;
};
void rpt_collect_get_stats(const struct rpt_collect *c,
			   struct rpt_collect_stats *st);

/*
 * The collector's report store and sender, borrowed for as long as the
 * collector lives: the daemon's admin socket lists, shows and sends
 * reports through them (daemon/adm.c), so tlspolicy(1) never runs a
 * second delivery engine on the same store.
 */
struct rpt_store *rpt_collect_store(struct rpt_collect *c);
struct rpt_deliver *rpt_collect_deliver(struct rpt_collect *c);

/* Commit, close the socket (and remove it), free. NULL does nothing. */
void rpt_collect_free(struct rpt_collect *c);

#endif /* TLSRPT_RPT_COLLECT_H */
