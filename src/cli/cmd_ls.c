/*
 * veneer ls IMAGE [PATH]: lists a directory of an image (or a directory
 * source) like "ls -l", without mounting anything.  It uses only the
 * layer-source interface; it does not recurse and has no options beyond
 * --help.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <time.h>

#include "cli/cli.h"
#include "layer/source.h"

static void mode_string(mode_t m, char out[11])
{
	const char *types = "?pc?d?b?-?l?s???";
	out[0] = types[(m & S_IFMT) >> 12];
	const char *rwx = "rwxrwxrwx";
	for (int i = 0; i < 9; i++)
		out[1 + i] = (m & (0400 >> i)) ? rwx[i] : '-';
	if (m & S_ISUID)
		out[3] = (m & S_IXUSR) ? 's' : 'S';
	if (m & S_ISGID)
		out[6] = (m & S_IXGRP) ? 's' : 'S';
	if (m & S_ISVTX)
		out[9] = (m & S_IXOTH) ? 't' : 'T';
	out[10] = '\0';
}

static void print_line(struct source *s, uint64_t ref, const char *rel, const char *name,
		       const struct stat *st)
{
	char mode[11], when[32], target[PATH_MAX];
	struct tm tm;
	time_t t = st->st_mtim.tv_sec;
	mode_string(st->st_mode, mode);
	if (!localtime_r(&t, &tm) || !strftime(when, sizeof(when), "%Y-%m-%d %H:%M", &tm))
		snprintf(when, sizeof(when), "?");
	printf("%s %3lu %5lu %5lu ", mode, (unsigned long)st->st_nlink, (unsigned long)st->st_uid,
	       (unsigned long)st->st_gid);
	if (S_ISCHR(st->st_mode) || S_ISBLK(st->st_mode))
		printf("%4u, %4u", major(st->st_rdev), minor(st->st_rdev));
	else
		printf("%10lld", (long long)st->st_size);
	printf(" %s %s", when, name);
	if (S_ISLNK(st->st_mode)) {
		ssize_t n = source_readlink(s, ref, rel, target, sizeof(target));
		printf(" -> %s", n >= 0 ? target : "?");
	}
	putchar('\n');
}

struct listing {
	char **names;
	size_t n, cap;
};

static int collect(void *arg, const char *name, uint64_t ino, mode_t type)
{
	struct listing *l = arg;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		char **names = realloc(l->names, cap * sizeof(*names));
		if (!names)
			return -ENOMEM;
		l->names = names;
		l->cap = cap;
	}
	l->names[l->n] = strdup(name);
	if (!l->names[l->n])
		return -ENOMEM;
	l->n++;
	return 0;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int list_dir(struct source *s, uint64_t ref, const char *rel, const char *image)
{
	struct listing l = { NULL, 0, 0 };
	int r = source_readdir(s, ref, rel, collect, &l);
	if (r == 0) {
		qsort(l.names, l.n, sizeof(*l.names), cmp_names);
		for (size_t i = 0; i < l.n; i++) {
			char path[PATH_MAX];
			struct stat st;
			uint64_t child;
			snprintf(path, sizeof(path), "%s%s%s", rel, rel[0] ? "/" : "", l.names[i]);
			int e = source_lookup(s, ref, rel, l.names[i], &child, &st);
			if (e < 0) {
				fprintf(stderr, "veneer: ls: %s: /%s: %s\n", image, path, strerror(-e));
				r = e;
				continue;
			}
			print_line(s, child, path, l.names[i], &st);
		}
	} else {
		fprintf(stderr, "veneer: ls: %s: /%s: %s\n", image, rel, strerror(-r));
	}
	for (size_t i = 0; i < l.n; i++)
		free(l.names[i]);
	free(l.names);
	return r < 0 ? 1 : 0;
}

/* Follows PATH from the root; rel receives the path without leading '/'. */
static int resolve(struct source *s, const char *path, uint64_t *ret_ref, char *rel,
		   size_t rellen, struct stat *st)
{
	uint64_t ref = 0;
	int r = source_root(s, &ref, st);
	rel[0] = '\0';
	char *copy = strdup(path);
	if (!copy)
		return -ENOMEM;
	for (char *save, *c = strtok_r(copy, "/", &save); c && r == 0;
	     c = strtok_r(NULL, "/", &save)) {
		if (!strcmp(c, "."))
			continue;
		if (!S_ISDIR(st->st_mode)) {
			r = -ENOTDIR;
			break;
		}
		uint64_t child;
		r = source_lookup(s, ref, rel, c, &child, st);
		if (r == 0) {
			size_t len = strlen(rel);
			int n = snprintf(rel + len, rellen - len, "%s%s", len ? "/" : "", c);
			if (n < 0 || (size_t)n >= rellen - len)
				r = -ENAMETOOLONG;
			ref = child;
		}
	}
	free(copy);
	if (r == 0)
		*ret_ref = ref;
	return r;
}

int cmd_ls(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (c == 'h') {
			printf("usage: veneer ls IMAGE [PATH]\n"
			       "\n"
			       "Lists directory PATH (default /) of a squashfs image or a directory\n"
			       "like 'ls -l', or the line of PATH itself when it is not a directory.\n");
			return 0;
		}
		fprintf(stderr, "veneer: ls: see 'veneer ls --help'\n");
		return 2;
	}
	if (optind >= argc || argc - optind > 2) {
		fprintf(stderr, "veneer: ls takes IMAGE and at most one PATH (see 'veneer ls --help')\n");
		return 2;
	}
	const char *image = argv[optind];
	const char *path = optind + 1 < argc ? argv[optind + 1] : "/";
	char err[256], rel[PATH_MAX];
	struct source *s;
	struct stat st;
	uint64_t ref = 0;
	if (source_open(AT_FDCWD, image, image, &s, err, sizeof(err)) < 0) {
		fprintf(stderr, "veneer: ls: %s: %s\n", image, err);
		return 1;
	}
	int status = 0;
	int r = resolve(s, path, &ref, rel, sizeof(rel), &st);
	if (r < 0) {
		fprintf(stderr, "veneer: ls: %s: %s: %s\n", image, path, strerror(-r));
		status = 1;
	} else if (S_ISDIR(st.st_mode)) {
		status = list_dir(s, ref, rel, image);
	} else {
		print_line(s, ref, rel, path, &st);
	}
	source_put(s);
	return status;
}
