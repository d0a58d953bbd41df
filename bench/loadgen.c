/* SPDX-License-Identifier: BSD-2-Clause */

#define _GNU_SOURCE /* accept4, SOCK_NONBLOCK; bench is self-contained */
/*
 * loadgen: a closed-loop load generator for Postfix socketmap servers
 * (SPEC A1). It keeps C persistent connections open; each one sends one
 * request netstring "LEN:MAPNAME KEY," at a time, waits for the complete
 * netstring reply, validates its framing, and sends the next key. Keys are
 * read from a file (one per line) and handed out round-robin over all
 * connections, so every connection walks the same key cycle.
 *
 * Replies are counted by their first word (OK, NOTFOUND, TEMP, other), and
 * each request's latency goes into a log-linear histogram with microsecond
 * resolution. Only requests answered after the warm-up and before the end
 * of the measuring window count. The last output line is machine-readable:
 *   RESULT rps=... p50_us=... p99_us=... p999_us=... ...
 *
 * Two extra modes serve bench/run.sh: -o sends every key exactly once (a
 * cold pass that fills a server's memory index) and -R waits until the
 * server answers one request, to measure start-up-to-ready time.
 *
 * One thread, one epoll set, no dependency on the daemon's modules.
 */

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* SPEC A1.3: a reply payload is at most 100000 bytes. */
#define REPLY_MAX 100000
/* SPEC A1.1: leading zeros are allowed; cap the digits we scan. */
#define LEN_DIGITS_MAX 10
/* SPEC A1.8: a request payload is at most 10000 bytes. */
#define REQUEST_MAX 10000
/* Reply buffer: digits, ':', payload, ','. */
#define RBUF_SIZE (LEN_DIGITS_MAX + 1 + REPLY_MAX + 1)
/* Bound on connections, so the arrays stay small and sane. */
#define CONNS_MAX 10000
/* A request unanswered this long is an error (SPEC A1.6: Postfix gives up
 * after 100 s; a benchmark should not wait that long). */
#define REQ_TIMEOUT_NS (10 * 1000000000ull)
/* Bound on keys kept in memory. */
#define KEYS_MAX 20000000L

/*
 * Log-linear histogram: values below 2^SUB_BITS microseconds get one
 * bucket each; above that every power of two is split into 2^SUB_BITS
 * buckets (relative error below 1/64). Values past the top bucket are
 * clamped into it (2^40 us is about 12 days).
 */
#define SUB_BITS  6
#define SUB_COUNT (1 << SUB_BITS)
#define TOP_EXP	  40
#define NBUCKETS  (SUB_COUNT + (TOP_EXP - SUB_BITS + 1) * SUB_COUNT)

struct hist {
	uint64_t b[NBUCKETS];
	uint64_t count;
	uint64_t max;
	long double sum;
};

enum kind { K_OK, K_NOTFOUND, K_TEMP, K_OTHER, K_NKINDS };
static const char *kind_name[K_NKINDS] = {"OK", "NOTFOUND", "TEMP", "other"};

struct req {
	char *buf; /* whole netstring, owned by the request table */
	size_t len;
};

struct conn {
	int fd;
	int dead;	       /* reconnecting failed: given up */
	const struct req *cur; /* request in flight, NULL when idle */
	size_t sent;	       /* bytes of cur written */
	uint64_t t_send;       /* ns, monotonic */
	char *rbuf;	       /* RBUF_SIZE bytes */
	size_t rlen;
	int want_out; /* EPOLLOUT armed */
};

struct opts {
	const char *unix_path;
	const char *tcp;
	int conns;
	double duration;
	double warmup;
	const char *mapname;
	const char *keyfile;
	long nkeys;
	int once;
	double ready_wait;
	int quiet;
};

static struct opts o = {
    .conns = 1,
    .duration = 10,
    .warmup = 0,
    .mapname = "postfix",
    .nkeys = 0,
};

static struct req *reqs;
static long nreqs;
static long next_req;
static long sent_once; /* -o: requests handed out so far */

static struct hist hist;
static uint64_t kinds[K_NKINDS];
static uint64_t total_measured;
static uint64_t total_all;
static uint64_t errors;
static uint64_t err_connect, err_frame, err_eof, err_io, err_timeout;
static uint64_t t_start, t_measure, t_end;

