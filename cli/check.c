/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * tlspolicy check DOMAIN: the daemon's answer, made live and explained
 * (issues 3 and 11): the answer from the daemon's own decision code, the
 * MX set and its DNSSEC status, each host's TLSA records, MTA-STS and
 * TLS-RPT, what is stored, whether the local Postfix can act on a dane
 * answer at all, and a live STARTTLS probe of every MX address (probe.c)
 * judged against what DANE and MTA-STS demand.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
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
#include "cli/probe.h"
#include "util/postconf.h"
#include "resolver/dane.h"
#include "resolver/pol.h"
#include "net/dns.h"
#include "util/dom.h"
#include "net/https.h"
#include "resolver/sts.h"
#include "util/ev.h"
#include "util/limits.h"
#include "tlsrpt/rpt_record.h"

#define LIM_CHK_ADDRS  8 /* addresses kept per family and host */
#define LIM_CHK_PROBES 4 /* addresses probed per host (2 connections each) */
#define LIM_CHK_TLSA   32

/* One MX host as the check sees it (copied from the DANE result). */
struct chk_host {
	char name[256], tlsa_base[256];
	unsigned pref;
	enum dane_host_state state;
	char addrs[2 * LIM_CHK_ADDRS][64]; /* A then AAAA */
	size_t naddr;
	struct probe_tlsa tlsa[LIM_CHK_TLSA]; /* usable ones, data owned */
	size_t ntlsa;
	json_t *tlsa_json; /* every record, with its usability */
	char addr_err[160];
};

struct chk;

struct chk_q {
	struct chk *c;
	size_t host; /* index into hosts, or (size_t)-1 for TLS-RPT */
	uint16_t type;
};

struct chk {
	struct event_base *base;
	const struct chk_opts *opt;
	int json;
	int done;
	struct chk_host *hosts;
	size_t nhosts;
	struct chk_q *qs;
	size_t pending;
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
	if ((c->hosts = calloc(r->nhosts ? r->nhosts : 1, sizeof(*c->hosts))) !=
	    NULL) {
		c->nhosts = r->nhosts;
		for (i = 0; i < r->nhosts; i++) {
			struct chk_host *ch = &c->hosts[i];

			snprintf(ch->name, sizeof(ch->name), "%s",
				 r->hosts[i].name);
			snprintf(ch->tlsa_base, sizeof(ch->tlsa_base), "%s",
				 r->hosts[i].tlsa_base[0]
				     ? r->hosts[i].tlsa_base
				     : r->hosts[i].name);
			ch->pref = r->hosts[i].pref;
			ch->state = r->hosts[i].state;
			ch->tlsa_json = json_array();
		}
	}
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
	  struct cache_sts *stored, int *have, struct cache_pin *pin)
{
	const struct cache_entry *e = NULL;
	struct cache *cache;
	char err[256];

	if (!cfg_is_pg_uri(cfg->cache_path) &&
	    access(cfg->cache_path, F_OK) != 0) {
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
		if (e->has_pin) {
			*pin = e->pin;
			pin->answer =
			    strdup(e->pin.answer ? e->pin.answer : "");
			json_object_set_new(
			    st, "pin",
			    json_pack("{s:b,s:s,s:I}", "exempt", e->pin.exempt,
				      "answer", pin->answer ? pin->answer : "",
				      "pinned_at",
				      (json_int_t)e->pin.pinned_at));
		}
		json_object_set_new(out, "store", st);
	} else
		json_object_set_new(out, "store",
				    json_string("nothing stored"));
	cache_close(cache);
}

/*
 * Print the words of TEXT (space-separated) after a label already
 * printed, wrapped at 78 columns with continuation lines indented by
 * INDENT; each word whole.
 */
static void
wrap(const char *text, int indent, int col)
{
	const char *p = text;
	int first = 1;

	while (p != NULL && *p != '\0') {
		size_t n;

		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		n = strcspn(p, " ");
		if (!first && col + 1 + (int)n > 78) {
			printf("\n%*s", indent, "");
			col = indent;
		} else if (!first) {
			putchar(' ');
			col++;
		}
		printf("%.*s", (int)n, p);
		col += (int)n;
		p += n;
		first = 0;
	}
	putchar('\n');
}

