/* SPDX-License-Identifier: BSD-2-Clause */
/* cache: not written yet. */
#include "cache/cache.h"