static void die(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

static void
die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("loadgen: ", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

static uint64_t
now_ns(int clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int
hist_index(uint64_t v)
{
	int e, i;

	if (v < SUB_COUNT)
		return (int)v;
	e = 63 - __builtin_clzll(v);
	if (e > TOP_EXP)
		return NBUCKETS - 1;
	i = SUB_COUNT + (e - SUB_BITS) * SUB_COUNT +
	    (int)((v >> (e - SUB_BITS)) & (SUB_COUNT - 1));
	return i;
}

/* Largest value that falls into bucket I (we report upper edges, so a
 * percentile is never flattered by the bucketing). */
static uint64_t
hist_upper(int i)
{
	int e;
	uint64_t sub;

	if (i < SUB_COUNT)
		return (uint64_t)i;
	e = (i - SUB_COUNT) / SUB_COUNT + SUB_BITS;
	sub = (uint64_t)((i - SUB_COUNT) % SUB_COUNT);
	return ((SUB_COUNT + sub + 1) << (e - SUB_BITS)) - 1;
}

static void
hist_add(struct hist *h, uint64_t us)
{
	h->b[hist_index(us)]++;
	h->count++;
	h->sum += us;
	if (us > h->max)
		h->max = us;
}

static uint64_t
hist_pct(const struct hist *h, double p)
{
	uint64_t want, seen = 0;
	int i;

	if (h->count == 0)
		return 0;
	want = (uint64_t)(p / 100.0 * (double)h->count + 0.999999);
	if (want == 0)
		want = 1;
	for (i = 0; i < NBUCKETS; i++) {
		seen += h->b[i];
		if (seen >= want) {
			uint64_t u = hist_upper(i);
			return u < h->max ? u : h->max;
		}
	}
	return h->max;
}

static void
usage(void)
{
	fprintf(stderr,
		"usage: loadgen -u UNIXPATH | -t HOST:PORT [-c CONNS] "
		"[-d SECONDS] [-w WARMUP]\n"
		"               [-m MAPNAME] [-k KEYFILE] [-n KEYS] [-o] "
		"[-q]\n"
		"       loadgen -u UNIXPATH | -t HOST:PORT -R MAXWAIT "
		"[-m MAPNAME] [-k KEYFILE]\n"
		"  -o  send every key once, then stop (no duration)\n"
		"  -R  wait up to MAXWAIT s for one answered request; print "
		"READY\n");
	exit(2);
}

static double
parse_num(const char *s, double lo, double hi, const char *what)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end != '\0' || v < lo || v > hi)
		die("bad %s: %s (want %g..%g)", what, s, lo, hi);
	return v;
}

static void
add_key(const char *key, size_t klen)
{
	size_t plen, mlen = strlen(o.mapname);
	int n;
	char *buf;

	plen = mlen + 1 + klen;
	if (plen > REQUEST_MAX)
		die("key too long for a socketmap request (%zu bytes)", plen);
	if (nreqs % 1024 == 0) {
		struct req *nr = realloc(reqs, (nreqs + 1024) * sizeof(*reqs));
		if (nr == NULL)
			die("out of memory");
		reqs = nr;
	}
	buf = malloc(plen + 16);
	if (buf == NULL)
		die("out of memory");
	n = snprintf(buf, 16, "%zu:", plen);
	memcpy(buf + n, o.mapname, mlen);
	buf[n + mlen] = ' ';
	memcpy(buf + n + mlen + 1, key, klen);
	buf[n + plen] = ',';
	reqs[nreqs].buf = buf;
	reqs[nreqs].len = n + plen + 1;
	nreqs++;
}

static void
load_keys(void)
{
	FILE *f;
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	long limit = o.nkeys > 0 ? o.nkeys : KEYS_MAX;

	if (o.keyfile == NULL) {
		add_key("example.com", strlen("example.com"));
		return;
	}
	if ((f = fopen(o.keyfile, "r")) == NULL)
		die("%s: %s", o.keyfile, strerror(errno));
	while (nreqs < limit && (len = getline(&line, &cap, f)) != -1) {
		while (len > 0 &&
		       (line[len - 1] == '\n' || line[len - 1] == '\r'))
			len--;
		if (len == 0)
			continue;
		add_key(line, (size_t)len);
	}
	free(line);
	fclose(f);
	if (nreqs == 0)
		die("%s: no keys", o.keyfile);
	if (o.nkeys > 0 && nreqs < o.nkeys)
		fprintf(stderr, "loadgen: only %ld keys in %s\n", nreqs,
			o.keyfile);
}

static int
open_conn(void)
{
	int fd, one = 1;

	if (o.unix_path != NULL) {
		struct sockaddr_un sun;

		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		if (strlen(o.unix_path) >= sizeof(sun.sun_path))
			die("unix path too long");
		strcpy(sun.sun_path, o.unix_path);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd == -1)
			return -1;
		/* A blocking connect: a non-blocking AF_UNIX connect fails
		 * with EAGAIN when the backlog is full instead of waiting. */
		if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
			close(fd);
			return -1;
		}
	} else {
		struct addrinfo hints, *ai;
		char host[256], *colon;

		if (strlen(o.tcp) >= sizeof(host))
			die("bad -t address");
		strcpy(host, o.tcp);
		colon = strrchr(host, ':');
		if (colon == NULL)
			die("-t wants HOST:PORT");
		*colon = '\0';
		memset(&hints, 0, sizeof(hints));
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_flags = AI_NUMERICSERV;
		if (getaddrinfo(host[0] == '[' ? host + 1 : host, colon + 1,
				&hints, &ai) != 0)
			die("cannot resolve %s", o.tcp);
		fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd == -1 || connect(fd, ai->ai_addr, ai->ai_addrlen)) {
			if (fd != -1)
				close(fd);
			freeaddrinfo(ai);
			return -1;
		}
		freeaddrinfo(ai);
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

