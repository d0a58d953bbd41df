/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Inside the tlspolicy tool: what cli/tlspolicy.c (options, queries, the
 * store and admin commands) shares with cli/report.c (the TLS-RPT report
 * commands). Nothing outside cli/ includes this.
 */
#ifndef CLI_CLI_H
#define CLI_CLI_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct cfg;

/* Exit status: 1 nothing found, 2 an error (tlspolicy(1)). */
#define EXIT_NEGATIVE 1
#define EXIT_ERROR    2

enum talk_status { TALK_OK = 0, TALK_UNREACHABLE, TALK_ERROR };

extern int cli_opt_json;    /* -j */
extern struct cfg *cli_cfg; /* after cli_need_cfg() */

/* "tlspolicy: " and the message on stderr. */
__attribute__((format(printf, 1, 2))) void cli_errx_msg(const char *fmt, ...);
/* Load the config (-c) once; 0, or -1 with the reason printed. */
int cli_need_cfg(void);
/* The policy store's path (-d or [cache] path), or NULL. */
const char *cli_store_path(void);
/* One request to the admin socket: TALK_OK with the reply in *REP. */
enum talk_status cli_admin_call(json_t *req, json_t **rep);
/* A member as a string ("" when absent) or an integer (0). */
const char *cli_jstr(json_t *o, const char *key);
long long cli_jint(json_t *o, const char *key);
/* Print O as one JSON line; 0 or -1. */
int cli_print_json(json_t *o);
/* T as UTC into BUF ("-" for 0); ISO 8601 when ISO. */
const char *cli_fmt_time(long long t, char *buf, size_t bufsz, int iso);

/* tlspolicy report list | show | send (cli/report.c). */
int cli_cmd_report(int argc, char **argv);

#endif /* CLI_CLI_H */
