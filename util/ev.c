/* SPDX-License-Identifier: BSD-2-Clause */
/* ev: not written yet. */
#include "util/ev.h"
