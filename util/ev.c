/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The process's libevent base and the clock.
 *
 * ev_now() is the only wall clock the logic reads (STYLE rule 10). Tests
 * shift it with TLSPOLICYD_CLOCK_OFFSET (read once, on first use) or
 * ev_set_offset(), to jump past a policy's max_age, a TTL or midnight
 * without waiting. ev_mono_ms() is never shifted: timeouts must not fire
 * because a test moved the calendar.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include <event2/event.h>

#include "util/ev.h"
#include "util/log.h"

/*
 * Largest offset accepted, about 3000 years either way: far more than any
 * test needs, small enough that time(NULL) + offset cannot overflow.
 */
#define EV_OFFSET_MAX 100000000000LL

static struct event_base *ev_the_base;
static long long ev_offset;
static int ev_offset_read;

struct event_base *
ev_base_new(void)
{
	struct event_config *cfg;
	struct timeval most = {0, EV_CHECK_MS * 1000};

	if (ev_the_base != NULL)
		return ev_the_base;
	/* Look for new events after EV_CHECK_CALLBACKS callbacks (or
	 * EV_CHECK_MS) of default priority, so that an urgent event that
	 * became ready meanwhile runs first even while thousands of
	 * connections are being served in one pass. */
	if ((cfg = event_config_new()) == NULL ||
	    event_config_set_max_dispatch_interval(
		cfg, &most, EV_CHECK_CALLBACKS, EV_PRI_DEFAULT) != 0 ||
	    (ev_the_base = event_base_new_with_config(cfg)) == NULL)
		log_fatalx("event_base_new failed");
	event_config_free(cfg);
	/* Before any event exists, so every event gets EV_PRI_DEFAULT. */
	if (event_base_priority_init(ev_the_base, EV_PRIORITIES) != 0)
		log_fatalx("event_base_priority_init failed");
	return ev_the_base;
}

struct event_base *
ev_base(void)
{
	return ev_the_base;
}

void
ev_base_free(void)
{
	if (ev_the_base != NULL)
		event_base_free(ev_the_base);
	ev_the_base = NULL;
}

/*
 * Read TLSPOLICYD_CLOCK_OFFSET once. A malformed value is a fatal start-up
 * error: a test that silently ran at offset 0 would prove nothing.
 */
static void
ev_offset_init(void)
{
	const char *s;
	char *end;
	long long v;

	ev_offset_read = 1;
	if ((s = getenv("TLSPOLICYD_CLOCK_OFFSET")) == NULL || *s == '\0')
		return;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v > EV_OFFSET_MAX ||
	    v < -EV_OFFSET_MAX)
		log_fatalx("TLSPOLICYD_CLOCK_OFFSET: not a number of seconds "
			   "from %lld to %lld: %s",
			   -EV_OFFSET_MAX, EV_OFFSET_MAX, s);
	ev_offset = v;
}

time_t
ev_now(void)
{
	if (!ev_offset_read)
		ev_offset_init();
	return time(NULL) + (time_t)ev_offset;
}

uint64_t
ev_mono_ms(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		log_panic("clock_gettime(CLOCK_MONOTONIC) failed");
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void
ev_set_offset(long long seconds)
{
	if (seconds > EV_OFFSET_MAX || seconds < -EV_OFFSET_MAX)
		log_panic("ev_set_offset: %lld out of range", seconds);
	ev_offset_read = 1;
	ev_offset = seconds;
}
