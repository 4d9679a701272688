/* replay.c — a main() for a fuzz harness without libFuzzer: feeds every file
 * named on the command line (every regular file in a named directory) to
 * LLVMFuzzerTestOneInput once, so any compiler runs the corpora in make check. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_common.h"

/* Inputs larger than this are not corpus files. */
#define REPLAY_MAX_BYTES (1024 * 1024)

/* Reads path whole. [out] *data malloc'd (never NULL on success). */
static bool read_file(const char *path, uint8_t **data, size_t *len)
{
	bool ok = false;
	uint8_t *buf = NULL;
	FILE *f = fopen(path, "rb");
	if (!f)
		goto end;
	buf = malloc(REPLAY_MAX_BYTES + 1);
	if (!buf)
		goto end;
	size_t n = fread(buf, 1, REPLAY_MAX_BYTES + 1, f);
	if (ferror(f) || n > REPLAY_MAX_BYTES)
		goto end;
	/* An exact-size copy, so that ASan sees a read past the input. */
	*data = malloc(n ? n : 1);
	if (!*data)
		goto end;
	memcpy(*data, buf, n);
	*len = n;
	ok = true;
end:
	free(buf);
	if (f)
		fclose(f);
	return ok;
}

static bool replay_file(const char *path, unsigned *count)
{
	uint8_t *data = NULL;
	size_t len = 0;
	errno = 0;
	if (!read_file(path, &data, &len)) {
		fprintf(stderr, "replay: cannot read %s: %s\n", path, errno ? strerror(errno) : "too large");
		return false;
	}
	LLVMFuzzerTestOneInput(data, len);
	free(data);
	(*count)++;
	return true;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every regular file directly in dir, in name order (dot files skipped). */
static bool replay_dir(const char *dir, unsigned *count)
{
	bool ok = true;
	char **names = NULL;
	size_t n = 0;
	DIR *d = opendir(dir);
	if (!d) {
		fprintf(stderr, "replay: cannot open %s: %s\n", dir, strerror(errno));
		return false;
	}
	for (struct dirent *e; (e = readdir(d));) {
		if (e->d_name[0] == '.')
			continue;
		char **grown = realloc(names, (n + 1) * sizeof(*names));
		if (!grown || asprintf(&grown[n], "%s/%s", dir, e->d_name) < 0) {
			names = grown ? grown : names;
			ok = false;
			break;
		}
		names = grown;
		n++;
	}
	closedir(d);
	qsort(names, n, sizeof(*names), name_cmp);
	for (size_t i = 0; i < n; i++) {
		struct stat st;
		if (ok && stat(names[i], &st) == 0 && S_ISREG(st.st_mode))
			ok = replay_file(names[i], count);
		free(names[i]);
	}
	free(names);
	return ok;
}

int main(int argc, char **argv)
{
	unsigned count = 0;
	bool ok = true;
	if (argc < 2) {
		fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
		return 2;
	}
	for (int i = 1; i < argc && ok; i++) {
		struct stat st;
		if (stat(argv[i], &st) != 0) {
			fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
			ok = false;
		} else if (S_ISDIR(st.st_mode)) {
			ok = replay_dir(argv[i], &count);
		} else {
			ok = replay_file(argv[i], &count);
		}
	}
	printf("%s: %u inputs replayed\n", argv[0], count);
	return ok ? 0 : 1;
}
