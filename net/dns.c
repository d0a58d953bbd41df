/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * DNS with DNSSEC validation: getdns 1.6 driven on the daemon's libevent
 * loop (SPEC A9, DESIGN 4).
 *
 * One long-lived getdns context answers every query, always in getdns's
 * recursing mode (its embedded libunbound, which validates against [dns]
 * trust_anchor and keeps a cache of validated answers and zone keys).
 * With [dns] resolvers empty libunbound recurses itself, from the root
 * servers of [dns] root_hints when set; otherwise it forwards every query
 * to the listed resolvers and still validates every answer itself, never
 * trusting their AD bit (SPEC A9.64, A9.67). See ub_ctx_set_option and
 * ub_ctx_set_fwd below for how both reach libunbound. (getdns's own stub
 * mode validated too, but re-fetched and re-verified the whole chain of
 * zone keys for every query: five times the CPU per domain, issue 9.)
 * Zero-config trust-anchor fetching, search lists and name appending are
 * off (SPEC A9.66, A8.62).
 *
 * The loop: Debian's libgetdns_ex_event.so exports no symbols (SPEC
 * A9.69), so instead of the extension library this file carries a small
 * getdns_eventloop adapter on our own event_base (option b).
 *
 * Decoding (SPEC A9.65, A9.70a): for every reply the rcode is read first
 * (0 data or NODATA, 3 NXDOMAIN, anything else SERVFAIL), then its
 * dnssec_status, which needs dnssec_return_all_statuses or a bogus reply
 * vanishes and reads like "no record". A timeout arrives as a callback
 * type, not as a status. Only a reply to the question asked, with the QR
 * bit, is an answer: getdns 1.6 hands back an unsent query (no route) or
 * another lookup's packet (libunbound failing) in its place (issue 10).
 *
 * The start-up self-test (dns_selftest, dns_selftest_judge) separates an
 * answer that does not validate (refuse to run) from no answer at all
 * (run, retry): a network that is not up yet is found out from the
 * routing table, without a packet.
 *
 * Callbacks (STYLE rule 8): getdns may answer from its cache inside
 * getdns_general(); such an answer is parked and delivered from a
 * zero-timeout event, so a callback never runs inside dns_query(). Each
 * query also carries a guard timer a little past [dns] timeout, so a query
 * getdns forgets still ends with DNS_TIMEOUT.
 */
#include "config.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <getdns/getdns.h>
#include <getdns/getdns_extra.h>

#include "util/cfg.h"
#include "util/paths.h"
#include "net/dns.h"
#include "net/dns_decode.h"
#include "util/ev.h"
#include "util/limits.h"
#include "util/log.h"

/* SPEC A9.70: a little clock skew allowed on signature windows (s). */
#define DNS_SKEW 60
/* Our guard fires this long after getdns's own timeout (ms). */
#define DNS_GUARD_SLACK_MS 1500
/* Queries handed to getdns at once; more wait in order (see struct dns). */
#define DNS_MAX_ACTIVE 64
/* Longest timeout we pass on to libevent for getdns (ms): one day. */
#define DNS_LOOP_TIMEOUT_MAX (86400ULL * 1000)
/* getdns's "no timeout" value. */
#define DNS_TIMEOUT_FOREVER UINT64_MAX
/* Most trust anchors read from the anchor file. */
#define DNS_ANCHORS_MAX 64
/* Most [dns] resolvers handed to libunbound. */
#define DNS_FWD_MAX 16
/* Most records read from a [dns] root_hints file. */
#define DNS_HINTS_MAX 64
/* RR types we read besides the ones in dns.h. */
#define DNS_T_NS     2
#define DNS_T_DS     43
#define DNS_T_DNSKEY 48

/* Our getdns_eventloop: getdns sees the first member only. */
struct dns_loop {
	getdns_eventloop loop;
	struct event_base *base;
};

struct dns {
	struct dns_loop loop;
	struct event_base *base;
	getdns_context *ctx;
	getdns_dict *ext;	/* the DNSSEC extensions, for every query */
	getdns_list *anchors;	/* DS/DNSKEY dicts from the anchor file */
	getdns_list *upstreams; /* NULL: full recursion */
	getdns_list *hints;	/* [dns] root_hints records, or NULL */
	uint64_t timeout_ms;
	char *anchor_path;
	char *resolvers; /* [dns] resolvers as configured, for messages */
	/* The zone the anchor is for: the self-test's default name. */
	char anchor_owner[LIM_DOMAIN_MAX + 2];
	char *appdata;
	struct dns_query *queries; /* in flight, for dns_free() */
	/* Queries handed to getdns, and those waiting for room: bounded
	 * work in flight (getdns 1.6's stub mode, used before, lost answers
	 * with hundreds of validating queries outstanding; the bound was
	 * measured again with forwarding, bench/README.md). */
	unsigned active;
	/* Queries getdns never answered (lost, as after EMFILE), and when
	 * that was last warned about. */
	unsigned long lost, lost_warned;
	uint64_t lost_warn_ms;
	struct dns_query *wait_head, **wait_tail;
	int closing;
};

struct dns_query {
	struct dns *d;
	struct dns_query *prev, *next;
	dns_cb *cb;
	void *arg;
	getdns_transaction_t txid;
	int in_getdns;	/* getdns still owes us a callback */
	int submitting; /* inside getdns_general() */
	int orphan;	/* nobody waits for it: getdns's answer is dropped */
	int deferred;	/* RESP waits for the zero-timeout event */
	int delivering; /* the user's callback runs */
	int started;	/* handed to getdns (counted in dns.active) */
	int waiting;	/* queued for room (dns.wait_head) */
	struct dns_query *wnext;
	struct event *ev; /* the guard timer, or the deferred delivery */
	getdns_dict *resp;
	getdns_callback_type_t cbtype;
	uint16_t qtype;
	char qname[LIM_DOMAIN_MAX + 2];
};

