/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Unit tests for the JSON-lines codec: every request form and error, and
 * answers formatted then read back with jansson to check each field.
 */
#include <stdlib.h>

#include <jansson.h>

#include "resolver/pol.h"
#include "daemon/qry.h"
#include "tests/unit/tap.h"
#include "util/limits.h"

struct pcase {
	const char *line;
	size_t len; /* 0: strlen(line) */
	int rc;
	enum qry_cmd cmd;
	const char *key; /* on success; error text on failure */
};

static const struct pcase pcases[] = {
    /* Bare next hops. */
    {"example.com", 0, 0, QRY_QUERY, "example.com"},
    {"example.com\r", 0, 0, QRY_QUERY, "example.com"},
    {"  \texample.com \t\r", 0, 0, QRY_QUERY, "example.com"},
    {"[mx.example.com]:25", 0, 0, QRY_QUERY, "[mx.example.com]:25"},
    {"a b", 0, 0, QRY_QUERY, "a b"},
    {".example.com", 0, 0, QRY_QUERY, ".example.com"},
    {"", 0, -1, QRY_QUERY, "empty request"},
    {"\r", 0, -1, QRY_QUERY, "empty request"},
    {" \t ", 0, -1, QRY_QUERY, "empty request"},
    /* JSON objects. */
    {"{\"domain\": \"example.com\"}", 0, 0, QRY_QUERY, "example.com"},
    {"{\"cmd\":\"query\",\"domain\":\"Example.COM.\"}", 0, 0, QRY_QUERY,
     "Example.COM."},
    {"  {\"cmd\":\"flush\",\"domain\":\"example.com\"}\r", 0, 0, QRY_FLUSH,
     "example.com"},
    {"{\"cmd\":\"stats\"}", 0, 0, QRY_STATS, ""},
    {"{\"cmd\":\"ping\"}", 0, 0, QRY_PING, ""},
    {"{\"cmd\":\"ping\",\"domain\":42}", 0, 0, QRY_PING, ""},
    {"{\"domain\":\"b\\u00fccher.example\",\"x\":[1,{}]}", 0, 0, QRY_QUERY,
     "b\xc3\xbc"
     "cher.example"},
    /* JSON errors. */
    {"{", 0, -1, QRY_QUERY, "invalid JSON"},
    {"{\"domain\":\"a\"} x", 0, -1, QRY_QUERY, "invalid JSON"},
    {"{\"domain\":\"a\",\"domain\":\"b\"}", 0, -1, QRY_QUERY, "invalid JSON"},
    {"{\"domain\":\"a\\u0000b\"}", 0, -1, QRY_QUERY, "invalid JSON"},
    {"{}", 0, -1, QRY_QUERY, "missing domain"},
    {"{\"cmd\":\"query\"}", 0, -1, QRY_QUERY, "missing domain"},
    {"{\"cmd\":\"flush\"}", 0, -1, QRY_QUERY, "missing domain"},
    {"{\"domain\":\"\"}", 0, -1, QRY_QUERY, "empty domain"},
    {"{\"domain\":null}", 0, -1, QRY_QUERY, "domain is not a string"},
    {"{\"domain\":[\"a\"]}", 0, -1, QRY_QUERY, "domain is not a string"},
    {"{\"cmd\":\"reload\"}", 0, -1, QRY_QUERY, "unknown cmd"},
    {"{\"cmd\":\"PING\"}", 0, -1, QRY_QUERY, "unknown cmd"},
    {"{\"cmd\":\"ping\\u0000\"}", 0, -1, QRY_QUERY, "invalid JSON"},
    {"{\"cmd\":1}", 0, -1, QRY_QUERY, "cmd is not a string"},
    {"{\"cmd\":null,\"domain\":\"a\"}", 0, -1, QRY_QUERY,
     "cmd is not a string"},
    /* Issue 10 item 20: JSON that is not an object is an error, never a
     * next hop ("null" must not be looked up in DNS). */
    {"[1,2,3]", 0, -1, QRY_QUERY, "request is not a JSON object"},
    {"null", 0, -1, QRY_QUERY, "request is not a JSON object"},
    {"\"x\"", 0, -1, QRY_QUERY, "request is not a JSON object"},
    {"1", 0, -1, QRY_QUERY, "request is not a JSON object"},
    {" true \r", 0, -1, QRY_QUERY, "request is not a JSON object"},
    {"[\"example.com\"]", 0, -1, QRY_QUERY, "request is not a JSON object"},
    {"1.5e3", 0, -1, QRY_QUERY, "request is not a JSON object"},
    /* Next hops that only look a little like JSON stay keys. */
    {"[mx.example.com]", 0, 0, QRY_QUERY, "[mx.example.com]"},
    {"192.0.2.1", 0, 0, QRY_QUERY, "192.0.2.1"},
    {"nullmx.example", 0, 0, QRY_QUERY, "nullmx.example"},
    /* Administrative commands (answered on the admin socket only). */
    {"{\"cmd\":\"cache_list\"}", 0, 0, QRY_CACHE_LIST, ""},
    {"{\"cmd\":\"cache_show\",\"domain\":\"a.example\"}", 0, 0, QRY_CACHE_SHOW,
     "a.example"},
    {"{\"cmd\":\"cache_show\"}", 0, -1, QRY_QUERY, "missing domain"},
    {"{\"cmd\":\"report_list\"}", 0, 0, QRY_REPORT_LIST, ""},
    {"{\"cmd\":\"report_send\",\"domain\":\"a.example\"}", 0, -1, QRY_QUERY,
     "missing day"},
    {"{\"cmd\":\"report_show\",\"day\":\"2026-01-02\",\"domain\":"
     "\"a.example\"}",
     0, 0, QRY_REPORT_SHOW, "a.example"},
    {"{\"cmd\":\"report_show\",\"day\":7,\"domain\":\"a\"}", 0, -1, QRY_QUERY,
     "day is not a string"},
};

