/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Fuzz target for the JSON-lines codec. Parses the input as one request
 * line: on success the key must fit LIM_KEY_MAX, be NUL-terminated and be
 * present for the commands that need a domain and absent for those that
 * take none; a non-object JSON value is never a key; on failure there must be a
 * short error. The input is also formatted as the key of an answer and as an
 * error message, and the reply must be one line of valid JSON.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "resolver/pol.h"
#include "daemon/qry.h"
#include "util/limits.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_reply(char *s)
{
	json_error_t jerr;
	json_t *o;

	if (s == NULL)
		abort();
	if (strchr(s, '\n') != NULL || strlen(s) > LIM_QUERY_REPLY)
		abort();
	if ((o = json_loads(s, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL,
			    &jerr)) == NULL ||
	    !json_is_object(o))
		abort();
	json_decref(o);
	free(s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct qry_request req;
	const char *line = (const char *)data;
	char err[128];
	char *msg;
	struct pol_answer a;

	if (qry_parse(line, size, &req, err, sizeof(err)) == 0) {
		if (req.keylen > LIM_KEY_MAX || req.key[req.keylen] != '\0')
			abort();
		int need = req.cmd == QRY_QUERY || req.cmd == QRY_FLUSH ||
			   req.cmd == QRY_CACHE_SHOW ||
			   req.cmd == QRY_REPORT_SHOW;
		int may = need || req.cmd == QRY_REPORT_LIST ||
			  req.cmd == QRY_REPORT_SEND;

		if ((need && req.keylen == 0) || (!may && req.keylen > 0))
			abort();
		if ((req.cmd == QRY_REPORT_SHOW ||
		     req.cmd == QRY_REPORT_SEND) &&
		    req.day[0] == '\0')
			abort();
		if (memchr(req.day, '\0', sizeof(req.day)) == NULL)
			abort();
		if (size > LIM_QUERY_LINE)
			abort();
	} else {
		if (err[0] == '\0' || strlen(err) >= sizeof(err))
			abort();
		check_reply(qry_format_error(err));
	}

	if (size > LIM_KEY_MAX)
		return 0;
	memset(&a, 0, sizeof(a));
	a.kind = size > 0 ? (enum pol_kind)(data[0] % 5) : POL_NOTFOUND;
	a.data = "";
	a.source = POL_SRC_KEY;
	a.reason = "invalid domain name";
	a.mx = "*.example.com\n\nmx.example.net";
	a.expires = (time_t)size;
	check_reply(qry_format_answer(line, size, &a));
	/* The input as a C string, cut at its first NUL. */
	if ((msg = malloc(size + 1)) == NULL)
		abort();
	memcpy(msg, data, size);
	msg[size] = '\0';
	check_reply(qry_format_error(msg));
	free(msg);
	return 0;
}
