/* SPDX-License-Identifier: BSD-2-Clause */
/* qry: not written yet. */
#include "resolver/qry.h"
