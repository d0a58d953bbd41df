/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Unit tests for the MTA-STS pure parts (SPEC A3, A5, A6, A7.48, F): TXT
 * records and their selection, policy bodies, mx patterns and matching,
 * as tables of input -> (status, fields, reason); then the TOFU rule as
 * scenario tables run against a fake clock.
 */
#include <stdlib.h>
#include <string.h>

#include "resolver/sts.h"
#include "resolver/sts_policy.h"
#include "tests/unit/tap.h"
#include "util/limits.h"

/* ---- TXT records (SPEC A3.20) ---- */

struct tcase {
	const char *txt;
	size_t len; /* 0: strlen(txt) */
	enum sts_perr want;
	const char *id;	    /* on STSP_OK */
	unsigned n_ext;	    /* on STSP_OK */
	const char *reason; /* substring of the error, on failure */
};

static const struct tcase tcases[] = {
    {"v=STSv1; id=20160831085700Z;", 0, STSP_OK, "20160831085700Z", 0, NULL},
    {"v=STSv1; \t id=20160831085700Z  \t;", 0, STSP_OK, "20160831085700Z", 0,
     NULL},
    {"v=STSv1;id=a", 0, STSP_OK, "a", 0, NULL},
    {"v=STSv1; id=a", 0, STSP_OK, "a", 0, NULL},
    {"v=STSv1 ;id=a", 0, STSP_OK, "a", 0, NULL},
    {"v=STSv1; id=a;  ", 0, STSP_OK, "a", 0, NULL},
    {"v=STSv1; id=a; more=a; ext=2", 0, STSP_OK, "a", 2, NULL},
    {"v=STSv1; ext=2; id=B7", 0, STSP_OK, "B7", 1, NULL},
    {"v=STSv1; id=12345678901234567890123456789012", 0, STSP_OK,
     "12345678901234567890123456789012", 0, NULL},
    {"v=STSv1; id=first; id=second", 0, STSP_OK, "first", 0, NULL},
    {"v=STSv1; id=a; v=STSv2", 0, STSP_OK, "a", 1, NULL},
    {"v=STSv1; id=a; x.y_z-1=!\"#$%&'()*+,-./0123456789:<>?@~", 0, STSP_OK, "a",
     1, NULL},
    {"v=STSv1; id=a; a1234567890123456789012345678901=1", 0, STSP_OK, "a", 1,
     NULL},
    {"v=STSv1; ID=a; id=b", 0, STSP_OK, "b", 1, NULL},
    /* Bad version field. */
    {"v=STSv0", 0, STSP_EINVAL, NULL, 0, "begin"},
    {"v=STSv10; id=a", 0, STSP_EINVAL, NULL, 0, "expected ';'"},
    {"v=STSv2; id=a", 0, STSP_EINVAL, NULL, 0, "begin"},
    {"V=STSv1; id=a", 0, STSP_EINVAL, NULL, 0, "begin"},
    {"v=stsv1; id=a", 0, STSP_EINVAL, NULL, 0, "begin"},
    {" v=STSv1; id=a", 0, STSP_EINVAL, NULL, 0, "begin"},
    {"id=a; v=STSv1", 0, STSP_EINVAL, NULL, 0, "begin"},
    {"", 0, STSP_EINVAL, NULL, 0, "begin"},
    /* Missing or bad id. */
    {"v=STSv1", 0, STSP_EINVAL, NULL, 0, "no field"},
    {"v=STSv1;", 0, STSP_EINVAL, NULL, 0, "no field"},
    {"v=STSv1; ", 0, STSP_EINVAL, NULL, 0, "no field"},
    {"v=STSv1; ext=1", 0, STSP_EINVAL, NULL, 0, "no id"},
    {"v=STSv1; id=", 0, STSP_EINVAL, NULL, 0, "id is not"},
    {"v=STSv1; id=123456789012345678901234567890123", 0, STSP_EINVAL, NULL, 0,
     "id is not"},
    {"v=STSv1; id=test-123", 0, STSP_EINVAL, NULL, 0, "id is not"},
    {"v=STSv1; id=a_b", 0, STSP_EINVAL, NULL, 0, "id is not"},
    {"v=STSv1; id=a; id=b-c", 0, STSP_EINVAL, NULL, 0, "id is not"},
    {"v=STSv1; id=a=b", 0, STSP_EINVAL, NULL, 0, "id is not"},
    {"v=STSv1; id =a", 0, STSP_EINVAL, NULL, 0, "no '='"},
    /* Extensions. */
    {"v=STSv1; id=a; more=", 0, STSP_EINVAL, NULL, 0, "bad value"},
    {"v=STSv1; id=a; a12345678901234567890123456789012=1", 0, STSP_EINVAL, NULL,
     0, "bad field name"},
    {"v=STSv1; id=a; 1%=a", 0, STSP_EINVAL, NULL, 0, "bad field name"},
    {"v=STSv1; id=a; test==", 0, STSP_EINVAL, NULL, 0, "bad value"},
    {"v=STSv1; id=a; _x=1", 0, STSP_EINVAL, NULL, 0, "bad field name"},
    {"v=STSv1; id=a; =1", 0, STSP_EINVAL, NULL, 0, "bad field name"},
    {"v=STSv1; id=a; x", 0, STSP_EINVAL, NULL, 0, "no '='"},
    /* Separators. */
    {"v=STSv1; id=a;;", 0, STSP_EINVAL, NULL, 0, "field 2: empty field"},
    {"v=STSv1;; id=a", 0, STSP_EINVAL, NULL, 0, "field 1: empty field"},
    {"v=STSv1; id=a ", 0, STSP_EINVAL, NULL, 0, "trailing white space"},
    {"v=STSv1  id=a", 0, STSP_EINVAL, NULL, 0, "expected ';'"},
    {"v=STSv1; id=a b", 0, STSP_EINVAL, NULL, 0, "expected ';'"},
    {"v=STSv1;\rid=a", 0, STSP_EINVAL, NULL, 0, "bad field name"},
    /* US-ASCII only. */
    {"v=STSv1; id=a; x=\xc3\xa9", 0, STSP_EINVAL, NULL, 0, "US-ASCII"},
    {"v=STSv1; id=a\0", 14, STSP_EINVAL, NULL, 0, "US-ASCII"},
    {"v=STSv1; id=a\0b", 15, STSP_EINVAL, NULL, 0, "US-ASCII"},
};

