/*
 * Unit test of the layer sources: squashfs images built with mksquashfs
 * at test time (every compressor both mksquashfs and libsquashfuse
 * know), damaged images derived from them, and directory sources.
 * Without mksquashfs the test fails: images are the point of it.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "layer/source.h"

#include "../tests/unit.h"

#define BIG_SIZE 300000u
#define GIB (1024ull * 1024 * 1024)

static char tmp[1024];
static char mksquashfs[PATH_MAX];

static bool find_mksquashfs(void)
{
	const char *path = getenv("PATH");
	char dirs[8192];
	snprintf(dirs, sizeof(dirs), "%s:/usr/sbin:/sbin", path ? path : "/usr/bin:/bin");
	for (char *save, *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		snprintf(mksquashfs, sizeof(mksquashfs), "%s/mksquashfs", d);
		if (access(mksquashfs, X_OK) == 0)
			return true;
	}
	return false;
}

static unsigned char big_byte(size_t i)
{
	return (unsigned char)((i * 7 + i / 1000) % 251);
}

static void make_tree(void)
{
	char p[PATH_MAX];
	sh("mkdir -p %s/tree/dir && printf 'hello\\n' > %s/tree/a.txt && "
	   "printf 'bee\\n' > %s/tree/dir/b.txt && ln -s a.txt %s/tree/link && "
	   "printf 'same\\n' > %s/tree/hl1 && ln %s/tree/hl1 %s/tree/hl2 && mkfifo %s/tree/fifo",
	   tmp, tmp, tmp, tmp, tmp, tmp, tmp, tmp);
	/* Called directly: setfattr would need a package the build does not. */
	snprintf(p, sizeof(p), "%s/tree/a.txt", tmp);
	CHECK(setxattr(p, "user.color", "blue", 4, 0) == 0);
	snprintf(p, sizeof(p), "%s/tree/big.bin", tmp);
	FILE *f = fopen(p, "w");
	CHECK(f != NULL);
	for (size_t i = 0; i < BIG_SIZE; i++)
		fputc(big_byte(i), f);
	CHECK(fclose(f) == 0);
}

static void build(const char *comp, const char *img, const char *extra)
{
	sh("'%s' %s/tree %s/%s -noappend -no-progress -comp %s %s >/dev/null", mksquashfs, tmp,
	   tmp, img, comp, extra);
}

static struct source *open_ok(const char *img)
{
	char path[PATH_MAX], err[256] = "";
	struct source *s = NULL;
	snprintf(path, sizeof(path), "%s/%s", tmp, img);
	int r = source_open(AT_FDCWD, path, path, &s, err, sizeof(err));
	if (r < 0)
		printf("# source_open %s: %s\n", path, err);
	CHECK(r == 0 && s != NULL);
	return s;
}

/* Opens a file expected to fail; checks the reason starts with want. */
static void open_fails(const char *img, const char *want)
{
	char path[PATH_MAX], err[256] = "";
	struct source *s = NULL;
	snprintf(path, sizeof(path), "%s/%s", tmp, img);
	int r = source_open(AT_FDCWD, path, path, &s, err, sizeof(err));
	printf("# %s: %s\n", img, err);
	CHECK(r < 0 && s == NULL);
	CHECK(strncmp(err, want, strlen(want)) == 0);
}

struct names {
	char list[64][NAME_MAX + 1];
	int n;
};

static int collect(void *arg, const char *name, uint64_t ino, mode_t type)
{
	struct names *nm = arg;
	if (nm->n < 64)
		snprintf(nm->list[nm->n++], NAME_MAX + 1, "%s", name);
	return 0;
}

static bool has(const struct names *nm, const char *name)
{
	for (int i = 0; i < nm->n; i++)
		if (!strcmp(nm->list[i], name))
			return true;
	return false;
}

static uint64_t lookup(struct source *s, uint64_t dir, const char *dir_rel, const char *name,
		       struct stat *st)
{
	uint64_t ref = 0;
	CHECK(source_lookup(s, dir, dir_rel, name, &ref, st) == 0);
	return ref;
}

