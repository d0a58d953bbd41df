/* SPDX-License-Identifier: BSD-2-Clause */
/* srv: not written yet. */
#include "resolver/srv.h"