static void
test_txt(void)
{
	struct sts_txt t;
	char err[128];
	size_t i, len;
	enum sts_perr e;

	for (i = 0; i < sizeof(tcases) / sizeof(tcases[0]); i++) {
		const struct tcase *c = &tcases[i];

		len = c->len ? c->len : strlen(c->txt);
		e = sts_txt_parse(c->txt, len, &t, err, sizeof(err));
		is_int(e, c->want, "txt %zu \"%s\": status (%s)", i, c->txt,
		       err);
		if (c->want == STSP_OK) {
			is_str(t.id, c->id, "txt %zu: id", i);
			is_int(t.n_ext, c->n_ext, "txt %zu: extensions", i);
		} else {
			ok(strstr(err, c->reason) != NULL,
			   "txt %zu: reason \"%s\" has \"%s\"", i, err,
			   c->reason);
			is_str(t.id, "", "txt %zu: id empty on failure", i);
		}
	}
	/* A record longer than one RDATA can hold. */
	{
		size_t big = STS_TXT_MAX + 1;
		char *b = malloc(big);

		memset(b, 'a', big);
		memcpy(b, "v=STSv1; id=a; x=", 17);
		is_int(sts_txt_parse(b, big, &t, err, sizeof(err)),
		       STSP_ETOOBIG, "txt: longer than STS_TXT_MAX");
		is_int(sts_txt_parse(b, big - 1, &t, err, sizeof(err)), STSP_OK,
		       "txt: STS_TXT_MAX bytes");
		free(b);
	}
	/* Error buffers: NULL, one byte. */
	is_int(sts_txt_parse("v=STSv1", 7, &t, NULL, 0), STSP_EINVAL,
	       "txt: NULL error buffer");
	err[0] = 'x';
	is_int(sts_txt_parse("v=STSv1", 7, &t, err, 1), STSP_EINVAL,
	       "txt: one-byte error buffer");
	is_int(err[0], '\0', "txt: one-byte error buffer terminated");
}

/* ---- TXT selection (SPEC A3.19) ---- */

struct scase {
	const char *recs[4];
	enum sts_perr want;
	const char *id;
	const char *reason;
};

static const struct scase scases[] = {
    {{"v=STSv1; id=a"}, STSP_OK, "a", NULL},
    {{"v=spf1 -all", "v=STSv1; id=a", "hello"}, STSP_OK, "a", NULL},
    {{"v=STSv1;id=b", "v=STSv1"}, STSP_OK, "b", NULL},
    {{"v=STSv1 ; id=c", "v=STSv1; id=d"}, STSP_OK, "d", NULL},
    {{"v=STSv10; id=e", "v=STSv1;id=f"}, STSP_OK, "f", NULL},
    {{NULL}, STSP_ENOPOLICY, NULL, "no v=STSv1 record"},
    {{"v=spf1 -all"}, STSP_ENOPOLICY, NULL, "no v=STSv1 record"},
    {{"v=STSv1 ; id=c"}, STSP_ENOPOLICY, NULL, "no v=STSv1 record"},
    {{"v=STSv1"}, STSP_ENOPOLICY, NULL, "no v=STSv1 record"},
    {{"v=STSv1; id=a", "v=STSv1; id=a"}, STSP_ENOPOLICY, NULL, "2 v=STSv1"},
    {{"v=STSv1; id=a", "v=STSv1; id=b", "v=STSv1;"},
     STSP_ENOPOLICY,
     NULL,
     "3 v=STSv1"},
    {{"v=STSv1; id=a", "v=STSv1;junk"}, STSP_ENOPOLICY, NULL, "2 v=STSv1"},
    {{"v=STSv1; id=bad-id"}, STSP_ENOPOLICY, NULL, "invalid record: "},
    {{"v=STSv1;"}, STSP_ENOPOLICY, NULL, "invalid record: no field"},
};

static void
test_select(void)
{
	struct sts_txt t;
	char err[256];
	size_t i, n, lens[4];

	for (i = 0; i < sizeof(scases) / sizeof(scases[0]); i++) {
		const struct scase *c = &scases[i];
		enum sts_perr e;

		for (n = 0; n < 4 && c->recs[n] != NULL; n++)
			lens[n] = strlen(c->recs[n]);
		e = sts_txt_select(c->recs, lens, n, &t, err, sizeof(err));
		is_int(e, c->want, "select %zu: status (%s)", i, err);
		if (c->want == STSP_OK)
			is_str(t.id, c->id, "select %zu: id", i);
		else
			ok(strstr(err, c->reason) != NULL,
			   "select %zu: reason \"%s\" has \"%s\"", i, err,
			   c->reason);
	}
}

/* ---- policy bodies (SPEC A5, F) ---- */

#define HEAD "version: STSv1\nmode: enforce\nmax_age: 86400\n"
#define NONE "version: STSv1\nmode: none\nmax_age: 0\n"

struct pcase {
	const char *body;
	size_t len; /* 0: strlen(body) */
	enum sts_perr want;
	int mode;
	long long max_age;
	int capped;
	const char *mx;	    /* on STSP_OK */
	const char *reason; /* substring of the error, on failure */
};

#define E CACHE_STS_ENFORCE
#define T CACHE_STS_TESTING
#define N CACHE_STS_NONE

