/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Unix-domain sockets the daemon listens on (socketmap, query, TLS-RPT
 * datagrams) and the directories they and the store live in.
 */
#ifndef UTIL_SOCK_H
#define UTIL_SOCK_H

#include <stddef.h>
#include <sys/types.h>

/*
 * Create DIR and its missing parents (mode 0755; DIR itself LAST_MODE).
 * Returns 0, or -1 with errno.
 */
int sock_mkdirs(const char *dir, mode_t last_mode);

/*
 * Bind a non-blocking unix socket of TYPE (SOCK_STREAM, then listening,
 * or SOCK_DGRAM) at PATH: missing parent directories are created, a stale
 * socket from an earlier run is removed but a live one (another process
 * answers there) never is, then GROUP (a group name; NULL or "" leaves
 * it) and MODE are applied. Returns the descriptor, or -1 with a reason
 * naming PATH in ERR; nothing is left behind on failure.
 */
int sock_unix_bind(const char *path, int type, unsigned mode, const char *group,
		   char *err, size_t errsz);

#endif /* UTIL_SOCK_H */
