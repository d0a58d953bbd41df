/* SPDX-License-Identifier: BSD-2-Clause */

#define _GNU_SOURCE /* accept4, SOCK_NONBLOCK; bench is self-contained */
/*
 * floor: the smallest honest socketmap server, the machine's floor for
 * bench/run.sh. It answers every well-formed request with the fixed reply
 * "OK dane-only" and does nothing else, so whatever our daemon measures
 * against it is the cost of the daemon's own work.
 *
 * It still does what any socketmap server must (SPEC A1): buffered
 * netstring parsing that survives requests split across reads and several
 * requests in one read (answered in order), a cap on the declared length
 * checked before the bytes are awaited, "NAME KEY" payloads, and a closed
 * connection on malformed input. Output is bounded per connection: while
 * a client does not read its replies we stop reading its requests.
 *
 * One thread, one epoll set, non-blocking sockets, level-triggered.
 * Listens on a unix path (-u), on 127.0.0.1:PORT (-t), or both.
 */

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* SPEC A1.8: longest request payload. */
#define REQUEST_MAX 10000
/* SPEC A1.1: leading zeros allowed, digits capped. */
#define LEN_DIGITS_MAX 10
/* A whole request netstring fits in the input buffer. */
#define IBUF_SIZE (LEN_DIGITS_MAX + 1 + REQUEST_MAX + 1)
/* Replies queued to one client before we stop reading from it. */
#define OBUF_SIZE 65536
/* Most clients at once (SPEC A1.9 wants at least 100). */
#define CONNS_MAX 4096

static const char reply[] = "12:OK dane-only,";
#define REPLY_LEN (sizeof(reply) - 1)

struct conn {
	struct conn *prev, *next; /* all clients, freed at exit */
	int fd;
	size_t ilen;
	char ibuf[IBUF_SIZE];
	size_t ooff, olen;
	char obuf[OBUF_SIZE];
	unsigned events; /* what epoll watches now */
};

static int epfd;
static int nconns;
static struct conn *conns;
static volatile sig_atomic_t stop;
static const char *unix_path;
static unsigned long long served, closed_bad;

static void die(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

static void
die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("floor: ", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (unix_path != NULL)
		unlink(unix_path);
	exit(2);
}

static void
on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static int
listen_unix(const char *path)
{
	struct sockaddr_un sun;
	struct stat st;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path))
		die("unix path too long: %s", path);
	strcpy(sun.sun_path, path);
	/* Replace a stale socket, never a regular file. */
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			die("%s exists and is not a socket", path);
		unlink(path);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		die("socket: %s", strerror(errno));
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1)
		die("bind %s: %s", path, strerror(errno));
	if (listen(fd, 1024) == -1)
		die("listen: %s", strerror(errno));
	unix_path = path;
	return fd;
}

static int
listen_tcp(const char *arg)
{
	struct sockaddr_in sin;
	const char *port = arg, *colon = strrchr(arg, ':');
	char host[64] = "127.0.0.1";
	char *end;
	long p;
	int fd, one = 1;

	if (colon != NULL) {
		if ((size_t)(colon - arg) >= sizeof(host))
			die("bad address: %s", arg);
		memcpy(host, arg, (size_t)(colon - arg));
		host[colon - arg] = '\0';
		port = colon + 1;
	}
	p = strtol(port, &end, 10);
	if (*port == '\0' || *end != '\0' || p < 1 || p > 65535)
		die("bad port: %s", arg);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((unsigned short)p);
	if (inet_pton(AF_INET, host, &sin.sin_addr) != 1)
		die("bad IPv4 address: %s", host);
	/* SPEC A1.10: loopback only. */
	if ((ntohl(sin.sin_addr.s_addr) >> 24) != 127)
		die("refusing to listen outside 127.0.0.0/8: %s", host);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		die("socket: %s", strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1)
		die("bind %s: %s", arg, strerror(errno));
	if (listen(fd, 1024) == -1)
		die("listen: %s", strerror(errno));
	return fd;
}