static void
wrap_array(const json_t *arr, const char *sep, int indent, int col)
{
	char buf[LIM_ANSWER_MAX];
	size_t i, len = 0;
	const json_t *v;

	buf[0] = '\0';
	json_array_foreach(arr, i, v)
	{
		int n = snprintf(buf + len, sizeof(buf) - len, "%s%s",
				 i ? sep : "", json_string_value(v));

		if (n < 0 || (size_t)n >= sizeof(buf) - len)
			break;
		len += (size_t)n;
	}
	wrap(buf, indent, col);
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
		char names[LIM_ANSWER_MAX];
		const char *cn =
		    json_string_value(json_object_get(f, "certificate_names"));
		size_t n;

		printf("  fetch:  status %lld, %s, %lld bytes, %lld ms\n",
		       json_integer_value(json_object_get(f, "status")),
		       json_string_value(json_object_get(f, "content_type")),
		       json_integer_value(json_object_get(f, "size")),
		       json_integer_value(json_object_get(f, "ms")));
		snprintf(names, sizeof(names), "%s", cn ? cn : "");
		/* The resolver keeps 511 bytes of names: never show a name
		 * cut in the middle. */
		if ((n = strlen(names)) >= 511 && strrchr(names, ' ') != NULL)
			snprintf(strrchr(names, ' '),
				 sizeof(names) -
				     (size_t)(strrchr(names, ' ') - names),
				 " (more not shown)");
		printf("  cert:   ");
		wrap(names, 10, 10);
	}
	if (p != NULL) {
		char mx[LIM_ANSWER_MAX];
		const char *pm = json_string_value(json_object_get(p, "mx"));
		size_t i;
		int col;

		snprintf(mx, sizeof(mx), "%s", pm ? pm : "");
		for (i = 0; mx[i]; i++)
			if (mx[i] == '\n')
				mx[i] = ' ';
		col = printf("  policy: mode %s, max_age %lld, mx ",
			     json_string_value(json_object_get(p, "mode")),
			     json_integer_value(json_object_get(p, "max_age")));
		wrap(mx, 10, col);
	}
	if ((s = json_string_value(json_object_get(m, "error"))) != NULL)
		printf("  error:  %s\n", s);
	if (json_array_size(json_object_get(m, "uncovered_mx"))) {
		printf("  MX hosts no pattern covers: ");
		wrap_array(json_object_get(m, "uncovered_mx"), " ", 4, 30);
	}
	if (json_array_size(json_object_get(m, "unused_patterns"))) {
		printf("  patterns matching no MX: ");
		wrap_array(json_object_get(m, "unused_patterns"), " ", 4, 27);
	}
}

static void
print_tlsrpt(const json_t *t)
{
	const char *s;

	if (t == NULL)
		return;
	if ((s = json_string_value(json_object_get(t, "record"))) != NULL)
		printf("TLS-RPT:  %s\n", s);
	if (json_is_true(json_object_get(t, "valid"))) {
		printf("  valid, reports to ");
		wrap_array(json_object_get(t, "rua"), " ", 4, 19);
	} else
		printf("%s%s\n", s ? "  not valid: " : "TLS-RPT:  ",
		       json_string_value(json_object_get(t, "error")));
}

