/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Listeners and client connections.
 *
 * Two protocols share one connection machine: socketmap (netstrings, SPEC
 * A1) and JSON lines (doc/PROTOCOL.md). A connection owns a bounded input
 * buffer (the largest legal frame) and an output buffer; requests are
 * answered in the order they arrived, and replies are written straight
 * away, so a cached lookup costs one read and one write. Everything a
 * client can make us hold is bounded: frame size, queued output, idle
 * time, time blocked on a client that does not read, and the number of
 * connections. A misbehaving client loses its own connection only.
 */
#include "config.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>

#include "cache/cache.h"
#include "util/cfg.h"
#include "util/dom.h"
#include "resolver/pol.h"
#include "daemon/adm.h"
#include "daemon/qry.h"
#include "daemon/smap.h"
#include "daemon/srv.h"
#include "util/ev.h"
#include "util/limits.h"
#include "util/log.h"
#include "util/sock.h"

#include "daemon/srv_int.h"

const char *const srv_proto_names[PROTO_N] = {"socketmap", "query", "admin",
					      "metrics"};

/* Client-caused warnings, at most WARN_PER_SECOND a second. */
int
srv_warn_allowed(struct srv *s)
{
	time_t now = ev_now();

	if (now != s->warn_sec) {
		if (s->warn_dropped)
			log_warnx("%u similar warnings suppressed",
				  s->warn_dropped);
		s->warn_sec = now;
		s->warn_count = 0;
		s->warn_dropped = 0;
	}
	if (s->warn_count++ < WARN_PER_SECOND)
		return 1;
	s->warn_dropped++;
	return 0;
}

/* --- connections -------------------------------------------------------- */

void
srv_conn_arm_read(struct conn *c, int on)
{
	struct timeval tv = {c->srv->cfg->idle_timeout, 0};

	if (on && !c->reading && !c->closing) {
		event_add(c->rev, &tv);
		c->reading = 1;
	} else if (!on && c->reading) {
		event_del(c->rev);
		c->reading = 0;
	}
}

static int
buf_reserve(char **buf, size_t *cap, size_t need, size_t initial)
{
	size_t ncap = *cap ? *cap : initial;
	char *nb;

	if (need <= *cap)
		return 0;
	while (ncap < need)
		ncap *= 2;
	if ((nb = realloc(*buf, ncap)) == NULL)
		return -1;
	*buf = nb;
	*cap = ncap;
	return 0;
}

/* Bytes queued for C and not yet written. */
static size_t
conn_pending(const struct conn *c)
{
	return c->outlen - c->outoff;
}

/*
 * May C take another request (or move another reply to its output)? Not
 * while its own unread output is over LIM_CONN_OUTPUT, nor while the
 * output of all connections together is over [server] max_queued_output
 * and C has some of it (issue 10 item 7): a client that does not read
 * stops being read, and everyone else is still served.
 */
static int
conn_output_full(const struct conn *c)
{
	const struct srv *s = c->srv;

	return conn_pending(c) > LIM_CONN_OUTPUT ||
	       (conn_pending(c) > 0 &&
		s->outq > (size_t)s->cfg->max_queued_output);
}

/*
 * Queue LEN bytes of output. Before the buffer grows, what was written is
 * dropped from its front, so it never grows past OUTBUF_HARD (callers stop
 * adding once conn_output_full()).
 */
static int
conn_queue(struct conn *c, const char *data, size_t len)
{
	size_t need, ncap,
	    hard = c->proto == PROTO_ADM ? OUTBUF_HARD_ADMIN : OUTBUF_HARD;
	char *nb;

	need = c->outlen + len;
	if (need > c->outcap && c->outoff > 0) {
		/* Drop the written bytes rather than grow (once per growth,
		 * not per reply: pipelined replies stay O(1) each). */
		memmove(c->out, c->out + c->outoff, c->outlen - c->outoff);
		c->outlen -= c->outoff;
		c->outoff = 0;
		need = c->outlen + len;
	}
	if (need > hard)
		return -1;
	if (need > c->outcap) {
		ncap = c->outcap ? c->outcap : OUTBUF_INITIAL;
		while (ncap < need)
			ncap *= 2;
		if (ncap > hard)
			ncap = hard;
		if ((nb = realloc(c->out, ncap)) == NULL)
			return -1;
		c->out = nb;
		c->outcap = ncap;
	}
	memcpy(c->out + c->outlen, data, len);
	c->outlen += len;
	c->srv->outq += len;
	return 0;
}

/* Forget C's unread output (written, or the connection is gone). */
static void
conn_output_done(struct conn *c, size_t n)
{
	struct srv *s = c->srv;

	s->outq = s->outq >= n ? s->outq - n : 0;
}

/*
 * Write what is queued. Returns 0 when everything is written or the rest
 * waits for the write event, -1 when the connection is gone.
 */
