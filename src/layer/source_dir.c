/*
 * Directory sources: any readable directory (a kernel-mounted image, NFS,
 * CephFS, a plain tree) seen read-only.  Every path is resolved with
 * openat2 beneath the root without following symlinks, so nothing in the
 * tree can lead a lookup outside it.  Entries are named by path; the ref
 * handed out is st_ino and is not used again.  No descriptor is kept per
 * entry: each call opens what it needs and closes it.
 */
#include "layer/source_impl.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

struct dir_source {
	struct source base;
	int rootfd;		/* O_RDONLY|O_DIRECTORY, opened by source_open */
};

static struct dir_source *ds(struct source *s)
{
	return (struct dir_source *)s;
}

/*
 * Opens rel ("" = the root) beneath the root; returns the fd or -errno.
 * It never crosses into another mount: a directory source that holds a
 * mount point (veneer's own above all: a lookup there would come back to
 * this daemon) shows that name, but nothing under it.
 */
static int dir_resolve(struct dir_source *d, const char *rel, int flags)
{
	struct open_how how = {
		.flags = (uint64_t)(flags | O_NOFOLLOW | O_CLOEXEC),
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
			   RESOLVE_NO_XDEV,
	};
	if (rel[0] == '/')
		return -EINVAL;
	long fd = syscall(SYS_openat2, d->rootfd, rel[0] ? rel : ".", &how, sizeof(how));
	if (fd < 0 && errno == EXDEV)
		return -ENOENT;
	if (fd < 0)
		return errno == ELOOP ? -ENOTDIR : -errno;	/* a symlink on the way is no directory here */
	return (int)fd;
}

static int dir_stat_rel(struct dir_source *d, const char *rel, struct stat *st)
{
	int fd = dir_resolve(d, rel, O_PATH);
	if (fd < 0)
		return fd;
	int r = fstat(fd, st) < 0 ? -errno : 0;
	close(fd);
	if (r == 0)
		st->st_dev = 0;
	return r;
}

static void dir_destroy(struct source *s)
{
	close(ds(s)->rootfd);
	source_base_release(s);
	free(ds(s));
}

static void dir_stats(struct source *s, struct source_stats *st)
{
	/* unknown without walking the tree: left 0 */
}

static int dir_root(struct source *s, uint64_t *ret_ref, struct stat *st)
{
	int r = dir_stat_rel(ds(s), "", st);
	if (r == 0)
		*ret_ref = st->st_ino;
	return r;
}

static int join(char *out, size_t outlen, const char *dir_rel, const char *name)
{
	int n = dir_rel[0] ? snprintf(out, outlen, "%s/%s", dir_rel, name) :
			     snprintf(out, outlen, "%s", name);
	return n < 0 || (size_t)n >= outlen ? -ENAMETOOLONG : 0;
}

static int dir_lookup(struct source *s, uint64_t dir_ref, const char *dir_rel, const char *name,
		      uint64_t *ret_ref, struct stat *st)
{
	char path[PATH_MAX];
	int r = join(path, sizeof(path), dir_rel, name);
	if (r == 0)
		r = dir_stat_rel(ds(s), path, st);
	if (r == 0)
		*ret_ref = st->st_ino;
	return r;
}

static int dir_getattr(struct source *s, uint64_t ref, const char *rel, struct stat *st)
{
	return dir_stat_rel(ds(s), rel, st);
}

