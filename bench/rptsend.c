/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * rptsend: libtlsrpt-shaped datagram sender for the TLS-RPT benchmark
 * (bench/rpt.sh). Like Postfix's smtp(8) processes with libtlsrpt, each of
 * P sender processes has its own unix datagram socket and sends with
 * MSG_DONTWAIT: a datagram the kernel queue has no room for is refused
 * (EAGAIN) and lost, exactly what libtlsrpt does. With -b the senders
 * block instead (nothing is lost; the ingest rate is then the daemon's).
 *
 *   rptsend -s SOCK -n N [-p P] [-r RATE] [-d DOMAINS] [-b] [-C]
 *
 * N datagrams in all, spread over P processes (default 1), paced to RATE
 * per second in all (0: as fast as possible), the report domain cycling
 * over DOMAINS names d<i>.bench.example (default 1000); one in ten is a
 * failure with a detail. A paced sender that finds itself more than 2 ms
 * behind its schedule (the machine stalled it) counts a stall and goes on
 * from now, as an MTA's sessions would, instead of sending what it owes
 * in one burst (-C: catch up, the burst). The last line is
 * machine-readable:
 *   RESULT sent=... refused=... secs=... rate=... stalls=...
 * Self-contained: no daemon modules.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
make_dgram(char *buf, size_t sz, unsigned long i, unsigned long ndom)
{
	unsigned long d = i % ndom;

	if (i % 10 == 9)
		return snprintf(
		    buf, sz,
		    "{\"dpv\":\"1\",\"d\":\"d%lu.bench.example\","
		    "\"pr\":\"v=TLSRPTv1; rua=mailto:r@d%lu.bench.example\","
		    "\"policies\":[{\"policy-type\":1,\"policy-domain\":"
		    "\"mx.d%lu.bench.example\",\"policy-string\":[\"3 1 1 "
		    "ABCD\"],\"failure-details\":[{\"c\":204,\"s\":"
		    "\"192.0.2.1\",\"n\":\"mx.d%lu.bench.example\",\"r\":"
		    "\"198.51.100.%lu\"}],\"t\":1,\"f\":1}]}",
		    d, d, d, d, i % 4);
	return snprintf(buf, sz,
			"{\"dpv\":\"1\",\"d\":\"d%lu.bench.example\","
			"\"pr\":\"v=TLSRPTv1; rua=mailto:r@d%lu.bench."
			"example\",\"policies\":[{\"policy-type\":1,"
			"\"policy-domain\":\"mx.d%lu.bench.example\","
			"\"policy-string\":[\"3 1 1 ABCD\"],\"t\":0,\"f\":0}]}",
			d, d, d);
}

static void
usage(void)
{
	fprintf(stderr, "usage: rptsend -s SOCK -n N [-p P] [-r RATE] [-C] "
			"[-d DOMAINS] [-b]\n");
	exit(2);
}

/* How far behind its schedule a paced sender may fall before it counts a
 * stall and moves its schedule (without -C). */
#define LATE_S 0.002

/* Child K of P: send datagrams K, K+P, … of N to PATH (paced to RATE in
 * all when RATE > 0), counting sent and refused ones and stalls in
 * RES[3K], RES[3K+1], RES[3K+2]; never returns. */
static void __attribute__((noreturn))
sender(const char *path, unsigned long k, unsigned long p, unsigned long n,
       unsigned long ndom, double rate, int block, int catchup, double t0,
       unsigned long *res)
{
	struct sockaddr_un sun;
	char buf[1024];
	unsigned long i, mine = 0;
	double per = rate > 0 ? (double)p / rate : 0;
	int fd = socket(AF_UNIX, SOCK_DGRAM, 0), len;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
		perror(path);
		_exit(1);
	}
	for (i = k; i < n; i += p, mine++) {
		if (per > 0) {
			/* Paced: datagram MINE is due at t0 + MINE * per,
			 * the P senders staggered across the period (not
			 * all at once, which Postfix's processes are not). */
			double slot = (double)mine + (double)k / (double)p;
			double due = t0 + slot * per, t = now_s();

			if (due > t)
				usleep((useconds_t)((due - t) * 1e6));
			else if (!catchup && t - due > LATE_S) {
				t0 += t - due;
				res[3 * k + 2]++;
			}
		}
		len = make_dgram(buf, sizeof(buf), i, ndom);
		if (send(fd, buf, (size_t)len, block ? 0 : MSG_DONTWAIT) == len)
			res[3 * k]++;
		else if (errno == EAGAIN || errno == EWOULDBLOCK)
			res[3 * k + 1]++;
		else {
			perror("send");
			_exit(1);
		}
	}
	_exit(0);
}

int
main(int argc, char **argv)
{
	const char *path = NULL;
	unsigned long n = 0, ndom = 1000, p = 1, k;
	double rate = 0, t0, t1;
	int ch, block = 0, catchup = 0;
	unsigned long *res; /* per process: sent, refused, stalls */

	while ((ch = getopt(argc, argv, "s:n:p:r:d:bC")) != -1) {
		switch (ch) {
		case 's':
			path = optarg;
			break;
		case 'n':
			n = strtoul(optarg, NULL, 10);
			break;
		case 'p':
			p = strtoul(optarg, NULL, 10);
			break;
		case 'r':
			rate = strtod(optarg, NULL);
			break;
		case 'd':
			ndom = strtoul(optarg, NULL, 10);
			break;
		case 'b':
			block = 1;
			break;
		case 'C':
			catchup = 1;
			break;
		default:
			usage();
		}
	}
	if (path == NULL || n == 0 || p == 0 || p > 256 || ndom == 0)
		usage();
	res = mmap(NULL, 3 * p * sizeof(*res), PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (res == MAP_FAILED)
		return 1;
	memset(res, 0, 3 * p * sizeof(*res));
	/* Paced senders start together once all are forked: a late child
	 * would otherwise send what it owes in one burst. */
	t0 = now_s() + (rate > 0 ? 0.1 : 0);
	for (k = 0; k < p; k++) {
		pid_t pid = fork();

		if (pid < 0)
			return 1;
		if (pid == 0)
			sender(path, k, p, n, ndom, rate, block, catchup, t0,
			       res);
	}
	for (k = 0; k < p; k++)
		wait(NULL);
	t1 = now_s();
	{
		unsigned long sent = 0, refused = 0, stalls = 0;

		for (k = 0; k < p; k++) {
			sent += res[3 * k];
			refused += res[3 * k + 1];
			stalls += res[3 * k + 2];
		}
		printf("RESULT sent=%lu refused=%lu secs=%.3f rate=%.0f "
		       "stalls=%lu\n",
		       sent, refused, t1 - t0, (double)n / (t1 - t0), stalls);
	}
	return 0;
}