static int
in_window(uint64_t t)
{
	if (o.once)
		return 1;
	return t >= t_measure && t < t_end;
}

/* What a complete reply netstring says: returns the number of bytes it
 * takes in BUF, 0 when more bytes are needed, -1 when the framing is bad.
 * PAYLOAD/PLEN point at the payload. */
static long
parse_reply(const char *buf, size_t len, const char **payload, size_t *plen)
{
	size_t i = 0, n = 0;

	while (i < len && buf[i] >= '0' && buf[i] <= '9') {
		if (i >= LEN_DIGITS_MAX)
			return -1;
		n = n * 10 + (size_t)(buf[i] - '0');
		i++;
	}
	if (i == len)
		return i > LEN_DIGITS_MAX ? -1 : 0;
	if (i == 0 || buf[i] != ':')
		return -1; /* SPEC A1.1: digits only before ':' */
	if (n > REPLY_MAX)
		return -1; /* SPEC A1.3 */
	if (len < i + 1 + n + 1)
		return 0;
	if (buf[i + 1 + n] != ',')
		return -1; /* SPEC A1.1: missing ',' terminator */
	*payload = buf + i + 1;
	*plen = n;
	return (long)(i + 1 + n + 1);
}

static enum kind
reply_kind(const char *p, size_t n)
{
	size_t w = 0;

	while (w < n && p[w] != ' ')
		w++;
	if (w == 2 && memcmp(p, "OK", 2) == 0)
		return K_OK;
	if (w == 8 && memcmp(p, "NOTFOUND", 8) == 0)
		return K_NOTFOUND;
	if (w == 4 && memcmp(p, "TEMP", 4) == 0)
		return K_TEMP;
	return K_OTHER;
}

static int epfd;

static void
conn_close(struct conn *c)
{
	if (c->fd != -1) {
		epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
	}
	c->fd = -1;
	c->cur = NULL;
	c->rlen = 0;
	c->want_out = 0;
}

static void
set_out(struct conn *c, int on)
{
	struct epoll_event ev;

	if (c->want_out == on)
		return;
	ev.events = EPOLLIN | EPOLLRDHUP | (on ? EPOLLOUT : 0);
	ev.data.ptr = c;
	epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
	c->want_out = on;
}

/* Hand out the next key; NULL when -o has sent every key. */
static const struct req *
next_request(void)
{
	const struct req *r;

	if (o.once && sent_once >= nreqs)
		return NULL;
	r = &reqs[next_req];
	if (++next_req == nreqs)
		next_req = 0;
	sent_once++;
	return r;
}

