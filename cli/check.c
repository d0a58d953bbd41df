/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * tlspolicy check DOMAIN: the daemon's DANE decision, made live and
 * explained (issue 3): the MX set and its DNSSEC status, each host's
 * addresses and TLSA usability, the verdict with the SPEC rule that
 * decided it, what is stored, and whether the local Postfix can act on a
 * dane answer at all.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "cache/cache.h"
#include "util/cfg.h"
#include "cli/check.h"
#include "util/postconf.h"
#include "resolver/dane.h"
#include "resolver/pol.h"
#include "net/dns.h"
#include "util/dom.h"
#include "net/https.h"
#include "resolver/sts.h"
#include "util/ev.h"
#include "util/limits.h"

struct chk {
	struct event_base *base;
	int json;
	int done;
	enum dane_kind kind;
	uint32_t dane_ttl;
	char dane_why[256];
	int have_sts;	      /* a valid policy was fetched just now */
	struct cache_sts sts; /* that policy (mx owned) */
	json_t *out;	      /* the JSON report (also built in text mode) */
};

static void
dane_done(const struct dane_result *r, void *arg)
{
	struct chk *c = arg;
	json_t *hosts = json_array();
	size_t i;

	for (i = 0; i < r->nhosts; i++) {
		const struct dane_host *h = &r->hosts[i];

		json_array_append_new(
		    hosts, json_pack("{s:i,s:s,s:s,s:s,s:i,s:i,s:s?}",
				     "preference", (int)h->pref, "host",
				     h->name, "tlsa_base", h->tlsa_base,
				     "state", dane_host_state_name(h->state),
				     "usable", (int)h->usable, "unusable",
				     (int)h->unusable, "why", h->why));
	}
	json_object_set_new(c->out, "mx_dnssec",
			    json_string(r->kind == DANE_FAILED && !r->nhosts
					    ? "failed"
					: r->mx_secure ? "secure"
						       : "insecure"));
	json_object_set_new(c->out, "implicit_mx", json_boolean(r->implicit));
	json_object_set_new(c->out, "hosts", hosts);
	json_object_set_new(c->out, "verdict",
			    json_string(dane_kind_name(r->kind)));
	json_object_set_new(c->out, "rule",
			    json_string(dane_rule_name(r->rule)));
	json_object_set_new(c->out, "why", json_string(r->why));
	json_object_set_new(c->out, "ttl", json_integer(r->ttl));
	c->kind = r->kind;
	c->dane_ttl = r->ttl;
	snprintf(c->dane_why, sizeof(c->dane_why), "%s", r->why);
	c->done = 1;
	event_base_loopexit(c->base, NULL);
}

/*
 * Show what is stored for DOMAIN; copy a stored MTA-STS policy into
 * *STORED (mx owned) and set *HAVE, for the decision: the daemon keeps
 * applying it when a fetch fails (TOFU).
 */
static void
add_store(json_t *out, const struct cfg *cfg, const char *domain,
	  struct cache_sts *stored, int *have)
{
	const struct cache_entry *e = NULL;
	struct cache *cache;
	char err[256];

	if (access(cfg->cache_path, F_OK) != 0) {
		json_object_set_new(out, "store", json_string("no store"));
		return;
	}
	if ((cache = cache_open(cfg->cache_path, 16, err, sizeof(err))) ==
	    NULL) {
		json_object_set_new(out, "store", json_string(err));
		return;
	}
	if (cache_lookup(cache, domain, &e) == CACHE_OK && e != NULL) {
		json_t *st = json_object();

		if (e->has_dane)
			json_object_set_new(
			    st, "dane",
			    json_pack("{s:s,s:I,s:s}", "verdict",
				      cache_dane_kind_name(e->dane.kind),
				      "expires", (json_int_t)e->dane.expires_at,
				      "detail", e->dane.detail));
		if (e->has_sts &&
		    (stored->mx = strdup(e->sts.mx ? e->sts.mx : "")) != NULL) {
			char *mx = stored->mx;

			*stored = e->sts;
			stored->mx = mx;
			*have = 1;
		}
		if (e->has_sts)
			json_object_set_new(
			    st, "sts",
			    json_pack("{s:s,s:s,s:I,s:I,s:I}", "mode",
				      cache_sts_mode_name(e->sts.mode), "id",
				      e->sts.policy_id, "expires",
				      (json_int_t)e->sts.expires_at, "fetched",
				      (json_int_t)e->sts.fetched_at,
				      "refresh_due",
				      (json_int_t)(e->sts.fetched_at +
						   cfg->refresh)));
		json_object_set_new(out, "store", st);
	} else
		json_object_set_new(out, "store",
				    json_string("nothing stored"));
	cache_close(cache);
}