static void
watch(struct conn *c, unsigned events)
{
	struct epoll_event ev;

	if (c->events == events)
		return;
	ev.events = events;
	ev.data.ptr = c;
	if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) == -1)
		die("epoll_ctl: %s", strerror(errno));
	c->events = events;
}

static void
conn_free(struct conn *c)
{
	epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	free(c);
	nconns--;
}

/*
 * Parse one request netstring at the start of BUF. Returns the bytes it
 * takes, 0 when more are needed, -1 when the input is malformed.
 */
static long
parse_request(const char *buf, size_t len)
{
	size_t i = 0, n = 0;
	const char *sp;

	while (i < len && buf[i] >= '0' && buf[i] <= '9') {
		if (i >= LEN_DIGITS_MAX)
			return -1; /* SPEC A1.1: digits capped */
		n = n * 10 + (size_t)(buf[i] - '0');
		i++;
	}
	if (i == len)
		return 0;
	if (i == 0 || buf[i] != ':')
		return -1; /* SPEC A1.1: digits only before ':' */
	/* SPEC A1.8: check the declared length before waiting for it. */
	if (n > REQUEST_MAX)
		return -1;
	if (len < i + 1 + n + 1)
		return 0;
	if (buf[i + 1 + n] != ',')
		return -1; /* SPEC A1.1: missing ',' */
	/* SPEC A1.2: "NAME KEY", split at the first space. */
	sp = memchr(buf + i + 1, ' ', n);
	if (sp == NULL || sp == buf + i + 1)
		return -1;
	return (long)(i + 1 + n + 1);
}

/* Answer every complete request in the input buffer while there is room
 * for the reply. Returns -1 when the connection must be closed. */
static int
conn_process(struct conn *c)
{
	size_t off = 0;
	long used;

	while (off < c->ilen) {
		if (OBUF_SIZE - c->olen < REPLY_LEN)
			break; /* output full: wait for the client */
		used = parse_request(c->ibuf + off, c->ilen - off);
		if (used < 0)
			return -1;
		if (used == 0)
			break;
		memcpy(c->obuf + c->olen, reply, REPLY_LEN);
		c->olen += REPLY_LEN;
		off += (size_t)used;
		served++;
	}
	if (off > 0) {
		memmove(c->ibuf, c->ibuf + off, c->ilen - off);
		c->ilen -= off;
	}
	return 0;
}

/* Write what is queued; returns -1 on a dead peer. */
static int
conn_write(struct conn *c)
{
	ssize_t n;

	while (c->ooff < c->olen) {
		n = write(c->fd, c->obuf + c->ooff, c->olen - c->ooff);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			return -1;
		}
		c->ooff += (size_t)n;
	}
	if (c->ooff == c->olen)
		c->ooff = c->olen = 0;
	else if (c->ooff > OBUF_SIZE / 2) {
		memmove(c->obuf, c->obuf + c->ooff, c->olen - c->ooff);
		c->olen -= c->ooff;
		c->ooff = 0;
	}
	return 0;
}

/* Choose what to wait for: read only while there is room to answer and
 * room to buffer input; write only while output is queued. */
static void
conn_rearm(struct conn *c)
{
	unsigned ev = 0;

	if (OBUF_SIZE - c->olen >= REPLY_LEN && c->ilen < IBUF_SIZE)
		ev |= EPOLLIN | EPOLLRDHUP;
	if (c->olen > c->ooff)
		ev |= EPOLLOUT;
	watch(c, ev);
}