static void
test_admin_split(void)
{
	/* DESIGN 6.11: what changes the store is not for MTAs. */
	ok(!qry_cmd_admin(QRY_QUERY) && !qry_cmd_admin(QRY_STATS) &&
	       !qry_cmd_admin(QRY_PING) && !qry_cmd_admin(QRY_REPORT),
	   "lookups, stats, ping and report are for the query socket");
	ok(qry_cmd_admin(QRY_FLUSH) && qry_cmd_admin(QRY_CACHE_LIST) &&
	       qry_cmd_admin(QRY_CACHE_SHOW) &&
	       qry_cmd_admin(QRY_REPORT_LIST) &&
	       qry_cmd_admin(QRY_REPORT_SHOW) && qry_cmd_admin(QRY_REPORT_SEND),
	   "flush, cache and report commands are administrative");
}

static void
test_parse_table(void)
{
	size_t i;

	for (i = 0; i < sizeof(pcases) / sizeof(pcases[0]); i++) {
		const struct pcase *c = &pcases[i];
		struct qry_request req;
		char err[128];
		int rc;

		memset(&req, 0x55, sizeof(req));
		rc = qry_parse(c->line, c->len ? c->len : strlen(c->line), &req,
			       err, sizeof(err));
		is_int(rc, c->rc, "parse #%zu rc (err \"%s\")", i,
		       rc ? err : "");
		if (rc != 0 || c->rc != 0) {
			is_str(err, c->key, "parse #%zu error", i);
			continue;
		}
		is_int(req.cmd, c->cmd, "parse #%zu cmd", i);
		is_str(req.key, c->key, "parse #%zu key", i);
		is_int(req.keylen, strlen(c->key), "parse #%zu keylen", i);
	}
}