static bool big_ok(struct source *s, uint64_t ref, const char *rel, size_t chunk)
{
	static __thread unsigned char buf[70000];
	for (size_t off = 0; off < BIG_SIZE; off += chunk) {
		size_t want = BIG_SIZE - off < chunk ? BIG_SIZE - off : chunk;
		if (source_read(s, ref, rel, buf, chunk, (off_t)off) != (ssize_t)want)
			return false;
		for (size_t i = 0; i < want; i++)
			if (buf[i] != big_byte(off + i))
				return false;
	}
	return true;
}

static void check_files(struct source *s, uint64_t root)
{
	struct stat st;
	char buf[64];
	uint64_t a = lookup(s, root, "", "a.txt", &st);
	CHECK(S_ISREG(st.st_mode) && st.st_size == 6);
	CHECK(source_read(s, a, "a.txt", buf, sizeof(buf), 0) == 6 && !memcmp(buf, "hello\n", 6));
	CHECK(source_read(s, a, "a.txt", buf, sizeof(buf), 2) == 4 && !memcmp(buf, "llo\n", 4));
	CHECK(source_read(s, a, "a.txt", buf, sizeof(buf), 6) == 0);
	CHECK(source_getattr(s, a, "a.txt", &st) == 0 && st.st_size == 6);
	uint64_t big = lookup(s, root, "", "big.bin", &st);
	CHECK(st.st_size == BIG_SIZE);
	CHECK(big_ok(s, big, "big.bin", 65536));
	CHECK(big_ok(s, big, "big.bin", 4093));
	uint64_t dir = lookup(s, root, "", "dir", &st);
	CHECK(S_ISDIR(st.st_mode));
	uint64_t b = lookup(s, dir, "dir", "b.txt", &st);
	CHECK(source_read(s, b, "dir/b.txt", buf, sizeof(buf), 0) == 4 && !memcmp(buf, "bee\n", 4));
	uint64_t ref;
	CHECK(source_lookup(s, root, "", "missing", &ref, &st) == -ENOENT);
	CHECK(source_lookup(s, a, "a.txt", "x", &ref, &st) == -ENOTDIR);
	CHECK(source_lookup(s, root, "", "..", &ref, &st) == -EINVAL);
	CHECK(source_read(s, dir, "dir", buf, sizeof(buf), 0) == -EISDIR);
}

static void check_links(struct source *s, uint64_t root)
{
	struct stat st, st2;
	char buf[64];
	uint64_t l = lookup(s, root, "", "link", &st);
	CHECK(S_ISLNK(st.st_mode) && st.st_size == 5);
	CHECK(source_readlink(s, l, "link", buf, sizeof(buf)) == 5 && !strcmp(buf, "a.txt"));
	CHECK(source_readlink(s, l, "link", buf, 5) == -ERANGE);
	lookup(s, root, "", "hl1", &st);
	lookup(s, root, "", "hl2", &st2);
	CHECK(st.st_ino == st2.st_ino && st.st_nlink == 2);
	lookup(s, root, "", "fifo", &st);
	CHECK(S_ISFIFO(st.st_mode));
}

static void check_xattrs(struct source *s, uint64_t root)
{
	struct stat st;
	char buf[256];
	uint64_t a = lookup(s, root, "", "a.txt", &st);
	CHECK(source_getxattr(s, a, "a.txt", "user.color", NULL, 0) == 4);
	CHECK(source_getxattr(s, a, "a.txt", "user.color", buf, sizeof(buf)) == 4 &&
	      !memcmp(buf, "blue", 4));
	CHECK(source_getxattr(s, a, "a.txt", "user.color", buf, 2) == -ERANGE);
	CHECK(source_getxattr(s, a, "a.txt", "user.none", buf, sizeof(buf)) == -ENODATA);
	ssize_t n = source_listxattr(s, a, "a.txt", NULL, 0);
	CHECK(n >= 11);
	CHECK(source_listxattr(s, a, "a.txt", buf, sizeof(buf)) == n);
	bool found = false;
	for (ssize_t i = 0; i < n; i += (ssize_t)strlen(buf + i) + 1)
		found |= !strcmp(buf + i, "user.color");
	CHECK(found);
	CHECK(source_listxattr(s, a, "a.txt", buf, 3) == -ERANGE);
	uint64_t b = lookup(s, root, "", "hl1", &st);
	CHECK(source_listxattr(s, b, "hl1", buf, sizeof(buf)) == 0);
}

