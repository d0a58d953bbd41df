/* SPDX-License-Identifier: BSD-2-Clause */
/* log: not written yet. */
#include "util/log.h"
