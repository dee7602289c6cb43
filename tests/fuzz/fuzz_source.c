/*
 * libFuzzer target for the layer sources: the input is a squashfs image.
 * It is put in a memfd, opened with source_open (as the daemon does) and,
 * when that succeeds, the whole tree is walked through the source API:
 * readdir, lookup of every name (and of names that are not there),
 * getattr, readlink, listxattr/getxattr and reads of every regular file,
 * whole and at a few offsets.  The work per input is bounded (entries,
 * depth, bytes read), so a hostile image cannot hang the fuzzer through
 * the walk itself; anything slower than -timeout is a finding.
 *
 * It also checks that libsquashfuse never follows an offset out of the
 * image: a read that starts past the input's end (counted by the squashfs
 * source's sqfs_pread) aborts with a report (libFuzzer saves the input).
 *
 * It does not test the directory source (source_dir.c) or concurrency.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "layer/source.h"

#define MAX_ENTRIES 4096		/* names visited per input */
#define MAX_DEPTH 24
#define MAX_BYTES (4u << 20)		/* bytes read from files per input */
#define FILE_FULL_READ (256u << 10)	/* files up to this are read whole */
#define MAX_LIST 512			/* entries kept from one directory */

struct walk {
	struct source *s;
	unsigned entries;
	uint64_t bytes;
	char buf[65536];
};

/* ---- reads of the image ---- */

/*
 * libsquashfuse reads the image only through its exported sqfs_pread,
 * which the squashfs source defines over it and counts reads that start
 * past the image's end: an offset the library followed without a check.
 * The kernel would merely return nothing, so the sanitizers cannot see
 * it and this is the check.  A read that starts inside or exactly at the
 * end and runs past it is allowed (a block cut by truncation, or the
 * metadata block after the last one, whose position the library computes
 * from the block before): the library refuses the short read, and the
 * image's end is all that tells it the block is cut.
 */
static void check_reads_inside(uint64_t before, size_t size)
{
	if (source_squashfs_reads_past_end() != before) {
		fprintf(stderr, "fuzz_source: libsquashfuse read past the image's end "
			"(%zu bytes)\n", size);
		abort();
	}
}

/* ---- the walk ---- */

struct entry {
	char name[NAME_MAX + 1];
	uint64_t ino;
	mode_t type;
};

struct list {
	struct entry *e;
	unsigned n;
	struct walk *w;
};

static int collect(void *arg, const char *name, uint64_t ino, mode_t type)
{
	struct list *l = arg;
	size_t len = strlen(name);
	/* the source promises these never reach a caller */
	if (len == 0 || len > NAME_MAX || strchr(name, '/') || !strcmp(name, ".") ||
	    !strcmp(name, ".."))
		abort();
	if (l->n >= MAX_LIST || l->w->entries >= MAX_ENTRIES)
		return -ECANCELED;
	l->w->entries++;
	memcpy(l->e[l->n].name, name, len + 1);
	l->e[l->n].ino = ino;
	l->e[l->n].type = type;
	l->n++;
	return 0;
}

static void read_at(struct walk *w, uint64_t ref, const char *rel, off_t off, size_t size)
{
	if (size > sizeof(w->buf))
		size = sizeof(w->buf);
	if (w->bytes >= MAX_BYTES)
		return;
	ssize_t n = source_read(w->s, ref, rel, w->buf, size, off);
	if (n > (ssize_t)size)
		abort();
	w->bytes += size;
}

static void read_file(struct walk *w, uint64_t ref, const char *rel, const struct stat *st)
{
	uint64_t size = (uint64_t)st->st_size;
	/* whole, for small files: every block and the fragment */
	for (uint64_t off = 0; off < size && off < FILE_FULL_READ && w->bytes < MAX_BYTES;
	     off += sizeof(w->buf)) {
		ssize_t n = source_read(w->s, ref, rel, w->buf, sizeof(w->buf), (off_t)off);
		w->bytes += sizeof(w->buf);
		if (n <= 0)
			break;
	}
	/* a few offsets: unaligned, around a block end, the middle, the tail, past the end */
	uint64_t bs = st->st_blksize > 0 ? (uint64_t)st->st_blksize : 131072;
	const uint64_t offs[] = { 1, bs - 3, bs, size / 2, size > 4097 ? size - 4097 : 0,
				  size > 0 ? size - 1 : 0, size, size + 10 };
	for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++)
		if (offs[i] <= (uint64_t)INT64_MAX)
			read_at(w, ref, rel, (off_t)offs[i], 5000);
}