static int
conn_flush(struct conn *c)
{
	ssize_t n;

	while (c->sent < c->cur->len) {
		n = write(c->fd, c->cur->buf + c->sent, c->cur->len - c->sent);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				set_out(c, 1);
				return 0;
			}
			return -1;
		}
		c->sent += (size_t)n;
	}
	set_out(c, 0);
	return 0;
}

static void conn_fail(struct conn *c, uint64_t *counter);

static void
conn_send(struct conn *c)
{
	c->cur = next_request();
	if (c->cur == NULL) {
		conn_close(c); /* -o: nothing left to send */
		return;
	}
	c->sent = 0;
	c->rlen = 0;
	c->t_send = now_ns(CLOCK_MONOTONIC);
	if (conn_flush(c) == -1)
		conn_fail(c, &err_io);
}

static int
conn_open(struct conn *c)
{
	struct epoll_event ev;

	c->fd = open_conn();
	if (c->fd == -1)
		return -1;
	ev.events = EPOLLIN | EPOLLRDHUP;
	ev.data.ptr = c;
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) == -1)
		die("epoll_ctl: %s", strerror(errno));
	c->want_out = 0;
	return 0;
}

/* An error closes the connection (a malformed reply must not be trusted
 * for framing any more). The main loop opens it again within 100 ms, as
 * Postfix's auto_clnt would, and gives it up if that fails. Errors count
 * in every phase: a run that had errors in its warm-up is suspect too. */
static void
conn_fail(struct conn *c, uint64_t *counter)
{
	(*counter)++;
	errors++;
	conn_close(c);
}

static void
conn_read(struct conn *c)
{
	ssize_t n;
	long used;
	const char *p;
	size_t plen;
	uint64_t t;

	n = read(c->fd, c->rbuf + c->rlen, RBUF_SIZE - c->rlen);
	if (n == -1) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		conn_fail(c, &err_io);
		return;
	}
	if (n == 0) {
		conn_fail(c, &err_eof);
		return;
	}
	if (c->cur == NULL || c->sent < c->cur->len) {
		/* Bytes nobody asked for. */
		conn_fail(c, &err_frame);
		return;
	}
	c->rlen += (size_t)n;
	used = parse_reply(c->rbuf, c->rlen, &p, &plen);
	if (used == 0)
		return;
	if (used < 0 || (size_t)used != c->rlen) {
		/* Bad framing, or more than one reply to one request. */
		conn_fail(c, &err_frame);
		return;
	}
	t = now_ns(CLOCK_MONOTONIC);
	total_all++;
	if (in_window(t)) {
		total_measured++;
		kinds[reply_kind(p, plen)]++;
		hist_add(&hist, (t - c->t_send + 500) / 1000);
	}
	c->cur = NULL;
	if (!o.once && t >= t_end)
		return;
	conn_send(c);
}

static volatile sig_atomic_t stop;

static void
on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

/* -R: try until one request is answered with a well-formed reply. */
static int
wait_ready(void)
{
	uint64_t deadline, t0 = now_ns(CLOCK_MONOTONIC);
	struct timespec pause = {0, 1000000}; /* 1 ms between tries */

	deadline = t0 + (uint64_t)(o.ready_wait * 1e9);
	while (!stop && now_ns(CLOCK_MONOTONIC) < deadline) {
		int fd = open_conn();
		char buf[RBUF_SIZE];
		size_t len = 0, off = 0;
		const char *p;
		size_t plen;
		long used = 0;

		if (fd == -1) {
			nanosleep(&pause, NULL);
			continue;
		}
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
		while (off < reqs[0].len) {
			ssize_t n =
			    write(fd, reqs[0].buf + off, reqs[0].len - off);
			if (n <= 0)
				break;
			off += (size_t)n;
		}
		while (off == reqs[0].len && len < sizeof(buf)) {
			struct timeval tv = {1, 0};
			ssize_t n;

			setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv,
				   sizeof(tv));
			n = read(fd, buf + len, sizeof(buf) - len);
			if (n <= 0)
				break;
			len += (size_t)n;
			used = parse_reply(buf, len, &p, &plen);
			if (used != 0)
				break;
		}
		close(fd);
		if (used > 0) {
			uint64_t t = now_ns(CLOCK_MONOTONIC);
			printf("READY realtime_ns=%llu waited_ms=%.1f "
			       "reply=\"%.*s\"\n",
			       (unsigned long long)now_ns(CLOCK_REALTIME),
			       (double)(t - t0) / 1e6,
			       (int)(plen > 60 ? 60 : plen), p);
			return 0;
		}
		nanosleep(&pause, NULL);
	}
	printf("NOTREADY waited_ms=%.1f\n",
	       (double)(now_ns(CLOCK_MONOTONIC) - t0) / 1e6);
	return 1;
}