static void
print_sts(const json_t *m)
{
	const json_t *f = json_object_get(m, "fetch"),
		     *p = json_object_get(m, "policy");
	const char *s;

	if (m == NULL)
		return;
	printf("MTA-STS:  TXT %s",
	       json_string_value(json_object_get(m, "discovery")));
	if ((s = json_string_value(json_object_get(m, "id"))) != NULL)
		printf(", id %s", s);
	printf("\n");
	if (f != NULL) {
		printf("  fetch:  status %lld, %s, %lld bytes, %lld ms\n",
		       json_integer_value(json_object_get(f, "status")),
		       json_string_value(json_object_get(f, "content_type")),
		       json_integer_value(json_object_get(f, "size")),
		       json_integer_value(json_object_get(f, "ms")));
		printf("  cert:   %s\n", json_string_value(json_object_get(
					     f, "certificate_names")));
	}
	if (p != NULL) {
		char mx[LIM_ANSWER_MAX];
		const char *pm = json_string_value(json_object_get(p, "mx"));
		size_t i;

		snprintf(mx, sizeof(mx), "%s", pm ? pm : "");
		for (i = 0; mx[i]; i++)
			if (mx[i] == '\n')
				mx[i] = ' ';
		printf("  policy: mode %s, max_age %lld, mx %s\n",
		       json_string_value(json_object_get(p, "mode")),
		       json_integer_value(json_object_get(p, "max_age")), mx);
	}
	if ((s = json_string_value(json_object_get(m, "error"))) != NULL)
		printf("  error:  %s\n", s);
}

static void
print_text(const json_t *o)
{
	const json_t *hosts = json_object_get(o, "hosts"), *h, *st;
	size_t i;
	const char *s;

	printf("domain:   %s\n",
	       json_string_value(json_object_get(o, "domain")));
	printf("MX:       %s%s\n",
	       json_string_value(json_object_get(o, "mx_dnssec")),
	       json_is_true(json_object_get(o, "implicit_mx"))
		   ? " (no MX: the domain itself)"
		   : "");
	json_array_foreach(hosts, i, h)
	{
		printf("  %3lld %s: %s",
		       json_integer_value(json_object_get(h, "preference")),
		       json_string_value(json_object_get(h, "host")),
		       json_string_value(json_object_get(h, "state")));
		if (json_integer_value(json_object_get(h, "usable")) ||
		    json_integer_value(json_object_get(h, "unusable")))
			printf(
			    ", TLSA at _25._tcp.%s: %lld usable, %lld "
			    "unusable",
			    json_string_value(json_object_get(h, "tlsa_base")),
			    json_integer_value(json_object_get(h, "usable")),
			    json_integer_value(json_object_get(h, "unusable")));
		if ((s = json_string_value(json_object_get(h, "why"))) != NULL)
			printf(" (%s)", s);
		printf("\n");
	}
	printf("DANE:     %s: %s\n",
	       json_string_value(json_object_get(o, "verdict")),
	       json_string_value(json_object_get(o, "why")));
	printf("answer:   %s\n",
	       json_string_value(json_object_get(o, "answer")));
	printf("because:  %s\n",
	       json_string_value(json_object_get(o, "reason")));
	st = json_object_get(o, "store");
	if (json_is_string(st))
		printf("store:    %s\n", json_string_value(st));
	else {
		const json_t *dn = json_object_get(st, "dane"),
			     *sts = json_object_get(st, "sts");
		char tb[32];
		time_t t;

		if (dn != NULL) {
			t = (time_t)json_integer_value(
			    json_object_get(dn, "expires"));
			strftime(tb, sizeof(tb), "%Y-%m-%d %H:%M:%S UTC",
				 gmtime(&t));
			printf(
			    "store:    DANE %s until %s\n",
			    json_string_value(json_object_get(dn, "verdict")),
			    tb);
		}
		if (sts != NULL) {
			t = (time_t)json_integer_value(
			    json_object_get(sts, "expires"));
			strftime(tb, sizeof(tb), "%Y-%m-%d %H:%M:%S UTC",
				 gmtime(&t));
			printf("store:    MTA-STS %s (id %s) until %s",
			       json_string_value(json_object_get(sts, "mode")),
			       json_string_value(json_object_get(sts, "id")),
			       tb);
			t = (time_t)json_integer_value(
			    json_object_get(sts, "refresh_due"));
			strftime(tb, sizeof(tb), "%Y-%m-%d %H:%M:%S UTC",
				 gmtime(&t));
			printf(", refreshed from %s\n", tb);
		}
	}
	print_sts(json_object_get(o, "mta_sts"));
	if ((s = json_string_value(json_object_get(o, "warning"))) != NULL)
		printf("warning:  %s\n", s);
}

