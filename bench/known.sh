#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
#
# known.sh: known answers never wait (DESIGN 6.9), measured in one run.
# See bench/known.py and bench/README.md ("Known answers with DNS silent,
# and after a restart") for the passes and the targets.
#
# Usage: bench/known.sh [BUILDDIR]   (after make bench/loadgen tlspolicyd)
# Needs root, the test world's tools (NSD, unbound, ldns-utils, dig) and
# sqlite3. Environment: BENCH_POLICIES (20000), BENCH_CONNS (100),
# BENCH_KEEP (0).
#
# Everything runs in a network namespace of its own with only loopback
# (unshare -n), so nothing the daemon or the world does leaves the machine.
set -eu
build=$(cd "${1:-.}" && pwd)
src=$(cd "$(dirname "$0")/.." && pwd)
for b in "$build/bench/loadgen" "$build/tlspolicyd"; do
	[ -x "$b" ] || { echo "known.sh: $b missing: build it first" >&2; exit 2; }
done
PATH=$PATH:/usr/sbin:/sbin
export PATH
exec unshare --net -- sh -c 'ip link set lo up && exec /usr/bin/python3 "$@"' \
	sh "$src/bench/known.py" "$build"