static int
conn_flush(struct conn *c)
{
	while (c->outoff < c->outlen) {
		ssize_t n = send(c->fd, c->out + c->outoff,
				 c->outlen - c->outoff, MSG_NOSIGNAL);

		if (n > 0) {
			c->outoff += (size_t)n;
			conn_output_done(c, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			/* SPEC A1: a client that does not read its replies
			 * gets write_timeout seconds, and stops being read
			 * once too much output is queued. */
			struct timeval tv = {c->srv->cfg->write_timeout, 0};

			if (!event_pending(c->wev, EV_WRITE, NULL))
				event_add(c->wev, &tv);
			if (conn_output_full(c))
				srv_conn_arm_read(c, 0);
			return 0;
		}
		return -1;
	}
	c->outoff = c->outlen = 0;
	if (c->outcap > OUTBUF_KEEP) {
		/* A burst is over: do not keep its buffer per idle client. */
		free(c->out);
		c->out = NULL;
		c->outcap = 0;
	}
	if (event_pending(c->wev, EV_WRITE, NULL))
		event_del(c->wev);
	if (c->closing && c->head == NULL)
		return -1;
	srv_conn_arm_read(c, 1);
	return 0;
}

static void
count_answer(struct srv *s, const struct pol_answer *ans)
{
	s->st.requests++;
	if (ans->kind <= POL_PERM) {
		s->st.answers[ans->kind]++;
		if (ans->source <= POL_SRC_ERROR)
			s->st.by_source[ans->kind][ans->source]++;
	}
}

/*
 * Issue 12: at -v, one line per answer given, whether it was known at
 * once or came after a resolution (MS: how long the client waited).
 * REPLY is the socketmap payload when the caller has it, else NULL.
 */
static void
log_lookup(const char *key, size_t keylen, const struct pol_answer *ans,
	   const char *reply, int waited, uint64_t ms)
{
	static char buf[LIM_REPLY_MAX + 1];

	if (log_verbose() < 1)
		return;
	if (reply == NULL) {
		pol_format(ans, buf, sizeof(buf));
		reply = buf;
	}
	/* The logger escapes control bytes itself (STYLE rule 5). */
	if (waited)
		log_debug("lookup %.*s: %s (from %s, after %llu ms of "
			  "resolution)",
			  (int)(keylen < 200 ? keylen : 200), key, reply,
			  pol_source_name(ans->source), (unsigned long long)ms);
	else
		log_debug("lookup %.*s: %s (from %s)",
			  (int)(keylen < 200 ? keylen : 200), key, reply,
			  pol_source_name(ans->source));
}

/* Frame a socketmap answer: "<len>:<reply>," into a new buffer. */
static char *
smap_frame(struct srv *s, const struct pol_answer *ans, int tlsrpt,
	   size_t *lenp)
{
	size_t rlen = tlsrpt
			  ? pol_format_tlsrpt(ans, s->reply, sizeof(s->reply))
			  : pol_format(ans, s->reply, sizeof(s->reply));
	size_t hl;
	char hdr[16], *out;

	hl = smap_header(rlen, hdr);
	if ((out = malloc(hl + rlen + 1)) == NULL)
		return NULL;
	memcpy(out, hdr, hl);
	memcpy(out + hl, s->reply, rlen);
	out[hl + rlen] = ',';
	*lenp = hl + rlen + 1;
	return out;
}

static char *json_line(char *txt, size_t *lenp);

/* The JSON-lines reply to a query, newline included. */
static char *
qry_frame(const char *key, size_t keylen, const struct pol_answer *ans,
	  size_t *lenp)
{
	return json_line(qry_format_answer(key, keylen, ans), lenp);
}

/* Append SL (or a new slot when NULL) to C's queue of owed replies. */
static struct slot *
slot_add(struct conn *c, struct slot *sl)
{
	if (sl == NULL && (sl = calloc(1, sizeof(*sl))) == NULL)
		return NULL;
	sl->c = c;
	if (c->head == NULL)
		c->tailp = &c->head;
	*c->tailp = sl;
	c->tailp = &sl->next;
	c->nslots++;
	return sl;
}

static void
slot_free(struct slot *sl)
{
	if (sl->req != NULL)
		pol_cancel(sl->req);
	if (sl->adm != NULL)
		adm_cancel(sl->adm);
	free(sl->reply);
	free(sl->key);
	free(sl);
}

/* Move the answered replies at the head of the queue to the output. */
static int
conn_drain(struct conn *c)
{
	while (c->head != NULL && c->head->done && !conn_output_full(c)) {
		struct slot *sl = c->head;
		int rc = conn_queue(c, sl->reply, sl->len);

		c->head = sl->next;
		c->nslots--;
		slot_free(sl);
		if (rc != 0)
			return -1;
	}
	return 0;
}

/*
 * Output LEN bytes of reply (OWNED: malloc'd and now ours): straight to
 * the output when nothing is owed before it, else behind the queue.
 */
static int
conn_reply(struct conn *c, char *owned, size_t len)
{
	struct slot *sl;
	int rc;

	if (owned == NULL)
		return -1;
	if (c->head == NULL) {
		rc = conn_queue(c, owned, len);
		free(owned);
		return rc;
	}
	if ((sl = slot_add(c, NULL)) == NULL) {
		free(owned);
		return -1;
	}
	sl->done = 1;
	sl->reply = owned;
	sl->len = len;
	return 0;
}

static int conn_service(struct conn *c);

/*
 * DESIGN 6.10, issue 10 item 3: "nothing found" is not trusted while the
 * daemon is short of file descriptors, since the lookup's DNS queries or
 * fetch may have failed for want of a socket: such an answer becomes TEMP,
 * never NOTFOUND. Short means no descriptor is free now (probed with a
 * dup of FD), or accept() or a probe ran out within FD_TROUBLE_S. COLD: a
 * lookup that had to resolve (always probed); otherwise (answers from
 * memory) only probed within FD_TROUBLE_S of trouble, so the hot path
 * makes no system call.
 */
static const struct pol_answer *
local_shortage(struct srv *s, int fd, int cold, const struct pol_answer *ans,
	       struct pol_answer *tmp)
{
	time_t now = ev_now();
	int d;

	if (ans->kind != POL_NOTFOUND || ans->source != POL_SRC_NONE)
		return ans;
	if (!cold &&
	    (s->fd_trouble_at == 0 || now - s->fd_trouble_at >= FD_TROUBLE_S))
		return ans;
	if ((d = fcntl(fd, F_DUPFD_CLOEXEC, 0)) >= 0)
		close(d);
	else if (errno == EMFILE || errno == ENFILE)
		s->fd_trouble_at = now;
	if (s->fd_trouble_at == 0 || now - s->fd_trouble_at >= FD_TROUBLE_S)
		return ans;
	*tmp = *ans;
	tmp->kind = POL_TEMP;
	tmp->data = "local resource shortage (out of file descriptors)";
	tmp->source = POL_SRC_ERROR;
	tmp->reason = "the daemon ran out of file descriptors; the lookup "
		      "proves nothing";
	s->st.local_temp++;
	if (srv_warn_allowed(s))
		log_warnx("%s: answering TEMP, not NOTFOUND: the daemon is "
			  "out of file descriptors, so the lookup proves "
			  "nothing",
			  ans->domain != NULL ? ans->domain : "(lookup)");
	return tmp;
}

/* A pending lookup finished: frame its reply and send what is in order. */
static void
slot_answered(const struct pol_answer *answer, void *arg)
{
	struct slot *sl = arg;
	struct conn *c = sl->c;
	struct srv *s = c->srv;
	struct pol_answer tmp;
	const struct pol_answer *ans =
	    local_shortage(s, c->fd, 1, answer, &tmp);
	uint64_t ms = ev_mono_ms() - sl->t0;

	sl->req = NULL;
	count_answer(s, ans);
	hist_add(&s->st.latency, ms);
	log_lookup(sl->key != NULL ? sl->key : "", sl->keylen, ans, NULL, 1,
		   ms);
	if (c->proto == PROTO_SMAP)
		sl->reply = smap_frame(s, ans, sl->tlsrpt, &sl->len);
	else
		sl->reply = qry_frame(sl->key, sl->keylen, ans, &sl->len);
	sl->done = 1;
	if (sl->reply == NULL || conn_drain(c) != 0 || conn_service(c) != 0)
		srv_conn_close(c);
}

/*
 * Look KEY up for connection C. The common case, an answer known at once
 * with nothing owed before it, is framed into the output directly with no
 * allocation; a pending lookup takes the connection's spare slot.
 */
static int
conn_lookup(struct conn *c, const char *key, size_t keylen, int tlsrpt)
{
	struct srv *s = c->srv;
	struct pol_answer ans, tmp;
	const struct pol_answer *ap;
	struct pol_req *req;
	struct slot *sl;
	size_t len = 0, hl;
	char hdr[16];
	uint64_t t0 = ev_mono_ms();

	if (c->spare == NULL && (c->spare = calloc(1, sizeof(*sl))) == NULL)
		return -1;
	sl = c->spare;
	if (pol_lookup(s->pol, key, keylen, &ans, slot_answered, sl, &req) ==
	    POL_PENDING) {
		c->spare = NULL;
		sl->req = req;
		sl->tlsrpt = tlsrpt;
		sl->t0 = t0;
		slot_add(c, sl);
		/* The key: for the JSON reply, and for the log line. */
		if ((sl->key = malloc(keylen + 1)) == NULL)
			return -1;
		memcpy(sl->key, key, keylen);
		sl->key[keylen] = '\0';
		sl->keylen = keylen;
		return 0;
	}
	ap = local_shortage(s, c->fd, 0, &ans, &tmp);
	count_answer(s, ap);
	hist_add(&s->st.latency, ev_mono_ms() - t0);
	if (c->head != NULL || c->proto != PROTO_SMAP) {
		char *reply;

		log_lookup(key, keylen, ap, NULL, 0, 0);
		reply = c->proto == PROTO_SMAP
			    ? smap_frame(s, ap, tlsrpt, &len)
			    : qry_frame(key, keylen, ap, &len);

		return conn_reply(c, reply, len);
	}
	len = tlsrpt ? pol_format_tlsrpt(ap, s->reply, sizeof(s->reply))
		     : pol_format(ap, s->reply, sizeof(s->reply));
	log_lookup(key, keylen, ap, s->reply, 0, 0);
	hl = smap_header(len, hdr);
	if (conn_queue(c, hdr, hl) || conn_queue(c, s->reply, len) ||
	    conn_queue(c, ",", 1))
		return -1;
	return 0;
}

/* One socketmap request payload "name key" (SPEC A1.2). */
static int
smap_request(struct conn *c, const char *payload, size_t plen)
{
	struct srv *s = c->srv;
	struct pol_answer ans;
	const char *name, *key = NULL;
	size_t namelen, keylen = 0, len = 0;
	char *reply;

	if (smap_split(payload, plen, &name, &namelen, &key, &keylen) != 0) {
		name = payload;
		namelen = plen;
		key = NULL;
	}
	if (key != NULL && cfg_word_in(s->cfg->socketmap_names, name, namelen))
		return conn_lookup(
		    c, key, keylen,
		    cfg_word_in(s->cfg->tlsrpt_names, name, namelen));
	/* SPEC F8: an unknown map name is an administrator's error. */
	if (srv_warn_allowed(s))
		log_warnx(
		    "socketmap: unknown map name '%.*s'",
		    (int)(namelen < LIM_MAP_NAME ? namelen : LIM_MAP_NAME),
		    name);
	memset(&ans, 0, sizeof(ans));
	ans.kind = POL_PERM;
	ans.data = "unknown socketmap name";
	ans.source = POL_SRC_KEY;
	count_answer(s, &ans);
	reply = smap_frame(s, &ans, 0, &len);
	return conn_reply(c, reply, len);
}

static char *
stats_json(struct srv *s)
{
	struct cache_stats cs;
	struct pol_stats ps;
	json_t *o, *t;
	char *txt;

	cache_get_stats(s->cache, &cs);
	o = json_pack(
	    "{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,"
	    "s:{s:I,s:I,s:I},s:{s:I,s:I,s:I},s:{s:I,s:I,s:I,s:I,s:I},"
	    "s:{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,"
	    "s:I}}",
	    "connections", (json_int_t)s->nconns, "accepted",
	    (json_int_t)s->st.accepted, "rejected", (json_int_t)s->st.rejected,
	    "requests", (json_int_t)s->st.requests, "framing_errors",
	    (json_int_t)s->st.framing_errors, "eof_in_request",
	    (json_int_t)s->st.eof_in_request, "request_timeouts",
	    (json_int_t)s->st.request_timeouts, "write_timeouts",
	    (json_int_t)s->st.timeouts, "admin_denied",
	    (json_int_t)s->st.admin_denied, "refused_peer",
	    (json_int_t)s->st.refused_peer, "accept_paused",
	    (json_int_t)s->st.accept_paused, "local_temp",
	    (json_int_t)s->st.local_temp, "queued_output", (json_int_t)s->outq,
	    "flushes", (json_int_t)(s->adm != NULL ? adm_flushes(s->adm) : 0),
	    "open", "socketmap", (json_int_t)s->nconns_by[PROTO_SMAP], "query",
	    (json_int_t)s->nconns_by[PROTO_QRY], "admin",
	    (json_int_t)s->nconns_by[PROTO_ADM], "refused", "socketmap",
	    (json_int_t)s->st.refused[PROTO_SMAP], "query",
	    (json_int_t)s->st.refused[PROTO_QRY], "admin",
	    (json_int_t)s->st.refused[PROTO_ADM], "answers", "OK",
	    (json_int_t)s->st.answers[POL_OK], "NOTFOUND",
	    (json_int_t)s->st.answers[POL_NOTFOUND], "TEMP",
	    (json_int_t)s->st.answers[POL_TEMP], "TIMEOUT",
	    (json_int_t)s->st.answers[POL_TIMEOUT], "PERM",
	    (json_int_t)s->st.answers[POL_PERM], "cache", "hits",
	    (json_int_t)cs.hits, "misses", (json_int_t)cs.misses,
	    "negative_hits", (json_int_t)cs.negative_hits, "evictions",
	    (json_int_t)cs.evictions, "db_reads", (json_int_t)cs.db_reads,
	    "entries", (json_int_t)cs.entries, "deferred_writes",
	    (json_int_t)cs.deferred_writes, "retried_writes",
	    (json_int_t)cs.retried_writes, "unsaved_writes",
	    (json_int_t)cs.unsaved_writes, "pending_writes",
	    (json_int_t)cs.pending, "polls", (json_int_t)cs.polls,
	    "polled_updates", (json_int_t)cs.polled_updates, "batched_writes",
	    (json_int_t)cs.async_writes, "loop_reads",
	    (json_int_t)cs.async_reads, "loop_commands",
	    (json_int_t)cs.async_jobs);
	if (o == NULL)
		return NULL;
	pol_get_stats(s->pol, &ps);
	/* DESIGN 6.9: what runs behind the answers, for operators and
	 * tests (a re-check still running while its answer was given). */
	json_object_set_new(
	    o, "resolutions",
	    json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}",
		      "active", (json_int_t)ps.resolving, "running",
		      (json_int_t)ps.running, "queued", (json_int_t)ps.queued,
		      "running_background", (json_int_t)ps.running_background,
		      "waited", (json_int_t)ps.waited, "store_waited",
		      (json_int_t)ps.store_waited, "background_started",
		      (json_int_t)ps.background, "refreshes",
		      (json_int_t)ps.refreshes, "dane_failed",
		      (json_int_t)ps.dane_failed, "store_failures",
		      (json_int_t)ps.store_failures, "local_failures",
		      (json_int_t)ps.local_failures, "timeouts",
		      (json_int_t)ps.timeouts));
	if (s->adm != NULL && (t = adm_tlsrpt_stats(s->adm)) != NULL)
		json_object_set_new(o, "tlsrpt", t);
	txt = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return txt;
}

