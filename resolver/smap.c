/* SPDX-License-Identifier: BSD-2-Clause */
/* smap: not written yet. */
#include "resolver/smap.h"