/* The event loop adapter ------------------------------------------------ */

/* One libevent callback per getdns event; only one getdns callback per
 * wake-up, because each may clear (free) the event. */
static void
dns_loop_fire(evutil_socket_t fd, short what, void *arg)
{
	getdns_eventloop_event *gev = arg;

	(void)fd;
	if ((what & EV_READ) && gev->read_cb != NULL)
		gev->read_cb(gev->userarg);
	else if ((what & EV_WRITE) && gev->write_cb != NULL)
		gev->write_cb(gev->userarg);
	else if ((what & EV_TIMEOUT) && gev->timeout_cb != NULL)
		gev->timeout_cb(gev->userarg);
}

static getdns_return_t
dns_loop_schedule(getdns_eventloop *loop, int fd, uint64_t timeout,
		  getdns_eventloop_event *gev)
{
	struct dns_loop *l = (struct dns_loop *)loop;
	struct timeval tv, *tvp = NULL;
	struct event *ev;
	short what = 0;

	if (gev == NULL)
		return GETDNS_RETURN_INVALID_PARAMETER;
	if (gev->read_cb != NULL)
		what |= EV_READ | EV_PERSIST;
	if (gev->write_cb != NULL)
		what |= EV_WRITE | EV_PERSIST;
	if (what != 0 && fd < 0)
		return GETDNS_RETURN_INVALID_PARAMETER;
	if (gev->timeout_cb != NULL && timeout != DNS_TIMEOUT_FOREVER) {
		if (timeout > DNS_LOOP_TIMEOUT_MAX)
			timeout = DNS_LOOP_TIMEOUT_MAX;
		tv.tv_sec = (time_t)(timeout / 1000);
		tv.tv_usec = (suseconds_t)(timeout % 1000) * 1000;
		tvp = &tv;
	}
	ev = event_new(l->base, what != 0 ? fd : -1, what, dns_loop_fire, gev);
	if (ev == NULL)
		return GETDNS_RETURN_MEMORY_ERROR;
	if (event_add(ev, tvp) != 0) {
		event_free(ev);
		return GETDNS_RETURN_GENERIC_ERROR;
	}
	gev->ev = ev;
	return GETDNS_RETURN_GOOD;
}

static getdns_return_t
dns_loop_clear(getdns_eventloop *loop, getdns_eventloop_event *gev)
{
	(void)loop;
	if (gev == NULL)
		return GETDNS_RETURN_INVALID_PARAMETER;
	if (gev->ev != NULL)
		event_free(gev->ev);
	gev->ev = NULL;
	return GETDNS_RETURN_GOOD;
}

/* The base belongs to the daemon: getdns may not free it. */
static void
dns_loop_cleanup(getdns_eventloop *loop)
{
	(void)loop;
}

static void
dns_loop_run(getdns_eventloop *loop)
{
	event_base_dispatch(((struct dns_loop *)loop)->base);
}

static void
dns_loop_run_once(getdns_eventloop *loop, int blocking)
{
	event_base_loop(((struct dns_loop *)loop)->base,
			EVLOOP_ONCE | (blocking ? 0 : EVLOOP_NONBLOCK));
}

static getdns_eventloop_vmt dns_loop_vmt = {
    dns_loop_cleanup, dns_loop_schedule, dns_loop_clear,
    dns_loop_run,     dns_loop_run_once,
};

/* Set-up ---------------------------------------------------------------- */

static void dns_err(char *err, size_t errsz, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
dns_err(char *err, size_t errsz, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errsz == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errsz, fmt, ap);
	va_end(ap);
}

static const char *
dns_gerr(getdns_return_t r)
{
	const char *s = getdns_get_errorstr_by_id((uint16_t)r);

	return s != NULL ? s : "getdns error";
}

/* One resolver word "IP" or "IP@PORT" (checked by cfg already). */
static getdns_dict *
dns_upstream(const char *w, size_t len)
{
	char ip[INET6_ADDRSTRLEN + 1];
	unsigned char addr[16];
	const char *at = memchr(w, '@', len);
	size_t iplen = at != NULL ? (size_t)(at - w) : len;
	unsigned long port = 53;
	getdns_bindata type, data;
	getdns_dict *u;
	char *end;

	if (iplen == 0 || iplen >= sizeof(ip))
		return NULL;
	memcpy(ip, w, iplen);
	ip[iplen] = '\0';
	if (inet_pton(AF_INET, ip, addr) == 1) {
		type.data = (uint8_t *)"IPv4";
		type.size = 4;
		data.size = 4;
	} else if (inet_pton(AF_INET6, ip, addr) == 1) {
		type.data = (uint8_t *)"IPv6";
		type.size = 4;
		data.size = 16;
	} else
		return NULL;
	data.data = addr;
	if (at != NULL) {
		char pbuf[8];
		size_t plen = len - iplen - 1;

		if (plen == 0 || plen >= sizeof(pbuf))
			return NULL;
		memcpy(pbuf, at + 1, plen);
		pbuf[plen] = '\0';
		errno = 0;
		port = strtoul(pbuf, &end, 10);
		if (errno != 0 || *end != '\0' || port < 1 || port > 65535)
			return NULL;
	}
	if ((u = getdns_dict_create()) == NULL)
		return NULL;
	if (getdns_dict_set_bindata(u, "address_type", &type) ||
	    getdns_dict_set_bindata(u, "address_data", &data) ||
	    getdns_dict_set_int(u, "port", (uint32_t)port)) {
		getdns_dict_destroy(u);
		return NULL;
	}
	return u;
}