static void
sts_done(const struct sts_result *r, void *arg)
{
	struct chk *c = arg;
	json_t *o = json_object();

	json_object_set_new(o, "discovery",
			    json_string(r->disc == STS_DISC_RECORD ? "record"
					: r->disc == STS_DISC_NONE ? "none"
								   : "failed"));
	if (r->disc == STS_DISC_RECORD)
		json_object_set_new(o, "id", json_string(r->id));
	if (r->fetched)
		json_object_set_new(
		    o, "fetch",
		    json_pack("{s:I,s:s,s:s,s:I,s:I}", "status",
			      (json_int_t)r->status, "content_type",
			      r->content_type, "certificate_names",
			      r->cert_names, "size", (json_int_t)r->size, "ms",
			      (json_int_t)r->elapsed_ms));
	if (r->error[0] != '\0')
		json_object_set_new(o, "error", json_string(r->error));
	if (r->row != NULL && r->row->last_error[0] == '\0' && r->fetched &&
	    (c->sts.mx = strdup(r->row->mx ? r->row->mx : "")) != NULL) {
		char *mx = c->sts.mx;

		c->sts = *r->row;
		c->sts.mx = mx;
		c->have_sts = 1;
	}
	if (r->row != NULL && r->row->last_error[0] == '\0' && r->fetched)
		json_object_set_new(
		    o, "policy",
		    json_pack("{s:s,s:s,s:I}", "mode",
			      cache_sts_mode_name(r->row->mode), "mx",
			      r->row->mx ? r->row->mx : "", "max_age",
			      (json_int_t)r->row->max_age));
	json_object_set_new(c->out, "mta_sts", o);
	event_base_loopexit(c->base, NULL);
}

/* MTA-STS as the daemon would see it with nothing cached: discovery and
 * a fetch, never stored (the store is shown separately). */
static void
check_sts(struct chk *c, const struct cfg *cfg, struct dns *dns,
	  const char *dom)
{
	struct https_config hc = {cfg->ca_file, NULL};
	struct https *https;
	char err[256];

	if ((https = https_new(c->base, &hc, err, sizeof(err))) == NULL) {
		json_object_set_new(c->out, "mta_sts",
				    json_pack("{s:s}", "error", err));
		return;
	}
	if (sts_resolve(dns, https, cfg, dom, NULL, 0, sts_done, c) != NULL)
		event_base_dispatch(c->base);
	https_free(https);
}

/*
 * The answer the daemon gives, from the same decision code: what was
 * learned just now stands in for the store (the verdict, a policy fetched
 * now, else the stored policy the daemon keeps applying).
 */
