/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Logging to syslog (facility mail) or, in the foreground, to stderr.
 *
 * Lines look like Postfix's: "tlspolicyd[1234]: warning: text" on stderr,
 * "warning: text" in syslog (which adds ident and pid itself). Every
 * message is formatted into a bounded buffer and then passed through
 * log_sanitize(), so bytes a peer sent (a domain, a socketmap key) can
 * neither forge a second log line nor smuggle terminal escapes (STYLE
 * rule 5). Messages longer than LOG_MSG_MAX end in "...".
 *
 * Under systemd with stderr connected to the journal ($JOURNAL_STREAM,
 * issue 12) the journal adds the identifier and pid itself, so a line is
 * "<4>warning: text": the sd-daemon(3) priority prefix, no ident.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "util/log.h"
#include "util/sdnotify.h"

/* Longest message we emit, sanitised, without the prefix. */
#define LOG_MSG_MAX   2048
#define LOG_IDENT_MAX 64

/* Before log_init() everything goes to stderr: startup errors are seen. */
static int log_foreground = 1;
static int log_level;
/* stderr goes to the journal: "<PRI>" prefixes, no ident[pid]. */
static int log_journal;
/* openlog() keeps the pointer, so the ident lives here. */
static char log_ident[LOG_IDENT_MAX] = "tlspolicyd";

void
log_init(const char *ident, int foreground)
{
	if (ident != NULL && *ident != '\0')
		snprintf(log_ident, sizeof(log_ident), "%s", ident);
	log_foreground = foreground;
	log_journal = foreground && sdn_journal_stderr();
	if (!foreground)
		openlog(log_ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void
log_set_verbose(int verbose)
{
	log_level = verbose;
}

int
log_verbose(void)
{
	return log_level;
}

/* Hex digits for the \xNN escape. */
static const char log_hex[] = "0123456789abcdef";

static int
log_plain(unsigned char c)
{
	return c >= 0x20 && c < 0x7f && c != '\\';
}

char *
log_sanitize(const char *in, size_t len, char *out, size_t outsz)
{
	const unsigned char *p = (const unsigned char *)in;
	size_t i, need = 0, room, pos = 0;

	if (outsz == 0)
		return out;
	/* First pass: does the whole escaped text fit? */
	for (i = 0; i < len; i++)
		need += log_plain(p[i]) ? 1 : 4;
	room = outsz - 1;
	if (need > room) {
		/* Leave space for "..."; never split an escape. */
		room = room >= 3 ? room - 3 : 0;
	}
	for (i = 0; i < len; i++) {
		if (log_plain(p[i])) {
			if (pos + 1 > room)
				break;
			out[pos++] = (char)p[i];
		} else {
			if (pos + 4 > room)
				break;
			out[pos++] = '\\';
			out[pos++] = 'x';
			out[pos++] = log_hex[p[i] >> 4];
			out[pos++] = log_hex[p[i] & 0xf];
		}
	}
	if (i < len) {
		/* As much of "..." as the buffer holds (all of it if >= 4). */
		for (i = 0; i < 3 && pos < outsz - 1; i++)
			out[pos++] = '.';
	}
	out[pos] = '\0';
	return out;
}

/*
 * Format, append the errno text when ERRNUM is not 0, sanitise, emit.
 */
static void LOG_PRINTF(4, 0) log_emit(int pri, const char *prefix, int errnum,
				      const char *fmt, va_list ap)
{
	/*
	 * One byte more than we print: a raw message longer than LOG_MSG_MAX
	 * then cannot fit CLEAN, and log_sanitize() ends it in "...".
	 */
	char raw[LOG_MSG_MAX + 2], clean[LOG_MSG_MAX + 1];
	size_t len;
	int n;

	n = vsnprintf(raw, sizeof(raw), fmt, ap);
	if (n < 0)
		snprintf(raw, sizeof(raw), "(message format error)");
	len = strlen(raw);
	if (errnum != 0 && n >= 0 && (size_t)n < sizeof(raw))
		snprintf(raw + len, sizeof(raw) - len, ": %s",
			 strerror(errnum));
	log_sanitize(raw, strlen(raw), clean, sizeof(clean));
	if (log_foreground && log_journal) {
		fprintf(stderr, "<%d>%s%s\n", pri, prefix, clean);
		fflush(stderr);
	} else if (log_foreground) {
		fprintf(stderr, "%s[%ld]: %s%s\n", log_ident, (long)getpid(),
			prefix, clean);
		fflush(stderr);
	} else
		syslog(pri, "%s%s", prefix, clean);
}

void
log_debug(const char *fmt, ...)
{
	va_list ap;

	if (log_level < 1)
		return;
	va_start(ap, fmt);
	log_emit(LOG_DEBUG, "", 0, fmt, ap);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_emit(LOG_INFO, "", 0, fmt, ap);
	va_end(ap);
}

void
log_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_emit(LOG_WARNING, "warning: ", 0, fmt, ap);
	va_end(ap);
}

void
log_warn(const char *fmt, ...)
{
	va_list ap;
	int saved = errno;

	va_start(ap, fmt);
	log_emit(LOG_WARNING, "warning: ", saved, fmt, ap);
	va_end(ap);
	errno = saved;
}

void
log_fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_emit(LOG_CRIT, "fatal: ", 0, fmt, ap);
	va_end(ap);
	exit(1);
}

void
log_fatal(const char *fmt, ...)
{
	va_list ap;
	int saved = errno;

	va_start(ap, fmt);
	log_emit(LOG_CRIT, "fatal: ", saved, fmt, ap);
	va_end(ap);
	exit(1);
}

void
log_panic(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_emit(LOG_CRIT, "panic: ", 0, fmt, ap);
	va_end(ap);
	abort();
}