/* [dns] resolvers as getdns upstreams; *OUT stays NULL when empty. */
static int
dns_upstreams(const char *list, getdns_list **out, char *err, size_t errsz)
{
	getdns_list *l = NULL;
	getdns_dict *u;
	const char *p = list != NULL ? list : "";
	size_t n = 0, len;

	*out = NULL;
	for (;;) {
		p += strspn(p, " \t");
		if (*p == '\0')
			break;
		len = strcspn(p, " \t");
		if (l == NULL && (l = getdns_list_create()) == NULL) {
			dns_err(err, errsz, "getdns: out of memory");
			return -1;
		}
		if ((u = dns_upstream(p, len)) == NULL ||
		    getdns_list_set_dict(l, n, u) != GETDNS_RETURN_GOOD) {
			dns_err(err, errsz, "[dns] resolvers: bad address %.*s",
				(int)(len > 64 ? 64 : len), p);
			getdns_dict_destroy(u);
			getdns_list_destroy(l);
			return -1;
		}
		getdns_dict_destroy(u);
		n++;
		p += len;
	}
	*out = l;
	return 0;
}

/*
 * Read the DS and DNSKEY records of the anchor file (SPEC A9.64). getdns
 * 1.6 would silently ignore a broken file (getdns#536), so a file that
 * yields no anchor is an error here, and dns_selftest() proves the rest.
 */
static getdns_list *
dns_anchors(const char *path, char *owner, size_t ownersz, char *err,
	    size_t errsz)
{
	getdns_list *all = NULL, *keep;
	getdns_bindata *name;
	getdns_dict *rr;
	getdns_return_t r;
	size_t i, n = 0, k = 0;
	uint32_t type;
	FILE *fp;

	if (path == NULL || *path == '\0') {
		dns_err(err, errsz, "no [dns] trust_anchor file");
		return NULL;
	}
	if ((fp = fopen(path, "r")) == NULL) {
		dns_err(err, errsz, "trust anchor %s: %s", path,
			strerror(errno));
		return NULL;
	}
	r = getdns_fp2rr_list(fp, &all, NULL, 3600);
	fclose(fp);
	if (r != GETDNS_RETURN_GOOD || all == NULL) {
		dns_err(err, errsz, "trust anchor %s: not a zone file: %s",
			path, dns_gerr(r));
		getdns_list_destroy(all);
		return NULL;
	}
	if ((keep = getdns_list_create()) == NULL) {
		getdns_list_destroy(all);
		dns_err(err, errsz, "getdns: out of memory");
		return NULL;
	}
	(void)getdns_list_get_length(all, &n);
	for (i = 0; i < n && k < DNS_ANCHORS_MAX; i++) {
		if (getdns_list_get_dict(all, i, &rr) != GETDNS_RETURN_GOOD ||
		    getdns_dict_get_int(rr, "type", &type) !=
			GETDNS_RETURN_GOOD)
			continue;
		if (type != DNS_T_DS && type != DNS_T_DNSKEY)
			continue;
		/* The first anchor's owner is the zone the self-test asks
		 * for by default (issue 10: the root may not be reachable
		 * through a resolver that serves a private tree). */
		if (k == 0 && (getdns_dict_get_bindata(rr, "name", &name) !=
				   GETDNS_RETURN_GOOD ||
			       dns_wire_name(name, owner, ownersz, 0) != 0)) {
			getdns_list_destroy(all);
			getdns_list_destroy(keep);
			dns_err(err, errsz,
				"trust anchor %s: a record with a bad owner "
				"name",
				path);
			return NULL;
		}
		if (getdns_list_set_dict(keep, k, rr) == GETDNS_RETURN_GOOD)
			k++;
	}
	getdns_list_destroy(all);
	if (k == 0) {
		getdns_list_destroy(keep);
		dns_err(err, errsz,
			"trust anchor %s: no DS or DNSKEY record in the file",
			path);
		return NULL;
	}
	return keep;
}

/*
 * Read a root hints file ([dns] root_hints, the named.root format): its
 * NS, A and AAAA records, for getdns_context_set_dns_root_servers(). A
 * file without an address is an error, not the built-in root servers.
 */
static getdns_list *
dns_hints(const char *path, char *err, size_t errsz)
{
	getdns_list *all = NULL, *keep;
	getdns_dict *rr;
	getdns_return_t r;
	size_t i, n = 0, k = 0, naddr = 0;
	uint32_t type;
	FILE *fp;

	if ((fp = fopen(path, "r")) == NULL) {
		dns_err(err, errsz, "root hints %s: %s", path, strerror(errno));
		return NULL;
	}
	r = getdns_fp2rr_list(fp, &all, NULL, 3600);
	fclose(fp);
	if (r != GETDNS_RETURN_GOOD || all == NULL) {
		dns_err(err, errsz, "root hints %s: not a zone file: %s", path,
			dns_gerr(r));
		getdns_list_destroy(all);
		return NULL;
	}
	if ((keep = getdns_list_create()) == NULL) {
		getdns_list_destroy(all);
		dns_err(err, errsz, "getdns: out of memory");
		return NULL;
	}
	(void)getdns_list_get_length(all, &n);
	for (i = 0; i < n && k < DNS_HINTS_MAX; i++) {
		if (getdns_list_get_dict(all, i, &rr) != GETDNS_RETURN_GOOD ||
		    getdns_dict_get_int(rr, "type", &type) !=
			GETDNS_RETURN_GOOD)
			continue;
		if (type != DNS_T_A && type != DNS_T_AAAA && type != DNS_T_NS)
			continue;
		if (getdns_list_set_dict(keep, k, rr) == GETDNS_RETURN_GOOD) {
			k++;
			naddr += type != DNS_T_NS;
		}
	}
	getdns_list_destroy(all);
	if (naddr == 0) {
		getdns_list_destroy(keep);
		dns_err(err, errsz,
			"root hints %s: no A or AAAA record of a root server",
			path);
		return NULL;
	}
	return keep;
}

