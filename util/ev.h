/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The event base and the clock.
 *
 * One process, one libevent loop (DESIGN 2). Logic reads time only through
 * ev_now() (STYLE rule 10) so tests can move the clock: the environment
 * variable TLSPOLICYD_CLOCK_OFFSET (seconds, may be negative) shifts it, and
 * ev_set_offset() does the same in unit tests.
 */
#ifndef UTIL_EV_H
#define UTIL_EV_H

#include <stdint.h>
#include <time.h>

struct event_base;

/*
 * Event priorities (event_priority_set; lower runs first). Events are
 * EV_PRI_DEFAULT unless set otherwise; EV_PRI_URGENT is for input that is
 * lost when it waits: the TLS-RPT datagram socket, whose kernel queue is
 * short and whose senders never wait.
 */
#define EV_PRIORITIES  2
#define EV_PRI_URGENT  0
#define EV_PRI_DEFAULT 1
/* The loop checks for newly ready events after this many default-priority
 * callbacks or this many milliseconds, whichever comes first. */
#define EV_CHECK_CALLBACKS 16
#define EV_CHECK_MS	   2

/* Create the process's event base (once). Fatal on failure. */
struct event_base *ev_base_new(void);
/* The base made by ev_base_new(), or NULL. */
struct event_base *ev_base(void);
/* Free the base at shutdown. */
void ev_base_free(void);

/* Wall-clock seconds since the epoch, shifted by the test offset. */
time_t ev_now(void);
/* Monotonic milliseconds, for timeouts and latency (never shifted). */
uint64_t ev_mono_ms(void);
/* Set the test clock offset in seconds. */
void ev_set_offset(long long seconds);

#endif /* UTIL_EV_H */