static void
print_addr(const char *host, const json_t *a)
{
	const json_t *cert = json_object_get(a, "cert"), *v;
	const char *s;
	size_t i;

	printf("  %s [%s]\n", host,
	       json_string_value(json_object_get(a, "address")));
	if (json_object_get(a, "connect") == NULL)
		return;
	s = json_string_value(json_object_get(a, "connect"));
	if (s != NULL && strcmp(s, "ok") != 0)
		printf("    connect:  %s\n", s);
	if ((s = json_string_value(json_object_get(a, "banner"))) != NULL)
		printf("    banner:   %s\n", s);
	if ((s = json_string_value(json_object_get(a, "starttls"))) != NULL)
		printf("    STARTTLS: %s\n", s);
	if ((s = json_string_value(json_object_get(a, "tls_error"))) != NULL)
		printf("    TLS:      handshake failed: %s\n", s);
	if ((s = json_string_value(json_object_get(a, "tls_version"))) != NULL)
		printf("    TLS:      %s, %s, key exchange %s%s\n", s,
		       json_string_value(json_object_get(a, "cipher")),
		       json_string_value(json_object_get(a, "key_exchange")),
		       json_is_true(json_object_get(a, "forward_secrecy"))
			   ? ""
			   : " (no forward secrecy)");
	json_array_foreach(json_object_get(cert, "chain"), i, v)
	{
		printf("    cert %zu:   %s\n", i,
		       json_string_value(json_object_get(v, "subject")));
		printf("      issuer: %s\n",
		       json_string_value(json_object_get(v, "issuer")));
		printf("      valid:  %s to %s\n",
		       json_string_value(json_object_get(v, "not_before")),
		       json_string_value(json_object_get(v, "not_after")));
		if (json_array_size(json_object_get(v, "dns_names"))) {
			printf("      names:  ");
			wrap_array(json_object_get(v, "dns_names"), ", ", 14,
				   14);
		}
	}
	if (cert != NULL)
		printf("    PKIX:     %s, %s\n",
		       json_string_value(json_object_get(cert, "pkix")),
		       json_is_true(json_object_get(cert, "name_match"))
			   ? "valid for the host name"
			   : "not valid for the host name");
	v = json_object_get(a, "dane_match");
	if (json_is_string(v))
		printf("    DANE:     matches TLSA %s\n", json_string_value(v));
	else if (json_is_false(v))
		printf("    DANE:     matches no TLSA record\n");
	v = json_object_get(a, "sts_match");
	if (!json_is_null(v) && v != NULL)
		printf("    MTA-STS:  %s\n",
		       json_is_true(v) ? "passes" : "fails");
	if ((s = json_string_value(json_object_get(a, "old_tls"))) != NULL)
		printf("    TLS 1.1:  %s\n", s);
	json_array_foreach(json_object_get(a, "problems"), i, v)
	{
		printf("    problem:  ");
		wrap(json_string_value(v), 14, 14);
	}
}

/* What the store holds (the "store" member). */
static void
print_store(const json_t *st)
{
	if (json_is_string(st))
		printf("store:    %s\n", json_string_value(st));
	else {
		const json_t *dn = json_object_get(st, "dane"),
			     *sts = json_object_get(st, "sts"), *pn;
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
		if ((pn = json_object_get(st, "pin")) != NULL)
			printf("store:    pinned by the operator: %s\n",
			       json_is_true(json_object_get(pn, "exempt"))
				   ? "exempt (no TLS policy)"
				   : json_string_value(
					 json_object_get(pn, "answer")));
	}
}