/*
 * [dns] root_hints reach libunbound through this wrapper. getdns 1.6
 * gives no access to the libunbound context it recurses with, and two of
 * libunbound's defaults defeat a private root: it answers the name RFC
 * 6761 reserves for testing ("test.") itself, and getdns copies the hints
 * into a temporary file of its own (mode 0600) that libunbound reads only
 * at the first query, after the privilege drop. So while root hints are
 * configured, this definition stands in for libunbound's (the dynamic
 * linker binds getdns's call to the executable's symbol first): it hands
 * libunbound the configured file itself and lets the private root answer
 * for "test.". Every other option passes through unchanged.
 */
struct ub_ctx;
int ub_ctx_set_option(struct ub_ctx *ctx, const char *opt, const char *val);
int ub_ctx_set_fwd(struct ub_ctx *ctx, const char *addr);

static char dns_ub_hints[PATH_MAX]; /* "": no root hints configured */
/* [dns] resolvers as libunbound forwarders ("IP" or "IP@PORT"). */
static char dns_ub_fwd[DNS_FWD_MAX][INET6_ADDRSTRLEN + 8];
static size_t dns_ub_nfwd;
/* Where getdns 1.6 writes its copy of the root servers (mkstemp). */
#define DNS_GETDNS_HINTS_TMP P_tmpdir "/getdns-root-dns-servers-"

/* Libunbound's own NAME, the definition after ours, into *FN (a function
 * pointer of FNSZ bytes). 0, or -1 when it is not there. */
static int
dns_next_fn(const char *name, void *fn, size_t fnsz)
{
	void *sym = dlsym(RTLD_NEXT, name);

	if (sym == NULL)
		return -1;
	memcpy(fn, &sym, fnsz);
	return 0;
}

int
ub_ctx_set_option(struct ub_ctx *ctx, const char *opt, const char *val)
{
	static int (*next)(struct ub_ctx *, const char *, const char *);
	int r;

	if (next == NULL &&
	    dns_next_fn("ub_ctx_set_option", &next, sizeof(next)) != 0)
		return -1;
	/* getdns sets the EDNS buffer size once for every libunbound
	 * context it builds: the forwarding mode's own settings go with it.
	 * The resolvers are usually on loopback, which libunbound would not
	 * query, and names under "test." go to them like any other. */
	if (dns_ub_nfwd > 0 && opt != NULL &&
	    strcmp(opt, "edns-buffer-size:") == 0) {
		if ((r = next(ctx, opt, val)) != 0 ||
		    (r = next(ctx, "do-not-query-localhost:", "no")) != 0)
			return r;
		return next(ctx, "local-zone:", "test. transparent");
	}
	if (dns_ub_hints[0] == '\0' || opt == NULL || val == NULL ||
	    *val == '\0' || strcmp(opt, "root-hints:") != 0)
		return next(ctx, opt, val);
	if ((r = next(ctx, opt, dns_ub_hints)) != 0)
		return r;
	/* getdns's private copy is not used; removed now, while we may,
	 * it leaves nothing behind after the privilege drop (getdns's own
	 * unlink at the end then finds nothing, which it ignores). */
	if (strncmp(val, DNS_GETDNS_HINTS_TMP, strlen(DNS_GETDNS_HINTS_TMP)) ==
	    0)
		(void)unlink(val);
	/* "nodefault" is not honoured through ub_ctx_set_option();
	 * a transparent zone without data passes every query on. */
	return next(ctx, "local-zone:", "test. transparent");
}

/*
 * [dns] resolvers reach libunbound through this wrapper: getdns 1.6's
 * recursing mode clears libunbound's forwarders (a NULL address) before
 * every use of the context, and has no setting for them. Right after
 * that clear, the configured resolvers are put back.
 */
int
ub_ctx_set_fwd(struct ub_ctx *ctx, const char *addr)
{
	static int (*next)(struct ub_ctx *, const char *);
	size_t i;
	int r;

	if (next == NULL &&
	    dns_next_fn("ub_ctx_set_fwd", &next, sizeof(next)) != 0)
		return -1;
	if ((r = next(ctx, addr)) != 0 || addr != NULL)
		return r;
	for (i = 0; i < dns_ub_nfwd && r == 0; i++)
		r = next(ctx, dns_ub_fwd[i]);
	return r;
}

/* Keep [dns] resolvers (checked by dns_upstreams) for ub_ctx_set_fwd. */
static int
dns_fwd_set(const char *list, char *err, size_t errsz)
{
	const char *p = list != NULL ? list : "";
	size_t len;

	dns_ub_nfwd = 0;
	for (;;) {
		p += strspn(p, " \t");
		if (*p == '\0')
			return 0;
		len = strcspn(p, " \t");
		if (dns_ub_nfwd == DNS_FWD_MAX ||
		    len >= sizeof(dns_ub_fwd[0])) {
			dns_err(err, errsz,
				"[dns] resolvers: at most %d addresses",
				DNS_FWD_MAX);
			return -1;
		}
		memcpy(dns_ub_fwd[dns_ub_nfwd], p, len);
		dns_ub_fwd[dns_ub_nfwd++][len] = '\0';
		p += len;
	}
}