static void xattrs(struct walk *w, uint64_t ref, const char *rel)
{
	char list[4096], small[3];
	(void)source_listxattr(w->s, ref, rel, NULL, 0);
	(void)source_listxattr(w->s, ref, rel, small, sizeof(small));
	ssize_t n = source_listxattr(w->s, ref, rel, list, sizeof(list));
	if (n > (ssize_t)sizeof(list))
		abort();
	(void)source_getxattr(w->s, ref, rel, "user.none", NULL, 0);
	for (ssize_t off = 0; n > 0 && off < n; off += (ssize_t)strlen(list + off) + 1) {
		if (list[n - 1] != '\0')
			abort();	/* the list must be NUL-separated */
		(void)source_getxattr(w->s, ref, rel, list + off, NULL, 0);
		(void)source_getxattr(w->s, ref, rel, list + off, small, sizeof(small));
		ssize_t v = source_getxattr(w->s, ref, rel, list + off, w->buf, sizeof(w->buf));
		if (v > (ssize_t)sizeof(w->buf))
			abort();
	}
}

static void visit(struct walk *w, uint64_t ref, const char *rel, const struct stat *st)
{
	struct stat again;
	(void)source_getattr(w->s, ref, rel, &again);
	xattrs(w, ref, rel);
	if (S_ISLNK(st->st_mode)) {
		char target[PATH_MAX + 1], tiny[2];
		ssize_t n = source_readlink(w->s, ref, rel, target, sizeof(target));
		if (n >= (ssize_t)sizeof(target) || (n >= 0 && target[n] != '\0'))
			abort();
		(void)source_readlink(w->s, ref, rel, tiny, sizeof(tiny));
	} else if (S_ISREG(st->st_mode)) {
		read_file(w, ref, rel, st);
	} else {
		/* wrong types must be refused, not followed */
		char b[16];
		(void)source_readlink(w->s, ref, rel, b, sizeof(b));
		(void)source_read(w->s, ref, rel, b, sizeof(b), 0);
	}
}

static void walk_dir(struct walk *w, uint64_t ref, const char *rel, unsigned depth)
{
	struct list l = { .e = malloc(MAX_LIST * sizeof(struct entry)), .w = w };
	if (!l.e)
		return;
	(void)source_readdir(w->s, ref, rel, collect, &l);
	static const char *const absent[] = { "absent", "a", "zzzzzzzzzzzzzzzz" };
	uint64_t child;
	struct stat st;
	for (size_t i = 0; i < sizeof(absent) / sizeof(absent[0]); i++)
		(void)source_lookup(w->s, ref, rel, absent[i], &child, &st);
	for (unsigned i = 0; i < l.n; i++) {
		char path[PATH_MAX];
		int n = snprintf(path, sizeof(path), "%s%s%s", rel, *rel ? "/" : "", l.e[i].name);
		if (n < 0 || (size_t)n >= sizeof(path))
			continue;
		if (source_lookup(w->s, ref, rel, l.e[i].name, &child, &st) < 0)
			continue;
		visit(w, child, path, &st);
		if (S_ISDIR(st.st_mode) && depth < MAX_DEPTH && w->entries < MAX_ENTRIES)
			walk_dir(w, child, path, depth + 1);
	}
	free(l.e);
}

/* ---- the target ---- */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int fd = memfd_create("fuzz-image", MFD_CLOEXEC);
	if (fd < 0)
		abort();
	for (size_t done = 0; done < size;) {
		ssize_t n = write(fd, data + done, size - done);
		if (n <= 0)
			abort();
		done += (size_t)n;
	}
	uint64_t past_end = source_squashfs_reads_past_end();

	char path[64], err[256] = "";
	struct source *s = NULL;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	int r = source_open(AT_FDCWD, path, "fuzz.sqfs", &s, err, sizeof(err));
	/* replaying tests/fuzz/crashers/source: each of those must be refused at open */
	if (r == 0 && getenv("VENEER_FUZZ_EXPECT_REFUSED")) {
		fprintf(stderr, "fuzz_source: a must-fail image was opened\n");
		abort();
	}
	if (r == 0) {
		struct walk *w = calloc(1, sizeof(*w));
		uint64_t root;
		struct stat st;
		struct source_stats stats;
		if (!w)
			abort();
		w->s = s;
		source_get_stats(s, &stats);
		(void)source_key(s);
		if (source_root(s, &root, &st) == 0) {
			visit(w, root, "", &st);
			walk_dir(w, root, "", 0);
		}
		free(w);
		source_put(s);
	} else if (s != NULL || memchr(err, '\0', sizeof(err)) == NULL) {
		abort();
	}
	check_reads_inside(past_end, size);
	close(fd);
	return 0;
}