static const struct pcase pcases[] = {
    /* RFC 8461 §3.2 example, and the mox vectors. */
    {"version: STSv1\nmode: testing\nmx: mx1.example.com\n"
     "mx: mx2.example.com\nmx: mx.backup-example.com\nmax_age: 1296000\n",
     0, STSP_OK, T, 1296000, 0,
     "mx1.example.com\nmx2.example.com\nmx.backup-example.com", NULL},
    {"version: STSv1\nmode: enforce\t\nmx: *.example.com \nmax_age: 0 \n", 0,
     STSP_OK, E, 0, 0, "*.example.com", NULL},
    {"version:STSv1\r\nmode:\tenforce\r\nmx:  \t\t *.example.com\n"
     "max_age: 1\nmore:ext e  ns ion",
     0, STSP_OK, E, 1, 0, "*.example.com", NULL},
    /* Terminators: CRLF, LF, mixed, none at the end. */
    {"version: STSv1\r\nmode: enforce\r\nmx: a.example\r\nmax_age: 5\r\n", 0,
     STSP_OK, E, 5, 0, "a.example", NULL},
    {"version: STSv1\r\nmode: enforce\nmx: a.example\r\nmax_age: 5", 0, STSP_OK,
     E, 5, 0, "a.example", NULL},
    /* Field order is free; names are case-sensitive. */
    {"max_age: 7\nmx: a.example\nmode: testing\nversion: STSv1\n", 0, STSP_OK,
     T, 7, 0, "a.example", NULL},
    {"Version: STSv1\nmode: none\nmax_age: 0\n", 0, STSP_EINVAL, 0, 0, 0, NULL,
     "missing version"},
    {"version: STSv1\nMode: none\nmax_age: 0\n", 0, STSP_EINVAL, 0, 0, 0, NULL,
     "missing mode"},
    {"version: STSv1\nmode: none\nMAX_AGE: 0\n", 0, STSP_EINVAL, 0, 0, 0, NULL,
     "missing max_age"},
    {"version: STSv1\nmode: enforce\nMX: a.example\nmax_age: 0\n", 0,
     STSP_EINVAL, 0, 0, 0, NULL, "missing mx for mode enforce"},
    /* Values are case-sensitive too. */
    {"version: stsv1\nmode: none\nmax_age: 0\n", 0, STSP_EINVAL, 0, 0, 0, NULL,
     "line 1: version is not STSv1"},
    {"version: STSv1\nmode: Enforce\nmax_age: 0\nmx: a.example\n", 0,
     STSP_EINVAL, 0, 0, 0, NULL, "line 2: mode is not"},
    /* Required fields (SPEC A5.34, F2). */
    {"", 0, STSP_EINVAL, 0, 0, 0, NULL, "missing version"},
    {"version:STSv0\nmode:none\nmax_age:0", 0, STSP_EINVAL, 0, 0, 0, NULL,
     "line 1: version"},
    {"version:STSv10\nmode:none\nmax_age:0", 0, STSP_EINVAL, 0, 0, 0, NULL,
     "line 1: version"},
    {"version:STSv2\nmode:none\nmax_age:0", 0, STSP_EINVAL, 0, 0, 0, NULL,
     "line 1: version"},
    {"version:STSv1\nmax_age:0\nmx:example.com", 0, STSP_EINVAL, 0, 0, 0, NULL,
     "missing mode"},
    {"version:STSv1\nmode:none", 0, STSP_EINVAL, 0, 0, 0, NULL,
     "missing max_age"},
    {"version:STSv1\nmax_age:0\nmode:enforce", 0, STSP_EINVAL, 0, 0, 0, NULL,
     "missing mx for mode enforce"},
    {"version:STSv1\nmax_age:0\nmode:testing", 0, STSP_EINVAL, 0, 0, 0, NULL,
     "missing mx for mode testing"},
    {"max_age:0\nmode:none", 0, STSP_EINVAL, 0, 0, 0, NULL, "missing version"},
    {"version:STSv1\nmode:bad\nmax_age:1", 0, STSP_EINVAL, 0, 0, 0, NULL,
     "line 2: mode"},
    {"version:STSv1\nmode:\nmax_age:1", 0, STSP_EINVAL, 0, 0, 0, NULL,
     "line 2: empty value"},
    /* SPEC F2: mode none without mx is accepted; with mx kept. */
    {NONE, 0, STSP_OK, N, 0, 0, "", NULL},
    {NONE "mx: a.example\n", 0, STSP_OK, N, 0, 0, "a.example", NULL},
    /* max_age: 1*10DIGIT, capped (SPEC A5.37, F1). */
    {"version:STSv1\nmode:none\nmax_age:01234567890", 0, STSP_EINVAL, 0, 0, 0,
     NULL, "line 3: max_age longer than 10 digits"},
    {"version:STSv1\nmode:none\nmax_age:99999999999", 0, STSP_EINVAL, 0, 0, 0,
     NULL, "longer than 10"},
    {"version:STSv1\nmode:none\nmax_age:0123456789", 0, STSP_OK, N, 31557600, 1,
     "", NULL},
    {"version:STSv1\nmode:none\nmax_age:9999999999", 0, STSP_OK, N, 31557600, 1,
     "", NULL},
    {"version:STSv1\nmode:none\nmax_age:31557601", 0, STSP_OK, N, 31557600, 1,
     "", NULL},
    {"version:STSv1\nmode:none\nmax_age:31557600", 0, STSP_OK, N, 31557600, 0,
     "", NULL},
    {"version:STSv1\nmode:none\nmax_age:0000000042", 0, STSP_OK, N, 42, 0, "",
     NULL},
    {"version:STSv1\nmode:none\nmax_age:a", 0, STSP_EINVAL, 0, 0, 0, NULL,
     "line 3: max_age is not a number"},
    {"version:STSv1\nmode:none\nmax_age:-1", 0, STSP_EINVAL, 0, 0, 0, NULL,
     "not a number"},
    {"version:STSv1\nmode:none\nmax_age:+1", 0, STSP_EINVAL, 0, 0, 0, NULL,
     "not a number"},
    {"version:STSv1\nmode:none\nmax_age:1 2", 0, STSP_EINVAL, 0, 0, 0, NULL,
     "not a number"},
    {"version:STSv1\nmode:none\nmax_age:1.5", 0, STSP_EINVAL, 0, 0, 0, NULL,
     "not a number"},
    /* mx patterns (SPEC A5.38). */
    {HEAD "mx:", 0, STSP_EINVAL, 0, 0, 0, NULL, "line 4: empty value"},
    {HEAD "mx: \t ", 0, STSP_EINVAL, 0, 0, 0, NULL, "line 4: empty value"},
    {HEAD "mx:*.*.example", 0, STSP_EINVAL, 0, 0, 0, NULL, "line 4: bad mx"},
    {HEAD "mx:**.example", 0, STSP_EINVAL, 0, 0, 0, NULL, "bad mx"},
    {HEAD "mx:**.example-", 0, STSP_EINVAL, 0, 0, 0, NULL, "bad mx"},
    {HEAD "mx:test.example-", 0, STSP_EINVAL, 0, 0, 0, NULL, "bad mx"},
    {HEAD "mx:a*.example", 0, STSP_EINVAL, 0, 0, 0, NULL, "bad mx"},
    {HEAD "mx:*", 0, STSP_EINVAL, 0, 0, 0, NULL, "bad mx"},
    {HEAD "mx:*.", 0, STSP_EINVAL, 0, 0, 0, NULL, "bad mx"},
    {HEAD "mx:mail.*.example", 0, STSP_EINVAL, 0, 0, 0, NULL, "bad mx"},
    {HEAD "mx:-a.example", 0, STSP_EINVAL, 0, 0, 0, NULL, "bad mx"},
    {HEAD "mx:a-.example", 0, STSP_EINVAL, 0, 0, 0, NULL, "bad mx"},
    {HEAD "mx:a..example", 0, STSP_EINVAL, 0, 0, 0, NULL, "bad mx"},
    {HEAD "mx:.example", 0, STSP_EINVAL, 0, 0, 0, NULL, "bad mx"},
    {HEAD "mx:mail.example.", 0, STSP_EINVAL, 0, 0, 0, NULL, "bad mx"},
    {HEAD "mx:mail_1.example", 0, STSP_EINVAL, 0, 0, 0, NULL, "bad mx"},
    {HEAD "mx:mail example", 0, STSP_EINVAL, 0, 0, 0, NULL, "bad mx"},
    {HEAD "mx:192.0.2.1:25", 0, STSP_EINVAL, 0, 0, 0, NULL, "bad mx"},
    {HEAD "mx: m\xc3\xb8x.example", 0, STSP_EINVAL, 0, 0, 0, NULL,
     "line 4: bad mx"},
    {NONE "mx: m\xc3\xb8x.example", 0, STSP_EINVAL, 0, 0, 0, NULL,
     "line 4: bad mx"},
    {HEAD "mx: xn--mx-lka.example", 0, STSP_OK, E, 86400, 0,
     "xn--mx-lka.example", NULL},
    {HEAD "mx: MX1.Example.COM\nmx: *.EXAMPLE.net\n", 0, STSP_OK, E, 86400, 0,
     "mx1.example.com\n*.example.net", NULL},
    {HEAD "mx: a.example\nmx: a.example\n", 0, STSP_OK, E, 86400, 0,
     "a.example\na.example", NULL},
    {HEAD "mx: localhost", 0, STSP_OK, E, 86400, 0, "localhost", NULL},
    {HEAD "mx: 3com.example", 0, STSP_OK, E, 86400, 0, "3com.example", NULL},
    /* Repeated non-mx fields: the first wins (SPEC A5.36). */
    {"version: STSv1\nmode: testing\nmode: enforce\nmax_age: 10\n"
     "max_age: 20\nversion: STSv2\nmx: a.example\n",
     0, STSP_OK, T, 10, 0, "a.example", NULL},
    {"version: STSv1\nmode: none\nmode: bogus\nmax_age: 10\n", 0, STSP_OK, N,
     10, 0, "", NULL},
    {"version: STSv1\nmode: none\nmax_age: 1\nmax_age: 99999999999\n", 0,
     STSP_OK, N, 1, 0, "", NULL},
    /* Extensions (SPEC A5.35). */
    {NONE "ext: value\nx.y_z-1: a b\tc\n", 0, STSP_EINVAL, 0, 0, 0, NULL,
     "line 5: tab inside a value"},
    {NONE "ext: value\nx.y_z-1: a  b  c\n", 0, STSP_OK, N, 0, 0, "", NULL},
    {NONE "ext: caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\xa7\n", 0, STSP_OK, N, 0,
     0, "", NULL},
    {NONE "ext:", 0, STSP_EINVAL, 0, 0, 0, NULL, "line 4: empty value"},
    {NONE "ext:abc \t", 0, STSP_OK, N, 0, 0, "", NULL},
    {NONE "ext: \x01", 0, STSP_EINVAL, 0, 0, 0, NULL, "line 4: control"},
    {NONE "ext: a\x7f", 0, STSP_EINVAL, 0, 0, 0, NULL, "line 4: control"},
    {NONE "ext: a\rb\n", 0, STSP_EINVAL, 0, 0, 0, NULL, "line 4: control"},
    {NONE "a1234567890123456789012345678901: 1\n", 0, STSP_OK, N, 0, 0, "",
     NULL},
    {NONE "a12345678901234567890123456789012: 1\n", 0, STSP_EINVAL, 0, 0, 0,
     NULL, "line 4: bad field name"},
    {NONE "_bad:test", 0, STSP_EINVAL, 0, 0, 0, NULL, "bad field name"},
    {NONE "-bad:test", 0, STSP_EINVAL, 0, 0, 0, NULL, "bad field name"},
    {NONE "b@d:test", 0, STSP_EINVAL, 0, 0, 0, NULL, "bad field name"},
    {NONE "ext :test", 0, STSP_EINVAL, 0, 0, 0, NULL, "bad field name"},
    {NONE ":test", 0, STSP_EINVAL, 0, 0, 0, NULL, "bad field name"},
    {NONE "url: https://example.com/a:b", 0, STSP_OK, N, 0, 0, "", NULL},
    /* Invalid UTF-8 in an extension value. */
    {NONE "ext: \xc3", 0, STSP_EINVAL, 0, 0, 0, NULL, "invalid UTF-8"},
    {NONE "ext: \xc0\xaf", 0, STSP_EINVAL, 0, 0, 0, NULL, "invalid UTF-8"},
    {NONE "ext: \xe0\x80\xaf", 0, STSP_EINVAL, 0, 0, 0, NULL, "invalid UTF-8"},
    {NONE "ext: \xed\xa0\x80", 0, STSP_EINVAL, 0, 0, 0, NULL, "invalid UTF-8"},
    {NONE "ext: \xf4\x90\x80\x80", 0, STSP_EINVAL, 0, 0, 0, NULL,
     "invalid UTF-8"},
    {NONE "ext: \xff", 0, STSP_EINVAL, 0, 0, 0, NULL, "invalid UTF-8"},
    {NONE "ext: \xe2\x82", 0, STSP_EINVAL, 0, 0, 0, NULL, "invalid UTF-8"},
    {NONE "\xc3\xa9xt: a", 0, STSP_EINVAL, 0, 0, 0, NULL, "bad field name"},
    /* Blank lines and one BOM are ignored (SPEC F7). */
    {"\n\nversion: STSv1\n\r\n\nmode: none\n  \n\t\nmax_age: 3\n\n\n", 0,
     STSP_OK, N, 3, 0, "", NULL},
    {"\xef\xbb\xbfversion: STSv1\nmode: none\nmax_age: 3\n", 0, STSP_OK, N, 3,
     0, "", NULL},
    {"\xef\xbb\xbf\nversion: STSv1\nmode: none\nmax_age: 3\n", 0, STSP_OK, N, 3,
     0, "", NULL},
    {"\xef\xbb\xbf\xef\xbb\xbfversion: STSv1\nmode: none\nmax_age: 3\n", 0,
     STSP_EINVAL, 0, 0, 0, NULL, "line 1: bad field name"},
    {"version: STSv1\n\xef\xbb\xbfmode: none\nmax_age: 3\n", 0, STSP_EINVAL, 0,
     0, 0, NULL, "line 2: bad field name"},
    {"\xef\xbb", 0, STSP_EINVAL, 0, 0, 0, NULL, "line 1: no ':'"},
    /* Anything else malformed (SPEC A5.39). */
    {NONE "garbage\n", 0, STSP_EINVAL, 0, 0, 0, NULL, "line 4: no ':'"},
    {"version: STSv1\n mode: none\nmax_age: 3\n", 0, STSP_EINVAL, 0, 0, 0, NULL,
     "line 2: leading white space"},
    {"version: STSv1\n\tmode: none\nmax_age: 3\n", 0, STSP_EINVAL, 0, 0, 0,
     NULL, "line 2: leading white space"},
    {"version: STSv1\rmode: none\rmax_age: 3\r", 0, STSP_EINVAL, 0, 0, 0, NULL,
     "line 1: control"},
    {"version: STSv1\nmode: none\nmax_age: 3\r", 0, STSP_EINVAL, 0, 0, 0, NULL,
     "line 3: control"},
    {"version: STSv1\nmode: none\nmax_age: 3\r\r\n", 0, STSP_EINVAL, 0, 0, 0,
     NULL, "line 3"},
    {"<html><body>Not Found</body></html>\n", 0, STSP_EINVAL, 0, 0, 0, NULL,
     "line 1: no ':'"},
    {"<html><head><meta http-equiv=x content=\"a:b\">\n", 0, STSP_EINVAL, 0, 0,
     0, NULL, "line 1: bad field name"},
    {"version: STSv1\nmode: none\nmax_age: 3\n\0\n", 39, STSP_EINVAL, 0, 0, 0,
     NULL, "line 4: NUL byte"},
    {"version: STSv1\nmode: none\0\nmax_age: 3\n", 38, STSP_EINVAL, 0, 0, 0,
     NULL, "line 2: NUL byte"},
    /* A NUL after LEN is not read. */
    {"version: STSv1\nmode: none\nmax_age: 3\n\0garbage", 37, STSP_OK, N, 3, 0,
     "", NULL},
};