static void
test_parse_limits(void)
{
	struct qry_request req;
	char err[64], *line;
	size_t n;

	line = malloc(LIM_QUERY_LINE + 16);
	if (line == NULL)
		abort();

	/* A bare key of LIM_KEY_MAX bytes is fine, one more is not. */
	memset(line, 'a', LIM_KEY_MAX + 1);
	is_int(qry_parse(line, LIM_KEY_MAX, &req, err, sizeof(err)), 0,
	       "bare key of LIM_KEY_MAX");
	is_int(req.keylen, LIM_KEY_MAX, "bare key length");
	is_int(req.key[LIM_KEY_MAX], '\0', "bare key NUL-terminated");
	is_int(qry_parse(line, LIM_KEY_MAX + 1, &req, err, sizeof(err)), -1,
	       "bare key over LIM_KEY_MAX");
	is_str(err, "key too long", "bare key error");

	/* The same for a JSON domain. */
	memcpy(line, "{\"domain\":\"", 11);
	memset(line + 11, 'a', LIM_KEY_MAX);
	memcpy(line + 11 + LIM_KEY_MAX, "\"}", 2);
	n = 11 + LIM_KEY_MAX + 2;
	is_int(qry_parse(line, n, &req, err, sizeof(err)), 0,
	       "JSON domain of LIM_KEY_MAX");
	is_int(req.keylen, LIM_KEY_MAX, "JSON domain length");
	memcpy(line + 11 + LIM_KEY_MAX, "a\"}", 3);
	is_int(qry_parse(line, n + 1, &req, err, sizeof(err)), -1,
	       "JSON domain over LIM_KEY_MAX");
	is_str(err, "domain too long", "JSON domain error");

	/* The line limit, with and without a trailing CR. */
	memset(line, ' ', LIM_QUERY_LINE + 1);
	line[0] = 'x';
	is_int(qry_parse(line, LIM_QUERY_LINE, &req, err, sizeof(err)), 0,
	       "line of LIM_QUERY_LINE");
	is_str(req.key, "x", "long line trimmed");
	is_int(qry_parse(line, LIM_QUERY_LINE + 1, &req, err, sizeof(err)), -1,
	       "line over LIM_QUERY_LINE");
	is_str(err, "request line too long", "long line error");

	/* A short error buffer is truncated, not overrun. */
	memset(err, 'Z', sizeof(err));
	is_int(qry_parse("", 0, &req, err, 4), -1, "tiny errbuf");
	is_str(err, "emp", "tiny errbuf truncated");
	is_int(err[4], 'Z', "tiny errbuf not overrun");
	free(line);
}

