/* SPDX-License-Identifier: BSD-2-Clause */
/* cfg: not written yet. */
#include "resolver/cfg.h"
