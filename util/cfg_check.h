/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Inside the config module: the checks of single option values, used by
 * the option table in util/cfg.c. Each returns 1 when S (LEN bytes) is a
 * valid value, else 0 with the reason in WHY. Nothing outside util/cfg*.c
 * includes this.
 */
#ifndef UTIL_CFG_CHECK_H
#define UTIL_CFG_CHECK_H

#include <stddef.h>

#include "util/log.h"

int cfg_check_socketmap(const char *s, size_t len, char *why, size_t whysz);
int cfg_check_query_socket(const char *s, size_t len, char *why, size_t whysz);
int cfg_check_metrics(const char *s, size_t len, char *why, size_t whysz);
int cfg_check_account(const char *s, size_t len, char *why, size_t whysz);
int cfg_check_mapname(const char *s, size_t len, char *why, size_t whysz);
int cfg_check_resolver(const char *s, size_t len, char *why, size_t whysz);
int cfg_check_abspath(const char *s, size_t len, char *why, size_t whysz);
int cfg_check_store(const char *s, size_t len, char *why, size_t whysz);
int cfg_check_store_or_empty(const char *s, size_t len, char *why,
			     size_t whysz);
int cfg_check_abspath_or_empty(const char *s, size_t len, char *why,
			       size_t whysz);
int cfg_check_dnsname(const char *s, size_t len, char *why, size_t whysz);
int cfg_check_smtp(const char *s, size_t len, char *why, size_t whysz);
int cfg_check_protocols(const char *s, size_t len, char *why, size_t whysz);

/* Write a reason into WHY (NULL or empty: nothing); returns 0. */
int LOG_PRINTF(3, 4) cfg_why(char *why, size_t whysz, const char *fmt, ...);

#endif /* UTIL_CFG_CHECK_H */
