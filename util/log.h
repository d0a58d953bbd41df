/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Logging: syslog (facility mail) by default, stderr in the foreground.
 *
 * The ladder (STYLE rule 4): log_panic = our bug (aborts), log_fatal =
 * cannot start (exits 1), log_warn = bad input or a failed operation, with
 * errno text; log_warnx = the same without errno; log_info; log_debug (only
 * with -v). Every message is sanitised: bytes outside printable ASCII are
 * written as \xNN, so nothing a peer sent can forge a log line.
 */
#ifndef UTIL_LOG_H
#define UTIL_LOG_H

#include <stddef.h>

#define LOG_PRINTF(a, b) __attribute__((format(printf, a, b)))

/* Start logging as IDENT; to stderr when FOREGROUND, else to syslog. */
void log_init(const char *ident, int foreground);
/* 0 = info and above, 1 = debug, 2 = more debug. */
void log_set_verbose(int verbose);
int log_verbose(void);

void log_debug(const char *fmt, ...) LOG_PRINTF(1, 2);
void log_info(const char *fmt, ...) LOG_PRINTF(1, 2);
void log_warnx(const char *fmt, ...) LOG_PRINTF(1, 2);
void log_warn(const char *fmt, ...) LOG_PRINTF(1, 2);
void log_fatalx(const char *fmt, ...) LOG_PRINTF(1, 2)
    __attribute__((noreturn));
void log_fatal(const char *fmt, ...) LOG_PRINTF(1, 2) __attribute__((noreturn));
void log_panic(const char *fmt, ...) LOG_PRINTF(1, 2) __attribute__((noreturn));

/*
 * Copy at most LEN bytes of IN into OUT (size OUTSZ > 0) as printable ASCII:
 * bytes < 0x20, 0x7f and >= 0x80 and backslash become \xNN. Always
 * NUL-terminates; a result that does not fit ends in "...". Returns OUT.
 */
char *log_sanitize(const char *in, size_t len, char *out, size_t outsz);

#endif /* UTIL_LOG_H */