/* A context with our settings; the caller sets the event loop. */
static getdns_context *
dns_context(const struct dns *d, char *err, size_t errsz)
{
	getdns_namespace_t ns = GETDNS_NAMESPACE_DNS;
	getdns_context *ctx = NULL;
	getdns_list *suffix = NULL;
	getdns_return_t r;
	const char *what;

	/* Not from the OS: no resolv.conf search list, no /etc/hosts. */
	if ((r = getdns_context_create(&ctx, 0)) != GETDNS_RETURN_GOOD) {
		dns_err(err, errsz, "getdns: cannot create a context: %s",
			dns_gerr(r));
		return NULL;
	}
	what = "resolution type";
	r = getdns_context_set_resolution_type(ctx,
					       GETDNS_RESOLUTION_RECURSING);
	if (r == GETDNS_RETURN_GOOD && d->upstreams == NULL &&
	    d->hints != NULL) {
		what = "root servers from [dns] root_hints";
		r = getdns_context_set_dns_root_servers(ctx, d->hints);
	}
	if (r == GETDNS_RETURN_GOOD) {
		what = "namespaces";
		r = getdns_context_set_namespaces(ctx, 1, &ns);
	}
	/* SPEC A9.66: zero-config DNSSEC off, its directory our own. */
	if (r == GETDNS_RETURN_GOOD) {
		what = "trust_anchors_verify_CA";
		r = getdns_context_set_trust_anchors_verify_CA(ctx, "");
	}
	if (r == GETDNS_RETURN_GOOD) {
		what = "trust_anchors_verify_email";
		r = getdns_context_set_trust_anchors_verify_email(ctx, "");
	}
	if (r == GETDNS_RETURN_GOOD) {
		what = "appdata_dir";
		r = getdns_context_set_appdata_dir(ctx, d->appdata);
	}
	if (r == GETDNS_RETURN_GOOD) {
		what = "trust anchors";
		r = getdns_context_set_dnssec_trust_anchors(ctx, d->anchors);
	}
	if (r == GETDNS_RETURN_GOOD) {
		what = "dnssec_allowed_skew";
		r = getdns_context_set_dnssec_allowed_skew(ctx, DNS_SKEW);
	}
	if (r == GETDNS_RETURN_GOOD) {
		what = "timeout";
		r = getdns_context_set_timeout(ctx, d->timeout_ms);
	}
	/* SPEC A8.62: no search list, no name appending. */
	if (r == GETDNS_RETURN_GOOD) {
		what = "append_name";
		r = getdns_context_set_append_name(ctx,
						   GETDNS_APPEND_NAME_NEVER);
	}
	if (r == GETDNS_RETURN_GOOD) {
		what = "suffix";
		if ((suffix = getdns_list_create()) == NULL)
			r = GETDNS_RETURN_MEMORY_ERROR;
		else
			r = getdns_context_set_suffix(ctx, suffix);
		getdns_list_destroy(suffix);
	}
	if (r != GETDNS_RETURN_GOOD) {
		dns_err(err, errsz, "getdns: cannot set %s: %s", what,
			dns_gerr(r));
		getdns_context_destroy(ctx);
		return NULL;
	}
	return ctx;
}

/* The directory part of PATH ("/" for "/x"), malloc'd. */
static char *
dns_dirname(const char *path)
{
	const char *slash = path != NULL ? strrchr(path, '/') : NULL;

	if (slash == NULL)
		return strdup("/");
	if (slash == path)
		return strdup("/");
	return strndup(path, (size_t)(slash - path));
}

struct dns *
dns_new(struct event_base *base, const struct cfg *cfg, char *err, size_t errsz)
{
	struct dns *d;
	getdns_return_t r;

	if (base == NULL || cfg == NULL) {
		dns_err(err, errsz, "dns: no event base or config");
		return NULL;
	}
	if ((d = calloc(1, sizeof(*d))) == NULL) {
		dns_err(err, errsz, "dns: %s", strerror(errno));
		return NULL;
	}
	d->base = base;
	d->loop.loop.vmt = &dns_loop_vmt;
	d->loop.base = base;
	d->timeout_ms =
	    (uint64_t)(cfg->dns_timeout > 0 ? cfg->dns_timeout : 5) * 1000;
	d->anchor_path =
	    strdup(cfg->trust_anchor != NULL ? cfg->trust_anchor : "");
	d->resolvers = strdup(cfg->resolvers != NULL ? cfg->resolvers : "");
	/* Zero-config DNSSEC is off; should getdns still want a directory,
	 * it gets the daemon's private state directory, not $HOME. */
	d->appdata = dns_dirname(cfg_is_pg_uri(cfg->cache_path)
				     ? LOCALSTATEDIR "/lib/tlspolicyd/cache.db"
				     : cfg->cache_path);
	if (d->anchor_path == NULL || d->appdata == NULL ||
	    d->resolvers == NULL) {
		dns_err(err, errsz, "dns: %s", strerror(errno));
		goto fail;
	}
	if (dns_upstreams(cfg->resolvers, &d->upstreams, err, errsz) != 0 ||
	    dns_fwd_set(cfg->resolvers, err, errsz) != 0)
		goto fail;
	if ((d->anchors = dns_anchors(d->anchor_path, d->anchor_owner,
				      sizeof(d->anchor_owner), err, errsz)) ==
	    NULL)
		goto fail;
	if (d->upstreams == NULL && cfg->root_hints != NULL &&
	    *cfg->root_hints != '\0' &&
	    (d->hints = dns_hints(cfg->root_hints, err, errsz)) == NULL)
		goto fail;
	if (d->hints != NULL) {
		if (strlen(cfg->root_hints) >= sizeof(dns_ub_hints)) {
			dns_err(err, errsz, "[dns] root_hints: path too long");
			goto fail;
		}
		strcpy(dns_ub_hints, cfg->root_hints);
	}
	/* SPEC A9.65: all statuses, or a bogus reply is silently dropped. */
	if ((d->ext = getdns_dict_create()) == NULL ||
	    getdns_dict_set_int(d->ext, "dnssec_return_status",
				GETDNS_EXTENSION_TRUE) ||
	    getdns_dict_set_int(d->ext, "dnssec_return_all_statuses",
				GETDNS_EXTENSION_TRUE)) {
		dns_err(err, errsz, "getdns: out of memory");
		goto fail;
	}
	if ((d->ctx = dns_context(d, err, errsz)) == NULL)
		goto fail;
	r = getdns_context_set_eventloop(d->ctx, &d->loop.loop);
	if (r != GETDNS_RETURN_GOOD) {
		dns_err(err, errsz, "getdns: cannot set the event loop: %s",
			dns_gerr(r));
		goto fail;
	}
	return d;
fail:
	dns_free(d);
	return NULL;
}

