#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
#
# The fresh-machine check, as root: a new Debian 12 goes from nothing to a
# running, tested tlspolicyd with the README's two commands, and the
# Debian package installs, upgrades over itself and purges.
#
#   tests/fresh/run.sh            (.ci/run runs it after the normal suite)
#
# 1. debootstrap --variant=minbase bookworm, from the apt source this
#    machine is configured with (read from its apt configuration now;
#    no mirror is named in the project), and a git clone of this
#    checkout's HEAD in /src/tlspolicyd.
# 2. The README's run command, exactly as written (taken from README.md),
#    then its first-use checks against the running daemon.
# 3. In the same checkout, the README's test command, exactly as written,
#    on a machine whose packaged services are running as a freshly
#    booted Debian would have them: NSD on 0.0.0.0:53 (Debian's default
#    nsd.conf), nginx on port 80, Postfix on loopback. Then the run
#    command and the first-use checks again (the other order).
# 4. The Debian package: dpkg-buildpackage, lintian (no errors), install,
#    install again over itself, run the installed daemon, purge.
#
# Nothing leaves the machine's loopback except package installation:
# everything else, and every start of the daemon on its defaults (it
# would recurse from the public DNS root), runs in a network namespace
# that has only loopback (unshare -n, ip link set lo up). Package
# installation runs first (install-deps, then the README commands find
# everything installed and need no network). Services in the root are
# never started by package scripts (policy-rc.d), so nothing runs in the
# machine's own network namespace. Mounts (/proc, /sys, /dev) are undone
# and the root removed whatever happens (FRESH_KEEP=1 keeps the root).
#
# Output: one line per step, and last "fresh machine: N passed, N failed"
# (the suite's automake counts plus this script's own checks).
set -uo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
suite=bookworm
PATH=$PATH:/usr/sbin:/sbin

[ "$(id -u)" -eq 0 ] || { echo "fresh: must run as root" >&2; exit 2; }
# debootstrap is the one tool this check installs on the machine itself.
if ! command -v debootstrap >/dev/null; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap \
		>/dev/null
fi
for t in debootstrap git unshare ip chroot mount; do
	command -v "$t" >/dev/null || {
		echo "fresh: needs $t (apt-get install debootstrap git)" >&2
		exit 2
	}
done

passed=0
failed=0
t0=$(date +%s)
pass() { passed=$((passed + 1)); echo "fresh: ok - $*"; }
fail() { failed=$((failed + 1)); echo "fresh: FAILED - $*"; }
elapsed() { echo "$(($(date +%s) - t0))s"; }
finish() {
	echo "fresh: took $(elapsed)"
	echo "fresh machine: $passed passed, $failed failed"
	[ "$failed" -eq 0 ]
	exit $?
}

# --- the machine's apt source ------------------------------------------

# The first URI that serves $suite, from sources.list (one-line format)
# and sources.list.d (*.list, deb822 *.sources).
apt_mirror() {
	local f
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -r "$f" ] || continue
		awk -v s="$suite" '
			$1 == "deb" {
				i = 2
				if ($i ~ /^\[/) while ($i !~ /\]$/) i++
				if ($i ~ /^\[/ || $i ~ /\]$/) i++
				if ($(i + 1) == s) { print $i; exit }
			}' "$f"
	done
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -r "$f" ] || continue
		awk -v s="$suite" '
			function flush() {
				if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " s " ") && uris != "") {
					split(uris, u, " "); print u[1]; found = 1
				}
				types = uris = suites = ""
			}
			/^[ \t]*#/ { next }
			/^[ \t]*$/ { flush(); if (found) exit; next }
			{ k = tolower($1); sub(/:$/, "", k); $1 = ""; sub(/^ +/, "") }
			k == "types" { types = $0 }
			k == "uris" { uris = $0 }
			k == "suites" { suites = $0 }
			k == "enabled" && tolower($0) == "no" { types = "" }
			END { if (!found) flush() }' "$f"
	done
}

mirror=$(apt_mirror | head -1)
if [ -z "$mirror" ]; then
	echo "fresh: no apt source for $suite in /etc/apt" >&2
	exit 2
fi

# --- the root, its mounts and their cleanup --------------------------------

work=$(mktemp -d /var/tmp/tlspolicyd-fresh.XXXXXX) || exit 2
root=$work/root
logs=$work
src=/src/tlspolicyd