static void
report(void)
{
	double secs;
	int k;

	if (o.once)
		secs = (double)(t_end - t_start) / 1e9;
	else
		secs = o.duration;
	if (!o.quiet) {
		printf("target      %s%s (map %s, %ld keys, %d conns)\n",
		       o.unix_path ? "unix:" : "inet:",
		       o.unix_path ? o.unix_path : o.tcp, o.mapname, nreqs,
		       o.conns);
		printf("window      %.2f s after %.2f s warm-up%s\n", secs,
		       o.once ? 0.0 : o.warmup, o.once ? " (one pass)" : "");
		printf("requests/s  %.0f\n", (double)total_measured / secs);
		printf("total       %llu (all phases %llu)\n",
		       (unsigned long long)total_measured,
		       (unsigned long long)total_all);
		printf("errors      %llu (connect %llu, framing %llu, eof "
		       "%llu, io %llu, timeout %llu)\n",
		       (unsigned long long)errors,
		       (unsigned long long)err_connect,
		       (unsigned long long)err_frame,
		       (unsigned long long)err_eof, (unsigned long long)err_io,
		       (unsigned long long)err_timeout);
		printf("latency us  p50 %llu  p99 %llu  p99.9 %llu  max %llu  "
		       "mean %.1f\n",
		       (unsigned long long)hist_pct(&hist, 50),
		       (unsigned long long)hist_pct(&hist, 99),
		       (unsigned long long)hist_pct(&hist, 99.9),
		       (unsigned long long)hist.max,
		       hist.count ? (double)(hist.sum / hist.count) : 0.0);
		printf("replies    ");
		for (k = 0; k < K_NKINDS; k++)
			printf(" %s %llu", kind_name[k],
			       (unsigned long long)kinds[k]);
		printf("\n");
	}
	printf("RESULT rps=%.0f p50_us=%llu p99_us=%llu p999_us=%llu "
	       "max_us=%llu total=%llu errors=%llu ok=%llu notfound=%llu "
	       "temp=%llu other=%llu\n",
	       (double)total_measured / secs,
	       (unsigned long long)hist_pct(&hist, 50),
	       (unsigned long long)hist_pct(&hist, 99),
	       (unsigned long long)hist_pct(&hist, 99.9),
	       (unsigned long long)hist.max, (unsigned long long)total_measured,
	       (unsigned long long)errors, (unsigned long long)kinds[K_OK],
	       (unsigned long long)kinds[K_NOTFOUND],
	       (unsigned long long)kinds[K_TEMP],
	       (unsigned long long)kinds[K_OTHER]);
}

/* The command line into O; usage() on anything wrong. */
static void
parse_args(int argc, char **argv)
{
	int ch;

	while ((ch = getopt(argc, argv, "u:t:c:d:w:m:k:n:oR:q")) != -1) {
		switch (ch) {
		case 'u':
			o.unix_path = optarg;
			break;
		case 't':
			o.tcp = optarg;
			break;
		case 'c':
			o.conns = (int)parse_num(optarg, 1, CONNS_MAX, "-c");
			break;
		case 'd':
			o.duration = parse_num(optarg, 0.1, 86400, "-d");
			break;
		case 'w':
			o.warmup = parse_num(optarg, 0, 86400, "-w");
			break;
		case 'm':
			if (strlen(optarg) == 0 || strchr(optarg, ' ') ||
			    strlen(optarg) > 64)
				die("bad map name");
			o.mapname = optarg;
			break;
		case 'k':
			o.keyfile = optarg;
			break;
		case 'n':
			o.nkeys = (long)parse_num(optarg, 1, KEYS_MAX, "-n");
			break;
		case 'o':
			o.once = 1;
			break;
		case 'R':
			o.ready_wait = parse_num(optarg, 0.001, 3600, "-R");
			break;
		case 'q':
			o.quiet = 1;
			break;
		default:
			usage();
		}
	}
	if (optind != argc || (o.unix_path == NULL) == (o.tcp == NULL))
		usage();
}

