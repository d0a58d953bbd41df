/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Unix-domain listening sockets done one careful way for every listener:
 * a socket left by an earlier run is replaced, one another daemon still
 * answers on is never stolen, and permissions are set before anyone
 * connects.
 */
#include "config.h"

#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/sock.h"

int
sock_mkdirs(const char *dir, mode_t last_mode)
{
	char buf[4096];
	char *p;

	if (strlen(dir) >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(buf, dir);
	for (p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) != 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(buf, last_mode) != 0 && errno != EEXIST)
		return -1;
	return 0;
}

/* mkdir -p for the directory PATH lives in. */
static int
make_parent(const char *path)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char *slash;

	if (strlen(path) >= sizeof(dir)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(dir, path);
	if ((slash = strrchr(dir, '/')) == NULL || slash == dir)
		return 0;
	*slash = '\0';
	return sock_mkdirs(dir, 0755);
}

/*
 * Is something answering on the socket at SUN? A connect that succeeds
 * means a live peer (stream: a listener; datagram: a bound receiver).
 */
static int
socket_alive(const struct sockaddr_un *sun, int type)
{
	int probe = socket(AF_UNIX, type | SOCK_CLOEXEC, 0), alive;

	if (probe < 0)
		return 0;
	alive = connect(probe, (const struct sockaddr *)sun, sizeof(*sun)) == 0;
	close(probe);
	return alive;
}

int
sock_unix_bind(const char *path, int type, unsigned mode, const char *group,
	       char *err, size_t errsz)
{
	struct sockaddr_un sun;
	struct stat sb;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(err, errsz, "%s: socket path too long", path);
		return -1;
	}
	strcpy(sun.sun_path, path);
	if (make_parent(path) != 0) {
		snprintf(err, errsz, "%s: cannot create directory: %s", path,
			 strerror(errno));
		return -1;
	}
	if (lstat(path, &sb) == 0) {
		if (!S_ISSOCK(sb.st_mode)) {
			snprintf(err, errsz, "%s: exists and is not a socket",
				 path);
			return -1;
		}
		if (socket_alive(&sun, type)) {
			snprintf(err, errsz,
				 "%s: another process is listening there",
				 path);
			return -1;
		}
		if (unlink(path) != 0) {
			snprintf(err, errsz,
				 "%s: cannot remove stale socket: %s", path,
				 strerror(errno));
			return -1;
		}
	}
	if ((fd = socket(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) <
	    0) {
		snprintf(err, errsz, "socket: %s", strerror(errno));
		return -1;
	}
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0 ||
	    (type == SOCK_STREAM && listen(fd, 1024) != 0)) {
		snprintf(err, errsz, "%s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	if (group != NULL && *group != '\0') {
		struct group *gr = getgrnam(group);

		if (gr == NULL) {
			snprintf(err, errsz, "%s: unknown group '%s'", path,
				 group);
			goto fail;
		}
		if (chown(path, (uid_t)-1, gr->gr_gid) != 0) {
			snprintf(err, errsz, "%s: chown: %s", path,
				 strerror(errno));
			goto fail;
		}
	}
	if (chmod(path, (mode_t)mode) != 0) {
		snprintf(err, errsz, "%s: chmod: %s", path, strerror(errno));
		goto fail;
	}
	return fd;
fail:
	unlink(path);
	close(fd);
	return -1;
}
