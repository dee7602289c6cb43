/*
 * Directory sources: any readable directory (a kernel-mounted image, NFS,
 * CephFS, a plain tree) seen read-only.  Every path is resolved with
 * openat2 beneath the root without following symlinks, so nothing in the
 * tree can lead a lookup outside it.  Entries are named by path; the ref
 * handed out is st_ino and is not used again.  No descriptor is kept per
 * entry: each call opens what it needs and closes it, except that the
 * directories lookups were made in keep an O_PATH descriptor in a small
 * bounded cache, so a lookup opens one name from its directory's
 * descriptor instead of resolving the whole path again.
 */
#include "layer/source_impl.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

/* Directories' descriptors kept for lookups in them; more are reopened on demand. */
#define DIR_FD_SLOTS 64

struct dir_fd_slot {
	char *rel;		/* NULL: free */
	uint64_t hash;
	int fd;			/* O_PATH|O_DIRECTORY */
	unsigned int users;	/* callers using fd now: not evictable */
	uint64_t used;		/* clock of the last use, for eviction */
};

struct dir_source {
	struct source base;
	int rootfd;		/* O_RDONLY|O_DIRECTORY, opened by source_open */
	/*
	 * Leaf lock over slots[] and clock, held to find, pin, install or
	 * evict a slot; never across a syscall (evicted descriptors are
	 * closed after it is released).
	 */
	pthread_mutex_t lock;
	struct dir_fd_slot slots[DIR_FD_SLOTS];
	uint64_t clock;
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

/* One name in the directory open as DIRFD, beneath it, under the same rules as dir_resolve. */
static int open_name(int dirfd, const char *name, int flags)
{
	struct open_how how = {
		.flags = (uint64_t)(flags | O_NOFOLLOW | O_CLOEXEC),
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
			   RESOLVE_NO_XDEV,
	};
	long fd = syscall(SYS_openat2, dirfd, name, &how, sizeof(how));
	if (fd < 0 && errno == EXDEV)
		return -ENOENT;
	if (fd < 0)
		return errno == ELOOP ? -ENOTDIR : -errno;
	return (int)fd;
}

/* The slot holding REL, pinned; -1 when none.  Under d->lock. */
static int slot_find(struct dir_source *d, const char *rel, uint64_t hash)
{
	for (int i = 0; i < DIR_FD_SLOTS; i++) {
		struct dir_fd_slot *sl = &d->slots[i];
		if (sl->rel && sl->hash == hash && !strcmp(sl->rel, rel)) {
			sl->users++;
			sl->used = ++d->clock;
			return i;
		}
	}
	return -1;
}

/*
 * Installs FD for REL in a free slot or the least recently used idle one,
 * pinned; returns the slot, or -1 when every slot is busy (FD stays the
 * caller's).  *evicted gets a descriptor to close after unlocking, or -1.
 * Under d->lock.
 */
static int slot_install(struct dir_source *d, char *rel, uint64_t hash, int fd, int *evicted)
{
	int victim = -1;
	*evicted = -1;
	for (int i = 0; i < DIR_FD_SLOTS; i++) {
		struct dir_fd_slot *sl = &d->slots[i];
		if (!sl->rel) {
			victim = i;
			break;
		}
		if (sl->users == 0 && (victim < 0 || sl->used < d->slots[victim].used))
			victim = i;
	}
	if (victim < 0)
		return -1;
	struct dir_fd_slot *sl = &d->slots[victim];
	if (sl->rel) {
		*evicted = sl->fd;
		free(sl->rel);
	}
	*sl = (struct dir_fd_slot){ rel, hash, fd, 1, ++d->clock };
	return victim;
}

/*
 * An O_PATH descriptor of directory REL, for one call: from the cache, or
 * opened by its last name from its parent's cached descriptor, or beneath
 * the root.  *ret_slot is the slot to release with dirfd_put (-1: the
 * descriptor is the caller's to close, or the root's).
 */
static int dirfd_get(struct dir_source *d, const char *rel, int *ret_fd, int *ret_slot)
{
	*ret_slot = -1;
	if (!rel[0]) {
		*ret_fd = d->rootfd;
		return 0;
	}
	uint64_t hash = fnv1a_str(rel);
	const char *slash = strrchr(rel, '/');
	uint64_t phash = slash ? fnv1a(FNV1A_INIT, rel, (size_t)(slash - rel)) : 0;
	int pslot = -1;
	pthread_mutex_lock(&d->lock);
	int i = slot_find(d, rel, hash);
	if (i < 0 && slash) {
		for (int k = 0; k < DIR_FD_SLOTS && pslot < 0; k++) {
			struct dir_fd_slot *sl = &d->slots[k];
			if (sl->rel && sl->hash == phash && !strncmp(sl->rel, rel, (size_t)(slash - rel)) &&
			    sl->rel[slash - rel] == '\0') {
				sl->users++;
				pslot = k;
			}
		}
	}
	int pfd = pslot >= 0 ? d->slots[pslot].fd : -1;
	pthread_mutex_unlock(&d->lock);
	if (i >= 0) {
		*ret_fd = d->slots[i].fd;
		*ret_slot = i;
		return 0;
	}
	int fd = pfd >= 0 ? open_name(pfd, slash + 1, O_PATH | O_DIRECTORY)
			  : dir_resolve(d, rel, O_PATH | O_DIRECTORY);
	char *copy = fd >= 0 ? strdup(rel) : NULL;
	int evicted = -1;
	pthread_mutex_lock(&d->lock);
	if (pslot >= 0)
		d->slots[pslot].users--;
	if (copy) {
		/* another thread may have opened it meanwhile: use theirs */
		i = slot_find(d, rel, hash);
		if (i >= 0) {
			evicted = fd;
			fd = d->slots[i].fd;
			free(copy);
		} else {
			i = slot_install(d, copy, hash, fd, &evicted);
			if (i < 0)
				free(copy);	/* every slot busy: fd stays this call's */
		}
	}
	pthread_mutex_unlock(&d->lock);
	if (evicted >= 0)
		close(evicted);
	if (fd < 0)
		return fd;
	*ret_fd = fd;
	*ret_slot = i;
	return 0;
}

static void dirfd_put(struct dir_source *d, int fd, int slot)
{
	if (slot < 0) {
		if (fd != d->rootfd)
			close(fd);
		return;
	}
	pthread_mutex_lock(&d->lock);
	d->slots[slot].users--;
	pthread_mutex_unlock(&d->lock);
}

static void dir_destroy(struct source *s)
{
	for (int i = 0; i < DIR_FD_SLOTS; i++) {
		if (ds(s)->slots[i].rel) {
			close(ds(s)->slots[i].fd);
			free(ds(s)->slots[i].rel);
		}
	}
	pthread_mutex_destroy(&ds(s)->lock);
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

static int dir_lookup(struct source *s, uint64_t dir_ref, const char *dir_rel, const char *name,
		      uint64_t *ret_ref, struct stat *st)
{
	struct dir_source *d = ds(s);
	int dfd, slot;
	int r = dirfd_get(d, dir_rel, &dfd, &slot);
	if (r < 0)
		return r;
	int fd = open_name(dfd, name, O_PATH);
	dirfd_put(d, dfd, slot);
	if (fd < 0)
		return fd;
	r = fstat(fd, st) < 0 ? -errno : 0;
	close(fd);
	if (r < 0)
		return r;
	st->st_dev = 0;
	*ret_ref = st->st_ino;
	return 0;
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
	pthread_mutex_init(&d->lock, NULL);
	uint64_t id[2] = { st->st_dev, st->st_ino };
	d->base.key = source_hash(SOURCE_HASH_INIT, id, sizeof(id));
	*ret = &d->base;
	return 0;
}