static void
test_policy(void)
{
	struct sts_policy p;
	char err[128];
	size_t i, len;
	enum sts_perr e;

	for (i = 0; i < sizeof(pcases) / sizeof(pcases[0]); i++) {
		const struct pcase *c = &pcases[i];

		len = c->len ? c->len : strlen(c->body);
		e = sts_policy_parse(c->body, len, &p, err, sizeof(err));
		is_int(e, c->want, "policy %zu: status (%s)", i, err);
		if (c->want == STSP_OK && e == STSP_OK) {
			is_int(p.mode, c->mode, "policy %zu: mode", i);
			is_int(p.max_age, c->max_age, "policy %zu: max_age", i);
			is_int(p.max_age_capped, c->capped,
			       "policy %zu: capped", i);
			is_str(p.mx, c->mx, "policy %zu: mx", i);
		} else if (c->want != STSP_OK) {
			ok(strstr(err, c->reason) != NULL,
			   "policy %zu: reason \"%s\" has \"%s\"", i, err,
			   c->reason);
			ok(p.mx == NULL && p.n_mx == 0,
			   "policy %zu: nothing kept on failure", i);
		}
		sts_policy_clear(&p);
	}
	sts_policy_clear(NULL);
}

/* Limits: body size, mx count, pattern and label length. */
static void
test_policy_limits(void)
{
	struct sts_policy p;
	char err[128], *b, name[300];
	size_t len, i;

	/* A body of exactly LIM_POLICY_BODY bytes (blank-line padding). */
	b = malloc(LIM_POLICY_BODY + 1);
	len = strlen(NONE);
	memcpy(b, NONE, len);
	memset(b + len, '\n', LIM_POLICY_BODY + 1 - len);
	is_int(sts_policy_parse(b, LIM_POLICY_BODY, &p, err, sizeof(err)),
	       STSP_OK, "limit: body of LIM_POLICY_BODY bytes");
	sts_policy_clear(&p);
	is_int(sts_policy_parse(b, LIM_POLICY_BODY + 1, &p, err, sizeof(err)),
	       STSP_ETOOBIG, "limit: body over LIM_POLICY_BODY");
	ok(strstr(err, "longer than") != NULL, "limit: reason \"%s\"", err);

	/* LIM_MX_PATTERNS mx lines, then one more. */
	len = (size_t)snprintf(b, LIM_POLICY_BODY, "%s", HEAD);
	for (i = 0; i < LIM_MX_PATTERNS; i++)
		len += (size_t)snprintf(b + len, LIM_POLICY_BODY - len,
					"mx: mx%zu.example\n", i);
	is_int(sts_policy_parse(b, len, &p, err, sizeof(err)), STSP_OK,
	       "limit: %d mx patterns", LIM_MX_PATTERNS);
	is_int(p.n_mx, LIM_MX_PATTERNS, "limit: n_mx");
	ok(p.mx != NULL && strncmp(p.mx, "mx0.example\nmx1.example\n", 24) == 0,
	   "limit: mx list starts in policy order");
	sts_policy_clear(&p);
	len += (size_t)snprintf(b + len, LIM_POLICY_BODY - len, "mx: x.y\n");
	is_int(sts_policy_parse(b, len, &p, err, sizeof(err)), STSP_ETOOBIG,
	       "limit: %d mx patterns", LIM_MX_PATTERNS + 1);
	is_str(err, "line 68: too many mx patterns", "limit: mx reason");
	free(b);

	/* Pattern lengths: 253 octets in all, labels of 63. */
	memset(name, 'a', sizeof(name));
	for (i = 63; i < sizeof(name); i += 64)
		name[i] = '.';
	ok(sts_mx_pattern_valid(name, 253), "limit: 253-octet name");
	ok(!sts_mx_pattern_valid(name, 254) && !sts_mx_pattern_valid(name, 255),
	   "limit: 254/255-octet name");
	name[0] = '*';
	name[1] = '.';
	ok(sts_mx_pattern_valid(name, 253), "limit: 253-octet wildcard");
	memset(name, 'a', sizeof(name));
	name[64] = '.';
	ok(!sts_mx_pattern_valid(name, 70), "limit: 64-octet label");
	memset(name, 'a', sizeof(name));
	name[63] = '.';
	ok(sts_mx_pattern_valid(name, 70), "limit: 63-octet label");
}