/* Append a newline to a malloc'd JSON text. */
static char *
json_line(char *txt, size_t *lenp)
{
	size_t len;
	char *out;

	if (txt == NULL)
		return NULL;
	len = strlen(txt);
	if ((out = realloc(txt, len + 2)) == NULL) {
		free(txt);
		return NULL;
	}
	out[len] = '\n';
	out[len + 1] = '\0';
	*lenp = len + 1;
	return out;
}

/* An admin command that waited for the store ended (adm.h). */
static void
slot_admin_done(char *reply, void *arg)
{
	struct slot *sl = arg;
	struct conn *c = sl->c;

	sl->adm = NULL;
	sl->reply = json_line(reply, &sl->len);
	sl->done = 1;
	if (sl->reply == NULL || conn_drain(c) != 0 || conn_service(c) != 0)
		srv_conn_close(c);
}

/*
 * An admin command: answered at once, or (a command waiting for a shared
 * store) in a slot of its own, so the replies keep their order and the
 * loop serves everyone else meanwhile.
 */
static int
conn_admin(struct conn *c, const struct qry_request *rq)
{
	struct slot *sl = calloc(1, sizeof(*sl));
	struct adm_job *job;
	char *reply;
	size_t rlen = 0;

	if (sl == NULL)
		return -1;
	sl->c = c;
	reply = adm_answer(c->srv->adm, rq, slot_admin_done, sl, &job);
	if (job == NULL) {
		free(sl);
		reply = json_line(reply, &rlen);
		return conn_reply(c, reply, rlen);
	}
	sl->adm = job;
	slot_add(c, sl);
	return 0;
}

