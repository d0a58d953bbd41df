#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
#
# The dependency rule of DESIGN 3, checked on every project include:
#   util <- cache, net <- resolver, tlsrpt <- daemon, cli
# A folder may include its own headers and those of folders to its left;
# resolver/ and tlsrpt/ never include each other. TAP output.
cd "${top_srcdir:-.}" || exit 1

layer() {
	case $1 in
	util) echo 0 ;; cache | net) echo 1 ;; resolver | tlsrpt) echo 2 ;;
	daemon | cli) echo 3 ;; *) echo x ;;
	esac
}

n=0
fail=0
for dir in util cache net resolver tlsrpt daemon cli; do
	from=$(layer "$dir")
	bad=""
	for f in "$dir"/*.[ch]; do
		[ -e "$f" ] || continue
		for inc in $(sed -n 's/^#include "\([a-z]*\)\/.*/\1/p' "$f"); do
			to=$(layer "$inc")
			if [ "$to" = x ] || [ "$inc" != "$dir" ] &&
				[ "$to" -ge "$from" ]; then
				bad="$bad $f->$inc"
			fi
		done
	done
	n=$((n + 1))
	if [ -z "$bad" ]; then
		echo "ok $n - $dir/ includes only folders to its left"
	else
		echo "not ok $n - $dir/ includes against the rule:$bad"
		fail=1
	fi
done
echo "1..$n"
exit $fail
