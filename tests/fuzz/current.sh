#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
# The committed tests/fuzz/Makefile.inc is what gen-makefile.sh makes of
# tests/fuzz/targets, and every listed target has a source and a corpus.
# TAP output.
cd "${top_srcdir:-.}" || exit 1
n=0
fail=0
t() { n=$((n + 1)); if "$@"; then echo "ok $n - $desc"; else echo "not ok $n - $desc"; fail=1; fi; }
desc="tests/fuzz/Makefile.inc is generated from tests/fuzz/targets"
t sh -c 'sh tests/fuzz/gen-makefile.sh tests/fuzz/targets | cmp -s - tests/fuzz/Makefile.inc'
for name in $(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' -e 's/[[:space:]].*//' tests/fuzz/targets); do
	desc="fuzz target $name has tests/fuzz/fuzz_$name.c and a seed corpus"
	t test -f "tests/fuzz/fuzz_$name.c" -a -d "tests/fuzz/corpus/$name"
done
for f in tests/fuzz/fuzz_*.c; do
	name=${f#tests/fuzz/fuzz_}
	name=${name%.c}
	desc="$f is listed in tests/fuzz/targets"
	t grep -q "^$name[[:space:]]" tests/fuzz/targets
done
echo "1..$n"
exit $fail
