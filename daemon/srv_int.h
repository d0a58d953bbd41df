/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Inside the listeners and connections module (daemon/srv.c and
 * daemon/srv_accept.c): the state both files work on. Nothing else
 * includes this.
 */
#ifndef DAEMON_SRV_INT_H
#define DAEMON_SRV_INT_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <event2/event.h>

#include "daemon/srv.h"
#include "resolver/pol.h"
#include "util/hist.h"
#include "util/limits.h"

/* The kinds of listener; each has a connection pool of its own, so a
 * flood on the query socket cannot lock Postfix out (issue 10 item 6). */
enum srv_proto { PROTO_SMAP, PROTO_QRY, PROTO_ADM, PROTO_MET, PROTO_N };
extern const char *const srv_proto_names[PROTO_N];
_Static_assert(PROTO_N == SRV_LISTENER_KINDS, "srv.h counts the kinds");

/* The largest input frame of each protocol, framing included. */
#define SMAP_FRAME_MAX (LIM_NETSTRING_DIGITS + 1 + LIM_NETSTRING_MAX + 1)
#define QRY_FRAME_MAX  (LIM_QUERY_LINE + 1)
#define MET_FRAME_MAX  LIM_HTTP_REQUEST
#define INBUF_INITIAL  512
#define OUTBUF_INITIAL 512
/* Connections accepted per listener callback, so one busy listener cannot
 * starve the rest of the loop. */
#define ACCEPT_BATCH 64
/* Warnings about client misbehaviour per second before we stay quiet. */
#define WARN_PER_SECOND 20
/* How long shutdown waits for replies still owed. */
#define SHUTDOWN_GRACE_S 5
/* Output buffer of one connection: never larger than the cap plus one
 * reply of the largest kind, since nothing is added once the cap is
 * passed (issue 10 item 7); given back once drained if it grew past
 * OUTBUF_KEEP. */
#define OUTBUF_HARD (LIM_CONN_OUTPUT + LIM_REPLY_MAX + 64)
/* The admin socket's listings of a large store are single replies of
 * many megabytes (tlspolicy reads up to 256 MiB). */
#define OUTBUF_HARD_ADMIN (256 * 1024 * 1024)
#define OUTBUF_KEEP	  16384
/* After accept() failed for want of descriptors: wait this long before
 * accepting again, instead of spinning on a listener that stays ready. */
#define ACCEPT_BACKOFF_MS 250
/* Descriptor warnings: at most one per this many seconds. */
#define FD_WARN_INTERVAL_S 60
/* Slots of the per-user count of query connections (a power of two);
 * a host has far fewer users. Should it fill up, a new user's connections
 * are not counted (never refused for that). */
#define PEER_SLOTS 4096
/* How long after running out of descriptors a "nothing found" answer is
 * not trusted (the policy module remembers a failed TXT lookup a minute). */
#define FD_TROUBLE_S 60

struct srv;

struct listener {
	struct srv *srv;
	enum srv_proto proto;
	int fd;
	struct event *ev;
	char *path; /* unix socket to remove at exit, or NULL */
	char *name; /* "unix:/path" or "inet:127.0.0.1:8461", for logs */
};

struct conn {
	struct srv *srv;
	enum srv_proto proto;
	int fd;
	unsigned long id;
	struct event *rev, *wev;
	struct event *dl;  /* the whole-request deadline */
	int partial;	   /* the input ends inside a request */
	struct peer *peer; /* query socket: its user's count, or NULL */
	char *in;
	size_t inlen, incap;
	char *out;
	size_t outoff, outlen, outcap;
	struct slot *head, **tailp; /* replies owed, in request order */
	struct slot *spare;	    /* for the next pending lookup */
	unsigned nslots;
	int reading; /* read event armed */
	int closing; /* close once the output is written */
	struct conn *prev, *next;
};

/*
 * A reply owed but not yet written: its lookup is pending, or it is
 * answered but waits behind an earlier pending one, because replies go out
 * in request order (SPEC A1.5). Most requests never need one: an answer
 * known at once is written straight to the output.
 */