/* One JSON-lines request (the line without its LF). */
static int
qry_request(struct conn *c, const char *line, size_t len)
{
	struct srv *s = c->srv;
	struct qry_request rq;
	char err[256];
	char *reply = NULL;
	size_t rlen = 0;

	if (qry_parse(line, len, &rq, err, sizeof(err)) != 0)
		reply = qry_format_error(err);
	else if (qry_cmd_admin(rq.cmd) && c->proto != PROTO_ADM) {
		/* DESIGN 6.11: the query socket is read-only for MTAs. */
		snprintf(err, sizeof(err),
			 "%s is an administrative command: it is answered on "
			 "the admin socket only ([server] admin_socket; use "
			 "tlspolicy as root or the daemon's user)",
			 rq.name);
		reply = qry_format_error(err);
	} else if (qry_cmd_admin(rq.cmd)) {
		if (s->adm != NULL)
			return conn_admin(c, &rq);
		reply = qry_format_error("no admin commands configured");
	} else {
		switch (rq.cmd) {
		case QRY_QUERY:
			return conn_lookup(c, rq.key, rq.keylen, 0);
		case QRY_STATS:
			reply = stats_json(s);
			break;
		case QRY_PING:
			reply = strdup("{\"pong\":true}");
			break;
		case QRY_REPORT:
			if (s->report_fn == NULL)
				reply = qry_format_error("tlsrpt is disabled");
			else if (s->report_fn(s->report_arg, rq.report,
					      rq.reportlen, err,
					      sizeof(err)) != 0)
				reply = qry_format_error(err);
			else
				reply = strdup("{\"counted\":true}");
			break;
		default:
			reply = qry_format_error("unknown cmd");
			break;
		}
	}
	reply = json_line(reply, &rlen);
	return conn_reply(c, reply, rlen);
}