/* Parse, format, parse again: the same policy (and the same text). */
static void
test_format(void)
{
	static const char *const bodies[] = {
	    HEAD "mx: MX.Example.com\nmx: *.b.example\next: 1\n",
	    NONE,
	    "version:STSv1\r\nmode:testing\r\nmx:a.b\r\nmax_age:99999999\r\n",
	};
	struct sts_policy p, q;
	char text[1024], again[1024], err[128];
	size_t i;
	int n;

	for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		sts_policy_parse(bodies[i], strlen(bodies[i]), &p, err,
				 sizeof(err));
		n = sts_policy_format(&p, text, sizeof(text));
		ok(n > 0 && (size_t)n == strlen(text), "format %zu: length", i);
		is_int(sts_policy_parse(text, (size_t)n, &q, err, sizeof(err)),
		       STSP_OK, "format %zu: reparse (%s)", i, err);
		ok(p.mode == q.mode && p.max_age == q.max_age &&
		       strcmp(p.mx, q.mx) == 0,
		   "format %zu: same policy", i);
		ok(sts_policy_format(&q, again, sizeof(again)) == n &&
		       strcmp(text, again) == 0,
		   "format %zu: fixpoint", i);
		ok(sts_policy_format(&p, again, (size_t)n) == -1,
		   "format %zu: short buffer refused", i);
		sts_policy_clear(&p);
		sts_policy_clear(&q);
	}
	sts_policy_parse(bodies[0], strlen(bodies[0]), &p, err, sizeof(err));
	sts_policy_format(&p, text, sizeof(text));
	is_str(text,
	       "version: STSv1\nmode: enforce\nmax_age: 86400\n"
	       "mx: mx.example.com\nmx: *.b.example\n",
	       "format: canonical text");
	sts_policy_clear(&p);
}

/* ---- mx patterns and matching (SPEC A5.38, A7.48) ---- */

static const struct {
	const char *p;
	int valid;
} vcases[] = {
    {"mx.example.com", 1},
    {"*.example.com", 1},
    {"MX.EXAMPLE.COM", 1},
    {"x", 1},
    {"*.x", 1},
    {"a-b.c-d", 1},
    {"xn--bcher-kva.x", 1},
    {"1.2.3.4", 1},
    {"a--b.x", 1},
    {"", 0},
    {"*", 0},
    {"*.", 0},
    {"*.*.x", 0},
    {"**.x", 0},
    {"a*.x", 0},
    {"*a.x", 0},
    {"x.*", 0},
    {"x.*.y", 0},
    {".x", 0},
    {"x.", 0},
    {"x..y", 0},
    {"-x.y", 0},
    {"x-.y", 0},
    {"x.y-", 0},
    {"x.-y", 0},
    {"x_y.z", 0},
    {"x y", 0},
    {"m\xc3\xb8x.example", 0},
    {"[1.2.3.4]", 0},
    {"x:25", 0},
    {"*..x", 0},
    {"* .x", 0},
};

