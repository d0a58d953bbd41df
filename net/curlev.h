/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A libcurl multi handle driven by libevent through the multi_socket API:
 * an event per socket libcurl asks us to watch and one timer, so every
 * transfer runs on the daemon's single loop. Shared by net/https (policy
 * fetches, report POSTs) and net/smtp (report mail).
 */
#ifndef NET_CURLEV_H
#define NET_CURLEV_H

#include <curl/curl.h>

struct event_base;
struct curlev;

/*
 * Called from the loop for each finished transfer, with its easy handle
 * and result; the owner removes the handle from the multi handle
 * (curlev_multi) and finishes its work. Never inside curlev_new.
 */
typedef void curlev_done_fn(void *arg, CURL *easy, CURLcode rc);

/* NULL when out of memory or libcurl refuses the set-up. */
struct curlev *curlev_new(struct event_base *base, curlev_done_fn *done,
			  void *arg);
/* The multi handle, for curl_multi_add_handle / remove_handle. */
CURLM *curlev_multi(const struct curlev *c);
/* Clean up the multi handle (its transfers must be removed first) and
 * the events; NULL does nothing. */
void curlev_free(struct curlev *c);

#endif /* NET_CURLEV_H */