/* Format ANS for KEY, parse it back, return the object (or NULL). */
static json_t *
roundtrip(const char *key, size_t keylen, const struct pol_answer *ans,
	  const char *what)
{
	char *s = qry_format_answer(key, keylen, ans);
	json_t *o;
	json_error_t jerr;

	ok(s != NULL, "%s: formatted", what);
	if (s == NULL)
		return NULL;
	ok(strchr(s, '\n') == NULL, "%s: one line", what);
	o = json_loads(s, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
	ok(o != NULL && json_is_object(o), "%s: parses back: %s", what, s);
	free(s);
	if (o != NULL)
		is_int(json_object_size(o), 11, "%s: exactly 11 fields", what);
	return o;
}

static const char *
sget(json_t *o, const char *name)
{
	json_t *v = json_object_get(o, name);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

static int
is_null(json_t *o, const char *name)
{
	return json_is_null(json_object_get(o, name));
}

static void
test_format(void)
{
	struct pol_answer a;
	json_t *o, *mx;

	/* A static dane-only answer. */
	memset(&a, 0, sizeof(a));
	a.kind = POL_OK;
	a.data = "dane-only";
	a.source = POL_SRC_STATIC;
	a.rule = POL_RULE_STATIC;
	a.domain = "example.com";
	a.reason = "static";
	if ((o = roundtrip("Example.COM.", 12, &a, "static")) != NULL) {
		is_str(sget(o, "key"), "Example.COM.", "static key");
		is_str(sget(o, "answer"), "OK dane-only", "static answer");
		is_str(sget(o, "result"), "OK", "static result");
		is_str(sget(o, "policy"), "dane-only", "static policy");
		is_str(sget(o, "source"), "static", "static source");
		is_str(sget(o, "domain"), "example.com", "static domain");
		is_str(sget(o, "reason"), "static", "static reason");
		is_str(sget(o, "rule"), "static", "static rule");
		ok(is_null(o, "mode"), "static mode null");
		ok(is_null(o, "mx"), "static mx null");
		ok(is_null(o, "expires"), "static expires null");
		json_decref(o);
	}

	/* An STS answer with patterns and an expiry. */
	memset(&a, 0, sizeof(a));
	a.kind = POL_OK;
	a.data = "secure match=.example.com:mx.example.net "
		 "servername=hostname";
	a.source = POL_SRC_STS;
	a.domain = "example.com";
	a.reason = "mta-sts enforce";
	a.mode = "enforce";
	a.mx = "*.example.com\nmx.example.net\n";
	a.expires = 1900000000;
	if ((o = roundtrip("example.com", 11, &a, "sts")) != NULL) {
		is_str(sget(o, "answer"),
		       "OK secure match=.example.com:mx.example.net "
		       "servername=hostname",
		       "sts answer");
		is_str(sget(o, "source"), "sts", "sts source");
		is_str(sget(o, "mode"), "enforce", "sts mode");
		mx = json_object_get(o, "mx");
		ok(json_is_array(mx) && json_array_size(mx) == 2,
		   "sts mx is an array of 2");
		is_str(json_string_value(json_array_get(mx, 0)),
		       "*.example.com", "sts mx[0]");
		is_str(json_string_value(json_array_get(mx, 1)),
		       "mx.example.net", "sts mx[1]");
		is_int(json_integer_value(json_object_get(o, "expires")),
		       1900000000, "sts expires");
		json_decref(o);
	}

	/* NOTFOUND for a parent probe: policy and domain null. */
	memset(&a, 0, sizeof(a));
	a.kind = POL_NOTFOUND;
	a.data = "";
	a.source = POL_SRC_KEY;
	a.reason = "parent domain probe";
	if ((o = roundtrip(".com", 4, &a, "parent")) != NULL) {
		is_str(sget(o, "answer"), "NOTFOUND ", "parent answer");
		is_str(sget(o, "result"), "NOTFOUND", "parent result");
		ok(is_null(o, "policy"), "parent policy null");
		is_str(sget(o, "source"), "key", "parent source");
		ok(is_null(o, "domain"), "parent domain null");
		is_str(sget(o, "reason"), "parent domain probe",
		       "parent reason");
		json_decref(o);
	}

	/* TEMP: the reason is in the answer, policy stays null. */
	memset(&a, 0, sizeof(a));
	a.kind = POL_TEMP;
	a.data = "dnssec lookup failure for example.com";
	a.source = POL_SRC_ERROR;
	a.domain = "example.com";
	if ((o = roundtrip("example.com", 11, &a, "temp")) != NULL) {
		is_str(sget(o, "answer"),
		       "TEMP dnssec lookup failure for example.com",
		       "temp answer");
		is_str(sget(o, "result"), "TEMP", "temp result");
		ok(is_null(o, "policy"), "temp policy null");
		is_str(sget(o, "source"), "error", "temp source");
		ok(is_null(o, "reason"), "temp reason null");
		json_decref(o);
	}

	/* A key that is not UTF-8, with a NUL and a control byte. */
	memset(&a, 0, sizeof(a));
	a.kind = POL_NOTFOUND;
	a.data = "";
	a.source = POL_SRC_KEY;
	a.reason = "invalid domain name";
	if ((o = roundtrip("a\xff\xc3(\0\x01\xc3\xbc", 8, &a, "bad key")) !=
	    NULL) {
		json_t *k = json_object_get(o, "key");

		ok(json_is_string(k) && json_string_length(k) == 12 &&
		       memcmp(json_string_value(k),
			      "a\xef\xbf\xbd\xef\xbf\xbd(\0\x01\xc3\xbc",
			      12) == 0,
		   "bad key: invalid bytes became U+FFFD");
		json_decref(o);
	}
}

static void
test_format_error(void)
{
	char *s = qry_format_error("unknown cmd");

	is_str(s, "{\"error\":\"unknown cmd\"}", "error object");
	free(s);
	s = qry_format_error("say \"hi\"\n\xff");
	is_str(s, "{\"error\":\"say \\\"hi\\\"\\n\xef\xbf\xbd\"}",
	       "error escaped and made UTF-8");
	free(s);
}

int
main(void)
{
	test_parse_table();
	test_admin_split();
	test_parse_limits();
	test_format();
	test_format_error();
	return tap_done();
}