static const struct {
	const char *pattern, *host;
	int want;
} mcases[] = {
    {"mail.example.com", "mail.example.com", 1},
    {"mail.example.com", "MAIL.Example.COM", 1},
    {"MAIL.example.com", "mail.example.com", 1},
    {"mail.example.com", "mail.example.com.", 1},
    {"mail.example.com", "mail.example.com..", 0},
    {"mail.example.com", "example.com", 0},
    {"mail.example.com", "xmail.example.com", 0},
    {"mail.example.com", "a.mail.example.com", 0},
    {"*.example.com", "mail.example.com", 1},
    {"*.example.com", "MAIL.EXAMPLE.COM.", 1},
    {"*.Example.COM", "mx1.example.com", 1},
    {"*.example.com", "example.com", 0},
    {"*.example.com", "a.b.example.com", 0},
    {"*.example.com", ".example.com", 0},
    {"*.example.com", "mailexample.com", 0},
    {"*.example.com", "mail.example.org", 0},
    {"*.example.com", "*.example.com", 1},
    {"*.", "a..", 0},
    {"*.", "a.", 0},
    {"", "", 0},
    {"x", "", 0},
    {"x", ".", 0},
    {"x", "x", 1},
};

static void
test_mx(void)
{
	size_t i;

	for (i = 0; i < sizeof(vcases) / sizeof(vcases[0]); i++)
		is_int(sts_mx_pattern_valid(vcases[i].p, strlen(vcases[i].p)),
		       vcases[i].valid, "mx valid %zu \"%s\"", i, vcases[i].p);
	for (i = 0; i < sizeof(mcases) / sizeof(mcases[0]); i++)
		is_int(sts_mx_match(mcases[i].pattern, mcases[i].host),
		       mcases[i].want, "mx match %zu \"%s\" ~ \"%s\"", i,
		       mcases[i].pattern, mcases[i].host);
	ok(!sts_mx_match(NULL, "x") && !sts_mx_match("x", NULL),
	   "mx match: NULL");
}

/* ---- TOFU (SPEC A6.40-A6.47) ---- */

#define T0  1700000000
#define DAY 86400

/* A cached row: id, mode, expires_at, next_retry (fetched a day ago). */
static struct cache_sts
row(const char *id, int mode, time_t expires, time_t retry)
{
	struct cache_sts s;

	memset(&s, 0, sizeof(s));
	snprintf(s.policy_id, sizeof(s.policy_id), "%s", id);
	s.mode = mode;
	s.mx = (char *)"mx.example";
	s.fetched_at = T0 - DAY;
	s.max_age = expires - s.fetched_at;
	s.expires_at = expires;
	s.next_retry = retry;
	return s;
}

struct plan_case {
	const char *name;
	int has_row;
	const char *row_id;
	time_t expires, retry;
	enum sts_disc disc;
	const char *id;
	unsigned flags;
	time_t now;
	int fetch;
	enum sts_apply apply;
};

static const struct plan_case plan_cases[] = {
    {"first fetch", 0, NULL, 0, 0, STS_DISC_RECORD, "a", 0, T0, 1,
     STS_APPLY_NONE},
    {"no record, no cache", 0, NULL, 0, 0, STS_DISC_NONE, NULL, 0, T0, 0,
     STS_APPLY_NONE},
    {"TXT SERVFAIL, no cache", 0, NULL, 0, 0, STS_DISC_FAILED, NULL, 0, T0, 0,
     STS_APPLY_NONE},
    {"same id, fresh", 1, "a", T0 + DAY, 0, STS_DISC_RECORD, "a", 0, T0, 0,
     STS_APPLY_POLICY},
    {"same id, fresh, refresh", 1, "a", T0 + DAY, 0, STS_DISC_RECORD, "a",
     STS_PLAN_REFRESH, T0, 1, STS_APPLY_POLICY},
    {"same id, expired", 1, "a", T0, 0, STS_DISC_RECORD, "a", 0, T0, 1,
     STS_APPLY_NONE},
    {"id is case-sensitive", 1, "a", T0 + DAY, 0, STS_DISC_RECORD, "A", 0, T0,
     1, STS_APPLY_POLICY},
    {"new id", 1, "a", T0 + DAY, 0, STS_DISC_RECORD, "b", 0, T0, 1,
     STS_APPLY_POLICY},
    {"new id, retry in 5 min", 1, "a", T0 + DAY, T0 + 300, STS_DISC_RECORD, "b",
     0, T0, 0, STS_APPLY_POLICY},
    {"new id, retry in 1 s", 1, "a", T0 + DAY, T0 + 1, STS_DISC_RECORD, "b", 0,
     T0, 0, STS_APPLY_POLICY},
    {"new id, retry due", 1, "a", T0 + DAY, T0, STS_DISC_RECORD, "b", 0, T0, 1,
     STS_APPLY_POLICY},
    {"new id, retry past", 1, "a", T0 + DAY, T0 - 1, STS_DISC_RECORD, "b", 0,
     T0, 1, STS_APPLY_POLICY},
    {"refresh, retry pending", 1, "a", T0 + DAY, T0 + 60, STS_DISC_RECORD, "a",
     STS_PLAN_REFRESH, T0, 0, STS_APPLY_POLICY},
    {"expired, retry pending", 1, "a", T0 - 1, T0 + 60, STS_DISC_RECORD, "a", 0,
     T0, 0, STS_APPLY_NONE},
    {"NXDOMAIN, valid cache", 1, "a", T0 + DAY, 0, STS_DISC_NONE, NULL, 0, T0,
     0, STS_APPLY_POLICY},
    {"SERVFAIL, valid cache", 1, "a", T0 + DAY, 0, STS_DISC_FAILED, NULL, 0, T0,
     0, STS_APPLY_POLICY},
    {"SERVFAIL, last second", 1, "a", T0 + 1, 0, STS_DISC_FAILED, NULL, 0, T0,
     0, STS_APPLY_POLICY},
    {"SERVFAIL, expired now", 1, "a", T0, 0, STS_DISC_FAILED, NULL, 0, T0, 0,
     STS_APPLY_NONE},
    {"NXDOMAIN, expired", 1, "a", T0 - DAY, 0, STS_DISC_NONE, NULL, 0, T0, 0,
     STS_APPLY_NONE},
    {"record without id", 1, "a", T0 + DAY, 0, STS_DISC_RECORD, "", 0, T0, 0,
     STS_APPLY_POLICY},
    {"record with NULL id", 0, NULL, 0, 0, STS_DISC_RECORD, NULL, 0, T0, 0,
     STS_APPLY_NONE},
    /* Clock stepped back a week: the stored expiry still holds, and a
     * retry time a week ahead does not block fetches for a week. */
    {"clock back, same id", 1, "a", T0 + DAY, 0, STS_DISC_RECORD, "a", 0,
     T0 - 7 * DAY, 0, STS_APPLY_POLICY},
    {"clock back, retry far ahead", 1, "a", T0 + DAY, T0 + 300, STS_DISC_RECORD,
     "b", 0, T0 - 7 * DAY, 1, STS_APPLY_POLICY},
    {"clock forward past expiry", 1, "a", T0 + DAY, 0, STS_DISC_FAILED, NULL, 0,
     T0 + DAY + 1, 0, STS_APPLY_NONE},
};