/* The end of an HTTP request's header block (CRLF CRLF, or LF LF from a
 * lax client) in P[0..LEN), or NULL while it has not arrived. */
static const char *
http_head_end(const char *p, size_t len)
{
	size_t i;

	for (i = 0; i + 1 < len; i++)
		if (p[i] == '\n' &&
		    (p[i + 1] == '\n' ||
		     (p[i + 1] == '\r' && i + 2 < len && p[i + 2] == '\n')))
			return p + i;
	return NULL;
}

/*
 * Issue 12: the metrics endpoint answers one HTTP request per connection
 * and closes (Connection: close); the request, line and headers, must fit
 * LIM_HTTP_REQUEST bytes and arrive within [server] request_timeout.
 */
static int
met_request(struct conn *c, const char *req, size_t len)
{
	struct srv *s = c->srv;
	static const char unavailable[] =
	    "HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\n"
	    "Connection: close\r\n\r\n";
	char *reply = NULL;
	size_t rlen = 0;

	c->closing = 1;
	if (s->http_fn != NULL)
		reply = s->http_fn(s->http_arg, req, len, &rlen);
	if (reply == NULL)
		return conn_queue(c, unavailable, sizeof(unavailable) - 1);
	return conn_reply(c, reply, rlen);
}

/*
 * Issue 10 item 6: a request must arrive whole within [server]
 * request_timeout of its first byte. The idle timeout restarts with every
 * byte read, so alone it lets a client that sends one byte a second hold
 * its slot for ever. PARTIAL: the input now ends inside a request; NEW:
 * requests were consumed, so that partial one began just now.
 */