static void check_source(struct source *s)
{
	struct stat st;
	uint64_t root;
	struct names nm = { .n = 0 };
	CHECK(source_root(s, &root, &st) == 0 && S_ISDIR(st.st_mode));
	CHECK(source_readdir(s, root, "", collect, &nm) == 0);
	CHECK(has(&nm, "a.txt") && has(&nm, "big.bin") && has(&nm, "dir") && has(&nm, "link") &&
	      has(&nm, "hl1") && has(&nm, "hl2") && has(&nm, "fifo") && !has(&nm, "."));
	check_files(s, root);
	check_links(s, root);
	check_xattrs(s, root);
}

static void check_image(const char *comp)
{
	char img[64];
	snprintf(img, sizeof(img), "%s.sqfs", comp);
	build(comp, img, "");
	struct source *s = open_ok(img);
	printf("# %s image\n", comp);
	CHECK(source_kind(s) == SOURCE_SQUASHFS && !strcmp(source_kind_name(s), "squashfs"));
	check_source(s);
	struct source_stats stats;
	source_get_stats(s, &stats);
	CHECK(stats.entries >= 8 && stats.bytes > 0 && stats.bad_names == 0);
	struct source *again = open_ok(img);
	CHECK(source_key(again) == source_key(s));
	source_put(again);
	source_get(s);
	source_put(s);
	source_put(s);
}

/* zstd image with a device node (pseudo definition) and a file with a 5 GiB hole. */
static void check_special(void)
{
	struct stat st;
	uint64_t root;
	unsigned char buf[8192];
	sh("truncate -s %llu %s/tree/sparse && printf TAIL >> %s/tree/sparse", 5 * GIB, tmp, tmp);
	build("zstd", "special.sqfs", "-p 'dev c 644 0 0 1 3'");
	sh("rm -f %s/tree/sparse", tmp);
	struct source *s = open_ok("special.sqfs");
	CHECK(source_root(s, &root, &st) == 0);
	lookup(s, root, "", "dev", &st);
	CHECK(S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3));
	uint64_t sp = lookup(s, root, "", "sparse", &st);
	CHECK(st.st_size == (off_t)(5 * GIB + 4));
	memset(buf, 1, sizeof(buf));
	CHECK(source_read(s, sp, "sparse", buf, sizeof(buf), (off_t)(4 * GIB + 12345)) ==
	      sizeof(buf));
	bool zero = true;
	for (size_t i = 0; i < sizeof(buf); i++)
		zero &= buf[i] == 0;
	CHECK(zero);
	CHECK(source_read(s, sp, "sparse", buf, sizeof(buf), (off_t)(5 * GIB - 2)) == 6);
	CHECK(!memcmp(buf, "\0\0TAIL", 6));
	CHECK(source_read(s, sp, "sparse", buf, 2, (off_t)(5 * GIB + 2)) == 2 &&
	      !memcmp(buf, "IL", 2));
	source_put(s);
}

struct reader {
	struct source *s;
	uint64_t ref;
	size_t chunk;
	bool ok;
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	r->ok = true;
	for (int i = 0; i < 20 && r->ok; i++)
		r->ok = big_ok(r->s, r->ref, "big.bin", r->chunk);
	return NULL;
}

static void check_threads(void)
{
	struct source *s = open_ok("xz.sqfs");
	struct stat st;
	uint64_t root;
	CHECK(source_root(s, &root, &st) == 0);
	uint64_t big = lookup(s, root, "", "big.bin", &st);
	struct reader r[2] = { { s, big, 65536, false }, { s, big, 1000, false } };
	pthread_t t[2];
	for (int i = 0; i < 2; i++)
		CHECK(pthread_create(&t[i], NULL, reader_main, &r[i]) == 0);
	for (int i = 0; i < 2; i++)
		CHECK(pthread_join(t[i], NULL) == 0);
	CHECK(r[0].ok && r[1].ok);
	source_put(s);
}

static void patch(const char *img, long off, const void *bytes, size_t len)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s", tmp, img);
	int fd = open(path, O_WRONLY);
	CHECK(fd >= 0);
	CHECK(pwrite(fd, bytes, len, off) == (ssize_t)len);
	close(fd);
}

