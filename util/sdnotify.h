/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The systemd readiness protocol (sd_notify(3)) without libsystemd: one
 * datagram to the AF_UNIX socket named by $NOTIFY_SOCKET ("/path" or
 * "@abstract"). Outside systemd (no variable) nothing happens.
 */
#ifndef UTIL_SDNOTIFY_H
#define UTIL_SDNOTIFY_H

/*
 * Send STATE ("READY=1", "STOPPING=1", "RELOADING=1\nMONOTONIC_USEC=…")
 * as one datagram. Returns 1 when sent, 0 when there is no
 * $NOTIFY_SOCKET, -1 (errno set) when it could not be sent.
 */
int sdn_notify(const char *state);

/* Is stderr connected to the journal ($JOURNAL_STREAM names it)? */
int sdn_journal_stderr(void);

#endif /* UTIL_SDNOTIFY_H */