/* Queries --------------------------------------------------------------- */

static void dns_pump(struct dns *d);

static void
dns_q_free(struct dns_query *q)
{
	struct dns *d = q->d;

	if (q->waiting) {
		struct dns_query **qp = &d->wait_head;

		while (*qp != q)
			qp = &(*qp)->wnext;
		if ((*qp = q->wnext) == NULL)
			d->wait_tail = qp;
	}
	if (q->started)
		d->active--;
	if (q->ev != NULL)
		event_free(q->ev);
	if (q->resp != NULL)
		getdns_dict_destroy(q->resp);
	if (q->prev != NULL)
		q->prev->next = q->next;
	else if (d->queries == q)
		d->queries = q->next;
	if (q->next != NULL)
		q->next->prev = q->prev;
	free(q);
	dns_pump(d);
}

/*
 * A query nobody waits for any more is never cancelled inside getdns:
 * getdns 1.6 keeps a query whose socket failed with EMFILE in a pending
 * list that getdns_cancel_callback() does not clear, and reads the freed
 * request from there later. The query is left to end in getdns (its own
 * timeout bounds it) and its answer dropped: Q becomes an orphan, which
 * dns_q_done() frees when getdns calls back.
 */
static void
dns_q_orphan(struct dns_query *q)
{
	q->orphan = 1;
	q->cb = NULL;
	q->arg = NULL;
}

/* A query getdns lost: counted, warned about once a minute at most. */
static void
d_lost(struct dns *d)
{
	uint64_t now = ev_mono_ms();

	d->lost++;
	if (d->lost_warn_ms != 0 && now - d->lost_warn_ms < 60000)
		return;
	log_warnx("dns: %lu DNS queries got no answer from getdns at all "
		  "(not even its own timeout) since the last warning; each "
		  "was answered as a timeout",
		  d->lost - d->lost_warned);
	d->lost_warned = d->lost;
	d->lost_warn_ms = now;
}

/* Give back Q's place among the queries handed to getdns. */
static void
dns_q_release(struct dns_query *q)
{
	if (!q->started)
		return;
	q->started = 0;
	q->d->active--;
	dns_pump(q->d);
}

/* Decode and run the user's callback once. */
static void
dns_q_answer(struct dns_query *q, getdns_callback_type_t type,
	     const getdns_dict *resp)
{
	struct dns_ans a;

	dns_ans_init(&a, q->qname, q->qtype);
	switch (type) {
	case GETDNS_CALLBACK_COMPLETE:
		if (resp != NULL)
			dns_decode(resp, q->qtype, &a);
		else
			dns_fail(&a, DNS_ERROR, "no response");
		break;
	case GETDNS_CALLBACK_TIMEOUT:
		dns_fail(&a, DNS_TIMEOUT, "timeout");
		break;
	case GETDNS_CALLBACK_CANCEL:
		dns_fail(&a, DNS_ERROR, "cancelled by getdns");
		break;
	default:
		dns_fail(&a, DNS_ERROR, "getdns error");
		break;
	}
	q->delivering = 1;
	q->cb(&a.res, q->arg);
	dns_ans_free(&a);
}

/* The same, then free the query. */
static void
dns_q_deliver(struct dns_query *q, getdns_callback_type_t type,
	      const getdns_dict *resp)
{
	dns_q_answer(q, type, resp);
	dns_q_free(q);
}

/* getdns's callback. */
static void
dns_q_done(getdns_context *ctx, getdns_callback_type_t type, getdns_dict *resp,
	   void *userarg, getdns_transaction_t txid)
{
	static const struct timeval now = {0, 0};
	struct dns_query *q = userarg;

	(void)ctx;
	(void)txid;
	q->in_getdns = 0;
	if (q->orphan) {
		getdns_dict_destroy(resp);
		/* Freed outside getdns (STYLE rule 8), but at once when the
		 * context is being destroyed: no loop runs after that. */
		if (q->d->closing)
			dns_q_free(q);
		else
			(void)event_add(q->ev, &now);
		return;
	}
	if (q->submitting || type == GETDNS_CALLBACK_CANCEL) {
		/* STYLE rule 8: never inside dns_query(); nor inside some
		 * other getdns call that cancelled it on its own. */
		q->resp = resp;
		q->cbtype = type;
		q->deferred = 1;
		(void)event_add(q->ev, &now);
		return;
	}
	event_del(q->ev);
	dns_q_deliver(q, type, resp);
	getdns_dict_destroy(resp);
}

/* The guard timer, or a deferred delivery. */
static void
dns_q_timer(evutil_socket_t fd, short what, void *arg)
{
	struct dns_query *q = arg;
	getdns_dict *resp;

	(void)fd;
	(void)what;
	if (q->deferred && !q->orphan) {
		resp = q->resp;
		q->resp = NULL;
		dns_q_deliver(q, q->cbtype, resp);
		getdns_dict_destroy(resp);
		return;
	}
	if (q->orphan && !q->in_getdns) {
		dns_q_free(q);
		return;
	}
	/* getdns did not end it in [dns] timeout plus slack (it lost it, as
	 * after EMFILE): the owner gets a timeout now, the query's place is
	 * given back, and the orphan waits for getdns (see dns_q_orphan). */
	if (!q->orphan) {
		dns_q_answer(q, GETDNS_CALLBACK_TIMEOUT, NULL);
		dns_q_orphan(q);
		d_lost(q->d);
	}
	dns_q_release(q);
}

