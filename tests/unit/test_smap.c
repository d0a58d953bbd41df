/* SPDX-License-Identifier: BSD-2-Clause */
/* Unit tests for smap: not written yet. */
#include "tests/unit/tap.h"

int
main(void)
{
	ok(0, "smap tests written");
	return tap_done();
}