static void
test_plan(void)
{
	struct cache_sts r;
	struct sts_plan pl;
	size_t i;

	for (i = 0; i < sizeof(plan_cases) / sizeof(plan_cases[0]); i++) {
		const struct plan_case *c = &plan_cases[i];

		if (c->has_row)
			r = row(c->row_id, CACHE_STS_ENFORCE, c->expires,
				c->retry);
		sts_tofu_plan(c->has_row ? &r : NULL, c->disc, c->id, c->flags,
			      c->now, &pl);
		is_int(pl.fetch, c->fetch, "plan \"%s\": fetch (%s)", c->name,
		       pl.why);
		is_int(pl.apply, c->apply, "plan \"%s\": apply", c->name);
		ok(pl.why != NULL && pl.why[0] != '\0', "plan \"%s\": why",
		   c->name);
		if (c->fetch)
			is_str(pl.id, c->id, "plan \"%s\": id", c->name);
		else
			is_str(pl.id, "", "plan \"%s\": no id", c->name);
	}
}

static struct sts_policy
pol(int mode, long long max_age, const char *mx)
{
	struct sts_policy p;

	memset(&p, 0, sizeof(p));
	p.mode = mode;
	p.max_age = max_age;
	p.mx = (char *)mx;
	return p;
}

struct merge_case {
	const char *name;
	int has_row;
	time_t expires;
	int fetched; /* 0: the fetch failed */
	int mode;
	long long max_age;
	time_t now;
	/* want */
	int store;
	enum sts_apply apply;
	const char *id;
	int want_mode;
	time_t want_expires, want_retry;
	const char *want_mx, *want_error;
};

static const struct merge_case merge_cases[] = {
    {"first fetch", 0, 0, 1, E, DAY, T0, 1, STS_APPLY_POLICY, "b", E, T0 + DAY,
     0, "new.example", ""},
    {"new id, good fetch", 1, T0 + 7 * DAY, 1, E, 2 * DAY, T0, 1,
     STS_APPLY_POLICY, "b", E, T0 + 2 * DAY, 0, "new.example", ""},
    {"shorter max_age at once", 1, T0 + 7 * DAY, 1, E, 60, T0, 1,
     STS_APPLY_POLICY, "b", E, T0 + 60, 0, "new.example", ""},
    {"mode none replaces enforce", 1, T0 + 7 * DAY, 1, N, DAY, T0, 1,
     STS_APPLY_POLICY, "b", N, T0 + DAY, 0, "", ""},
    {"testing replaces enforce", 1, T0 + 7 * DAY, 1, T, DAY, T0, 1,
     STS_APPLY_POLICY, "b", T, T0 + DAY, 0, "new.example", ""},
    {"max_age 0 applies once", 1, T0 + 7 * DAY, 1, E, 0, T0, 1,
     STS_APPLY_POLICY, "b", E, T0, 0, "new.example", ""},
    {"good fetch after expiry", 1, T0 - DAY, 1, E, DAY, T0, 1, STS_APPLY_POLICY,
     "b", E, T0 + DAY, 0, "new.example", ""},
    {"failed fetch keeps old", 1, T0 + 7 * DAY, 0, 0, 0, T0, 1,
     STS_APPLY_POLICY, "a", E, T0 + 7 * DAY, T0 + 300, "mx.example",
     "HTTP 404"},
    {"failed fetch, expired old", 1, T0 - 1, 0, 0, 0, T0, 1, STS_APPLY_NONE,
     "a", E, T0 - 1, T0 + 300, "mx.example", "HTTP 404"},
    {"failed fetch, no row", 0, 0, 0, 0, 0, T0, 0, STS_APPLY_NONE, "", 0, 0, 0,
     NULL, ""},
    {"clock back, failed fetch", 1, T0 + DAY, 0, 0, 0, T0 - 7 * DAY, 1,
     STS_APPLY_POLICY, "a", E, T0 + DAY, T0 - 7 * DAY + 300, "mx.example",
     "HTTP 404"},
    {"clock back, good fetch", 1, T0 + DAY, 1, E, 60, T0 - 7 * DAY, 1,
     STS_APPLY_POLICY, "b", E, T0 - 7 * DAY + 60, 0, "new.example", ""},
};

static void
test_merge(void)
{
	struct cache_sts r;
	struct sts_policy p;
	struct sts_merge m;
	size_t i;
	enum sts_perr e;

	for (i = 0; i < sizeof(merge_cases) / sizeof(merge_cases[0]); i++) {
		const struct merge_case *c = &merge_cases[i];

		r = row("a", CACHE_STS_ENFORCE, c->expires, 0);
		p = pol(c->mode, c->max_age, c->mode == N ? "" : "new.example");
		e = sts_tofu_merge(c->has_row ? &r : NULL, "b",
				   c->fetched ? &p : NULL, "HTTP 404", c->now,
				   &m);
		is_int(e, STSP_OK, "merge \"%s\": status", c->name);
		is_int(m.store, c->store, "merge \"%s\": store (%s)", c->name,
		       m.why);
		is_int(m.apply, c->apply, "merge \"%s\": apply", c->name);
		is_str(m.row.policy_id, c->id, "merge \"%s\": id", c->name);
		is_int(m.row.mode, c->want_mode, "merge \"%s\": mode", c->name);
		is_int(m.row.expires_at, c->want_expires,
		       "merge \"%s\": expires_at", c->name);
		is_int(m.row.next_retry, c->want_retry,
		       "merge \"%s\": next_retry", c->name);
		if (c->want_mx == NULL)
			ok(m.row.mx == NULL, "merge \"%s\": no mx", c->name);
		else
			is_str(m.row.mx, c->want_mx, "merge \"%s\": mx",
			       c->name);
		ok(m.row.mx == NULL || m.row.mx != r.mx,
		   "merge \"%s\": mx is a copy", c->name);
		is_str(m.row.last_error, c->want_error,
		       "merge \"%s\": last_error", c->name);
		if (c->fetched)
			is_int(m.row.fetched_at, c->now,
			       "merge \"%s\": fetched_at", c->name);
		free(m.row.mx);
	}

	/* The error text is sanitised and bounded. */
	{
		char long_err[600];

		memset(long_err, 'e', sizeof(long_err) - 1);
		long_err[sizeof(long_err) - 1] = '\0';
		long_err[3] = '\n';
		long_err[4] = '\x1b';
		r = row("a", CACHE_STS_ENFORCE, T0 + DAY, 0);
		sts_tofu_merge(&r, "b", NULL, long_err, T0, &m);
		is_int(strlen(m.row.last_error), sizeof(m.row.last_error) - 1,
		       "merge: long error truncated");
		ok(strncmp(m.row.last_error, "eee??eee", 8) == 0,
		   "merge: control bytes replaced");
		free(m.row.mx);
		sts_tofu_merge(&r, "b", NULL, NULL, T0, &m);
		is_str(m.row.last_error, "fetch failed", "merge: NULL error");
		free(m.row.mx);
	}
	/* Bad arguments. */
	p = pol(E, DAY, "x.example");
	is_int(sts_tofu_merge(NULL, "bad-id", &p, NULL, T0, &m), STSP_EINVAL,
	       "merge: bad id");
	is_int(sts_tofu_merge(NULL, NULL, &p, NULL, T0, &m), STSP_EINVAL,
	       "merge: NULL id");
	is_int(sts_tofu_merge(NULL, "123456789012345678901234567890123", &p,
			      NULL, T0, &m),
	       STSP_EINVAL, "merge: id too long");
	p.max_age = STS_MAX_AGE_MAX + 1;
	is_int(sts_tofu_merge(NULL, "b", &p, NULL, T0, &m), STSP_EINVAL,
	       "merge: max_age over the cap");
	p = pol(7, DAY, "x.example");
	is_int(sts_tofu_merge(NULL, "b", &p, NULL, T0, &m), STSP_EINVAL,
	       "merge: bad mode");
	ok(m.row.mx == NULL && m.store == 0, "merge: nothing on error");
}

