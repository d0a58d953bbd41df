/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The JSON-lines query protocol (doc/PROTOCOL.md) for other MTAs and the
 * tlspolicy tool: one request per line, one JSON object per reply line.
 * Pure codec; the server does the I/O.
 *
 * Requests (a line of at most LIM_QUERY_LINE bytes, LF or CRLF):
 *   example.com                         a bare next hop: query it
 *   {"domain": "example.com"}           the same
 *   {"cmd": "query", "domain": "…"}     the same
 *   {"cmd": "flush", "domain": "…"}     forget what is stored for a domain
 *   {"cmd": "stats"}                    counters
 *   {"cmd": "ping"}                     liveness
 *   {"cmd": "report", "result": {…}}    one TLS result, shaped like a
 *                                       libtlsrpt datagram (SPEC C1.3)
 */
#ifndef DAEMON_QRY_H
#define DAEMON_QRY_H

#include <stddef.h>

#include "util/limits.h"

struct pol_answer;

enum qry_cmd { QRY_QUERY = 0, QRY_FLUSH, QRY_STATS, QRY_PING, QRY_REPORT };

struct qry_request {
	enum qry_cmd cmd;
	char key[LIM_KEY_MAX + 1]; /* the next hop as given (QUERY, FLUSH) */
	size_t keylen;
	char report[LIM_QUERY_LINE + 1]; /* REPORT: "result" as compact
					    JSON */
	size_t reportlen;
};

/*
 * Parse one request line (without its LF; a trailing CR is ignored).
 * Returns 0, or -1 with a reason in ERR (size ERRSZ).
 */
int qry_parse(const char *line, size_t len, struct qry_request *req, char *err,
	      size_t errsz);

/*
 * The reply to a query: a JSON object on one line, no trailing newline,
 * malloc'd (caller frees), or NULL on allocation failure. Fields:
 * "key", "answer" (the socketmap reply text), "result" (OK/NOTFOUND/…),
 * "policy" (the data after OK, or null), "source", "domain", "reason",
 * "mode", "mx" (array), "expires" (Unix time or null).
 */
char *qry_format_answer(const char *key, size_t keylen,
			const struct pol_answer *ans);

/* {"error": "MSG"} on one line, malloc'd. */
char *qry_format_error(const char *msg);

#endif /* DAEMON_QRY_H */
