/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Listeners, accepting connections and the descriptor limit: binding the
 * endpoints, the per-listener pools and the per-user query limit, and
 * backing off when descriptors run out (issue 10 items 3 and 6).
 */
#include "config.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
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

#include "daemon/adm.h"
#include "daemon/srv_int.h"
#include "util/cfg.h"
#include "util/ev.h"
#include "util/log.h"
#include "util/sock.h"

/* --- listeners --------------------------------------------------------- */

/* "inet:127.0.0.1:8461" or "inet:[::1]:8461" (cfg checked the form). */
static int
bind_inet(const char *spec, char *err, size_t errsz)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	char host[64];
	const char *colon = strrchr(spec, ':');
	size_t hl;
	long port;
	int fd, on = 1;

	memset(&ss, 0, sizeof(ss));
	if (colon == NULL || (hl = (size_t)(colon - spec)) >= sizeof(host) ||
	    hl == 0) {
		snprintf(err, errsz, "inet:%s: bad address", spec);
		return -1;
	}
	memcpy(host, spec, hl);
	host[hl] = '\0';
	port = strtol(colon + 1, NULL, 10);
	if (host[0] == '[' && host[hl - 1] == ']') {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		host[hl - 1] = '\0';
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, host + 1, &s6->sin6_addr) != 1)
			goto bad;
		sslen = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
			goto bad;
		sslen = sizeof(*s4);
	}
	if ((fd = socket(ss.ss_family,
			 SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0) {
		snprintf(err, errsz, "socket: %s", strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	if (bind(fd, (struct sockaddr *)&ss, sslen) != 0 ||
	    listen(fd, 1024) != 0) {
		snprintf(err, errsz, "inet:%s: %s", spec, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
bad:
	snprintf(err, errsz, "inet:%s: bad address", spec);
	return -1;
}

int
srv_add_listener(struct srv *s, enum srv_proto proto, const char *spec,
		 size_t len, unsigned mode, const char *group, char *err,
		 size_t errsz)
{
	struct listener *l;
	char buf[LIM_CONFIG_VALUE + 1];
	int fd;

	if (len >= sizeof(buf) || s->nls >= LIM_LISTENERS + 1) {
		snprintf(err, errsz, "too many or too long listeners");
		return -1;
	}
	memcpy(buf, spec, len);
	buf[len] = '\0';
	if (strncmp(buf, "unix:", 5) == 0)
		fd = sock_unix_bind(buf + 5, SOCK_STREAM, mode, group, err,
				    errsz);
	else if (strncmp(buf, "inet:", 5) == 0)
		fd = bind_inet(buf + 5, err, errsz);
	else {
		snprintf(err, errsz, "%s: not unix:PATH or inet:IP:PORT", buf);
		return -1;
	}
	if (fd < 0)
		return -1;
	l = &s->ls[s->nls++];
	l->srv = s;
	l->proto = proto;
	l->fd = fd;
	l->name = strdup(buf);
	l->path = strncmp(buf, "unix:", 5) == 0 ? strdup(buf + 5) : NULL;
	return 0;
}

/* Descriptor trouble is logged once a minute at most, with a count. */
static void
fd_warn(struct srv *s, const char *what)
{
	time_t now = ev_now();

	if (s->fd_warned != 0 && now - s->fd_warned < FD_WARN_INTERVAL_S) {
		s->fd_suppressed++;
		return;
	}
	log_warnx("%s; not accepting connections for %d ms (%llu similar "
		  "warnings suppressed)",
		  what, ACCEPT_BACKOFF_MS, s->fd_suppressed);
	s->fd_warned = now;
	s->fd_suppressed = 0;
}

static void
backoff_cb(evutil_socket_t fd, short what, void *arg)
{
	struct srv *s = arg;

	(void)fd;
	(void)what;
	s->paused = 0;
	if (!s->stopping)
		srv_listeners_arm(s, 1);
}

/*
 * Issue 10 item 3: accept() failed for want of descriptors. The listener
 * stays readable, so accepting again at once would spin; wait a moment
 * with every listener off. Outbound DNS and HTTPS keep their reserve.
 */
static void
accept_pause(struct srv *s, const struct listener *l, int err)
{
	struct timeval tv = {0, ACCEPT_BACKOFF_MS * 1000};
	char what[256];

	s->st.accept_paused++;
	s->fd_trouble_at = ev_now();
	snprintf(what, sizeof(what), "%s: accept: %s", l->name,
		 err == EMFILE ? "the process is out of file descriptors"
			       : "the system is out of file descriptors");
	fd_warn(s, what);
	if (s->backoff == NULL &&
	    (s->backoff = evtimer_new(s->base, backoff_cb, s)) == NULL)
		return;
	srv_listeners_arm(s, 0);
	s->paused = 1;
	evtimer_add(s->backoff, &tv);
}

/* DESIGN 6.11: the admin socket is for root and the daemon's user; the
 * file mode says so, and the peer's credentials are checked again. */
static int
admin_peer_ok(struct srv *s, int fd)
{
	static const char denied[] =
	    "{\"error\":\"the admin socket is for root and the daemon's "
	    "user only\"}\n";
	long uid;
	ssize_t n;

	if (adm_peer_allowed(fd, &uid))
		return 1;
	s->st.admin_denied++;
	if (srv_warn_allowed(s))
		log_warnx("admin socket: refused a client running as uid %ld "
			  "(only root and the daemon's user may connect)",
			  uid);
	n = send(fd, denied, sizeof(denied) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
	(void)n;
	return 0;
}

/*
 * The count of query connections of the user UID: an existing slot, else
 * a free one claimed for it; NULL when the table is full.
 */
static struct peer *
peer_slot(struct srv *s, long uid)
{
	size_t h = ((size_t)uid * 2654435761u) & (PEER_SLOTS - 1), i;
	struct peer *reuse = NULL;

	for (i = 0; i < PEER_SLOTS; i++) {
		struct peer *p = &s->peers[(h + i) & (PEER_SLOTS - 1)];

		if (p->uid == uid)
			return p;
		if (p->uid == -1) {
			p = reuse != NULL ? reuse : p;
			p->uid = uid;
			p->n = 0;
			return p;
		}
		if (p->n == 0 && reuse == NULL)
			reuse = p;
	}
	if (reuse != NULL) {
		reuse->uid = uid;
		reuse->n = 0;
	}
	return reuse;
}

/*
 * Issue 10 item 6: one user (one MTA, one script) may hold at most
 * [server] query_max_per_peer query connections, so it cannot take the
 * pool from the others. Returns the user's slot to count the connection
 * in, or NULL with *REFUSE set when the user is at its limit.
 */
static struct peer *
peer_admit(struct srv *s, int fd, int *refuse)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	struct peer *p;

	*refuse = 0;
	if (s->peers == NULL || s->cfg->query_max_per_peer == 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0 ||
	    len != sizeof(cr) || (p = peer_slot(s, (long)cr.uid)) == NULL)
		return NULL;
	if (p->n >= s->cfg->query_max_per_peer) {
		*refuse = 1;
		s->st.refused_peer++;
		if (srv_warn_allowed(s))
			log_warnx("query socket: user %ld has %ld connections "
				  "open, the most one user may have "
				  "([server] query_max_per_peer); refusing "
				  "one",
				  (long)cr.uid, p->n);
		return NULL;
	}
	return p;
}

void
srv_accept_cb(evutil_socket_t lfd, short what, void *arg)
{
	struct listener *l = arg;
	struct srv *s = l->srv;
	int i;

	(void)what;
	for (i = 0; i < ACCEPT_BATCH && !s->paused; i++) {
		struct peer *peer = NULL;
		struct conn *c;
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE) {
				accept_pause(s, l, errno);
				return;
			}
			if (errno == EAGAIN || errno == EWOULDBLOCK ||
			    errno == EINTR || errno == ECONNABORTED)
				return;
			if (srv_warn_allowed(s))
				log_warn("%s: accept", l->name);
			return;
		}
		if (s->nconns_by[l->proto] >= s->pool_max[l->proto]) {
			/* DESIGN 6.4: bounded, per listener kind; the client
			 * sees EOF and Postfix retries (SPEC A1.7). */
			s->st.rejected++;
			s->st.refused[l->proto]++;
			if (srv_warn_allowed(s))
				log_warnx("%s: %ld %s connections open, the "
					  "most allowed (%s); refusing one",
					  l->name, s->nconns_by[l->proto],
					  srv_proto_names[l->proto],
					  l->proto == PROTO_SMAP
					      ? "[server] max_connections"
					  : l->proto == PROTO_QRY
					      ? "[server] query_max_connections"
					  : l->proto == PROTO_MET
					      ? "metrics connections"
					      : "admin connections");
			close(fd);
			continue;
		}
		if (l->proto == PROTO_ADM && !admin_peer_ok(s, fd)) {
			close(fd);
			continue;
		}
		if (l->proto == PROTO_QRY) {
			int refuse;

			peer = peer_admit(s, fd, &refuse);
			if (refuse) {
				s->st.rejected++;
				s->st.refused[l->proto]++;
				close(fd);
				continue;
			}
		}
		if ((c = calloc(1, sizeof(*c))) == NULL) {
			close(fd);
			return;
		}
		c->srv = s;
		c->proto = l->proto;
		c->fd = fd;
		c->id = ++s->next_id;
		if ((c->peer = peer) != NULL)
			peer->n++;
		c->rev = event_new(s->base, fd, EV_READ | EV_PERSIST,
				   srv_conn_read_cb, c);
		c->wev = event_new(s->base, fd, EV_WRITE | EV_PERSIST,
				   srv_conn_write_cb, c);
		c->dl = evtimer_new(s->base, srv_conn_deadline_cb, c);
		c->next = s->conns;
		if (s->conns)
			s->conns->prev = c;
		s->conns = c;
		s->nconns++;
		s->nconns_by[c->proto]++;
		s->st.accepted++;
		s->st.accepted_by[c->proto]++;
		if (c->rev == NULL || c->wev == NULL || c->dl == NULL) {
			srv_conn_close(c);
			return;
		}
		srv_conn_arm_read(c, 1);
	}
}

/* Descriptors open now (Linux: /proc/self/fd), or -1. */
static long
fds_open(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	long n = 0;

	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the directory's own descriptor */
}

int
srv_has_listener(const struct srv *s, enum srv_proto proto)
{
	size_t i;

	for (i = 0; i < s->nls; i++)
		if (s->ls[i].proto == proto)
			return 1;
	return 0;
}

/*
 * Issue 10 item 3: size the connection pools so that clients can never
 * take the descriptors outbound work needs. What RLIMIT_NOFILE allows,
 * less what is open now and the reserve, is shared by the pools; when it
 * is less than the configured limits, the query and admin pools get a
 * quarter at most and Postfix's socketmap the rest.
 */
void
srv_pools_size(struct srv *s, int say)
{
	const struct cfg *cfg = s->cfg;
	long want[PROTO_N], budget, total, open_now;
	struct rlimit rl;
	int p;

	want[PROTO_SMAP] = cfg->max_connections;
	want[PROTO_QRY] =
	    srv_has_listener(s, PROTO_QRY) ? cfg->query_max_connections : 0;
	want[PROTO_ADM] =
	    srv_has_listener(s, PROTO_ADM) ? LIM_ADMIN_CONNECTIONS : 0;
	want[PROTO_MET] =
	    srv_has_listener(s, PROTO_MET) ? LIM_METRICS_CONNECTIONS : 0;
	total = want[PROTO_SMAP] + want[PROTO_QRY] + want[PROTO_ADM] +
		want[PROTO_MET];
	/* Counted once, at start: on a reload the clients' own descriptors
	 * must not shrink the pools. */
	if (s->fd_base == 0 && (s->fd_base = fds_open()) < 0)
		s->fd_base = LIM_FD_BASE;
	open_now = s->fd_base;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
		budget = total;
	else
		budget = (long)rl.rlim_cur - open_now - s->fd_reserve;
	if (budget < 3)
		budget = 3;
	for (p = 0; p < PROTO_N; p++)
		s->pool_max[p] = want[p];
	if (total > budget) {
		long rest = budget;

		s->pool_max[PROTO_ADM] = want[PROTO_ADM] < rest / 8
					     ? want[PROTO_ADM]
					     : (want[PROTO_ADM] ? 1 : 0);
		rest -= s->pool_max[PROTO_ADM];
		s->pool_max[PROTO_MET] = want[PROTO_MET] ? 1 : 0;
		rest -= s->pool_max[PROTO_MET];
		s->pool_max[PROTO_QRY] = want[PROTO_QRY] < rest / 4
					     ? want[PROTO_QRY]
					     : (want[PROTO_QRY] ? rest / 4 : 0);
		if (want[PROTO_QRY] && s->pool_max[PROTO_QRY] < 1)
			s->pool_max[PROTO_QRY] = 1;
		rest -= s->pool_max[PROTO_QRY];
		s->pool_max[PROTO_SMAP] = rest < 1 ? 1 : rest;
	}
	if (!say)
		return;
	log_info("file descriptors: limit %lld, %ld open, %ld kept for DNS, "
		 "HTTPS and TLS-RPT; client connections: socketmap %ld, "
		 "query %ld, admin %ld",
		 rl.rlim_cur == RLIM_INFINITY ? -1LL : (long long)rl.rlim_cur,
		 open_now, s->fd_reserve, s->pool_max[PROTO_SMAP],
		 s->pool_max[PROTO_QRY], s->pool_max[PROTO_ADM]);
	if (total > budget)
		log_warnx("the file descriptor limit (%lld) leaves room for "
			  "%ld client connections, fewer than configured "
			  "(%ld); raise it (LimitNOFILE= in the systemd unit, "
			  "ulimit -n) or lower [server] max_connections and "
			  "query_max_connections",
			  (long long)rl.rlim_cur, budget, total);
}
