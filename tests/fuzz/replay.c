/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Replays a fuzz target's committed seed corpus in `make check` (STYLE
 * rule 11): every file under $top_srcdir/tests/fuzz/corpus/FUZZ_NAME is fed
 * to LLVMFuzzerTestOneInput once, one TAP test point per file. A crash or a
 * sanitizer report fails the run. Extra arguments name more files or
 * folders to replay (a crash reproducer, say).
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int n;

static int
replay_file(const char *path)
{
	FILE *fp;
	struct stat st;
	uint8_t *buf;
	size_t got;

	if ((fp = fopen(path, "rb")) == NULL || fstat(fileno(fp), &st) != 0) {
		printf("not ok %d - %s: %s\n", ++n, path, strerror(errno));
		if (fp)
			fclose(fp);
		return 1;
	}
	/* One extra byte so an empty file still has a valid pointer. */
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
		fclose(fp);
		printf("not ok %d - %s: out of memory\n", ++n, path);
		return 1;
	}
	got = fread(buf, 1, (size_t)st.st_size, fp);
	fclose(fp);
	LLVMFuzzerTestOneInput(buf, got);
	free(buf);
	printf("ok %d - %s\n", ++n, path);
	return 0;
}

static int
cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int
replay_dir(const char *dir)
{
	DIR *d;
	struct dirent *de;
	char **names = NULL, path[4096];
	size_t count = 0, i;
	int fail = 0;

	if ((d = opendir(dir)) == NULL) {
		printf("not ok %d - corpus %s: %s\n", ++n, dir,
		       strerror(errno));
		return 1;
	}
	while ((de = readdir(d)) != NULL) {
		char **tmp;

		if (de->d_name[0] == '.')
			continue;
		if ((tmp = realloc(names, (count + 1) * sizeof(*names))) ==
		    NULL)
			break;
		names = tmp;
		if ((names[count] = strdup(de->d_name)) == NULL)
			break;
		count++;
	}
	closedir(d);
	if (count == 0) {
		printf("not ok %d - corpus %s is empty\n", ++n, dir);
		free(names);
		return 1;
	}
	qsort(names, count, sizeof(*names), cmp);
	for (i = 0; i < count; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		fail |= replay_file(path);
		free(names[i]);
	}
	free(names);
	return fail;
}

static int
replay(const char *path)
{
	struct stat st;

	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		return replay_dir(path);
	return replay_file(path);
}

int
main(int argc, char **argv)
{
	const char *top = getenv("top_srcdir");
	char dir[4096];
	int i, fail = 0;

	snprintf(dir, sizeof(dir), "%s/tests/fuzz/corpus/%s", top ? top : ".",
		 FUZZ_NAME);
	fail |= replay(dir);
	for (i = 1; i < argc; i++)
		fail |= replay(argv[i]);
	printf("1..%d\n", n);
	return fail;
}
