/* SPDX-License-Identifier: BSD-2-Clause */
/* dom: not written yet. */
#include "resolver/dom.h"