/* The epoll set and o.conns connected connections. */
static struct conn *
open_all(void)
{
	struct conn *conns;
	int i;

	if ((epfd = epoll_create1(EPOLL_CLOEXEC)) == -1)
		die("epoll_create1: %s", strerror(errno));
	if ((conns = calloc((size_t)o.conns, sizeof(*conns))) == NULL)
		die("out of memory");
	for (i = 0; i < o.conns; i++) {
		conns[i].fd = -1;
		if ((conns[i].rbuf = malloc(RBUF_SIZE)) == NULL)
			die("out of memory");
		if (conn_open(&conns[i]) == -1)
			die("connect %s: %s", o.unix_path ? o.unix_path : o.tcp,
			    strerror(errno));
	}
	return conns;
}

/* SIGINT and SIGTERM end the run; a closed peer is no signal. */
static void
signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

/* Close and free the connections, the requests and the epoll set. */
static void
close_all(struct conn *conns)
{
	int i;

	for (i = 0; i < o.conns; i++) {
		conn_close(&conns[i]);
		free(conns[i].rbuf);
	}
	free(conns);
	for (i = 0; i < nreqs; i++)
		free(reqs[i].buf);
	free(reqs);
	close(epfd);
}

int
main(int argc, char **argv)
{
	struct conn *conns;
	struct epoll_event evs[256];
	int i, alive;
	uint64_t t_scan = 0;

	parse_args(argc, argv);

	signals();
	load_keys();
	if (o.ready_wait > 0) {
		int rc = wait_ready();

		for (i = 0; i < nreqs; i++)
			free(reqs[i].buf);
		free(reqs);
		return rc;
	}

	conns = open_all();

	t_start = now_ns(CLOCK_MONOTONIC);
	t_measure = t_start + (uint64_t)(o.warmup * 1e9);
	t_end = t_measure + (uint64_t)(o.duration * 1e9);
	for (i = 0; i < o.conns; i++)
		conn_send(&conns[i]);

	for (;;) {
		uint64_t t = now_ns(CLOCK_MONOTONIC);
		int n, timeout;

		if (stop)
			break;
		if (!o.once && t >= t_end)
			break;
		if (t >= t_scan) {
			/* Ten times a second: time out stuck requests and
			 * see whether any connection is still working. */
			alive = 0;
			for (i = 0; i < o.conns; i++) {
				struct conn *c = &conns[i];

				if (c->fd == -1 && !c->dead &&
				    (!o.once || sent_once < nreqs)) {
					if (conn_open(c) == -1) {
						err_connect++;
						errors++;
						c->dead = 1;
					} else
						conn_send(c);
				}
				if (c->fd != -1 && c->cur != NULL &&
				    t > c->t_send &&
				    t - c->t_send > REQ_TIMEOUT_NS)
					conn_fail(c, &err_timeout);
				if (c->fd != -1 && c->cur != NULL)
					alive++;
			}
			if (alive == 0)
				break;
			t_scan = t + 100000000u;
		}
		timeout = o.once ? 100 : (int)((t_end - t) / 1000000 + 1);
		if (timeout > 100)
			timeout = 100;
		n = epoll_wait(epfd, evs, 256, timeout);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			die("epoll_wait: %s", strerror(errno));
		}
		for (i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;

			if (c->fd == -1)
				continue;
			if (evs[i].events & EPOLLOUT && c->cur != NULL &&
			    c->sent < c->cur->len) {
				if (conn_flush(c) == -1) {
					conn_fail(c, &err_io);
					continue;
				}
			}
			if (evs[i].events &
			    (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
				conn_read(c);
		}
	}
	if (o.once)
		t_end = now_ns(CLOCK_MONOTONIC);
	report();
	close_all(conns);
	return errors > 0 ? 1 : 0;
}
