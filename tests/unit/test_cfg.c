/* SPDX-License-Identifier: BSD-2-Clause */
/* Unit tests for cfg: not written yet. */
#include "tests/unit/tap.h"

int
main(void)
{
	ok(0, "cfg tests written");
	return tap_done();
}
