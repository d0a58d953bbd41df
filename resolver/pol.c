/* SPDX-License-Identifier: BSD-2-Clause */
/* pol: not written yet. */
#include "resolver/pol.h"
