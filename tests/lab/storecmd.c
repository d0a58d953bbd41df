/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The policy store from the command line, for tests/integration/pgstore.py
 * (and pgfleet.py, pgpins.py):
 *     storecmd PATH
 * reads one command a line on stdin and answers one line on stdout:
 *     put DOMAIN POLICY_ID FETCHED_AT   -> the cache_put_sts() result
 *     get DOMAIN                        -> "POLICY_ID FETCHED_AT", "none"
 *                                          or "error: ..."
 *     getdane DOMAIN                    -> "KIND CHECKED_AT", "none" or
 *                                          "error: ..."
 *     getpin DOMAIN                     -> "pin ANSWER", "exempt", "none"
 *                                          or "error: ..."
 *     retry                             -> the cache_retry_writes() result
 *     forget DOMAIN                     -> "ok"
 *     reconnect                         -> the cache_reconnect() result
 *     poll                              -> cache_poll()'s return value
 *     async                             -> "ok": from now on as on the
 *                                          daemon's loop (cache_set_async)
 *     start                             -> "ok" after cache_io_start()
 *     resume                            -> "ok" after cache_io_retry()
 *     wait                              -> waits (poll(2), the store's bounds)
 * for the calls in flight to end: "ok", or "failed" when one did step -> one
 * turn of the loop: waits for the socket or the first bound, then cache_io():
 * "ok" or "failed", and " inflight" while a call still is pending -> the
 * changes waiting in memory nowait DOMAIN                     -> as get,
 * through cache_lookup_nowait(): or "pending" (a read is queued) reads -> the
 * reads that ended since the last "reads", in order, each "DOMAIN:ok",
 * ":offline" or
 *                                          ":error"; "none"
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"

static void
put(struct cache *c, const char *dom, const char *id, long long at)
{
	struct cache_sts s;
	enum cache_err e;

	memset(&s, 0, sizeof(s));
	snprintf(s.policy_id, sizeof(s.policy_id), "%s", id);
	s.mode = CACHE_STS_ENFORCE;
	s.mx = (char *)"mx1.pg.test";
	s.max_age = 86400;
	s.fetched_at = (time_t)at;
	s.expires_at = (time_t)(at + 86400);
	e = cache_put_sts(c, dom, &s);
	printf("%s\n", cache_strerror(e));
}

static void
wake(void *arg)
{
	(void)arg;
}

/* The reads that ended (cache_set_read_done()), for "reads". */
static char reads_out[8192];

static void
read_done(const char *domain, enum cache_err e, void *arg)
{
	size_t n = strlen(reads_out);

	(void)arg;
	snprintf(reads_out + n, sizeof(reads_out) - n, "%s%s:%s",
		 n > 0 ? " " : "", domain,
		 e == CACHE_OK	       ? "ok"
		 : e == CACHE_EOFFLINE ? "offline"
				       : "error");
}

/* "get" and "nowait": what a lookup returned. */
static void
print_sts(struct cache *c, enum cache_err err, const struct cache_entry *e)
{
	if (err == CACHE_PENDING)
		printf("pending\n");
	else if (err != CACHE_OK)
		printf("error: %s\n", cache_errmsg(c));
	else if (e == NULL || !e->has_sts)
		printf("none\n");
	else
		printf("%s %lld\n", e->sts.policy_id,
		       (long long)e->sts.fetched_at);
}

/* Drive the call in flight as the daemon's loop does, until none is;
 * a call a synchronous one ended is taken first, as the daemon's wake-up
 * does. */
static void
wait_io(struct cache *c)
{
	struct pollfd pfd;
	int ww, failed = cache_io(c, 0) < 0, timed_out;

	while ((pfd.fd = cache_io_fd(c, &ww)) >= 0) {
		long ms = cache_io_timeout(c);

		pfd.events = (short)(POLLIN | (ww ? POLLOUT : 0));
		timed_out = poll(&pfd, 1, ms >= 0 ? (int)ms : 10000) == 0;
		failed |= cache_io(c, timed_out) < 0;
	}
	printf("%s\n", failed ? "failed" : "ok");
}

/* One turn of the daemon's loop for the store. */
static void
step_io(struct cache *c)
{
	struct pollfd pfd;
	int ww, failed = 0;
	long ms = cache_io_timeout(c);

	if ((pfd.fd = cache_io_fd(c, &ww)) >= 0) {
		pfd.events = (short)(POLLIN | (ww ? POLLOUT : 0));
		failed = cache_io(c, poll(&pfd, 1, ms >= 0 ? (int)ms : 10000) ==
					 0) < 0;
	}
	printf("%s%s\n", failed ? "failed" : "ok",
	       cache_io_fd(c, &ww) >= 0 ? " inflight" : "");
}

int
main(int argc, char **argv)
{
	char line[1024], a[300], b[33];
	const struct cache_entry *e;
	struct cache *c;
	long long at;

	if (argc != 2) {
		fprintf(stderr, "usage: storecmd PATH\n");
		return 2;
	}
	if ((c = cache_open(argv[1], 100, line, sizeof(line))) == NULL) {
		printf("open: %s\n", line);
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	while (fgets(line, sizeof(line), stdin) != NULL) {
		if (sscanf(line, "put %299s %32s %lld", a, b, &at) == 3)
			put(c, a, b, at);
		else if (strncmp(line, "get ", 4) == 0 &&
			 sscanf(line + 4, "%299s", a) == 1) {
			enum cache_err err = cache_lookup(c, a, &e);

			print_sts(c, err, e);
		} else if (sscanf(line, "nowait %299s", a) == 1) {
			enum cache_err err = cache_lookup_nowait(c, a, &e);

			print_sts(c, err, e);
		} else if (strncmp(line, "reads", 5) == 0) {
			printf("%s\n", reads_out[0] ? reads_out : "none");
			reads_out[0] = '\0';
		} else if (sscanf(line, "getdane %299s", a) == 1) {
			if (cache_lookup(c, a, &e) != CACHE_OK)
				printf("error: %s\n", cache_errmsg(c));
			else if (e == NULL || !e->has_dane)
				printf("none\n");
			else
				printf("%s %lld\n",
				       cache_dane_kind_name(e->dane.kind),
				       (long long)e->dane.checked_at);
		} else if (sscanf(line, "getpin %299s", a) == 1) {
			if (cache_lookup(c, a, &e) != CACHE_OK)
				printf("error: %s\n", cache_errmsg(c));
			else if (e == NULL || !e->has_pin)
				printf("none\n");
			else if (e->pin.exempt)
				printf("exempt\n");
			else
				printf("pin %s\n", e->pin.answer);
		} else if (strncmp(line, "retry", 5) == 0)
			printf("%s\n", cache_strerror(cache_retry_writes(c)));
		else if (strncmp(line, "reconnect", 9) == 0)
			printf("%s\n", cache_strerror(cache_reconnect(c)));
		else if (strncmp(line, "poll", 4) == 0)
			printf("%d\n", cache_poll(c));
		else if (strncmp(line, "async", 5) == 0) {
			cache_set_async(c, wake, NULL);
			cache_set_read_done(c, read_done, NULL);
			printf("ok\n");
		} else if (strncmp(line, "start", 5) == 0) {
			cache_io_start(c);
			printf("ok\n");
		} else if (strncmp(line, "resume", 6) == 0) {
			cache_io_retry(c);
			printf("ok\n");
		} else if (strncmp(line, "wait", 4) == 0)
			wait_io(c);
		else if (strncmp(line, "step", 4) == 0)
			step_io(c);
		else if (strncmp(line, "pending", 7) == 0) {
			struct cache_stats st;

			cache_get_stats(c, &st);
			printf("%ld\n", st.pending);
		} else if (sscanf(line, "forget %299s", a) == 1) {
			cache_forget(c, a);
			printf("ok\n");
		} else
			printf("bad command\n");
		fflush(stdout);
	}
	cache_close(c);
	return 0;
}
