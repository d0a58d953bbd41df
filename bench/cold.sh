#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
#
# cold.sh: cold resolution, tlspolicyd against postfix-mta-sts-resolver,
# in one run (issue 9, "Benchmark"). See bench/cold.py and bench/README.md
# ("Cold resolution") for what it measures.
#
# Usage: bench/cold.sh [BUILDDIR]  (after make bench/loadgen tlspolicyd)
# Needs root, NSD, unbound, ldns-utils, dig, nginx and openssl (the test
# world's tools), perf for BENCH_PERF=1, and postfix-mta-sts-resolver for
# the peer. Environment: see bench/cold.py.
#
# Everything runs in a network namespace of its own with only loopback
# (unshare -n), so the servers have 127.0.0.0/8 to themselves and nothing
# they do can leave the machine.
set -eu
build=$(cd "${1:-.}" && pwd)
src=$(cd "$(dirname "$0")/.." && pwd)
for b in "$build/bench/loadgen" "$build/tlspolicyd"; do
	[ -x "$b" ] || { echo "cold.sh: $b missing: build it first" >&2; exit 2; }
done
PATH=$PATH:/usr/sbin:/sbin
export PATH
exec unshare --net -- sh -c 'ip link set lo up && exec /usr/bin/python3 "$@"' \
	sh "$src/bench/cold.py" "$build"
