/* SPDX-License-Identifier: BSD-2-Clause */
/* Unit tests for dom: not written yet. */
#include "tests/unit/tap.h"

int
main(void)
{
	ok(0, "dom tests written");
	return tap_done();
}