static void
conn_deadline(struct conn *c, int partial, int new)
{
	struct timeval tv = {c->srv->cfg->request_timeout, 0};

	c->partial = partial;
	if (c->dl == NULL)
		return;
	if (!partial) {
		if (evtimer_pending(c->dl, NULL))
			evtimer_del(c->dl);
	} else if (new || !evtimer_pending(c->dl, NULL)) {
		evtimer_add(c->dl, &tv);
	}
}

void
srv_conn_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	struct srv *s = c->srv;

	(void)fd;
	(void)what;
	if (!c->partial)
		return;
	s->st.request_timeouts++;
	if (srv_warn_allowed(s))
		log_warnx("%s connection %lu: no whole request within %ld s "
			  "([server] request_timeout), closing",
			  srv_proto_names[c->proto], c->id,
			  s->cfg->request_timeout);
	srv_conn_close(c);
}

/*
 * Answer every complete request in the input buffer, in order. Returns -1
 * when the connection must close (bad framing, out of memory).
 */
static int
conn_process(struct conn *c)
{
	struct srv *s = c->srv;
	static const char too_long[] =
	    "{\"error\":\"request line too long\"}\n";
	size_t off = 0;
	int rc = 0, partial = 0;

	if (conn_drain(c) != 0)
		return -1;
	while (off < c->inlen && !c->closing) {
		const char *p = c->in + off;
		size_t avail = c->inlen - off, used;

		if (c->proto == PROTO_MET) {
			static const char too_big[] =
			    "HTTP/1.0 431 Request Header Fields Too Large\r\n"
			    "Content-Length: 0\r\nConnection: close\r\n\r\n";
			const char *end = http_head_end(p, avail);

			if (end == NULL) {
				partial = 1;
				if (avail >= MET_FRAME_MAX) {
					partial = 0;
					s->st.framing_errors++;
					rc = conn_queue(c, too_big,
							sizeof(too_big) - 1);
					c->closing = 1;
					off = c->inlen;
				}
				break;
			}
			/* One request per connection: the rest is dropped. */
			used = avail;
			rc = met_request(c, p, (size_t)(end - p));
		} else if (c->proto == PROTO_SMAP) {
			const char *payload;
			size_t plen;
			enum smap_status st;

			st = smap_decode(p, avail, LIM_NETSTRING_MAX, &payload,
					 &plen, &used);
			if (st == SMAP_MORE) {
				partial = 1;
				break;
			}
			if (st != SMAP_OK) {
				/* SPEC B: bad framing closes the connection;
				 * Postfix retries once (SPEC A1.7). */
				s->st.framing_errors++;
				if (srv_warn_allowed(s))
					log_warnx("socketmap connection %lu: "
						  "%s, closing",
						  c->id, smap_strerror(st));
				c->partial = 0;
				return -1;
			}
			rc = smap_request(c, payload, plen);
		} else {
			const char *nl = memchr(p, '\n', avail);

			if (nl == NULL) {
				partial = 1;
				if (avail >= QRY_FRAME_MAX) {
					partial = 0;
					s->st.framing_errors++;
					if (srv_warn_allowed(s))
						log_warnx(
						    "%s connection "
						    "%lu: request line "
						    "too long, closing",
						    srv_proto_names[c->proto],
						    c->id);
					rc = conn_queue(c, too_long,
							strlen(too_long));
					c->closing = 1;
					off = c->inlen;
				}
				break;
			}
			used = (size_t)(nl - p) + 1;
			rc = qry_request(c, p, used - 1);
		}
		if (rc != 0)
			return -1;
		off += used;
		/* Stop taking requests from a client that does not read,
		 * or that has too many lookups pending. */
		if (conn_output_full(c) || c->nslots >= LIM_CONN_PENDING)
			break;
	}
	if (off > 0) {
		memmove(c->in, c->in + off, c->inlen - off);
		c->inlen -= off;
	}
	conn_deadline(c, partial, off > 0);
	return 0;
}

/*
 * Answer what the input holds and write it out, again while the output
 * drains and complete requests remain (they wait while too much output is
 * queued). Returns -1 when the connection must close.
 */
static int
conn_service(struct conn *c)
{
	int round;

	for (round = 0; round < 64; round++) {
		size_t before = c->inlen;

		if (conn_process(c) != 0 || conn_flush(c) != 0)
			return -1;
		if (c->inlen == 0 || c->inlen == before ||
		    c->outlen > c->outoff)
			break;
	}
	return 0;
}

