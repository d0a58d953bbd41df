/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A small file system that fills up, for the full-disk tests of the
 * stores: a tmpfs of a given size mounted on a directory inside a private
 * mount namespace (so it disappears with the test process even if the
 * test dies), filled with a filler file and emptied again. Needs root;
 * the test suite runs as root (README), so a failure to mount is a test
 * failure, not a skip. Define _GNU_SOURCE before any include.
 */
#ifndef TESTS_UNIT_FULLFS_H
#define TESTS_UNIT_FULLFS_H

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

/* Mount a tmpfs of KB kilobytes on DIR (created). 0 or -1 (printed). */
static int
fullfs_mount(const char *dir, long kb)
{
	char opts[64];

	if (unshare(CLONE_NEWNS) != 0 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
		printf("# private mount namespace: %s\n", strerror(errno));
		return -1;
	}
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		printf("# mkdir %s: %s\n", dir, strerror(errno));
		return -1;
	}
	snprintf(opts, sizeof(opts), "size=%ldk", kb);
	if (mount("tmpfs", dir, "tmpfs", 0, opts) != 0) {
		printf("# mount tmpfs on %s: %s\n", dir, strerror(errno));
		return -1;
	}
	return 0;
}

/* Fill DIR's file system with DIR/filler until it says ENOSPC. Returns
 * the bytes written, or -1. */
static long
fullfs_fill(const char *dir)
{
	char path[1024], buf[4096];
	long total = 0;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/filler", dir);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600)) < 0)
		return -1;
	memset(buf, 'F', sizeof(buf));
	while ((n = write(fd, buf, sizeof(buf))) > 0)
		total += n;
	/* The last page may have been written in part. */
	while ((n = write(fd, buf, 1)) > 0)
		total += n;
	close(fd);
	return errno == ENOSPC ? total : -1;
}

/* Give the space back. */
static void
fullfs_empty(const char *dir)
{
	char path[1024];

	snprintf(path, sizeof(path), "%s/filler", dir);
	unlink(path);
}

static void
fullfs_umount(const char *dir)
{
	if (umount2(dir, MNT_DETACH) != 0)
		printf("# umount %s: %s\n", dir, strerror(errno));
	rmdir(dir);
}

#endif /* TESTS_UNIT_FULLFS_H */