/* Hand Q to getdns, with its guard timer. Returns 0, or -1 (not started). */
static int
dns_q_start(struct dns_query *q)
{
	struct dns *d = q->d;
	uint64_t guard = d->timeout_ms + DNS_GUARD_SLACK_MS;
	struct timeval tv;
	getdns_return_t r;

	tv.tv_sec = (time_t)(guard / 1000);
	tv.tv_usec = (suseconds_t)(guard % 1000) * 1000;
	if (event_add(q->ev, &tv) != 0)
		return -1;
	q->in_getdns = 1;
	q->submitting = 1;
	r = getdns_general(d->ctx, q->qname, q->qtype, d->ext, q, &q->txid,
			   dns_q_done);
	q->submitting = 0;
	if (r != GETDNS_RETURN_GOOD) {
		q->in_getdns = 0;
		event_del(q->ev);
		return -1;
	}
	q->started = 1;
	d->active++;
	return 0;
}

/* Start waiting queries while there is room; one that cannot start
 * fails through its deferred delivery, never inside this call. */
static void
dns_pump(struct dns *d)
{
	static const struct timeval now = {0, 0};

	while (!d->closing && d->wait_head != NULL &&
	       d->active < DNS_MAX_ACTIVE) {
		struct dns_query *q = d->wait_head;

		if ((d->wait_head = q->wnext) == NULL)
			d->wait_tail = &d->wait_head;
		q->wnext = NULL;
		q->waiting = 0;
		if (dns_q_start(q) != 0) {
			q->deferred = 1;
			q->resp = NULL;
			q->cbtype = GETDNS_CALLBACK_ERROR;
			(void)event_add(q->ev, &now);
		}
	}
}

struct dns_query *
dns_query(struct dns *d, const char *name, uint16_t type, dns_cb *cb, void *arg)
{
	struct dns_query *q;

	if (d == NULL || name == NULL || cb == NULL)
		return NULL;
	if ((q = calloc(1, sizeof(*q))) == NULL)
		return NULL;
	if (dns_name_norm(name, q->qname, sizeof(q->qname), 0) != 0 ||
	    (q->ev = evtimer_new(d->base, dns_q_timer, q)) == NULL) {
		free(q);
		return NULL;
	}
	q->d = d;
	q->cb = cb;
	q->arg = arg;
	q->qtype = type;

	q->next = d->queries;
	if (d->queries != NULL)
		d->queries->prev = q;
	d->queries = q;
	if (d->active >= DNS_MAX_ACTIVE) {
		q->waiting = 1;
		if (d->wait_head == NULL)
			d->wait_tail = &d->wait_head;
		*d->wait_tail = q;
		d->wait_tail = &q->wnext;
		return q;
	}
	if (dns_q_start(q) != 0) {
		/* Not started: nothing will be called. */
		dns_q_free(q);
		return NULL;
	}
	return q;
}

void
dns_cancel(struct dns_query *q)
{
	/* Inside its own callback the query is already ending. */
	if (q == NULL || q->delivering || q->orphan)
		return;
	if (q->in_getdns)
		dns_q_orphan(q); /* its guard timer still runs */
	else
		dns_q_free(q);
}

/* Self-test ------------------------------------------------------------- */

/*
 * Root server addresses for the route check when no root hints are
 * configured: a few of the IANA root servers' published addresses
 * (a.root-servers.net, f, k), IPv4 and IPv6. Only a route is looked up;
 * nothing is sent to them from here.
 */
static const char *const dns_root_addrs[] = {
    "198.41.0.4",	   "192.5.5.241",    "193.0.14.129",
    "2001:503:ba3e::2:30", "2001:500:2f::f", "2001:7fd::1",
};

/* 1 when ADDR (presentation form) has a route: connect() on a UDP socket
 * picks a route and a source address but sends no packet. */