static void check_bad_images(void)
{
	sh("cd %s && head -c 50 gzip.sqfs > short.sqfs && head -c $(( $(stat -c %%s gzip.sqfs) / 8 )) gzip.sqfs > half.sqfs && "
	   "cp gzip.sqfs magic.sqfs && cp gzip.sqfs comp.sqfs && echo 'just text' > text.txt",
	   tmp);
	open_fails("short.sqfs", "truncated image (50 bytes)");
	open_fails("half.sqfs", "truncated image: superblock says");
	patch("magic.sqfs", 0, "JUNK", 4);
	open_fails("magic.sqfs", "not a squashfs image (bad magic)");
	patch("comp.sqfs", 20, "\x09\x00", 2);
	open_fails("comp.sqfs", "compression unknown (9) not supported by this build");
	open_fails("text.txt", "not a squashfs image (bad magic)");
	open_fails("tree/fifo", "not a squashfs image or directory");
	open_fails("nonexistent", "No such file or directory");
}

/* Walks everything; with a damaged image any result but a crash is fine. */
static void walk(struct source *s, uint64_t ref, const char *rel, int depth);

static int walk_entry(void *arg, const char *name, uint64_t ino, mode_t type)
{
	void **a = arg;
	struct source *s = a[0];
	const char *rel = a[1];
	uint64_t dir = *(uint64_t *)a[2];
	int depth = *(int *)a[3];
	char path[PATH_MAX], buf[4096];
	struct stat st;
	uint64_t ref;
	snprintf(path, sizeof(path), "%s%s%s", rel, rel[0] ? "/" : "", name);
	if (source_lookup(s, dir, rel, name, &ref, &st) < 0)
		return 0;
	(void)source_listxattr(s, ref, path, buf, sizeof(buf));
	(void)source_getxattr(s, ref, path, "user.color", buf, sizeof(buf));
	if (S_ISDIR(st.st_mode) && depth < 8)
		walk(s, ref, path, depth + 1);
	else if (S_ISLNK(st.st_mode))
		(void)source_readlink(s, ref, path, buf, sizeof(buf));
	else if (S_ISREG(st.st_mode))
		for (off_t off = 0; off < st.st_size && off < 1 << 20; off += 4000)
			if (source_read(s, ref, path, buf, sizeof(buf), off) < 0)
				break;
	return 0;
}

static void walk(struct source *s, uint64_t ref, const char *rel, int depth)
{
	void *a[4] = { s, (void *)rel, &ref, &depth };
	(void)source_readdir(s, ref, rel, walk_entry, a);
}

static void check_fuzz(void)
{
	char path[PATH_MAX], err[256];
	struct stat st;
	snprintf(path, sizeof(path), "%s/gzip.sqfs", tmp);
	CHECK(stat(path, &st) == 0);
	int opened = 0;
	srandom(12345);
	for (int i = 0; i < 300; i++) {
		sh("cp %s/gzip.sqfs %s/fuzz.sqfs", tmp, tmp);
		for (int k = 0; k < 1 + i % 8; k++) {
			unsigned char c = (unsigned char)random();
			/* mostly metadata (the end of the image), sometimes the superblock */
			long off = k == 0 && i % 10 == 0 ? random() % 96 :
				   st.st_size - 1 - random() % (st.st_size / 3);
			patch("fuzz.sqfs", off, &c, 1);
		}
		struct source *s = NULL;
		snprintf(path, sizeof(path), "%s/fuzz.sqfs", tmp);
		if (source_open(AT_FDCWD, path, path, &s, err, sizeof(err)) < 0)
			continue;
		opened++;
		uint64_t root;
		if (source_root(s, &root, &st) == 0)
			walk(s, root, "", 0);
		source_put(s);
		
		snprintf(path, sizeof(path), "%s/gzip.sqfs", tmp);
		CHECK(stat(path, &st) == 0);
	}
	printf("# %d of 300 damaged images opened, all walked\n", opened);
	CHECK(1);
}