struct slot {
	struct slot *next;
	struct conn *c;
	struct pol_req *req; /* while the lookup is pending */
	struct adm_job *adm; /* while an admin command waits for the store */
	int done;
	char *reply; /* the framed reply once done */
	size_t len;
	char *key; /* JSON lines: the key, for the reply */
	size_t keylen;
	int tlsrpt;  /* socketmap: answer with TLS-RPT attributes */
	uint64_t t0; /* when the lookup began (ev_mono_ms) */
};

/* Query connections open per client uid (SO_PEERCRED), for
 * [server] query_max_per_peer. A slot with n == 0 is free for reuse. */
struct peer {
	long uid; /* -1: never used */
	long n;
};

struct srv_stats {
	unsigned long long accepted, rejected, requests, framing_errors;
	unsigned long long answers[POL_PERM + 1];
	unsigned long long timeouts, request_timeouts, eof_in_request;
	unsigned long long refused[PROTO_N], admin_denied, accept_paused;
	unsigned long long refused_peer;
	unsigned long long local_temp;
	unsigned long long accepted_by[PROTO_N];
	unsigned long long by_source[POL_PERM + 1][POL_SRC_ERROR + 1];
	struct hist latency; /* lookups, request to answer */
};

struct srv {
	struct event_base *base;
	const struct cfg *cfg;
	struct pol *pol;
	struct cache *cache;
	struct listener *ls;
	size_t nls;
	struct conn *conns;
	long nconns;
	long nconns_by[PROTO_N];
	/* Connections each pool may hold: the configured limits, cut down
	 * to what the descriptor limit leaves after the reserve. */
	long pool_max[PROTO_N];
	long fd_reserve;
	long fd_base; /* descriptors open at srv_start(), clients apart */
	/* Unread output queued over all connections (bytes). */
	size_t outq;
	/* Accepting paused after EMFILE/ENFILE. */
	struct event *backoff;
	int paused;
	time_t fd_warned;
	unsigned long long fd_suppressed;
	time_t fd_trouble_at; /* last time we were out of descriptors */
	/* The admin commands, or NULL. */
	struct adm *adm;
	/* Query connections per uid (allocated with the query listener). */
	struct peer *peers;
	unsigned long next_id;
	struct srv_stats st;
	/* Rate limit for warnings caused by clients. */
	time_t warn_sec;
	unsigned warn_count, warn_dropped;
	/* Shutdown. */
	int stopping;
	struct event *grace;
	void (*done)(void *);
	void *done_arg;
	/* Reply scratch space for one socketmap answer. */
	char reply[LIM_REPLY_MAX + 1];
	/* The "report" request's handler (TLS-RPT), or NULL. */
	srv_report_fn *report_fn;
	void *report_arg;
	/* The metrics endpoint's handler, or NULL. */
	srv_http_fn *http_fn;
	void *http_arg;
};

/* Shared by srv.c (connections, requests, the server) and srv_accept.c
 * (listeners, accepting, descriptor limits). */
int srv_warn_allowed(struct srv *s);
void srv_conn_arm_read(struct conn *c, int on);
void srv_conn_close(struct conn *c);
void srv_conn_read_cb(evutil_socket_t fd, short what, void *arg);
void srv_conn_write_cb(evutil_socket_t fd, short what, void *arg);
void srv_conn_deadline_cb(evutil_socket_t fd, short what, void *arg);
void srv_listeners_arm(struct srv *s, int on);
int srv_add_listener(struct srv *s, enum srv_proto proto, const char *spec,
		     size_t len, unsigned mode, const char *group, char *err,
		     size_t errsz);
void srv_accept_cb(evutil_socket_t lfd, short what, void *arg);
void srv_pools_size(struct srv *s, int say);
int srv_has_listener(const struct srv *s, enum srv_proto proto);

#endif /* DAEMON_SRV_INT_H */