# Processes whose root is ours: the daemon, services, leftovers.
root_pids() {
	local p r
	for p in /proc/[0-9]*; do
		r=$(readlink "$p/root" 2>/dev/null) || continue
		case $r in "$root" | "$root"/*) echo "${p#/proc/}" ;; esac
	done
}
mounts_under() { # innermost first
	awk -v r="$root" '$2 == r || index($2, r "/") == 1 { print $2 }' \
		/proc/self/mounts | sort -r
}
cleanup() {
	local pids m
	trap - EXIT INT TERM HUP
	for _ in 1 2 3 4 5; do
		pids=$(root_pids)
		[ -n "$pids" ] || break
		# shellcheck disable=SC2086
		kill -TERM $pids 2>/dev/null
		sleep 1
	done
	pids=$(root_pids)
	# shellcheck disable=SC2086
	[ -z "$pids" ] || kill -KILL $pids 2>/dev/null
	for _ in 1 2 3; do
		for m in $(mounts_under); do umount "$m" 2>/dev/null; done
		[ -z "$(mounts_under)" ] && break
		sleep 1
	done
	for m in $(mounts_under); do umount -l "$m"; done
	if [ -n "$(mounts_under)" ]; then
		echo "fresh: still mounted under $root; not removing it" >&2
	elif [ -n "${FRESH_KEEP:-}" ]; then
		echo "fresh: kept $work"
	else
		rm -rf --one-file-system "$work"
	fi
}
trap cleanup EXIT
trap 'fail "interrupted"; finish' INT TERM HUP

# A private /dev: a tmpfs with the usual nodes, so nothing of the
# machine's /dev is reachable from the root (or by its removal).
# The root is a mount point of its own (bound onto itself), as / is on a
# real machine: unshare -m --propagation private (the tests' Postfix
# sender) needs that.
mount_all() {
	mount --bind "$root" "$root" &&
		mount -t proc proc "$root/proc" &&
		mount -t sysfs -o ro sysfs "$root/sys" &&
		mount -t tmpfs -o mode=0755,nosuid tmpfs "$root/dev" || return 1
	mknod -m 666 "$root/dev/null" c 1 3
	mknod -m 666 "$root/dev/zero" c 1 5
	mknod -m 666 "$root/dev/full" c 1 7
	mknod -m 666 "$root/dev/random" c 1 8
	mknod -m 666 "$root/dev/urandom" c 1 9
	mknod -m 666 "$root/dev/tty" c 5 0
	mkdir -m 755 "$root/dev/pts" "$root/dev/shm"
	mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts \
		"$root/dev/pts" &&
		ln -s pts/ptmx "$root/dev/ptmx" &&
		mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$root/dev/shm" &&
		ln -s /proc/self/fd "$root/dev/fd" &&
		ln -s /proc/self/fd/0 "$root/dev/stdin" &&
		ln -s /proc/self/fd/1 "$root/dev/stdout" &&
		ln -s /proc/self/fd/2 "$root/dev/stderr"
}

env_root="env -i HOME=/root LANG=C.UTF-8 TERM=dumb
 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Run the bash script $1 in the root, with the network (package
# installation only).
in_root_net() { chroot "$root" $env_root bash -c "$1"; }
# Run the bash script $1 in the root, in a network namespace of its own
# with only loopback.
in_root() {
	unshare -n sh -c 'ip link set lo up && exec chroot "$0" "$@"' \
		"$root" $env_root bash -c "$1"
}
# step NAME LOG SCRIPT: in_root SCRIPT with output to LOG; pass or fail.
step_log() {
	local name=$1 log=$2
	shift 2
	if "$@" >"$log" 2>&1 </dev/null; then
		pass "$name ($(elapsed))"
	else
		fail "$name; the end of $log:"
		tail -40 "$log" | sed 's/^/    /'
		return 1
	fi
}

echo "fresh: $suite from $mirror into $root"
step_log "debootstrap --variant=minbase $suite" "$logs/debootstrap.log" \
	debootstrap --variant=minbase "$suite" "$root" "$mirror" || finish
cp /etc/resolv.conf "$root/etc/resolv.conf"
# Package scripts start no services (they would run in the machine's own
# network namespace); step 3 starts them itself, in the test namespace.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"
mount_all || { fail "mounting /proc, /sys, /dev"; finish; }
rev=$(git -C "$top" rev-parse HEAD)
step_log "git clone of $rev" "$logs/clone.log" \
	sh -c 'git clone -q --no-hardlinks "$1" "$2" &&
		git -C "$2" checkout -q "$3"' sh "$top" "$root$src" "$rev" ||
	finish

# --- the README's commands -----------------------------------------------

# From the clone's README.md.
readme=$root$src/README.md
# The one line of an sh block in README.md that matches the ERE $1.
readme_line() {
	awk -v re="$1" '/^```sh$/ { b = 1; next } /^```$/ { b = 0 }
		b && $0 ~ re' "$readme"
}
run_cmd=$(readme_line '^contrib/debian/install-deps && .* \./tlspolicyd -f$')
test_cmd=$(readme_line '^contrib/debian/install-deps --test && .* check$')
# The package: the sh line that runs dpkg-buildpackage.
pkg_cmd=$(readme_line 'dpkg-buildpackage')
# The first-use checks: the sh block that runs "tlspolicy query".
check_cmds=$(awk '/^```sh$/ { b = 1; n = ""; next }
	/^```$/ { if (b && n ~ /tlspolicy query/) { printf "%s", n; exit } b = 0 }
	b { n = n $0 "\n" }' "$readme")
if [ "$(printf '%s\n' "$run_cmd" | wc -l)" -ne 1 ] || [ -z "$run_cmd" ] ||
	[ "$(printf '%s\n' "$test_cmd" | wc -l)" -ne 1 ] || [ -z "$test_cmd" ] ||
	[ -z "$check_cmds" ] || [ "$(printf '%s\n' "$pkg_cmd" | wc -l)" -ne 1 ] ||
	[ -z "$pkg_cmd" ]; then
	fail "README.md: expected one run command, one test command" \
		"a first-use block with 'tlspolicy query' and a package command"
	finish
fi

# --- 2. the run command and the first-use checks ---------------------------

step_log "packages for the run command" "$logs/deps.log" \
	in_root_net "cd $src && contrib/debian/install-deps" || finish

# The run command in the background, as its own process group; once the
# daemon is ready, the first-use checks; then the daemon is stopped.
# $1 says when.
run_and_check() {
	local when=$1 run_pid ready=0 c log
	# A log of its own, empty before the background job starts: a stale
	# "ready:" line must not count.
	log=$logs/run-${when// /-}.log
	: >"$log"
	setsid unshare -n sh -c 'ip link set lo up && exec chroot "$0" "$@"' \
		"$root" $env_root bash -c "cd $src && $run_cmd" \
		>>"$log" 2>&1 </dev/null &
	run_pid=$!
	for _ in $(seq 1 1200); do
		grep -q ': ready: ' "$log" && { ready=1; break; }
		kill -0 "$run_pid" 2>/dev/null || break
		sleep 1
	done
	if [ "$ready" -eq 1 ]; then
		pass "README run command $when: the daemon is ready ($(elapsed))"
		grep -m1 ': ready: ' "$log" | sed 's/^/    /'
		# The README's first-use checks, each as written.
		while IFS= read -r c; do
			[ -n "$c" ] || continue
			# With no network, the README says, the answer is dane.
			if in_root "cd $src && $c" >"$logs/first-use.log" 2>&1 \
				</dev/null && grep -q dane "$logs/first-use.log"; then
				pass "first use: $c -> $(tr -s '\n ' ' ' <"$logs/first-use.log")"
			else
				fail "first use: $c:"
				sed 's/^/    /' "$logs/first-use.log"
			fi
		done <<<"$check_cmds"
	else
		fail "README run command $when: no 'ready:' line; the end of $log:"
		tail -40 "$log" | sed 's/^/    /'
	fi
	kill -TERM -- "-$run_pid" 2>/dev/null
	wait "$run_pid" 2>/dev/null
	if grep -q 'warning: the default socketmap socket' "$log"; then
		fail "run command $when: configure warned about the socket directory"
	fi
}
run_and_check first

# --- 3. the test command, with the packaged services running --------------

step_log "packages for the test command" "$logs/deps-test.log" \
	in_root_net "cd $src && contrib/debian/install-deps --test" || finish

# As systemd would have them after installation (Debian's own configs).
services_start='
mkdir -p /run/nsd && nsd -c /etc/nsd/nsd.conf || exit 1
nginx || exit 1
postfix start 2>/dev/null || exit 1
python3 - <<"EOF" || exit 1
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
try:
    s.bind(("127.0.53.1", 53))
except OSError:
    print("machine services up: 127.0.53.1:53 is taken (NSD on 0.0.0.0:53)")
else:
    raise SystemExit("NSD does not hold port 53")
EOF
'
services_stop='
postfix stop 2>/dev/null
nginx -s quit
kill $(cat /run/nsd/nsd.pid)
'
step_log "README test command, with NSD, nginx and Postfix running" \
	"$logs/test.log" in_root "
	$services_start
	cd $src && $test_cmd
	rc=\$?
	$services_stop
	exit \$rc"
sed -n 's/^machine services up: /    /p' "$logs/test.log"
summary=$root$src/test-suite.log
if [ -f "$summary" ]; then
	read -r p f < <(awk '/^# PASS:/ { p = $3 }
		/^# (FAIL|ERROR|XPASS|SKIP):/ { f += $3 }
		END { print p + 0, f + 0 }' "$summary")
	echo "fresh: the suite: $p passed, $f failed"
	passed=$((passed + p))
	failed=$((failed + f))
	# The failed tests' own logs, as automake collected them.
	[ "$f" -eq 0 ] || sed -n '/^\(FAIL\|ERROR\|XPASS\|SKIP\): /,$p' \
		"$summary" | head -300 | sed 's/^/    /'
else
	fail "no test-suite.log"
fi

# The other order: the run command again in the checkout the test command
# just configured for /usr/local (it rebuilds what the directories reach).
run_and_check "after the tests"

# --- 4. the Debian package ---------------------------------------------------

# A clean clone of its own (the checkout above is configured and built).
pkg=/src/pkg/tlspolicyd
deb_step() {
	step_log "git clone for the package" "$logs/clone-pkg.log" \
		sh -c 'mkdir -p "$(dirname "$2")" &&
			git clone -q --no-hardlinks "$1" "$2" &&
			git -C "$2" checkout -q "$3"' sh "$top" "$root$pkg" "$rev" ||
		return
	# The README's package command, part by part in order: installing
	# packages with the network, the build without.
	local part
	while IFS= read -r part; do
		case $part in
		contrib/debian/install-deps* | apt-get\ * | apt\ *)
			step_log "$part" "$logs/pkg-step.log" \
				in_root_net "cd $pkg && DEBIAN_FRONTEND=noninteractive $part" ;;
		*)
			step_log "$part" "$logs/pkg-step.log" \
				in_root "cd $pkg && $part" ;;
		esac || return
		cat "$logs/pkg-step.log" >>"$logs/package-build.log"
	done < <(printf '%s\n' "$pkg_cmd" | sed 's/ && /\n/g')
	debs=$(cd "$root/src/pkg" && ls tlspolicyd_*.deb 2>/dev/null)
	if [ "$(echo "$debs" | wc -w)" -ne 1 ]; then
		fail "dpkg-buildpackage made no single tlspolicyd_*.deb: $debs"
		return
	fi
	pass "built and installed $debs"
	# lintian: no errors (warnings and the rest are listed in the log).
	step_log "packages for lintian" "$logs/deps-lintian.log" in_root_net \
		"DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends lintian >/dev/null" || return
	step_log "lintian: no errors" "$logs/lintian.log" \
		in_root "cd /src/pkg && lintian --fail-on error tlspolicyd_*.changes"
	grep -E '^[EW]: ' "$logs/lintian.log" | sed 's/^/    /'
	in_root "bash $pkg/tests/fresh/package.sh /src/pkg/$debs" \
		>"$logs/package.log" 2>&1
	local p f
	p=$(grep -c '^ok ' "$logs/package.log")
	f=$(grep -c '^not ok ' "$logs/package.log")
	grep -q '^1\.\.' "$logs/package.log" || f=$((f + 1))
	passed=$((passed + p))
	failed=$((failed + f))
	echo "fresh: package install, reinstall, purge: $p passed, $f failed ($(elapsed))"
	[ "$f" -eq 0 ] || grep -v '^ok ' "$logs/package.log" | sed 's/^/    /'
}
deb_step

finish
