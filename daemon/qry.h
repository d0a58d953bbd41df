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
 *   {"cmd": "stats"}                    counters
 *   {"cmd": "ping"}                     liveness
 *   {"cmd": "report", "result": {…}}    one TLS result, shaped like a
 *                                       libtlsrpt datagram (SPEC C1.3)
 *
 * Administrative requests, answered on the admin socket only (DESIGN
 * 6.11; daemon/adm.h):
 *   {"cmd": "flush", "domain": "…"}     forget what is stored for a domain
 *   {"cmd": "cache_list"}               every stored entry
 *   {"cmd": "cache_show", "domain": "…"}  one stored entry
 *   {"cmd": "report_list" [, "day": "YYYY-MM-DD"] [, "domain": "…"]}
 *   {"cmd": "report_show", "day": "…", "domain": "…"}
 *   {"cmd": "report_send", "day": "…" [, "domain": "…"]}
 *
 * A line that is JSON but not an object ([1,2], null, "x", 1) is an error,
 * never a next hop.
 */
#ifndef DAEMON_QRY_H
#define DAEMON_QRY_H

#include <stddef.h>

#include "util/limits.h"

struct pol_answer;

enum qry_cmd {
	QRY_QUERY = 0,
	QRY_STATS,
	QRY_PING,
	QRY_REPORT,
	/* Administrative (qry_cmd_admin() is true from here on). */
	QRY_FLUSH,
	QRY_CACHE_LIST,
	QRY_CACHE_SHOW,
	QRY_REPORT_LIST,
	QRY_REPORT_SHOW,
	QRY_REPORT_SEND,
};

struct qry_request {
	enum qry_cmd cmd;
	const char *name;	   /* the cmd as written, for messages */
	char key[LIM_KEY_MAX + 1]; /* the next hop as given (QUERY, FLUSH,
				      CACHE_SHOW, REPORT_*); "" if none */
	size_t keylen;
	char day[16]; /* REPORT_*: "YYYY-MM-DD" as given, or "" */
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

/* Is CMD an administrative command (admin socket only)? */
int qry_cmd_admin(enum qry_cmd cmd);

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