void
srv_conn_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	size_t max = c->proto == PROTO_SMAP  ? SMAP_FRAME_MAX
		     : c->proto == PROTO_MET ? MET_FRAME_MAX
					     : QRY_FRAME_MAX;
	size_t room;
	ssize_t n;

	if (what & EV_TIMEOUT) {
		/* Idle: Postfix reconnects when it needs us (SPEC A1.5). */
		c->srv->st.timeouts++;
		log_debug("connection %lu idle, closing", c->id);
		srv_conn_close(c);
		return;
	}
	if (c->inlen == c->incap && c->incap < max &&
	    buf_reserve(&c->in, &c->incap,
			c->incap ? c->incap * 2 : INBUF_INITIAL,
			INBUF_INITIAL) != 0) {
		srv_conn_close(c);
		return;
	}
	room = (c->incap < max ? c->incap : max) - c->inlen;
	if (room == 0) {
		/* Full of requests held back by queued output: wait for
		 * the client to read (srv_conn_write_cb resumes). */
		srv_conn_arm_read(c, 0);
		return;
	}
	/* One read per wake-up: a request/reply client sends one request,
	 * and a second read would only say EAGAIN. */
	n = recv(fd, c->in + c->inlen, room, 0);
	if (n == 0) {
		/* A half-close: the client sends no more but may still
		 * read, so answer what it asked, then close. */
		if (c->partial) {
			/* PROTOCOL.md 2.4: a framing error, logged and
			 * counted (issue 10 item 20). */
			c->srv->st.framing_errors++;
			c->srv->st.eof_in_request++;
			if (srv_warn_allowed(c->srv))
				log_warnx("%s connection %lu: end of file in "
					  "the middle of %s",
					  srv_proto_names[c->proto], c->id,
					  c->proto == PROTO_SMAP
					      ? "a netstring"
					      : "a request line");
			conn_deadline(c, 0, 0);
		}
		c->closing = 1;
		srv_conn_arm_read(c, 0);
		if (conn_flush(c) != 0)
			srv_conn_close(c);
		return;
	}
	if (n < 0 && errno != EINTR && errno != EAGAIN &&
	    errno != EWOULDBLOCK) {
		/* The client is gone: drop what it was owed. */
		srv_conn_close(c);
		return;
	}
	if (n > 0)
		c->inlen += (size_t)n;
	if (conn_service(c) != 0)
		srv_conn_close(c);
}

void
srv_conn_write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	(void)fd;
	if (what & EV_TIMEOUT) {
		struct srv *s = c->srv;

		s->st.timeouts++;
		if (srv_warn_allowed(s))
			log_warnx("connection %lu does not read its replies, "
				  "closing",
				  c->id);
		srv_conn_close(c);
		return;
	}
	if (conn_service(c) != 0)
		srv_conn_close(c);
}

static void srv_maybe_done(struct srv *s);

void
srv_conn_close(struct conn *c)
{
	struct srv *s = c->srv;

	event_free(c->rev);
	event_free(c->wev);
	if (c->dl != NULL)
		event_free(c->dl);
	conn_output_done(c, conn_pending(c));
	if (c->peer != NULL)
		c->peer->n--;
	close(c->fd);
	s->nconns_by[c->proto]--;
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	s->nconns--;
	while (c->head != NULL) {
		struct slot *sl = c->head;

		c->head = sl->next;
		slot_free(sl);
	}
	free(c->spare);
	free(c->in);
	free(c->out);
	free(c);
	if (s->stopping)
		srv_maybe_done(s);
}

/* --- the server ----------------------------------------------------------- */

struct srv *
srv_new(struct event_base *base, const struct cfg *cfg, struct pol *pol,
	struct cache *cache, char *err, size_t errsz)
{
	struct srv *s;
	const char *p;
	size_t i;

	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (s->ls = calloc(LIM_LISTENERS + 1, sizeof(*s->ls))) == NULL) {
		free(s);
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	s->base = base;
	s->cfg = cfg;
	s->pol = pol;
	s->cache = cache;
	for (p = cfg->socketmap; *p;) {
		size_t len;

		p += strspn(p, " \t");
		if ((len = strcspn(p, " \t")) == 0)
			break;
		if (srv_add_listener(s, PROTO_SMAP, p, len, cfg->socketmap_mode,
				     cfg->socketmap_group, err, errsz) != 0)
			goto fail;
		p += len;
	}
	if (s->nls == 0) {
		snprintf(err, errsz, "no [server] socketmap endpoint");
		goto fail;
	}
	if (*cfg->query_socket &&
	    srv_add_listener(s, PROTO_QRY, cfg->query_socket,
			     strlen(cfg->query_socket), cfg->query_socket_mode,
			     cfg->query_socket_group, err, errsz) != 0)
		goto fail;
	if (*cfg->query_socket) {
		if ((s->peers = malloc(PEER_SLOTS * sizeof(*s->peers))) ==
		    NULL) {
			snprintf(err, errsz, "out of memory");
			goto fail;
		}
		for (i = 0; i < PEER_SLOTS; i++)
			s->peers[i].uid = -1;
	}
	/* DESIGN 6.11: mode 0600; srv_chown() gives it to [server] user. */
	if (*cfg->admin_socket &&
	    srv_add_listener(s, PROTO_ADM, cfg->admin_socket,
			     strlen(cfg->admin_socket), 0600, "", err,
			     errsz) != 0)
		goto fail;
	/* Issue 12: the metrics endpoint, loopback or a unix socket. */
	if (*cfg->metrics &&
	    srv_add_listener(s, PROTO_MET, cfg->metrics, strlen(cfg->metrics),
			     0660, "", err, errsz) != 0)
		goto fail;
	for (i = 0; i < s->nls; i++) {
		struct listener *l = &s->ls[i];

		l->ev = event_new(base, l->fd, EV_READ | EV_PERSIST,
				  srv_accept_cb, l);
		if (l->ev == NULL) {
			snprintf(err, errsz, "event_new failed");
			goto fail;
		}
	}
	return s;
fail:
	srv_free(s);
	return NULL;
}

