/* SPDX-License-Identifier: BSD-2-Clause */
/* Unit tests for cache: not written yet. */
#include "tests/unit/tap.h"

int
main(void)
{
	ok(0, "cache tests written");
	return tap_done();
}
