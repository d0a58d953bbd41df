/* SPDX-License-Identifier: BSD-2-Clause */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <time.h>

#include "util/pq.h"

long long
pq_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
pq_wait(PGconn *conn, long long deadline)
{
	struct pollfd pfd;
	long long left;
	int f;

	for (;;) {
		if ((f = PQflush(conn)) < 0)
			return 0;
		if (f == 0 && !PQisBusy(conn))
			return 0;
		if ((left = deadline - pq_ms()) <= 0)
			return -1;
		pfd.fd = PQsocket(conn);
		pfd.events = (short)(POLLIN | (f == 1 ? POLLOUT : 0));
		pfd.revents = 0;
		if (poll(&pfd, 1, left > 60000 ? 60000 : (int)left) < 0 &&
		    errno != EINTR)
			return -1;
		if ((pfd.revents & (POLLIN | POLLERR | POLLHUP)) &&
		    !PQconsumeInput(conn))
			return 0;
	}
}

static int
pq_ok(const PGresult *res)
{
	ExecStatusType st = PQresultStatus(res);

	return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

PGresult *
pq_call(PGconn *conn, const char *sql, int n, const char *const *params,
	long ms, int *timed_out)
{
	long long deadline = pq_ms() + ms;
	PGresult *res, *keep = NULL;
	int sent;

	*timed_out = 0;
	if (conn == NULL)
		return NULL;
	sent = n >= 0 ? PQsendQueryParams(conn, sql, n, NULL, params, NULL,
					  NULL, 0)
		      : PQsendQuery(conn, sql);
	if (!sent)
		return NULL;
	for (;;) {
		if (pq_wait(conn, deadline) < 0) {
			*timed_out = 1;
			PQclear(keep);
			return NULL;
		}
		if ((res = PQgetResult(conn)) == NULL)
			break;
		if (keep != NULL && !pq_ok(keep)) {
			PQclear(res); /* the first failure is the reason */
			continue;
		}
		PQclear(keep);
		keep = res;
	}
	return keep;
}

PGconn *
pq_connect(const char *const *keys, const char *const *vals, long ms,
	   int *timed_out)
{
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	long long deadline = pq_ms() + ms, left;
	struct pollfd pfd;
	PGconn *conn;

	*timed_out = 0;
	if ((conn = PQconnectStartParams(keys, vals, 1)) == NULL)
		return NULL;
	while (PQstatus(conn) != CONNECTION_BAD && st != PGRES_POLLING_OK &&
	       st != PGRES_POLLING_FAILED) {
		if ((left = deadline - pq_ms()) <= 0) {
			*timed_out = 1;
			return conn; /* the caller finishes it */
		}
		pfd.fd = PQsocket(conn);
		pfd.events = st == PGRES_POLLING_READING ? POLLIN : POLLOUT;
		pfd.revents = 0;
		if (poll(&pfd, 1, (int)left) == 0)
			continue;
		st = PQconnectPoll(conn);
	}
	if (PQstatus(conn) == CONNECTION_OK)
		(void)PQsetnonblocking(conn, 1);
	return conn;
}

char *
pq_oneline(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
		s[--n] = '\0';
	for (n = 0; s[n] != '\0'; n++)
		if (s[n] == '\n' || s[n] == '\t')
			s[n] = ' ';
	return s;
}