static void
conn_event(struct conn *c, unsigned events)
{
	ssize_t n;

	if (events & EPOLLOUT) {
		if (conn_write(c) == -1)
			goto drop;
		if (conn_process(c) == -1)
			goto bad;
	}
	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
		/* A full buffer holds a whole request (one always fits), so
		 * it is only full while replies wait to be written. */
		n = 0;
		if (c->ilen < IBUF_SIZE)
			n = read(c->fd, c->ibuf + c->ilen, IBUF_SIZE - c->ilen);
		else
			errno = EAGAIN, n = -1;
		if (n == 0)
			goto drop;
		if (n == -1) {
			if (errno != EAGAIN && errno != EINTR)
				goto drop;
		} else {
			c->ilen += (size_t)n;
			if (conn_process(c) == -1)
				goto bad;
		}
	}
	if (c->olen > c->ooff && conn_write(c) == -1)
		goto drop;
	/* Replies went out: answer what was held back. */
	if (c->ilen > 0 && OBUF_SIZE - c->olen >= REPLY_LEN &&
	    conn_process(c) == -1)
		goto bad;
	conn_rearm(c);
	return;
bad:
	/* SPEC B: a malformed request gets no reply and the connection is
	 * closed; replies to the good requests before it go out if they
	 * can without waiting. */
	closed_bad++;
	(void)conn_write(c);
drop:
	conn_free(c);
}

static void
do_accept(int lfd)
{
	struct epoll_event ev;
	struct conn *c;
	int fd;

	for (;;) {
		fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1)
			return; /* EAGAIN, or a transient error */
		if (nconns >= CONNS_MAX || (c = malloc(sizeof(*c))) == NULL) {
			close(fd);
			continue;
		}
		c->fd = fd;
		c->ilen = c->ooff = c->olen = 0;
		c->events = EPOLLIN | EPOLLRDHUP;
		ev.events = c->events;
		ev.data.ptr = c;
		if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) == -1) {
			close(fd);
			free(c);
			continue;
		}
		c->prev = NULL;
		c->next = conns;
		if (conns != NULL)
			conns->prev = c;
		conns = c;
		nconns++;
	}
}

static void
usage(void)
{
	fprintf(stderr, "usage: floor [-u UNIXPATH] [-t [127.x.y.z:]PORT] "
			"[-v]\n(at least one of -u, -t)\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	/* Listening sockets are marked by a pointer into this array. */
	static int lfds[2];
	struct epoll_event ev, evs[256];
	struct sigaction sa;
	int ch, i, n, nl = 0, verbose = 0;
	const char *upath = NULL, *taddr = NULL;

	while ((ch = getopt(argc, argv, "u:t:v")) != -1) {
		switch (ch) {
		case 'u':
			upath = optarg;
			break;
		case 't':
			taddr = optarg;
			break;
		case 'v':
			verbose = 1;
			break;
		default:
			usage();
		}
	}
	if (optind != argc || (upath == NULL && taddr == NULL))
		usage();

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if ((epfd = epoll_create1(EPOLL_CLOEXEC)) == -1)
		die("epoll_create1: %s", strerror(errno));
	if (upath != NULL)
		lfds[nl++] = listen_unix(upath);
	if (taddr != NULL)
		lfds[nl++] = listen_tcp(taddr);
	for (i = 0; i < nl; i++) {
		ev.events = EPOLLIN;
		ev.data.ptr = &lfds[i];
		if (epoll_ctl(epfd, EPOLL_CTL_ADD, lfds[i], &ev) == -1)
			die("epoll_ctl: %s", strerror(errno));
	}

	while (!stop) {
		n = epoll_wait(epfd, evs, 256, -1);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			die("epoll_wait: %s", strerror(errno));
		}
		for (i = 0; i < n; i++) {
			void *p = evs[i].data.ptr;

			if (p == &lfds[0] || (nl > 1 && p == &lfds[1]))
				do_accept(*(int *)p);
			else
				conn_event(p, evs[i].events);
		}
	}
	while (conns != NULL)
		conn_free(conns);
	for (i = 0; i < nl; i++)
		close(lfds[i]);
	close(epfd);
	if (unix_path != NULL)
		unlink(unix_path);
	if (verbose)
		fprintf(stderr, "floor: %llu replies, %llu bad connections\n",
			served, closed_bad);
	return 0;
}
