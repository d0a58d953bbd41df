/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Prometheus metrics (issue 12). Every value is read from a counter its
 * module already keeps, so a scrape costs a few copies and one formatted
 * text; the one exception is the count of stored rows by mode and kind,
 * an SQL GROUP BY over the store, which is run at most once every
 * MET_COUNT_INTERVAL seconds (never per scrape on a store of a million
 * rows) and served from memory in between. Since the count reads every
 * row on the loop, the interval also grows with its cost: a count that
 * took N ms waits at least N seconds (a thousandth of the loop's time).
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"
#include "resolver/pol.h"
#include "tlsrpt/rpt_collect.h"
#include "tlsrpt/rpt_deliver.h"
#include "daemon/met.h"
#include "daemon/srv.h"
#include "util/ev.h"
#include "util/hist.h"
#include "util/log.h"

/* Seconds between two counts of the stored rows. */
#define MET_COUNT_INTERVAL 60

struct met {
	struct srv *srv;
	struct pol *pol;
	struct cache *cache;
	struct rpt_collect *rpt;
	/* The last count of stored rows, and when it ran (0: never). */
	time_t counted_at;
	long count_every; /* seconds until the next count */
	int count_ok;
	long long sts_by_mode[3], dane_by_kind[4];
	struct cache_job *count_job; /* a shared store counting on the loop */
};

struct met *
met_new(struct srv *srv, struct pol *pol, struct cache *cache)
{
	struct met *m = calloc(1, sizeof(*m));

	if (m == NULL)
		return NULL;
	m->srv = srv;
	m->pol = pol;
	m->cache = cache;
	return m;
}

void
met_set_tlsrpt(struct met *m, struct rpt_collect *rpt)
{
	m->rpt = rpt;
}

void
met_free(struct met *m)
{
	if (m != NULL && m->count_job != NULL)
		cache_job_cancel(m->count_job);
	free(m);
}

enum met_req
met_parse_request(const char *req, size_t len)
{
	const char *sp, *end, *path, *ver, *eol = memchr(req, '\n', len);
	size_t plen, llen = eol != NULL ? (size_t)(eol - req) : len;

	if (llen > 0 && req[llen - 1] == '\r')
		llen--;
	end = req + llen;
	if ((sp = memchr(req, ' ', llen)) == NULL || sp == req)
		return MET_REQ_BAD;
	path = sp + 1;
	if ((ver = memchr(path, ' ', (size_t)(end - path))) == NULL ||
	    ver == path)
		return MET_REQ_BAD;
	plen = (size_t)(ver - path);
	ver++;
	if ((size_t)(end - ver) != 8 || memcmp(ver, "HTTP/1.", 7) != 0 ||
	    (ver[7] != '0' && ver[7] != '1'))
		return MET_REQ_BAD;
	if ((size_t)(sp - req) != 3 || memcmp(req, "GET", 3) != 0)
		return MET_REQ_METHOD;
	if ((plen == 8 || (plen > 8 && path[8] == '?')) &&
	    memcmp(path, "/metrics", 8) == 0)
		return MET_REQ_METRICS;
	return MET_REQ_NOTFOUND;
}

/* --- the text format ------------------------------------------------------ */

static void
head(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
one(FILE *f, const char *name, const char *type, const char *help,
    unsigned long long v)
{
	head(f, name, type, help);
	fprintf(f, "%s %llu\n", name, v);
}

static void
histogram(FILE *f, const char *name, const char *help, const struct hist *h)
{
	unsigned long long cum = 0;
	unsigned i;

	head(f, name, "histogram", help);
	for (i = 0; i < HIST_N; i++) {
		cum += h->bucket[i];
		fprintf(f, "%s_bucket{le=\"%g\"} %llu\n", name,
			(double)hist_bound_ms(i) / 1000.0, cum);
	}
	fprintf(f, "%s_bucket{le=\"+Inf\"} %llu\n", name,
		(unsigned long long)h->count);
	fprintf(f, "%s_sum %.3f\n%s_count %llu\n", name,
		(double)h->sum_ms / 1000.0, name, (unsigned long long)h->count);
}

/* A shared store's count on the loop ended: the next scrape shows it. */
static void
counted(struct cache_job *job, enum cache_err e, void *arg)
{
	struct met *m = arg;

	m->count_job = NULL;
	if (e == CACHE_OK)
		e = cache_job_counts(job, m->sts_by_mode, m->dane_by_kind);
	m->count_ok = e == CACHE_OK;
	if (!m->count_ok && e != CACHE_EOFFLINE)
		log_warnx("metrics: cannot count the stored policies: %s",
			  cache_errmsg(m->cache));
}

/* The stored rows by mode and kind, counted at most once a minute. */
static void
count_rows(struct met *m)
{
	time_t now = ev_now();
	uint64_t t0, ms;

	if (m->counted_at != 0 && now - m->counted_at < m->count_every &&
	    now >= m->counted_at)
		return;
	/* A shared store on the loop counts there; until its first count
	 * ends the gauges are left out, later the last counts stay. */
	if (cache_jobs_async(m->cache)) {
		if (m->count_job == NULL) {
			m->counted_at = now;
			m->count_every = MET_COUNT_INTERVAL;
			m->count_job =
			    cache_job_start(m->cache, CACHE_JOB_COUNT, NULL,
					    NULL, 0, counted, m);
		}
		return;
	}
	/* Not while a shared store's call is in flight on the loop (the
	 * count would wait for it): the last counts stay until next time. */
	if (m->counted_at != 0 && cache_io_busy(m->cache))
		return;
	m->counted_at = now;
	t0 = ev_mono_ms();
	m->count_ok = cache_count_kinds(m->cache, m->sts_by_mode,
					m->dane_by_kind) == CACHE_OK;
	ms = ev_mono_ms() - t0;
	m->count_every =
	    ms > MET_COUNT_INTERVAL ? (long)ms : (long)MET_COUNT_INTERVAL;
	if (!m->count_ok)
		log_warnx("metrics: cannot count the stored policies: %s",
			  cache_errmsg(m->cache));
}

static void
render_srv(struct met *m, FILE *f)
{
	static const char *const kinds[5] = {"NOTFOUND", "OK", "TEMP",
					     "TIMEOUT", "PERM"};
	struct srv_metrics sm;
	unsigned k, src;

	srv_get_metrics(m->srv, &sm);
	head(f, "tlspolicyd_lookups_total", "counter",
	     "Lookups answered, by answer kind and by what decided it.");
	for (k = 0; k < 5; k++)
		for (src = 0; src < 6; src++)
			fprintf(f,
				"tlspolicyd_lookups_total{answer=\"%s\","
				"source=\"%s\"} %llu\n",
				kinds[k], pol_source_name(src),
				sm.answers[k][src]);
	histogram(f, "tlspolicyd_lookup_duration_seconds",
		  "Time from a lookup request to its answer.", &sm.latency);
	head(f, "tlspolicyd_connections_open", "gauge",
	     "Client connections open, per listener kind.");
	for (k = 0; k < SRV_LISTENER_KINDS; k++)
		if (sm.configured[k])
			fprintf(f,
				"tlspolicyd_connections_open{listener=\"%s\"} "
				"%ld\n",
				srv_listener_name(k), sm.open[k]);
	head(f, "tlspolicyd_connections_accepted_total", "counter",
	     "Client connections accepted, per listener kind.");
	for (k = 0; k < SRV_LISTENER_KINDS; k++)
		if (sm.configured[k])
			fprintf(f,
				"tlspolicyd_connections_accepted_total{"
				"listener=\"%s\"} %llu\n",
				srv_listener_name(k), sm.accepted[k]);
	head(f, "tlspolicyd_connections_refused_total", "counter",
	     "Client connections refused at a connection limit, per "
	     "listener kind.");
	for (k = 0; k < SRV_LISTENER_KINDS; k++)
		if (sm.configured[k])
			fprintf(f,
				"tlspolicyd_connections_refused_total{"
				"listener=\"%s\"} %llu\n",
				srv_listener_name(k), sm.refused[k]);
	one(f, "tlspolicyd_framing_errors_total", "counter",
	    "Requests closed for bad framing or size.", sm.framing_errors);
	one(f, "tlspolicyd_request_timeouts_total", "counter",
	    "Connections closed because a request did not arrive whole in "
	    "time.",
	    sm.request_timeouts);
}

/* The policy store's memory index, and the poll of a shared store
 * (PostgreSQL; both poll counters stay 0 with SQLite). */
static void
render_store(struct met *m, FILE *f)
{
	struct cache_stats cs;

	cache_get_stats(m->cache, &cs);
	one(f, "tlspolicyd_store_hits_total", "counter",
	    "Store index lookups that found an entry.", cs.hits);
	one(f, "tlspolicyd_store_negative_hits_total", "counter",
	    "Store index lookups that found a remembered absence.",
	    cs.negative_hits);
	one(f, "tlspolicyd_store_misses_total", "counter",
	    "Store index lookups that had to read the database.", cs.misses);
	one(f, "tlspolicyd_store_memory_entries", "gauge",
	    "Domains held in the memory index.",
	    (unsigned long long)cs.entries);
	one(f, "tlspolicyd_store_polls_total", "counter",
	    "Steps of the look for rows other hosts changed in a shared "
	    "store.",
	    cs.polls);
	one(f, "tlspolicyd_store_polled_updates_total", "counter",
	    "Domains in the memory index updated from rows other hosts "
	    "changed.",
	    cs.polled_updates);
	one(f, "tlspolicyd_store_batched_writes_total", "counter",
	    "Changes written to a shared store in batches from the loop.",
	    cs.async_writes);
	one(f, "tlspolicyd_store_loop_reads_total", "counter",
	    "Domains not in memory read from a shared store by the loop, "
	    "without a client's lookup waiting for the database.",
	    cs.async_reads);
}

static void
render_pol(struct met *m, FILE *f)
{
	static const char *const dane_kinds[4] = {"none", "dane-only", "dane",
						  "nullmx"};
	static const char *const modes[3] = {"none", "testing", "enforce"};
	struct pol_stats ps;
	unsigned i;

	pol_get_stats(m->pol, &ps);
	one(f, "tlspolicyd_store_failures_total", "counter",
	    "Lookups answered TEMP because the store failed.",
	    ps.store_failures);
	one(f, "tlspolicyd_resolutions_started_total", "counter",
	    "Resolutions (DANE and MTA-STS work for one domain) started.",
	    ps.res_started);
	one(f, "tlspolicyd_resolutions_completed_total", "counter",
	    "Resolutions that ran to their end.", ps.res_completed);
	one(f, "tlspolicyd_resolutions_running", "gauge",
	    "Resolutions running now.", ps.running);
	one(f, "tlspolicyd_resolutions_queued", "gauge",
	    "Resolutions waiting for a slot.", ps.queued);
	histogram(f, "tlspolicyd_resolution_duration_seconds",
		  "How long each resolution ran.", &ps.res_latency);
	head(f, "tlspolicyd_resolution_failures_total", "counter",
	     "Failed DNS lookups a resolution depended on, by part (dane: "
	     "MX, address or TLSA; sts: the _mta-sts TXT record) and class.");
	for (i = 0; i < POL_FAIL_N; i++)
		fprintf(f,
			"tlspolicyd_resolution_failures_total{part=\"dane\","
			"class=\"%s\"} %llu\n",
			pol_fail_class_name(i), ps.dane_fail[i]);
	for (i = 0; i < POL_FAIL_N; i++)
		fprintf(f,
			"tlspolicyd_resolution_failures_total{part=\"sts\","
			"class=\"%s\"} %llu\n",
			pol_fail_class_name(i), ps.txt_fail[i]);
	head(f, "tlspolicyd_sts_fetch_failures_total", "counter",
	     "MTA-STS policy fetches that failed, by reason.");
	for (i = 0; i < POL_FETCH_REASONS; i++)
		fprintf(f,
			"tlspolicyd_sts_fetch_failures_total{reason=\"%s\"} "
			"%llu\n",
			pol_fetch_reason_name(i), ps.fetch_fail[i]);
	head(f, "tlspolicyd_sts_policies_stored_total", "counter",
	     "MTA-STS policies stored after a fetch: new, updated (id or "
	     "mode changed) or renewed.");
	fprintf(f,
		"tlspolicyd_sts_policies_stored_total{change=\"new\"} %llu\n"
		"tlspolicyd_sts_policies_stored_total{change=\"updated\"} "
		"%llu\n"
		"tlspolicyd_sts_policies_stored_total{change=\"renewed\"} "
		"%llu\n",
		ps.sts_new, ps.sts_updated, ps.sts_renewed);
	head(f, "tlspolicyd_dane_verdicts_total", "counter",
	     "DANE verdicts reached by resolutions, by kind.");
	for (i = 0; i < 4; i++)
		fprintf(f, "tlspolicyd_dane_verdicts_total{kind=\"%s\"} %llu\n",
			dane_kinds[i], ps.dane_verdicts[i]);
	one(f, "tlspolicyd_lookup_deadlines_total", "counter",
	    "Clients answered at [dns] lookup_timeout, resolution unfinished.",
	    ps.timeouts);
	one(f, "tlspolicyd_sts_refreshes_total", "counter",
	    "Proactive MTA-STS refreshes started.", ps.refreshes);
	count_rows(m);
	if (!m->count_ok)
		return;
	head(f, "tlspolicyd_stored_sts_policies", "gauge",
	     "MTA-STS policies in the store, by mode (counted at most once "
	     "a minute).");
	for (i = 0; i < 3; i++)
		fprintf(f, "tlspolicyd_stored_sts_policies{mode=\"%s\"} %lld\n",
			modes[i], m->sts_by_mode[i]);
	head(f, "tlspolicyd_stored_dane_verdicts", "gauge",
	     "DANE verdicts in the store, by kind (counted at most once a "
	     "minute).");
	for (i = 0; i < 4; i++)
		fprintf(f,
			"tlspolicyd_stored_dane_verdicts{kind=\"%s\"} %lld\n",
			dane_kinds[i], m->dane_by_kind[i]);
}

/* Printed with zeros when [tlsrpt] is off, so dashboards stay whole. */
static void
render_tlsrpt(struct met *m, FILE *f)
{
	struct rpt_collect_stats cs;
	struct rpt_deliver_stats ds;
	struct rpt_deliver *d = NULL;
	unsigned long long rejected;

	memset(&cs, 0, sizeof(cs));
	memset(&ds, 0, sizeof(ds));
	if (m->rpt != NULL) {
		rpt_collect_get_stats(m->rpt, &cs);
		d = rpt_collect_deliver(m->rpt);
	}
	if (d != NULL)
		rpt_deliver_get_stats(d, &ds);
	rejected = cs.malformed + cs.toobig + cs.version + cs.invalid;
	head(f, "tlspolicyd_tlsrpt_datagrams_total", "counter",
	     "TLS-RPT result datagrams (and query socket reports) received, "
	     "by result.");
	fprintf(f,
		"tlspolicyd_tlsrpt_datagrams_total{result=\"accepted\"} %llu\n"
		"tlspolicyd_tlsrpt_datagrams_total{result=\"rejected\"} %llu\n",
		cs.datagrams > rejected ? cs.datagrams - rejected : 0,
		rejected);
	one(f, "tlspolicyd_tlsrpt_sessions_recorded_total", "counter",
	    "TLS sessions recorded for the daily reports.", cs.counted);
	one(f, "tlspolicyd_tlsrpt_log_sessions_total", "counter",
	    "Of them, sessions read from Postfix's log.", cs.log_sessions);
	one(f, "tlspolicyd_tlsrpt_store_errors_total", "counter",
	    "Report store errors.", cs.store_errors + ds.store_errors);
	one(f, "tlspolicyd_tlsrpt_queue_full_total", "counter",
	    "Times the kernel's datagram queue was found full: senders may "
	    "have been refused (raise net.unix.max_dgram_qlen).",
	    cs.queue_full);

	head(f, "tlspolicyd_tlsrpt_reports_total", "counter",
	     "Report deliveries to one destination, by result: sent, "
	     "retried (will be tried again) or given up.");
	fprintf(f,
		"tlspolicyd_tlsrpt_reports_total{result=\"sent\"} %llu\n"
		"tlspolicyd_tlsrpt_reports_total{result=\"retried\"} %llu\n"
		"tlspolicyd_tlsrpt_reports_total{result=\"given_up\"} %llu\n",
		ds.sent, ds.retried, ds.given_up);
	one(f, "tlspolicyd_tlsrpt_store_calls_waiting", "gauge",
	    "The report sender's store calls not yet done (with a shared "
	    "store they wait for the database on a thread of their own).",
	    d != NULL ? rpt_deliver_store_waiting(d) : 0);
}

char *
met_render(struct met *m, size_t *len)
{
	char *buf = NULL;
	size_t sz = 0;
	FILE *f = open_memstream(&buf, &sz);

	if (f == NULL)
		return NULL;
	head(f, "tlspolicyd_build_info", "gauge",
	     "Always 1; the version of the running daemon is a label.");
	fprintf(f, "tlspolicyd_build_info{version=\"%s\"} 1\n",
		PACKAGE_VERSION);
	render_srv(m, f);
	render_store(m, f);
	render_pol(m, f);
	render_tlsrpt(m, f);
	if (ferror(f)) {
		fclose(f);
		free(buf);
		return NULL;
	}
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	*len = sz;
	return buf;
}

/* A whole HTTP/1.0 response with BODY (LEN bytes) into a new buffer. */
static char *
response(const char *status, const char *extra, const char *type,
	 const char *body, size_t len, size_t *outlen)
{
	char hdr[512];
	int hl = snprintf(hdr, sizeof(hdr),
			  "HTTP/1.0 %s\r\nContent-Type: %s\r\n"
			  "Content-Length: %zu\r\n%sConnection: close\r\n\r\n",
			  status, type, len, extra);
	char *out;

	if (hl < 0 || (size_t)hl >= sizeof(hdr) ||
	    (out = malloc((size_t)hl + len + 1)) == NULL)
		return NULL;
	memcpy(out, hdr, (size_t)hl);
	memcpy(out + hl, body, len);
	out[hl + len] = '\0';
	*outlen = (size_t)hl + len;
	return out;
}

char *
met_http(void *arg, const char *req, size_t len, size_t *outlen)
{
	static const char plain[] = "text/plain; charset=utf-8";
	struct met *m = arg;
	char *body, *out;
	size_t blen = 0;

	switch (met_parse_request(req, len)) {
	case MET_REQ_METRICS:
		break;
	case MET_REQ_NOTFOUND:
		return response("404 Not Found", "", plain,
				"only /metrics is served here\n",
				strlen("only /metrics is served here\n"),
				outlen);
	case MET_REQ_METHOD:
		return response("405 Method Not Allowed", "Allow: GET\r\n",
				plain, "only GET is served here\n",
				strlen("only GET is served here\n"), outlen);
	default:
		return response("400 Bad Request", "", plain, "bad request\n",
				strlen("bad request\n"), outlen);
	}
	if ((body = met_render(m, &blen)) == NULL)
		return NULL;
	out = response("200 OK", "", "text/plain; version=0.0.4; charset=utf-8",
		       body, blen, outlen);
	free(body);
	return out;
}
