/* SPDX-License-Identifier: BSD-2-Clause */
/* Reading the local Postfix's settings with postconf(1). */
#include "config.h"

#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "util/postconf.h"

int
pfx_dns_support_level(char *buf, size_t bufsz)
{
	static const char *const paths[] = {"/usr/sbin/postconf",
					    "/usr/bin/postconf"};
	const char *postconf = NULL;
	int fds[2], status;
	size_t i, len = 0;
	pid_t pid;
	ssize_t n;

	for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
		if (access(paths[i], X_OK) == 0)
			postconf = paths[i];
	if (postconf == NULL || bufsz == 0 || pipe(fds) != 0)
		return -1;
	if ((pid = fork()) < 0) {
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		if (null >= 0)
			dup2(null, 2);
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		execl(postconf, "postconf", "-h", "smtp_dns_support_level",
		      (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	while (len + 1 < bufsz &&
	       (n = read(fds[0], buf + len, bufsz - 1 - len)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		len += (size_t)n;
	}
	close(fds[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	buf[len] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}
