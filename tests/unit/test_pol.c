/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Unit tests for the policy decision (SPEC B as far as the foundation
 * goes): static answers, key normalisation outcomes, DANE before MTA-STS,
 * expiry against the test clock, testing mode, answer formatting.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"
#include "util/cfg.h"
#include "resolver/pol.h"
#include "tests/unit/tap.h"
#include "util/ev.h"

static const char config[] = "[sts]\n"
			     "testing = %s\n"
			     "smarthost_policy = %s\n"
			     "[dane]\n"
			     "mode = %s\n"
			     "[policy]\n"
			     "example.com = dane-only\n"
			     "example.org = none\n"
			     "example.net = secure match=mx.example.net "
			     "servername=hostname\n";

static struct cfg *
make_cfg(const char *testing, const char *smarthost, const char *dane)
{
	char buf[1024], err[256];
	struct cfg *cfg;
	int n = snprintf(buf, sizeof(buf), config, testing, smarthost, dane);

	cfg = cfg_parse("test.conf", buf, (size_t)n, err, sizeof(err));
	if (cfg == NULL)
		printf("# cfg_parse: %s\n", err);
	return cfg;
}

static void
put_sts(struct cache *c, const char *domain, int mode, const char *mx,
	time_t fetched, long long max_age)
{
	struct cache_sts sts;

	memset(&sts, 0, sizeof(sts));
	strcpy(sts.policy_id, "abc");
	sts.mode = mode;
	sts.mx = (char *)mx;
	sts.max_age = max_age;
	sts.fetched_at = fetched;
	sts.expires_at = fetched + max_age;
	if (cache_put_sts(c, domain, &sts) != CACHE_OK)
		printf("# cache_put_sts %s failed\n", domain);
}

static void
put_dane(struct cache *c, const char *domain, int kind, time_t now, long ttl)
{
	struct cache_dane dn;

	memset(&dn, 0, sizeof(dn));
	dn.kind = kind;
	snprintf(dn.detail, sizeof(dn.detail), "unit test");
	dn.checked_at = now;
	dn.expires_at = now + ttl;
	if (cache_put_dane(c, domain, &dn) != CACHE_OK)
		printf("# cache_put_dane %s failed\n", domain);
}

struct tcase {
	const char *key;
	const char *want; /* the socketmap reply */
	const char *source;
};

static void
run(struct pol *p, const struct tcase *t, size_t n, const char *what)
{
	size_t i;

	for (i = 0; i < n; i++) {
		struct pol_answer ans;
		char out[LIM_REPLY_MAX + 1];

		pol_lookup(p, t[i].key, strlen(t[i].key), &ans, NULL, NULL,
			   NULL);
		pol_format(&ans, out, sizeof(out));
		is_str(out, t[i].want, "%s: answer for %s", what, t[i].key);
		is_str(pol_source_name(ans.source), t[i].source,
		       "%s: %s source %s", what, t[i].key, t[i].source);
	}
}

