/* SPDX-License-Identifier: BSD-2-Clause */
/* Unit tests for qry: not written yet. */
#include "tests/unit/tap.h"

int
main(void)
{
	ok(0, "qry tests written");
	return tap_done();
}