static int
dns_route_to(const char *addr)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	socklen_t len;
	int fd, rc;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, addr, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons(53);
		len = sizeof(*s4);
	} else if (inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(53);
		len = sizeof(*s6);
	} else
		return 0;
	if ((fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
		return 0;
	rc = connect(fd, (struct sockaddr *)&ss, len);
	close(fd);
	return rc == 0;
}

/* Full recursion: 1 when at least one root server has a route. */
static int
dns_root_routable(const struct dns *d)
{
	getdns_bindata *b;
	getdns_dict *rr;
	char addr[INET6_ADDRSTRLEN];
	size_t i, n = 0;

	if (d->hints == NULL) {
		for (i = 0;
		     i < sizeof(dns_root_addrs) / sizeof(*dns_root_addrs); i++)
			if (dns_route_to(dns_root_addrs[i]))
				return 1;
		return 0;
	}
	(void)getdns_list_get_length(d->hints, &n);
	for (i = 0; i < n; i++) {
		if (getdns_list_get_dict(d->hints, i, &rr) !=
		    GETDNS_RETURN_GOOD)
			continue;
		if (getdns_dict_get_bindata(rr, "/rdata/ipv4_address", &b) ==
			GETDNS_RETURN_GOOD &&
		    b->size == 4 &&
		    inet_ntop(AF_INET, b->data, addr, sizeof(addr)))
			;
		else if (getdns_dict_get_bindata(rr, "/rdata/ipv6_address",
						 &b) == GETDNS_RETURN_GOOD &&
			 b->size == 16 &&
			 inet_ntop(AF_INET6, b->data, addr, sizeof(addr)))
			;
		else
			continue;
		if (dns_route_to(addr))
			return 1;
	}
	return 0;
}

const char *
dns_selftest_name(const struct dns *d, const char *name)
{
	if (name != NULL && *name != '\0')
		return name;
	return d != NULL && d->anchor_owner[0] != '\0' ? d->anchor_owner : ".";
}

int
dns_selftest_judge(const struct dns *d, const struct dns_result *r, char *err,
		   size_t errsz)
{
	const char *name = r->qname;
	int own = strcmp(name, d->anchor_owner) == 0;

	/* SPEC A9.66: the anchor must make NAME's SOA secure. */
	if (r->outcome == DNS_DATA && r->security == DNS_SECURE)
		return 0;
	if (d->upstreams == NULL) {
		/* Full recursion (issue 10 item 5): a machine whose network
		 * is not up yet gets no answer, which says nothing about the
		 * anchor; libunbound's SERVFAIL and timeouts are no answer
		 * either. */
		if (!r->answered || r->outcome == DNS_SERVFAIL ||
		    r->outcome == DNS_TIMEOUT || r->outcome == DNS_ERROR) {
			if (!dns_root_routable(d))
				dns_err(err, errsz,
					"no route to any root server%s (the "
					"network is not up?); no answer for "
					"%s SOA",
					d->hints != NULL
					    ? " in [dns] root_hints"
					    : "",
					name);
			else
				dns_err(err, errsz,
					"no answer for %s SOA from the root "
					"servers: %s",
					name, r->why);
			return -2;
		}
	} else {
		/* Forwarding to [dns] resolvers (issue 10 item 4): only
		 * silence is no answer; a SERVFAIL is theirs. */
		if (!r->answered || r->outcome == DNS_TIMEOUT ||
		    r->outcome == DNS_ERROR) {
			dns_err(err, errsz, "no answer for %s SOA: %s", name,
				r->why);
			return -2;
		}
		if (r->outcome == DNS_SERVFAIL) {
			dns_err(err, errsz,
				"the resolver %s answered %s for %s SOA, %s: "
				"it cannot resolve %s, so nothing can be "
				"validated through it; point [dns] resolvers "
				"at a resolver that resolves %s, or %s",
				d->resolvers, r->why, name,
				own ? "the zone the trust anchor is for"
				    : "the [dns] selftest_name",
				name, name,
				own ? "give [dns] trust_anchor the key of the "
				      "zone it serves"
				    : "set [dns] selftest_name to a signed "
				      "name it resolves");
			return -1;
		}
	}
	dns_err(err, errsz, "trust anchor %s does not validate %s: status %s",
		d->anchor_path, name, r->why);
	return -1;
}

int
dns_selftest(struct dns *d, const char *name, char *err, size_t errsz)
{
	char qname[LIM_DOMAIN_MAX + 2];
	getdns_context *ctx;
	getdns_dict *resp = NULL;
	getdns_return_t r;
	struct dns_ans a;
	int rc;

	if (d == NULL || dns_name_norm(dns_selftest_name(d, name), qname,
				       sizeof(qname), 0) != 0) {
		dns_err(err, errsz, "dns self-test: bad name");
		return -1;
	}
	/* A short-lived second context: the sync call has its own loop and
	 * leaves the long-lived context's cache alone. */
	if ((ctx = dns_context(d, err, errsz)) == NULL)
		return -1;
	dns_ans_init(&a, qname, DNS_T_SOA);
	r = getdns_general_sync(ctx, qname, DNS_T_SOA, d->ext, &resp);
	if (r != GETDNS_RETURN_GOOD || resp == NULL)
		dns_fail(&a, DNS_ERROR, dns_gerr(r));
	else
		dns_decode(resp, DNS_T_SOA, &a);
	rc = dns_selftest_judge(d, &a.res, err, errsz);
	dns_ans_free(&a);
	if (resp != NULL)
		getdns_dict_destroy(resp);
	getdns_context_destroy(ctx);
	return rc;
}

/* Shutdown -------------------------------------------------------------- */

void
dns_free(struct dns *d)
{
	struct dns_query *q, *next;

	if (d == NULL)
		return;
	/* Queries still running end silently (their owners are going). */
	d->closing = 1;
	for (q = d->queries; q != NULL; q = next) {
		next = q->next;
		if (q->in_getdns)
			dns_q_orphan(q);
		else
			dns_q_free(q);
	}
	/* SPEC A9.68 (#507): only here, outside every callback. It cancels
	 * what is still outstanding, calling each orphan back (freed then). */
	if (d->ctx != NULL)
		getdns_context_destroy(d->ctx);
	while (d->queries != NULL) /* what getdns had lost */
		dns_q_free(d->queries);
	if (d->ext != NULL)
		getdns_dict_destroy(d->ext);
	if (d->anchors != NULL)
		getdns_list_destroy(d->anchors);
	if (d->upstreams != NULL)
		getdns_list_destroy(d->upstreams);
	if (d->hints != NULL)
		getdns_list_destroy(d->hints);
	free(d->anchor_path);
	free(d->resolvers);
	free(d->appdata);
	free(d);
}

const char *
dns_outcome_name(enum dns_outcome o)
{
	switch (o) {
	case DNS_DATA:
		return "DATA";
	case DNS_NODATA:
		return "NODATA";
	case DNS_NXDOMAIN:
		return "NXDOMAIN";
	case DNS_SERVFAIL:
		return "SERVFAIL";
	case DNS_TIMEOUT:
		return "TIMEOUT";
	case DNS_ERROR:
		return "ERROR";
	}
	return "?";
}

const char *
dns_security_name(enum dns_security s)
{
	switch (s) {
	case DNS_SECURE:
		return "secure";
	case DNS_INSECURE:
		return "insecure";
	case DNS_BOGUS:
		return "bogus";
	case DNS_INDETERMINATE:
		return "indeterminate";
	}
	return "?";
}