static void check_rewritten(void)
{
	char buf[16];
	struct stat st;
	uint64_t root;
	sh("cp %s/zstd.sqfs %s/grow.sqfs && cp %s/zstd.sqfs %s/touch.sqfs", tmp, tmp, tmp, tmp);
	struct source *g = open_ok("grow.sqfs");
	struct source *t = open_ok("touch.sqfs");
	CHECK(source_root(g, &root, &st) == 0);
	uint64_t a = lookup(g, root, "", "a.txt", &st);
	CHECK(source_read(g, a, "a.txt", buf, sizeof(buf), 0) == 6);
	sh("printf x >> %s/grow.sqfs && touch -d '2001-01-01' %s/touch.sqfs", tmp, tmp);
	CHECK(source_read(g, a, "a.txt", buf, sizeof(buf), 0) == -EIO);
	CHECK(source_read(t, a, "a.txt", buf, sizeof(buf), 0) == -EIO);
	struct names nm = { .n = 0 };
	CHECK(source_readdir(t, root, "", collect, &nm) == -EIO);
	source_put(g);
	source_put(t);
}

static void check_directory(void)
{
	struct stat st;
	uint64_t root, ref;
	char buf[64];
	sh("ln -s /etc %s/tree/out", tmp);
	struct source *s = open_ok("tree");
	CHECK(source_kind(s) == SOURCE_DIRECTORY && !strcmp(source_kind_name(s), "directory"));
	check_source(s);
	CHECK(source_lookup(s, 0, "", "out", &ref, &st) == 0 && S_ISLNK(st.st_mode));
	CHECK(source_getattr(s, 0, "out/passwd", &st) == -ENOTDIR);
	CHECK(source_getattr(s, 0, "../tree", &st) < 0);
	CHECK(source_getattr(s, 0, "/etc", &st) < 0);
	CHECK(source_read(s, 0, "fifo", buf, sizeof(buf), 0) == -EINVAL);
	CHECK(source_root(s, &root, &st) == 0);
	struct source *again = open_ok("tree");
	CHECK(source_key(again) == source_key(s));
	source_put(again);
	source_put(s);
	sh("rm %s/tree/out", tmp);
}

/*
 * Lookups from the cached descriptors of a directory source's directories:
 * more directories than the cache has slots, each looked into twice (the
 * second round after evictions), give the same answers, and the rules of
 * dir_resolve hold from a cached parent too (no symlink followed).
 */
static void check_directory_cache(void)
{
	struct stat st;
	uint64_t ref;
	char rel[64];
	sh("mkdir -p %s/many && cd %s/many && for i in $(seq 0 99); do mkdir -p d$i/sub && "
	   "printf $i > d$i/sub/f; ln -s /etc d$i/link; done", tmp, tmp);
	struct source *s = open_ok("many");
	int ok = 1;
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < 100; i++) {
			snprintf(rel, sizeof(rel), "d%d", i);
			ok &= source_lookup(s, 0, rel, "sub", &ref, &st) == 0 && S_ISDIR(st.st_mode);
			snprintf(rel, sizeof(rel), "d%d/sub", i);
			ok &= source_lookup(s, 0, rel, "f", &ref, &st) == 0 &&
			      st.st_size == (i < 10 ? 1 : 2);
			ok &= source_lookup(s, 0, rel, "missing", &ref, &st) == -ENOENT;
			snprintf(rel, sizeof(rel), "d%d/link", i);
			ok &= source_lookup(s, 0, rel, "passwd", &ref, &st) == -ENOTDIR;
		}
	}
	CHECK(ok);
	source_put(s);
}

int main(void)
{
	if (!find_mksquashfs()) {
		printf("not ok 1 - mksquashfs not found on PATH, /usr/sbin or /sbin "
		       "(install squashfs-tools)\n");
		return 1;
	}
	const char *base = getenv("TMPDIR");
	snprintf(tmp, sizeof(tmp), "%s/vn-source-XXXXXX", base ? base : "/tmp");
	CHECK(mkdtemp(tmp) != NULL);
	make_tree();
	const char *comps[] = { "gzip", "lz4", "lzo", "xz", "zstd" };
	for (size_t i = 0; i < sizeof(comps) / sizeof(comps[0]); i++)
		check_image(comps[i]);
	check_special();
	check_threads();
	check_bad_images();
	check_rewritten();
	check_directory();
	check_directory_cache();
	check_fuzz();
	sh("rm -rf %s", tmp);
	printf("1..%d\n", unit_count);
	return 0;
}
