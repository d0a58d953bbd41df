/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Fuzz target for the metrics endpoint's request classifier
 * (daemon/met.c): any bytes give one of the four answers, and "metrics"
 * only for a request line that starts with "GET /metrics".
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/met.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum met_req r = met_parse_request((const char *)data, size);

	if (r != MET_REQ_METRICS && r != MET_REQ_NOTFOUND &&
	    r != MET_REQ_METHOD && r != MET_REQ_BAD)
		abort();
	if (r == MET_REQ_METRICS &&
	    (size < 12 || memcmp(data, "GET /metrics", 12) != 0))
		abort();
	return 0;
}