/*
 * A whole story over time (RFC 8461 §3.3, SPEC A6): plan and merge chained
 * like the daemon does, the cache row carried from step to step.
 */
struct step {
	const char *name;
	time_t now;
	enum sts_disc disc;
	const char *id;
	int fetch_ok; /* when the plan fetches: 1 good, 0 failing */
	long long max_age;
	int mode;
	/* want */
	int fetched;
	enum sts_apply apply;
	int mode_applied; /* when apply is POLICY */
};

static const struct step story[] = {
    {"first fetch", T0, STS_DISC_RECORD, "v1", 1, DAY, E, 1, STS_APPLY_POLICY,
     E},
    {"same id a minute later", T0 + 60, STS_DISC_RECORD, "v1", 1, DAY, E, 0,
     STS_APPLY_POLICY, E},
    {"DNS gone", T0 + 120, STS_DISC_FAILED, NULL, 0, 0, 0, 0, STS_APPLY_POLICY,
     E},
    {"TXT removed", T0 + 180, STS_DISC_NONE, NULL, 0, 0, 0, 0, STS_APPLY_POLICY,
     E},
    {"new id, fetch fails", T0 + 240, STS_DISC_RECORD, "v2", 0, 0, 0, 1,
     STS_APPLY_POLICY, E},
    {"new id, 4 min later", T0 + 480, STS_DISC_RECORD, "v2", 1, DAY, N, 0,
     STS_APPLY_POLICY, E},
    {"new id, 5 min later", T0 + 540, STS_DISC_RECORD, "v2", 1, 600, T, 1,
     STS_APPLY_POLICY, T},
    {"shorter max_age holds", T0 + 1139, STS_DISC_FAILED, NULL, 0, 0, 0, 0,
     STS_APPLY_POLICY, T},
    {"shorter max_age ends", T0 + 1140, STS_DISC_FAILED, NULL, 0, 0, 0, 0,
     STS_APPLY_NONE, 0},
    {"refetch, mode none", T0 + 1200, STS_DISC_RECORD, "v3", 1, DAY, N, 1,
     STS_APPLY_POLICY, N},
    {"clock back an hour", T0 - 3600, STS_DISC_RECORD, "v3", 1, DAY, N, 0,
     STS_APPLY_POLICY, N},
    {"expiry still at T0+1200+DAY", T0 + 1200 + DAY, STS_DISC_FAILED, NULL, 0,
     0, 0, 0, STS_APPLY_NONE, 0},
};

static void
test_story(void)
{
	struct cache_sts cur;
	struct sts_policy p;
	struct sts_plan pl;
	struct sts_merge m;
	int have = 0, mode;
	size_t i;
	enum sts_apply apply;

	memset(&cur, 0, sizeof(cur));
	for (i = 0; i < sizeof(story) / sizeof(story[0]); i++) {
		const struct step *s = &story[i];

		sts_tofu_plan(have ? &cur : NULL, s->disc, s->id, 0, s->now,
			      &pl);
		is_int(pl.fetch, s->fetched, "story \"%s\": fetch (%s)",
		       s->name, pl.why);
		apply = pl.apply;
		mode = cur.mode;
		if (pl.fetch) {
			p = pol(s->mode, s->max_age,
				s->mode == N ? "" : "mx.example");
			sts_tofu_merge(have ? &cur : NULL, pl.id,
				       s->fetch_ok ? &p : NULL, "timeout",
				       s->now, &m);
			if (m.store) {
				free(cur.mx);
				cur = m.row;
				have = 1;
			} else {
				free(m.row.mx);
			}
			apply = m.apply;
			mode = m.row.mode;
		}
		is_int(apply, s->apply, "story \"%s\": apply", s->name);
		if (s->apply == STS_APPLY_POLICY)
			is_int(mode, s->mode_applied, "story \"%s\": mode",
			       s->name);
	}
	free(cur.mx);
}

/* The certificate's names in the fetch diagnosis: whole names only, and
 * a count of what did not fit (it used to cut a name in the middle). */
static void
test_join_names(void)
{
	static const char *const two[] = {"mta-sts.example.com",
					  "mta-sts.example.net"};
	const char *many[40];
	char buf[64], big[512], name[40][24];
	size_t i, len;

	sts_join_names(buf, sizeof(buf), two, 2);
	is_str(buf, "mta-sts.example.com mta-sts.example.net", "two names");
	sts_join_names(buf, sizeof(buf), two, 0);
	is_str(buf, "", "no names");
	sts_join_names(buf, 20, two, 2);
	is_str(buf, "(2 more)", "not even the first fits");
	sts_join_names(buf, 35, two, 2);
	is_str(buf, "mta-sts.example.com (1 more)", "the second does not fit");
	for (i = 0; i < 40; i++) {
		snprintf(name[i], sizeof(name[i]), "mta-sts.host%02zu.example",
			 i);
		many[i] = name[i];
	}
	sts_join_names(big, sizeof(big), many, 40);
	len = strlen(big);
	ok(len < sizeof(big), "40 names fit the buffer (%zu bytes)", len);
	ok(strstr(big, " more)") != NULL && strstr(big, ".example (") != NULL,
	   "ends after a whole name with the count: ...%s",
	   big + (len > 40 ? len - 40 : 0));
	is_int(
	    strncmp(big, "mta-sts.host00.example mta-sts.host01.example", 45),
	    0, "in order");
}

int
main(void)
{
	test_join_names();
	test_txt();
	test_select();
	test_policy();
	test_policy_limits();
	test_format();
	test_mx();
	test_plan();
	test_merge();
	test_story();
	is_str(sts_policy_strerror(STSP_ENOPOLICY), "no policy", "strerror");
	return tap_done();
}