void
srv_listeners_arm(struct srv *s, int on)
{
	size_t i;

	for (i = 0; i < s->nls; i++) {
		if (s->ls[i].ev == NULL)
			continue;
		if (on)
			event_add(s->ls[i].ev, NULL);
		else
			event_del(s->ls[i].ev);
	}
}

void
srv_set_fd_reserve(struct srv *s, long reserve)
{
	s->fd_reserve = reserve;
}

void
srv_set_admin(struct srv *s, struct adm *adm)
{
	s->adm = adm;
}

int
srv_chown(struct srv *s, uid_t uid, gid_t gid)
{
	size_t i;

	for (i = 0; i < s->nls; i++)
		if (s->ls[i].proto == PROTO_ADM && s->ls[i].path != NULL &&
		    chown(s->ls[i].path, uid, gid) != 0)
			return -1;
	return 0;
}

void
srv_start(struct srv *s)
{
	srv_pools_size(s, 1);
	srv_listeners_arm(s, 1);
}

void
srv_set_http(struct srv *s, srv_http_fn *fn, void *arg)
{
	s->http_fn = fn;
	s->http_arg = arg;
}

const char *
srv_listener_name(unsigned kind)
{
	return kind < PROTO_N ? srv_proto_names[kind] : "?";
}

void
srv_get_metrics(const struct srv *s, struct srv_metrics *m)
{
	unsigned k, src;

	memset(m, 0, sizeof(*m));
	for (k = 0; k < PROTO_N; k++) {
		m->configured[k] = srv_has_listener(s, (enum srv_proto)k) ||
				   s->st.accepted_by[k] > 0;
		m->open[k] = s->nconns_by[k];
		m->accepted[k] = s->st.accepted_by[k];
		m->refused[k] = s->st.refused[k];
	}
	for (k = 0; k <= POL_PERM; k++)
		for (src = 0; src <= POL_SRC_ERROR; src++)
			m->answers[k][src] = s->st.by_source[k][src];
	m->framing_errors = s->st.framing_errors;
	m->request_timeouts = s->st.request_timeouts;
	m->latency = s->st.latency;
}

void
srv_set_report(struct srv *s, srv_report_fn *fn, void *arg)
{
	s->report_fn = fn;
	s->report_arg = arg;
}

void
srv_reconfigure(struct srv *s, const struct cfg *cfg)
{
	s->cfg = cfg;
	srv_pools_size(s, 0);
}

static void
close_listeners(struct srv *s)
{
	size_t i;

	for (i = 0; i < s->nls; i++) {
		struct listener *l = &s->ls[i];

		if (l->ev)
			event_free(l->ev);
		if (l->fd >= 0)
			close(l->fd);
		if (l->path)
			unlink(l->path);
		free(l->path);
		free(l->name);
		l->ev = NULL;
		l->fd = -1;
		l->path = l->name = NULL;
	}
	s->nls = 0;
	if (s->backoff != NULL) {
		event_free(s->backoff);
		s->backoff = NULL;
	}
}

static void
srv_maybe_done(struct srv *s)
{
	void (*done)(void *) = s->done;

	if (s->nconns > 0 || done == NULL)
		return;
	s->done = NULL;
	if (s->grace)
		event_del(s->grace);
	done(s->done_arg);
}

static void
grace_cb(evutil_socket_t fd, short what, void *arg)
{
	struct srv *s = arg;

	(void)fd;
	(void)what;
	log_warnx("shutdown: dropping %ld connections still open", s->nconns);
	while (s->conns)
		srv_conn_close(s->conns);
	srv_maybe_done(s);
}

void
srv_shutdown(struct srv *s, void (*done)(void *), void *arg)
{
	struct timeval tv = {SHUTDOWN_GRACE_S, 0};
	struct conn *c, *next;

	s->stopping = 1;
	s->done = done;
	s->done_arg = arg;
	close_listeners(s);
	/* Finish the replies already owed; read nothing new. */
	for (c = s->conns; c; c = next) {
		next = c->next;
		c->closing = 1;
		srv_conn_arm_read(c, 0);
		if ((c->outoff == c->outlen && c->head == NULL) ||
		    conn_flush(c) != 0)
			srv_conn_close(c);
	}
	if ((s->grace = evtimer_new(s->base, grace_cb, s)) != NULL)
		evtimer_add(s->grace, &tv);
	srv_maybe_done(s);
}

void
srv_free(struct srv *s)
{
	if (s == NULL)
		return;
	s->done = NULL;
	while (s->conns)
		srv_conn_close(s->conns);
	close_listeners(s);
	if (s->grace)
		event_free(s->grace);
	free(s->ls);
	free(s->peers);
	free(s);
}
