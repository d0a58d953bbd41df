/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The Prometheus metrics endpoint ([server] metrics, issue 12): GET
 * /metrics answered in the text exposition format 0.0.4 from the
 * counters the other modules keep (listeners, policy engine, scheduler,
 * store, TLS-RPT). Names start with tlspolicyd_, counters end in _total,
 * and no label carries a domain. The listener itself (limits, deadline,
 * one request per connection) is daemon/srv.c's.
 */
#ifndef DAEMON_MET_H
#define DAEMON_MET_H

#include <stddef.h>

struct srv;
struct pol;
struct cache;
struct rpt_collect;

struct met;

/* Over SRV, POL and CACHE (borrowed for the life of the met). */
struct met *met_new(struct srv *srv, struct pol *pol, struct cache *cache);
/* Add the TLS-RPT collector's counters (borrowed; NULL: none). */
void met_set_tlsrpt(struct met *m, struct rpt_collect *rpt);
void met_free(struct met *m);

/* What an HTTP request asks for (met_parse_request). */
enum met_req {
	MET_REQ_METRICS = 0, /* GET /metrics */
	MET_REQ_NOTFOUND,    /* GET of another path: 404 */
	MET_REQ_METHOD,	     /* another method: 405 */
	MET_REQ_BAD,	     /* not an HTTP/1.x request line: 400 */
};

/* Classify the request line at the start of REQ (LEN bytes; pure). */
enum met_req met_parse_request(const char *req, size_t len);

/*
 * The metrics text, malloc'd and NUL-terminated (the caller frees), with
 * its length in *LEN; NULL when out of memory.
 */
char *met_render(struct met *m, size_t *len);

/* srv_http_fn for srv_set_http(): ARG is a struct met. */
char *met_http(void *arg, const char *req, size_t len, size_t *outlen);

#endif /* DAEMON_MET_H */