static int dir_readdir(struct source *s, uint64_t ref, const char *rel, source_dirent_fn *fn,
		       void *arg)
{
	int fd = dir_resolve(ds(s), rel, O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		return fd;
	DIR *dir = fdopendir(fd);
	if (!dir) {
		int r = -errno;
		close(fd);
		return r;
	}
	int r = 0;
	for (;;) {
		errno = 0;
		struct dirent *de = readdir(dir);
		if (!de) {
			r = errno ? -errno : 0;
			break;
		}
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (!source_name_ok(s, de->d_name, strlen(de->d_name)))
			continue;
		mode_t type = de->d_type == DT_UNKNOWN ? 0 : DTTOIF(de->d_type);
		if (type == 0) {
			struct stat st;
			if (fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0)
				type = st.st_mode & S_IFMT;
		}
		r = fn(arg, de->d_name, de->d_ino, type);
		if (r < 0)
			break;
	}
	closedir(dir);
	return r;
}

static ssize_t dir_readlink(struct source *s, uint64_t ref, const char *rel, char *buf,
			    size_t size)
{
	int fd = dir_resolve(ds(s), rel, O_PATH);
	if (fd < 0)
		return fd;
	ssize_t n = readlinkat(fd, "", buf, size);
	if (n < 0)
		n = errno == ENOENT ? -EINVAL : -errno;	/* "" on a non-link: ENOENT */
	else if ((size_t)n >= size)
		n = -ERANGE;	/* no room for the NUL, or truncated */
	else
		buf[n] = '\0';
	close(fd);
	return n;
}

/* A readable descriptor of the regular file rel, never opening a FIFO or device. */
static int dir_open_file(struct dir_source *d, const char *rel)
{
	struct stat st;
	char proc[64];
	int pfd = dir_resolve(d, rel, O_PATH);
	if (pfd < 0)
		return pfd;
	int r = fstat(pfd, &st) < 0 ? -errno : 0;
	if (r == 0 && !S_ISREG(st.st_mode))
		r = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
	if (r == 0) {
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", pfd);
		r = open(proc, O_RDONLY | O_CLOEXEC | O_NOCTTY);
		if (r < 0)
			r = -errno;
	}
	close(pfd);
	return r;
}

static ssize_t dir_read(struct source *s, uint64_t ref, const char *rel, void *buf, size_t size,
			off_t off)
{
	int fd = dir_open_file(ds(s), rel);
	if (fd < 0)
		return fd;
	size_t done = 0;
	while (done < size) {
		ssize_t n = pread(fd, (char *)buf + done, size - done, off + (off_t)done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int r = -errno;
			close(fd);
			return r;
		}
		if (n == 0)
			break;
		done += (size_t)n;
	}
	close(fd);
	return (ssize_t)done;
}

/*
 * Xattrs through /proc/self/fd of an O_PATH descriptor.  That path
 * follows the link, so a symlink's own xattrs are not offered (it has
 * none in practice: user.* is not allowed on symlinks).
 */
static int dir_xattr_path(struct dir_source *d, const char *rel, char *proc, size_t len,
			  int *ret_fd)
{
	struct stat st;
	int fd = dir_resolve(d, rel, O_PATH);
	if (fd < 0)
		return fd;
	int r = fstat(fd, &st) < 0 ? -errno : S_ISLNK(st.st_mode) ? 1 : 0;
	if (r != 0) {
		close(fd);
		return r;
	}
	snprintf(proc, len, "/proc/self/fd/%d", fd);
	*ret_fd = fd;
	return 0;
}

static ssize_t dir_listxattr(struct source *s, uint64_t ref, const char *rel, char *buf,
			     size_t size)
{
	char proc[64];
	int fd;
	int r = dir_xattr_path(ds(s), rel, proc, sizeof(proc), &fd);
	if (r != 0)
		return r > 0 ? 0 : r;
	ssize_t n = listxattr(proc, buf, size);
	if (n < 0)
		n = errno == ENOTSUP ? 0 : -errno;
	close(fd);
	return n;
}

static ssize_t dir_getxattr(struct source *s, uint64_t ref, const char *rel, const char *name,
			    void *buf, size_t size)
{
	char proc[64];
	int fd;
	int r = dir_xattr_path(ds(s), rel, proc, sizeof(proc), &fd);
	if (r != 0)
		return r > 0 ? -ENODATA : r;
	ssize_t n = getxattr(proc, name, buf, size);
	if (n < 0)
		n = errno == ENOTSUP ? -ENODATA : -errno;
	close(fd);
	return n;
}

static const struct source_ops dir_ops = {
	.kind = SOURCE_DIRECTORY,
	.kind_name = "directory",
	.destroy = dir_destroy,
	.stats = dir_stats,
	.root = dir_root,
	.lookup = dir_lookup,
	.getattr = dir_getattr,
	.readdir = dir_readdir,
	.readlink = dir_readlink,
	.read = dir_read,
	.listxattr = dir_listxattr,
	.getxattr = dir_getxattr,
};

int source_dir_open(int fd, const struct stat *st, const char *name, struct source **ret,
		    char *err, size_t errlen)
{
	struct dir_source *d = calloc(1, sizeof(*d));
	if (!d || source_base_init(&d->base, &dir_ops, name) < 0) {
		free(d);
		close(fd);
		snprintf(err, errlen, "%s", strerror(ENOMEM));
		return -ENOMEM;
	}
	d->rootfd = fd;
	uint64_t id[2] = { st->st_dev, st->st_ino };
	d->base.key = source_hash(SOURCE_HASH_INIT, id, sizeof(id));
	*ret = &d->base;
	return 0;
}