int
main(void)
{
	char err[256];
	struct cfg *cfg = make_cfg("report", "yes", "strict");
	struct cfg *cfg2 = make_cfg("enforce", "no", "opportunistic");
	struct cache *c = cache_open(":memory:", 100, err, sizeof(err));
	struct pol *p;
	time_t now;

	if (!ok(cfg && cfg2 && c, "setup")) {
		printf("# %s\n", err);
		return tap_done();
	}
	ev_set_offset(0);
	now = ev_now();
	p = pol_new(cfg, c, NULL, NULL);

	put_sts(c, "sts.example", CACHE_STS_ENFORCE,
		"mx1.sts.example\n*.sts.example\nMX1.STS.example", now, 3600);
	put_sts(c, "testing.example", CACHE_STS_TESTING, "mx.testing.example",
		now, 3600);
	put_sts(c, "none.example", CACHE_STS_NONE, "", now, 3600);
	put_sts(c, "old.example", CACHE_STS_ENFORCE, "mx.old.example",
		now - 7200, 3600);
	put_sts(c, "both.example", CACHE_STS_ENFORCE, "mx.both.example", now,
		3600);
	put_dane(c, "both.example", CACHE_DANE_DANE, now, 600);
	put_dane(c, "dane.example", CACHE_DANE_ONLY, now, 600);
	put_dane(c, "nodane.example", CACHE_DANE_NONE, now, 600);
	put_sts(c, "nodane.example", CACHE_STS_ENFORCE, "mx.nodane.example",
		now, 3600);
	put_sts(c, "bad.example", CACHE_STS_ENFORCE, "mx bad\n", now, 3600);

	{
		static const struct tcase t[] = {
		    {"example.com", "OK dane-only", "static"},
		    {"EXAMPLE.com.", "OK dane-only", "static"},
		    {"[example.com]:25", "OK dane-only", "static"},
		    {"example.org", "NOTFOUND ", "static"},
		    {"example.net",
		     "OK secure match=mx.example.net servername=hostname",
		     "static"},
		    {".example.com", "NOTFOUND ", "key"},
		    {"[192.0.2.1]", "NOTFOUND ", "key"},
		    {"", "NOTFOUND ", "key"},
		    {"unknown.example", "NOTFOUND ", "none"},
		    /* SPEC B notation: *.x → .x, lowercase, de-duplicated */
		    {"sts.example",
		     "OK secure match=mx1.sts.example:.sts.example "
		     "servername=hostname",
		     "sts"},
		    {"testing.example", "NOTFOUND ", "sts"},
		    {"none.example", "NOTFOUND ", "sts"},
		    {"old.example", "NOTFOUND ", "none"},
		    /* SPEC F4: DANE wins */
		    {"both.example", "OK dane", "dane"},
		    {"dane.example", "OK dane-only", "dane"},
		    {"nodane.example",
		     "OK secure match=mx.nodane.example servername=hostname",
		     "sts"},
		    /* An enforce policy we cannot express is not "none". */
		    {"bad.example", "TEMP unusable mta-sts mx patterns",
		     "error"},
		};
		run(p, t, sizeof(t) / sizeof(t[0]), "defaults");
	}

	/* Opportunistic DANE, testing as enforce, no smart-host policy. */
	pol_reconfigure(p, cfg2);
	{
		static const struct tcase t[] = {
		    {"dane.example", "OK dane", "dane"},
		    {"testing.example",
		     "OK secure match=mx.testing.example servername=hostname",
		     "sts"},
		    {"[example.com]", "NOTFOUND ", "key"},
		    {"example.com", "OK dane-only", "static"},
		};
		run(p, t, sizeof(t) / sizeof(t[0]), "reconfigured");
	}
	pol_reconfigure(p, cfg);

	/* [server] protocols: appended to dane-only, dane and secure
	 * answers (DANE, MTA-STS and [policy] alike), not to NOTFOUND or
	 * TEMP, nor to a [policy] answer naming its own protocols. */
	{
		static const char pc[] =
		    "[server]\nprotocols = >=TLSv1.2\n"
		    "[policy]\nexample.com = dane-only\n"
		    "own.example = secure protocols=>=TLSv1.3\n"
		    "may.example = may\n";
		static const struct tcase t[] = {
		    {"dane.example", "OK dane-only protocols=>=TLSv1.2",
		     "dane"},
		    {"both.example", "OK dane protocols=>=TLSv1.2", "dane"},
		    {"sts.example",
		     "OK secure match=mx1.sts.example:.sts.example "
		     "servername=hostname protocols=>=TLSv1.2",
		     "sts"},
		    {"example.com", "OK dane-only protocols=>=TLSv1.2",
		     "static"},
		    {"own.example", "OK secure protocols=>=TLSv1.3", "static"},
		    {"may.example", "OK may", "static"},
		    {"testing.example", "NOTFOUND ", "sts"},
		    {"bad.example", "TEMP unusable mta-sts mx patterns",
		     "error"},
		};
		struct cfg *cfg3 =
		    cfg_parse("p.conf", pc, sizeof(pc) - 1, err, sizeof(err));

		if (ok(cfg3 != NULL, "config with [server] protocols")) {
			pol_reconfigure(p, cfg3);
			run(p, t, sizeof(t) / sizeof(t[0]), "protocols");
			pol_reconfigure(p, cfg);
			cfg_free(cfg3);
		} else
			printf("# %s\n", err);
	}

	/* The test clock: DANE expires first, then MTA-STS (SPEC A6.40).
	 * Past its TTL a verdict answers for a grace while it is looked
	 * up again (D7), then no more. */
	ev_set_offset(601);
	{
		static const struct tcase t[] = {
		    {"both.example", "OK dane", "dane"},
		    {"dane.example", "OK dane-only", "dane"},
		};
		run(p, t, sizeof(t) / sizeof(t[0]), "after 601 s (grace)");
	}
	ev_set_offset(1501);
	{
		static const struct tcase t[] = {
		    {"both.example",
		     "OK secure match=mx.both.example servername=hostname",
		     "sts"},
		    {"dane.example", "NOTFOUND ", "none"},
		};
		run(p, t, sizeof(t) / sizeof(t[0]), "after 1501 s");
	}
	ev_set_offset(3601);
	{
		static const struct tcase t[] = {
		    {"sts.example", "NOTFOUND ", "none"},
		};
		run(p, t, sizeof(t) / sizeof(t[0]), "after 3601 s");
	}
	ev_set_offset(0);

	/* Runtime pins (issue 12): after [policy], before everything
	 * learned, and they do not expire. */
	{
		struct cache_pin pn = {0, (char *)"encrypt", now};
		struct cache_pin ex = {1, NULL, now};
		static const struct tcase t[] = {
		    /* [policy] wins over a pin and over an exemption. */
		    {"example.com", "OK dane-only", "static"},
		    {"example.org", "NOTFOUND ", "static"},
		    /* A pin wins over a DANE verdict and MTA-STS. */
		    {"both.example", "OK encrypt", "pin"},
		    {"dane.example", "NOTFOUND ", "pin"},
		    {"sts.example", "OK encrypt", "pin"},
		    /* Nothing learned at all: the pin answers alone. */
		    {"new.example", "OK secure match=.new.example", "pin"},
		};
		struct cache_pin np = {0, (char *)"secure match=.new.example",
				       now};
		const struct cache_entry *e = NULL;
		struct pol_answer ans;
		char data[POL_DATA_MAX];

		cache_put_pin(c, "example.com", &pn);
		cache_put_pin(c, "example.org", &pn);
		cache_put_pin(c, "both.example", &pn);
		cache_put_pin(c, "dane.example", &ex);
		cache_put_pin(c, "sts.example", &pn);
		cache_put_pin(c, "new.example", &np);
		run(p, t, sizeof(t) / sizeof(t[0]), "pinned");

		cache_lookup(c, "both.example", &e);
		pol_decide(cfg, "both.example", e, now, 0, &ans, data,
			   sizeof(data));
		is_int(ans.rule, POL_RULE_PIN, "pin: rule pin");
		is_str(pol_rule_name(ans.rule), "pin", "pin: rule name");
		cache_lookup(c, "dane.example", &e);
		pol_decide(cfg, "dane.example", e, now, POL_IN_DANE_FAILED,
			   &ans, data, sizeof(data));
		is_int(ans.rule, POL_RULE_EXEMPT,
		       "exempt wins over a DANE failure");
		cache_lookup(c, "example.com", &e);
		pol_decide(cfg, "example.com", e, now, 0, &ans, data,
			   sizeof(data));
		is_int(ans.rule, POL_RULE_STATIC, "[policy] wins over a pin");
		ev_set_offset(100000);
		{
			static const struct tcase t2[] = {
			    {"both.example", "OK encrypt", "pin"},
			};
			run(p, t2, 1, "pinned, long after every TTL");
		}
		ev_set_offset(0);
		cache_unpin(c, "both.example");
		cache_unpin(c, "dane.example");
		{
			static const struct tcase t3[] = {
			    {"both.example", "OK dane", "dane"},
			    {"dane.example", "OK dane-only", "dane"},
			};
			run(p, t3, 2, "unpinned");
		}
	}

	/* Formatting limits (SPEC A1.3). */
	{
		struct pol_answer ans;
		char small[8], big[LIM_REPLY_MAX + 16];
		char *huge = malloc(LIM_REPLY_MAX + 1);

		memset(&ans, 0, sizeof(ans));
		ans.kind = POL_OK;
		ans.data = "dane-only";
		is_int(pol_format(&ans, big, sizeof(big)), 12,
		       "format OK dane-only length");
		is_int(pol_format(&ans, small, sizeof(small)), 0,
		       "format into a too-small buffer gives nothing");
		memset(huge, 'a', LIM_REPLY_MAX);
		huge[LIM_REPLY_MAX] = '\0';
		ans.data = huge;
		pol_format(&ans, big, sizeof(big));
		is_str(big, "TEMP reply too long",
		       "reply over 100000 bytes becomes TEMP");
		ans.kind = POL_PERM;
		ans.data = "unknown socketmap name";
		pol_format(&ans, big, sizeof(big));
		is_str(big, "PERM unknown socketmap name", "format PERM");
		free(huge);
	}

	pol_free(p);
	cache_close(c);
	cfg_free(cfg);
	cfg_free(cfg2);
	return tap_done();
}
