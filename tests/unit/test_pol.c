/* SPDX-License-Identifier: BSD-2-Clause */
/* Unit tests for pol: not written yet. */
#include "tests/unit/tap.h"

int
main(void)
{
	ok(0, "pol tests written");
	return tap_done();
}
