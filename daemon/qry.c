/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The JSON-lines query protocol (doc/PROTOCOL.md): parse one request line
 * into a qry_request, and format answers and errors as one-line JSON
 * objects. A request is either a bare next hop or a JSON object; replies
 * are always JSON. Pure codec over buffers, the server does the I/O.
 *
 * Every string put into a reply passes through jstr(), which replaces
 * bytes that are not UTF-8 with U+FFFD: jansson refuses invalid UTF-8,
 * and a key from the network may hold anything.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "resolver/pol.h"
#include "daemon/qry.h"
#include "util/limits.h"

static const struct {
	const char *name;
	enum qry_cmd cmd;
} qry_cmds[] = {
    /* clang-format off */
    {"query", QRY_QUERY},
    {"stats", QRY_STATS},
    {"ping", QRY_PING},
    {"report", QRY_REPORT},
    {"flush", QRY_FLUSH},
    {"cache_list", QRY_CACHE_LIST},
    {"cache_show", QRY_CACHE_SHOW},
    {"report_list", QRY_REPORT_LIST},
    {"report_show", QRY_REPORT_SHOW},
    {"report_send", QRY_REPORT_SEND},
    /* clang-format on */
};

static int
fail(char *err, size_t errsz, const char *msg)
{
	if (errsz > 0)
		snprintf(err, errsz, "%s", msg);
	return -1;
}

static int
is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* Store the next hop of a query or flush; LIM_KEY_MAX bounds it. */
static int
set_key(struct qry_request *req, const char *s, size_t n, char *err,
	size_t errsz)
{
	if (n == 0)
		return fail(err, errsz, "empty domain");
	if (n > LIM_KEY_MAX)
		return fail(err, errsz, "domain too long");
	memcpy(req->key, s, n);
	req->key[n] = '\0';
	req->keylen = n;
	return 0;
}

/* An optional string member NAME of ROOT: 1 present, 0 absent, -1 not a
 * string (ERR set). */
static int
opt_string(json_t *root, const char *name, const char **str, size_t *len,
	   char *err, size_t errsz)
{
	json_t *v = json_object_get(root, name);

	if (v == NULL)
		return 0;
	if (!json_is_string(v)) {
		snprintf(err, errsz, "%s is not a string", name);
		return -1;
	}
	*str = json_string_value(v);
	*len = json_string_length(v);
	return 1;
}

/* The members each command needs: domain, day. */
static int
parse_args(json_t *root, struct qry_request *req, char *err, size_t errsz)
{
	int need_domain = req->cmd == QRY_QUERY || req->cmd == QRY_FLUSH ||
			  req->cmd == QRY_CACHE_SHOW ||
			  req->cmd == QRY_REPORT_SHOW;
	int need_day =
	    req->cmd == QRY_REPORT_SHOW || req->cmd == QRY_REPORT_SEND;
	int may_domain = need_domain || req->cmd == QRY_REPORT_LIST ||
			 req->cmd == QRY_REPORT_SEND;
	const char *str;
	size_t len;
	int r;

	if (may_domain) {
		r = opt_string(root, "domain", &str, &len, err, errsz);
		if (r < 0)
			return -1;
		if (r == 0 && need_domain)
			return fail(err, errsz, "missing domain");
		if (r > 0 && set_key(req, str, len, err, errsz) != 0)
			return -1;
	}
	if (req->cmd == QRY_REPORT_LIST || need_day) {
		r = opt_string(root, "day", &str, &len, err, errsz);
		if (r < 0)
			return -1;
		if (r == 0 && need_day)
			return fail(err, errsz, "missing day");
		if (r > 0 && (len == 0 || len >= sizeof(req->day)))
			return fail(err, errsz, "day: want YYYY-MM-DD");
		if (r > 0) {
			memcpy(req->day, str, len);
			req->day[len] = '\0';
		}
	}
	return 0;
}

