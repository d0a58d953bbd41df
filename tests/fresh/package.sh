#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
#
# The Debian package's maintainer scripts, on the fresh machine of
# tests/fresh/run.sh (as root, in a network namespace with only loopback):
#   tests/fresh/package.sh DEB
# DEB is installed already (apt install ./DEB). Checks what it installed,
# runs the installed daemon, installs DEB again over itself (a changed
# conffile stays), and purges it. One "ok"/"not ok" line per check.
set -u
deb=$1
n=0
bad=0
ok() { # DESCRIPTION COMMAND...
	local what=$1
	shift
	n=$((n + 1))
	if "$@" >/dev/null 2>&1; then
		echo "ok $n - $what"
	else
		bad=$((bad + 1))
		echo "not ok $n - $what"
	fi
}
installed() { [ "$(dpkg-query -W -f '${db:Status-Status}' tlspolicyd)" = installed ]; }
has_group() { id -nG tlspolicyd | tr ' ' '\n' | grep -qx "$1"; }
conffile() { dpkg-query -W -f '${Conffiles}\n' tlspolicyd | grep -q ' /etc/tlspolicyd/tlspolicyd.conf '; }
wants=/etc/systemd/system/multi-user.target.wants/tlspolicyd.service
unit=/lib/systemd/system/tlspolicyd.service
sock=/var/spool/postfix/private/tlspolicy

check_installed() { # WHEN
	ok "$1: installed" installed
	ok "$1: the daemon" test -x /usr/sbin/tlspolicyd
	ok "$1: the tool" test -x /usr/bin/tlspolicy
	ok "$1: man pages" test -f /usr/share/man/man8/tlspolicyd.8.gz -a \
		-f /usr/share/man/man5/tlspolicyd.conf.5.gz -a \
		-f /usr/share/man/man1/tlspolicy.1.gz
	ok "$1: the example config is a conffile" conffile
	ok "$1: the example config in the docs" \
		test -f /usr/share/doc/tlspolicyd/examples/tlspolicyd.conf
	ok "$1: the unit runs /usr/sbin/tlspolicyd" \
		grep -qx 'ExecStart=/usr/sbin/tlspolicyd -f' "$unit"
	ok "$1: the unit starts only when configured" \
		grep -qx 'ConditionPathExists=/etc/tlspolicyd/tlspolicyd.conf' "$unit"
	ok "$1: the unit is enabled" test -L "$wants"
	ok "$1: user tlspolicyd" getent passwd tlspolicyd
	ok "$1: tlspolicyd is in group postfix" has_group postfix
	ok "$1: tlspolicyd is in group adm" has_group adm
	ok "$1: the socket directory in Postfix's chroot" \
		test -d /var/spool/postfix/private
	ok "$1: the store directory belongs to tlspolicyd" \
		test "$(stat -c %U /var/lib/tlspolicyd)" = tlspolicyd
	ok "$1: the shipped config loads, socket in Postfix's chroot" \
		sh -c "tlspolicyd -n | grep -qx 'socketmap = unix:$sock'"
}

# The installed daemon on its defaults (no network here: DNS fails,
# unknown domains get dane).
run_daemon() { # WHEN
	local log pid
	log=$(mktemp)
	/usr/sbin/tlspolicyd -f >"$log" 2>&1 &
	pid=$!
	for _ in $(seq 1 100); do
		grep -q 'ready:' "$log" && break
		sleep 0.1
	done
	ok "$1: the installed daemon starts" grep -q "ready: socketmap unix:$sock" "$log"
	ok "$1: it runs as tlspolicyd" \
		test "$(ps -o user= -p "$pid")" = tlspolicyd
	ok "$1: it keeps its user's group adm (for the mail log)" sh -c \
		"grep '^Groups:' /proc/$pid/status | tr -s ' \t' '\n' |
			grep -qx $(getent group adm | cut -d: -f3)"
	ok "$1: its socket belongs to group postfix" \
		test "$(stat -c %G "$sock")" = postfix
	ok "$1: tlspolicy query answers" \
		sh -c 'tlspolicy query example.com | grep -q "OK dane"'
	ok "$1: postmap -q answers" sh -c "postmap -q example.com \
		socketmap:unix:$sock:postfix | grep -qx dane"
	kill "$pid"
	wait "$pid"
	sed 's/^/# /' "$log"
	rm -f "$log"
}

check_installed "install"
run_daemon "install"
echo "# local change" >>/etc/tlspolicyd/tlspolicyd.conf
ok "install again over itself" dpkg -i "$deb"
check_installed "reinstall"
ok "reinstall: the changed conffile is kept" \
	grep -qx '# local change' /etc/tlspolicyd/tlspolicyd.conf
run_daemon "reinstall"
ok "purge" dpkg --purge tlspolicyd
ok "purge: not installed" sh -c '! dpkg-query -W -f "\${db:Status-Status}" tlspolicyd | grep -qx installed'
ok "purge: the binaries are gone" test ! -e /usr/sbin/tlspolicyd -a ! -e /usr/bin/tlspolicy
ok "purge: the config is gone" test ! -e /etc/tlspolicyd
ok "purge: the store is gone" test ! -e /var/lib/tlspolicyd
ok "purge: the socket is gone" test ! -e "$sock"
ok "purge: the unit is no longer enabled" test ! -L "$wants" -a ! -e "$unit"
ok "purge: Postfix's private directory stays" test -d /var/spool/postfix/private
echo "1..$n"
[ "$bad" -eq 0 ]