static void
decide(struct chk *c, const struct cfg *cfg, const char *dom,
       const struct cache_sts *stored)
{
	struct cache_entry e;
	struct pol_answer ans;
	char data[POL_DATA_MAX], text[LIM_REPLY_MAX + 1];
	time_t now = ev_now();
	unsigned flags = 0;

	memset(&e, 0, sizeof(e));
	memset(&ans, 0, sizeof(ans));
	snprintf(e.domain, sizeof(e.domain), "%s", dom);
	if (cfg->dane_enabled && c->kind == DANE_FAILED)
		flags |= POL_IN_DANE_FAILED;
	else if (cfg->dane_enabled) {
		e.has_dane = 1;
		e.dane.kind = c->kind == DANE_ONLY     ? CACHE_DANE_ONLY
			      : c->kind == DANE_DANE   ? CACHE_DANE_DANE
			      : c->kind == DANE_NULLMX ? CACHE_DANE_NULLMX
						       : CACHE_DANE_NONE;
		snprintf(e.dane.detail, sizeof(e.dane.detail), "%s",
			 c->dane_why);
		e.dane.checked_at = now;
		e.dane.expires_at = now + (c->dane_ttl ? c->dane_ttl : 60);
	}
	if (cfg->sts_enabled && c->have_sts) {
		e.has_sts = 1;
		e.sts = c->sts;
	} else if (cfg->sts_enabled && stored != NULL) {
		e.has_sts = 1;
		e.sts = *stored;
	}
	pol_decide(cfg, dom, &e, now, flags, &ans, data, sizeof(data));
	pol_format(&ans, text, sizeof(text));
	json_object_set_new(c->out, "answer", json_string(text));
	json_object_set_new(c->out, "reason", json_string(ans.reason));
	json_object_set_new(c->out, "answer_rule",
			    json_string(pol_rule_name(ans.rule)));
	json_object_set_new(c->out, "answer_source",
			    json_string(pol_source_name(ans.source)));
}

int
chk_run(const struct cfg *cfg, const char *domain, int json)
{
	char dom[LIM_DOMAIN_MAX + 1], err[512], level[64];
	struct chk c;
	struct dns *dns;
	struct dane_job *job;
	enum dom_status ds;
	struct cache_sts stored;
	int have_stored = 0;

	ds = dom_normalize(domain, strlen(domain), DOM_SMARTHOST_POLICY, dom,
			   sizeof(dom));
	if (ds != DOM_OK) {
		fprintf(stderr, "tlspolicy: %s: %s: Postfix gets NOTFOUND\n",
			domain, dom_strerror(ds));
		return 2;
	}
	memset(&c, 0, sizeof(c));
	memset(&stored, 0, sizeof(stored));
	c.json = json;
	c.out = json_pack("{s:s}", "domain", dom);
	c.base = ev_base_new();
	if ((dns = dns_new(c.base, cfg, err, sizeof(err))) == NULL) {
		fprintf(stderr, "tlspolicy: dns: %s\n", err);
		json_decref(c.out);
		ev_base_free();
		return 2;
	}
	if (dns_selftest(dns, cfg->selftest_name, err, sizeof(err)) != 0)
		json_object_set_new(c.out, "warning", json_string(err));
	else if (pfx_dns_support_level(level, sizeof(level)) == 0 &&
		 strcmp(level, "dnssec") != 0) {
		char w[160];

		/* SPEC B prerequisites: Postfix does its own TLSA lookups
		 * and turns dane into may (dane-only into a deferral)
		 * without DNSSEC. */
		snprintf(w, sizeof(w),
			 "Postfix has smtp_dns_support_level = %s; dane "
			 "answers need \"dnssec\"",
			 *level ? level : "(empty)");
		json_object_set_new(c.out, "warning", json_string(w));
	}
	if ((job = dane_resolve(dns, dom, dane_done, &c)) != NULL)
		event_base_dispatch(c.base);
	if (c.done)
		check_sts(&c, cfg, dns, dom);
	dns_free(dns);
	ev_base_free();
	if (!c.done) {
		fprintf(stderr, "tlspolicy: cannot start the DANE lookup\n");
		json_decref(c.out);
		return 2;
	}
	add_store(c.out, cfg, dom, &stored, &have_stored);
	decide(&c, cfg, dom, have_stored ? &stored : NULL);
	free(stored.mx);
	free(c.sts.mx);
	if (json) {
		char *txt = json_dumps(c.out, JSON_COMPACT);

		if (txt != NULL)
			puts(txt);
		free(txt);
	} else
		print_text(c.out);
	json_decref(c.out);
	return 0;
}