static int
parse_json(const char *s, size_t n, struct qry_request *req, char *err,
	   size_t errsz)
{
	json_error_t jerr;
	json_t *root, *v;
	const char *str;
	size_t i, len;
	int rc = -1;

	/*
	 * jansson's own messages quote the input, so they are not passed
	 * on; the reply carries fixed text only.
	 */
	root =
	    json_loadb(s, n, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (root == NULL)
		return fail(err, errsz, "invalid JSON");
	if (!json_is_object(root)) {
		fail(err, errsz, "request is not a JSON object");
		goto out;
	}
	req->cmd = QRY_QUERY;
	if ((v = json_object_get(root, "cmd")) != NULL) {
		if (!json_is_string(v)) {
			fail(err, errsz, "cmd is not a string");
			goto out;
		}
		str = json_string_value(v);
		len = json_string_length(v);
		for (i = 0; i < sizeof(qry_cmds) / sizeof(qry_cmds[0]); i++)
			if (strlen(qry_cmds[i].name) == len &&
			    memcmp(qry_cmds[i].name, str, len) == 0)
				break;
		if (i == sizeof(qry_cmds) / sizeof(qry_cmds[0])) {
			fail(err, errsz, "unknown cmd");
			goto out;
		}
		req->cmd = qry_cmds[i].cmd;
		req->name = qry_cmds[i].name;
	}
	if (parse_args(root, req, err, errsz) != 0)
		goto out;
	if (req->cmd == QRY_REPORT) {
		v = json_object_get(root, "result");
		if (!json_is_object(v)) {
			fail(err, errsz, "result is not a JSON object");
			goto out;
		}
		len = json_dumpb(v, req->report, sizeof(req->report) - 1,
				 JSON_COMPACT);
		if (len == 0 || len >= sizeof(req->report)) {
			fail(err, errsz, "result too long");
			goto out;
		}
		req->report[len] = '\0';
		req->reportlen = len;
	}
	rc = 0;
out:
	json_decref(root);
	return rc;
}

/*
 * Does the line look like a JSON value other than an object? Such a line
 * is a mistake of the client's, never a next hop: "null" must not be
 * looked up in DNS (issue 10 item 20). A next hop such as
 * "[mx.example.com]:25" or "1.2.3.4" is not valid JSON, so it stays a key.
 */
static int
is_json_value(const char *s, size_t n)
{
	json_error_t jerr;
	json_t *v = json_loadb(s, n, JSON_DECODE_ANY, &jerr);

	if (v == NULL)
		return 0;
	json_decref(v);
	return 1;
}

int
qry_cmd_admin(enum qry_cmd cmd)
{
	return cmd >= QRY_FLUSH;
}

int
qry_parse(const char *line, size_t len, struct qry_request *req, char *err,
	  size_t errsz)
{
	size_t b = 0, e;

	req->cmd = QRY_QUERY;
	req->name = "query";
	req->key[0] = '\0';
	req->keylen = 0;
	req->day[0] = '\0';
	if (errsz > 0)
		err[0] = '\0';
	if (len > LIM_QUERY_LINE)
		return fail(err, errsz, "request line too long");
	e = len;
	if (e > 0 && line[e - 1] == '\r')
		e--;
	while (b < e && is_blank(line[b]))
		b++;
	while (e > b && is_blank(line[e - 1]))
		e--;
	if (b == e)
		return fail(err, errsz, "empty request");
	if (line[b] == '{')
		return parse_json(line + b, e - b, req, err, errsz);
	if (is_json_value(line + b, e - b))
		return fail(err, errsz, "request is not a JSON object");
	/* A bare next hop, taken as it stands (dom_normalize judges it). */
	if (e - b > LIM_KEY_MAX)
		return fail(err, errsz, "key too long");
	return set_key(req, line + b, e - b, err, errsz);
}

/* Length of the valid UTF-8 sequence at S (N > 0 bytes left), or 0. */
static size_t
utf8_seq(const unsigned char *s, size_t n)
{
	size_t k, len;
	uint32_t cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (k = 1; k < len; k++) {
		if ((s[k] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[k] & 0x3f);
	}
	/* RFC 3629 §3: no overlongs, no surrogates, nothing past U+10FFFF. */
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return len;
}

/*
 * A JSON string from S (N bytes), each byte that does not start a valid
 * UTF-8 sequence replaced by U+FFFD. NULL on allocation failure.
 */
static json_t *
jstr(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i, k, o;
	char *buf;
	json_t *j;

	for (i = 0; i < n; i += k)
		if ((k = utf8_seq(u + i, n - i)) == 0)
			break;
	if (i == n)
		return json_stringn(s, n);
	if (n > (SIZE_MAX - 1) / 3 || (buf = malloc(n * 3 + 1)) == NULL)
		return NULL;
	memcpy(buf, s, i);
	for (o = i; i < n; i += k) {
		if ((k = utf8_seq(u + i, n - i)) == 0) {
			memcpy(buf + o, "\xef\xbf\xbd", 3);
			o += 3;
			k = 1;
		} else {
			memcpy(buf + o, s + i, k);
			o += k;
		}
	}
	j = json_stringn(buf, o);
	free(buf);
	return j;
}

/* A JSON string for a C string, or null when S is NULL. */
static json_t *
jstr_or_null(const char *s)
{
	return s != NULL ? jstr(s, strlen(s)) : json_null();
}

/* The '\n'-separated STS patterns as an array, empty pieces dropped. */
static json_t *
mx_array(const char *mx)
{
	json_t *a, *v;
	const char *p, *nl;

	if (mx == NULL)
		return json_null();
	if ((a = json_array()) == NULL)
		return NULL;
	for (p = mx; *p != '\0'; p = nl + (*nl != '\0')) {
		if ((nl = strchr(p, '\n')) == NULL)
			nl = p + strlen(p);
		if (nl == p)
			continue;
		if ((v = jstr(p, (size_t)(nl - p))) == NULL ||
		    json_array_append_new(a, v) != 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

/* Add V to O under NAME; V is consumed. Returns -1 when V is NULL. */
static int
put(json_t *o, const char *name, json_t *v)
{
	if (v == NULL)
		return -1;
	return json_object_set_new(o, name, v);
}

char *
qry_format_answer(const char *key, size_t keylen, const struct pol_answer *ans)
{
	json_t *o;
	char *text, *reply = NULL;
	size_t n;
	int bad = 0;

	/* SPEC A1.3: the socketmap reply text, at most LIM_REPLY_MAX. */
	if ((text = malloc(LIM_REPLY_MAX + 1)) == NULL)
		return NULL;
	n = pol_format(ans, text, LIM_REPLY_MAX + 1);
	if (n > LIM_REPLY_MAX)
		n = LIM_REPLY_MAX;
	if ((o = json_object()) == NULL) {
		free(text);
		return NULL;
	}
	bad |= put(o, "key", jstr(key, keylen));
	bad |= put(o, "answer", jstr(text, n));
	free(text);
	bad |= put(o, "result", jstr_or_null(pol_kind_name(ans->kind)));
	bad |= put(o, "policy",
		   ans->kind == POL_OK ? jstr_or_null(ans->data) : json_null());
	bad |= put(o, "source", jstr_or_null(pol_source_name(ans->source)));
	bad |= put(o, "domain", jstr_or_null(ans->domain));
	bad |= put(o, "reason", jstr_or_null(ans->reason));
	bad |= put(o, "rule", json_string(pol_rule_name(ans->rule)));
	bad |= put(o, "mode", jstr_or_null(ans->mode));
	bad |= put(o, "mx", mx_array(ans->mx));
	bad |= put(o, "expires",
		   ans->expires != 0 ? json_integer((json_int_t)ans->expires)
				     : json_null());
	if (!bad)
		reply = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	/* The reply line has a limit of its own (LIM_QUERY_REPLY). */
	if (reply != NULL && strlen(reply) > LIM_QUERY_REPLY) {
		free(reply);
		reply = qry_format_error("reply too long");
	}
	return reply;
}

char *
qry_format_error(const char *msg)
{
	json_t *o;
	char *reply = NULL;

	if ((o = json_object()) == NULL)
		return NULL;
	if (put(o, "error", jstr_or_null(msg)) == 0)
		reply = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return reply;
}