static void
print_text(const json_t *o)
{
	const json_t *hosts = json_object_get(o, "hosts"), *h;
	size_t i, j;
	const char *s;

	printf("domain:   %s\n",
	       json_string_value(json_object_get(o, "domain")));
	printf("answer:   %s\n",
	       json_string_value(json_object_get(o, "answer")));
	printf("because:  ");
	wrap(json_string_value(json_object_get(o, "reason")), 10, 10);
	if ((s = json_string_value(json_object_get(o, "note"))) != NULL)
		printf("note:     %s\n", s);
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
	print_store(json_object_get(o, "store"));
	print_sts(json_object_get(o, "mta_sts"));
	print_tlsrpt(json_object_get(o, "tlsrpt"));
	if (json_is_true(json_object_get(o, "probe"))) {
		printf("probe:\n");
		json_array_foreach(json_object_get(o, "mx"), i, h)
		{
			const json_t *a;

			json_array_foreach(json_object_get(h, "addresses"), j,
					   a)
			    print_addr(
				json_string_value(json_object_get(h, "host")),
				a);
		}
	} else
		printf("probe:    not run (--no-probe)\n");
	if ((s = json_string_value(json_object_get(o, "warning"))) != NULL)
		printf("warning:  %s\n", s);
	if (json_array_size(json_object_get(o, "problems")) == 0)
		printf("problems: none found\n");
	else {
		printf("problems: %zu\n",
		       json_array_size(json_object_get(o, "problems")));
		json_array_foreach(json_object_get(o, "problems"), i, h)
		{
			printf("  - ");
			wrap(json_string_value(h), 4, 4);
		}
	}
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
       const struct cache_sts *stored, const struct cache_pin *pin)
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
	if (pin != NULL && pin->answer != NULL) {
		e.has_pin = 1;
		e.pin = *pin;
		if (cfg_static_find(cfg, dom) != NULL)
			json_object_set_new(
			    c->out, "note",
			    json_string("the operator's pin in the store is "
					"not used: the [policy] line in the "
					"config wins over it"));
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

/* --- addresses, TLSA and TLS-RPT: what the probe needs ----------------- */

/* The _smtp._tls TXT answer: the record, or why there is none. */
static void
tlsrpt_done(struct chk *c, const struct dns_result *r)
{
	size_t i;
	json_t *t = json_object();
	const char *txts[DNS_RR_MAX];
	size_t lens[DNS_RR_MAX], n = 0;
	struct rpt_record rec;
	char err[256] = "";

	json_object_set_new(t, "name", json_string(r->qname));
	if (r->outcome == DNS_DATA) {
		enum rpt_record_status st;

		for (i = 0; i < r->nrr && n < DNS_RR_MAX; i++)
			if (r->rr[i].type == DNS_T_TXT) {
				txts[n] = r->rr[i].u.txt.text;
				lens[n++] = r->rr[i].u.txt.len;
				if (strncmp(r->rr[i].u.txt.text, "v=TLSRPTv1",
					    10) == 0)
					json_object_set_new(
					    t, "record",
					    json_stringn(r->rr[i].u.txt.text,
							 r->rr[i].u.txt.len));
			}
		st = rpt_record_select(txts, lens, n, &rec, err, sizeof(err));
		json_object_set_new(t, "valid",
				    json_boolean(st == RPT_RECORD_OK));
		if (st == RPT_RECORD_OK) {
			json_t *rua = json_array();

			for (i = 0; i < rec.nrua; i++)
				json_array_append_new(
				    rua, json_string(rec.rua[i].uri));
			json_object_set_new(t, "rua", rua);
		} else
			json_object_set_new(
			    t, "error",
			    json_string(err[0] ? err
					       : rpt_record_strerror(st)));
	} else {
		json_object_set_new(t, "valid", json_false());
		json_object_set_new(
		    t, "error",
		    json_string(r->outcome == DNS_NODATA ||
					r->outcome == DNS_NXDOMAIN
				    ? "no TLS-RPT record published"
				: r->why ? r->why
					 : "the lookup failed"));
	}
	json_object_set_new(c->out, "tlsrpt", t);
}

/* One MX host's TLSA answer: every record shown, the usable ones kept
 * for the probe's DANE match. */
static void
tlsa_done(struct chk *c, struct chk_host *h, const struct dns_result *r)
{
	size_t i;

	for (i = 0; r->outcome == DNS_DATA && i < r->nrr; i++) {
		const struct dns_rr *rr = &r->rr[i];
		struct probe_tlsa *pt;
		char txt[2 * 64 + 16];
		size_t k, len;
		int use;

		if (rr->type != DNS_T_TLSA)
			continue;
		use = r->security == DNS_SECURE &&
		      dane_tlsa_usable(rr->u.tlsa.usage, rr->u.tlsa.selector,
				       rr->u.tlsa.mtype, rr->u.tlsa.len);
		len = (size_t)snprintf(txt, sizeof(txt), "%u %u %u ",
				       rr->u.tlsa.usage, rr->u.tlsa.selector,
				       rr->u.tlsa.mtype);
		for (k = 0; k < rr->u.tlsa.len && len + 3 <= sizeof(txt); k++)
			len += (size_t)snprintf(txt + len, sizeof(txt) - len,
						"%02x", rr->u.tlsa.data[k]);
		json_array_append_new(
		    h->tlsa_json,
		    json_pack("{s:s,s:b}", "record", txt, "usable", use));
		if (!use || h->ntlsa >= LIM_CHK_TLSA)
			continue;
		pt = &h->tlsa[h->ntlsa];
		if ((pt->data = malloc(rr->u.tlsa.len + 1)) == NULL)
			continue;
		memcpy((unsigned char *)pt->data, rr->u.tlsa.data,
		       rr->u.tlsa.len);
		pt->len = rr->u.tlsa.len;
		pt->usage = rr->u.tlsa.usage;
		pt->selector = rr->u.tlsa.selector;
		pt->mtype = rr->u.tlsa.mtype;
		h->ntlsa++;
	}
}

/* One MX host's A or AAAA answer (TYPE). */
static void
addr_done(struct chk_host *h, uint16_t type, const struct dns_result *r)
{
	size_t i, n = 0;

	for (i = 0; r->outcome == DNS_DATA && i < r->nrr; i++)
		if (r->rr[i].type == type && n < LIM_CHK_ADDRS &&
		    h->naddr < 2 * LIM_CHK_ADDRS) {
			snprintf(h->addrs[h->naddr], sizeof(h->addrs[0]), "%s",
				 r->rr[i].u.addr);
			h->naddr++;
			n++;
		}
	if (r->outcome != DNS_DATA && r->outcome != DNS_NODATA &&
	    r->outcome != DNS_NXDOMAIN)
		snprintf(h->addr_err, sizeof(h->addr_err),
			 "%s lookup failed: %s", type == DNS_T_A ? "A" : "AAAA",
			 r->why ? r->why : dns_outcome_name(r->outcome));
}

static void
q_done(const struct dns_result *r, void *arg)
{
	struct chk_q *q = arg;
	struct chk *c = q->c;

	if (q->host == (size_t)-1)
		tlsrpt_done(c, r);
	else if (q->type == DNS_T_TLSA)
		tlsa_done(c, &c->hosts[q->host], r);
	else
		addr_done(&c->hosts[q->host], q->type, r);
	if (--c->pending == 0)
		event_base_loopexit(c->base, NULL);
}

static void
ask(struct chk *c, struct dns *dns, struct chk_q *q, const char *name)
{
	if (dns_query(dns, name, q->type, q_done, q) != NULL)
		c->pending++;
}

/* A/AAAA of each MX host, TLSA where DANE looked, and the TLS-RPT TXT. */
static void
lookups(struct chk *c, struct dns *dns, const char *dom)
{
	char name[LIM_DOMAIN_MAX + 16];
	size_t i, n = 0;

	if ((c->qs = calloc(3 * c->nhosts + 1, sizeof(*c->qs))) == NULL)
		return;
	for (i = 0; i < c->nhosts; i++) {
		struct chk_host *h = &c->hosts[i];

		c->qs[n] = (struct chk_q){c, i, DNS_T_A};
		ask(c, dns, &c->qs[n++], h->name);
		c->qs[n] = (struct chk_q){c, i, DNS_T_AAAA};
		ask(c, dns, &c->qs[n++], h->name);
		if (h->state == DANE_HOST_USABLE ||
		    h->state == DANE_HOST_UNUSABLE) {
			snprintf(name, sizeof(name), "_25._tcp.%s",
				 h->tlsa_base);
			c->qs[n] = (struct chk_q){c, i, DNS_T_TLSA};
			ask(c, dns, &c->qs[n++], name);
		}
	}
	snprintf(name, sizeof(name), "_smtp._tls.%s", dom);
	c->qs[n] = (struct chk_q){c, (size_t)-1, DNS_T_TXT};
	ask(c, dns, &c->qs[n++], name);
	if (c->pending > 0)
		event_base_dispatch(c->base);
}

/* --- judging ------------------------------------------------------------- */

static void problem(json_t *list, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
problem(json_t *list, const char *fmt, ...)
{
	char buf[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	json_array_append_new(list, json_string(buf));
}

/* The MTA-STS policy the daemon applies now, if any: patterns. */
static const char *
sts_patterns(const struct chk *c, const struct cache_sts *stored, int *mode)
{
	const struct cache_sts *p = c->have_sts ? &c->sts : stored;

	if (p == NULL || p->mx == NULL)
		return NULL;
	*mode = p->mode;
	return p->mx;
}

/* Which pattern of the '\n'-list MX covers HOST; its length in *LEN. */
static const char *
covering(const char *mx, const char *host, size_t *len)
{
	const char *p, *end;

	for (p = mx; p != NULL && *p != '\0'; p = *end ? end + 1 : end) {
		if ((end = strchr(p, '\n')) == NULL)
			end = p + strlen(p);
		if (end > p && probe_sts_covers(p, (size_t)(end - p), host)) {
			*len = (size_t)(end - p);
			return p;
		}
	}
	return NULL;
}

/* MX hosts no pattern covers, patterns no MX matches (RFC 8461 §4.1). */
static void
sts_coverage(struct chk *c, const char *mx, json_t *problems)
{
	json_t *m = json_object_get(c->out, "mta_sts");
	json_t *unc = json_array(), *unused = json_array();
	const char *p, *end;
	size_t i, len;

	for (i = 0; i < c->nhosts; i++)
		if (covering(mx, c->hosts[i].name, &len) == NULL) {
			json_array_append_new(unc,
					      json_string(c->hosts[i].name));
			problem(problems,
				"MX host %s is covered by no MTA-STS mx "
				"pattern: MTA-STS delivery to it fails",
				c->hosts[i].name);
		}
	for (p = mx; *p != '\0'; p = *end ? end + 1 : end) {
		int used = 0;

		if ((end = strchr(p, '\n')) == NULL)
			end = p + strlen(p);
		for (i = 0; i < c->nhosts && end > p; i++)
			used |= probe_sts_covers(p, (size_t)(end - p),
						 c->hosts[i].name);
		if (end > p && !used)
			json_array_append_new(
			    unused, json_stringn(p, (size_t)(end - p)));
	}
	if (m == NULL) {
		m = json_object();
		json_object_set_new(c->out, "mta_sts", m);
	}
	json_object_set_new(m, "uncovered_mx", unc);
	json_object_set_new(m, "unused_patterns", unused);
}

/* The "dane" object: verdict and each host's TLSA records. */
static void
dane_json(struct chk *c)
{
	json_t *d = json_object(), *hosts = json_array();
	size_t i;

	json_object_set(d, "verdict", json_object_get(c->out, "verdict"));
	json_object_set(d, "rule", json_object_get(c->out, "rule"));
	json_object_set(d, "why", json_object_get(c->out, "why"));
	json_object_set(d, "mx_dnssec", json_object_get(c->out, "mx_dnssec"));
	for (i = 0; i < c->nhosts; i++)
		json_array_append_new(
		    hosts,
		    json_pack("{s:s,s:s,s:s,s:O}", "host", c->hosts[i].name,
			      "tlsa_name", c->hosts[i].tlsa_base, "state",
			      dane_host_state_name(c->hosts[i].state), "tlsa",
			      c->hosts[i].tlsa_json));
	json_object_set_new(d, "hosts", hosts);
	json_object_set_new(c->out, "dane", d);
}

/* The probe of every address of every MX host, and the "mx" array. */
static void
probe_all(struct chk *c, const struct cfg *cfg, const char *mx, int sts_on,
	  json_t *problems)
{
	json_t *arr = json_array();
	struct probe_opts po;
	size_t i, j;

	memset(&po, 0, sizeof(po));
	po.port = c->opt->port;
	po.timeout = c->opt->timeout;
	po.deadline = time(NULL) + c->opt->total;
	po.ca_file = cfg->ca_file;
	po.helo = "tlspolicy-check.invalid";
	po.now = ev_now(); /* the test clock: certificate expiry */
	for (i = 0; i < c->nhosts; i++) {
		struct chk_host *h = &c->hosts[i];
		struct probe_host ph;
		json_t *ho, *addrs = json_array();
		size_t plen = 0;
		const char *pat = mx ? covering(mx, h->name, &plen) : NULL;
		char patbuf[LIM_DOMAIN_MAX + 3];

		snprintf(patbuf, sizeof(patbuf), "%.*s", (int)plen,
			 pat ? pat : "");
		memset(&ph, 0, sizeof(ph));
		ph.name = h->name;
		ph.tlsa_base = h->tlsa_base;
		ph.tlsa = h->tlsa;
		ph.ntlsa = h->ntlsa;
		ph.sts = sts_on;
		ph.sts_pattern = pat ? patbuf : NULL;
		ho = json_pack("{s:s,s:i}", "host", h->name, "preference",
			       (int)h->pref);
		json_object_set_new(ho, "sts_pattern",
				    pat ? json_string(patbuf) : json_null());
		if (h->addr_err[0] != '\0')
			json_object_set_new(ho, "address_error",
					    json_string(h->addr_err));
		if (h->naddr == 0 && h->state != DANE_HOST_NOADDR)
			problem(problems, "%s: no address found%s%s", h->name,
				h->addr_err[0] ? ": " : "", h->addr_err);
		for (j = 0; j < h->naddr; j++) {
			json_t *a;
			const json_t *pr;
			size_t k;

			if (!c->opt->probe) {
				json_array_append_new(
				    addrs,
				    json_pack("{s:s}", "address", h->addrs[j]));
				continue;
			}
			if (j >= LIM_CHK_PROBES) {
				json_array_append_new(
				    addrs,
				    json_pack("{s:s,s:s}", "address",
					      h->addrs[j], "connect",
					      "not probed: at most 4 addresses "
					      "of a host are probed"));
				continue;
			}
			if ((a = probe_addr(&po, &ph, h->addrs[j])) == NULL)
				continue;
			json_array_foreach(json_object_get(a, "problems"), k,
					   pr)
			    problem(problems, "%s [%s]: %s", h->name,
				    h->addrs[j], json_string_value(pr));
			json_array_append_new(addrs, a);
		}
		json_object_set_new(ho, "addresses", addrs);
		json_array_append_new(arr, ho);
	}
	json_object_set_new(c->out, "mx", arr);
}

/* Problems DNS, MTA-STS and the answer show before any probe. */
static void
domain_problems(struct chk *c, json_t *problems)
{
	const json_t *m = json_object_get(c->out, "mta_sts");
	const char *ans = json_string_value(json_object_get(c->out, "answer"));
	const char *disc = json_string_value(json_object_get(m, "discovery"));
	const char *err = json_string_value(json_object_get(m, "error"));

	if (c->kind == DANE_FAILED)
		problem(problems, "DANE: %s", c->dane_why);
	if (ans != NULL && strncmp(ans, "TEMP", 4) == 0)
		problem(problems,
			"the daemon answers %s: Postfix defers the "
			"mail",
			ans);
	if (disc != NULL && strcmp(disc, "failed") == 0)
		problem(problems, "MTA-STS: the _mta-sts lookup failed%s%s",
			err ? ": " : "", err ? err : "");
	else if (disc != NULL && strcmp(disc, "record") == 0 &&
		 json_object_get(m, "policy") == NULL)
		problem(problems,
			"MTA-STS: a record is published but no valid policy "
			"was fetched%s%s",
			err ? ": " : "", err ? err : "");
}

static void
chk_free(struct chk *c)
{
	size_t i, j;

	for (i = 0; i < c->nhosts; i++) {
		for (j = 0; j < c->hosts[i].ntlsa; j++)
			free((void *)c->hosts[i].tlsa[j].data);
		json_decref(c->hosts[i].tlsa_json);
	}
	free(c->hosts);
	free(c->qs);
}

int
chk_args(int argc, char **argv, struct chk_opts *o, char *err, size_t errsz)
{
	int i;

	memset(o, 0, sizeof(*o));
	o->probe = 1;
	o->port = 25;
	o->timeout = 15;
	o->total = 120;
	for (i = 0; i < argc; i++) {
		const char *a = argv[i], *v = NULL;
		char *end;
		long n;

		if (strcmp(a, "-j") == 0 || strcmp(a, "--json") == 0)
			o->json = 1;
		else if (strcmp(a, "--no-probe") == 0)
			o->probe = 0;
		else if (strncmp(a, "--port", 6) == 0 ||
			 strncmp(a, "--timeout", 9) == 0) {
			size_t kl = a[2] == 'p' ? 6 : 9;

			if (a[kl] == '=')
				v = a + kl + 1;
			else if (a[kl] == '\0' && i + 1 < argc)
				v = argv[++i];
			else if (a[kl] != '\0')
				goto bad;
			if (v == NULL) {
				snprintf(err, errsz, "%s needs a value", a);
				return -1;
			}
			errno = 0;
			n = strtol(v, &end, 10);
			if (errno || *end || end == v || n < 1 ||
			    n > (kl == 6 ? 65535 : 300)) {
				snprintf(err, errsz, "%.*s: \"%s\" is not %s",
					 (int)kl, a, v,
					 kl == 6 ? "a port (1 to 65535)"
						 : "1 to 300 seconds");
				return -1;
			}
			if (kl == 6)
				o->port = (unsigned)n;
			else
				o->timeout = (int)n;
		} else if (a[0] == '-' && a[1] != '\0')
			goto bad;
		else if (o->domain != NULL) {
			snprintf(err, errsz, "one domain only");
			return -1;
		} else
			o->domain = a;
		continue;
	bad:
		snprintf(err, errsz, "unknown option %s", a);
		return -1;
	}
	if (o->domain == NULL) {
		snprintf(err, errsz, "no domain given");
		return -1;
	}
	return 0;
}

int
chk_run(const struct cfg *cfg, const struct chk_opts *opt)
{
	const char *domain = opt->domain;
	int json = opt->json;
	char dom[LIM_DOMAIN_MAX + 1], err[512], level[64];
	struct chk c;
	struct dns *dns;
	struct dane_job *job;
	enum dom_status ds;
	struct cache_sts stored;
	struct cache_pin pin;
	int have_stored = 0, rc;

	ds = dom_normalize(domain, strlen(domain), DOM_SMARTHOST_POLICY, dom,
			   sizeof(dom));
	if (ds != DOM_OK) {
		fprintf(stderr, "tlspolicy: %s: %s: Postfix gets NOTFOUND\n",
			domain, dom_strerror(ds));
		return 2;
	}
	memset(&c, 0, sizeof(c));
	memset(&stored, 0, sizeof(stored));
	memset(&pin, 0, sizeof(pin));
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
	c.opt = opt;
	if ((job = dane_resolve(dns, dom, dane_done, &c)) != NULL)
		event_base_dispatch(c.base);
	if (c.done) {
		check_sts(&c, cfg, dns, dom);
		lookups(&c, dns, dom);
	}
	dns_free(dns);
	ev_base_free();
	if (!c.done) {
		fprintf(stderr, "tlspolicy: cannot start the DANE lookup\n");
		json_decref(c.out);
		chk_free(&c);
		return 2;
	}
	add_store(c.out, cfg, dom, &stored, &have_stored, &pin);
	decide(&c, cfg, dom, have_stored ? &stored : NULL, &pin);
	free(pin.answer);
	{
		json_t *problems = json_array();
		int mode = 0;
		const char *mx =
		    cfg->sts_enabled
			? sts_patterns(&c, have_stored ? &stored : NULL, &mode)
			: NULL;
		int sts_on = mx != NULL && (mode == CACHE_STS_ENFORCE ||
					    mode == CACHE_STS_TESTING);

		domain_problems(&c, problems);
		if (sts_on)
			sts_coverage(&c, mx, problems);
		dane_json(&c);
		probe_all(&c, cfg, sts_on ? mx : NULL, sts_on, problems);
		json_object_set_new(c.out, "probe", json_boolean(opt->probe));
		json_object_set_new(c.out, "problems", problems);
	}
	free(stored.mx);
	free(c.sts.mx);
	chk_free(&c);
	rc = json_array_size(json_object_get(c.out, "problems")) ? 1 : 0;
	if (json) {
		char *txt = json_dumps(c.out, JSON_COMPACT);

		if (txt != NULL)
			puts(txt);
		free(txt);
	} else
		print_text(c.out);
	json_decref(c.out);
	return rc;
}
