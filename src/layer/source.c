/*
 * Layer sources: opening (dispatch on the file type), reference counting,
 * the name check both implementations share, and the thin wrappers of
 * source.h.  The formats themselves live in source_squashfs.c and
 * source_dir.c; this file knows neither.
 */
#include "common/hash.h"
#include "layer/source_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

int source_base_init(struct source *s, const struct source_ops *ops, const char *name)
{
	s->name = strdup(name);
	if (!s->name)
		return -ENOMEM;
	s->ops = ops;
	atomic_init(&s->refcount, 1);
	atomic_init(&s->bad_names, 0);
	atomic_init(&s->bad_name_logged, false);
	atomic_init(&s->problem_logged, false);
	return 0;
}

void source_base_release(struct source *s)
{
	free(s->name);
	s->name = NULL;
}

bool source_name_ok(struct source *s, const char *name, size_t len)
{
	bool ok = len > 0 && len <= NAME_MAX && memchr(name, '/', len) == NULL &&
		  memchr(name, '\0', len) == NULL && !(len == 1 && name[0] == '.') &&
		  !(len == 2 && name[0] == '.' && name[1] == '.');
	if (ok)
		return true;
	atomic_fetch_add(&s->bad_names, 1);
	if (!atomic_exchange(&s->bad_name_logged, true))
		log_warn("%s: skipping an entry with an invalid name (%zu bytes); "
			 "further ones are only counted", s->name, len);
	return false;
}

void source_log_problem(struct source *s, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* one warning per source: a damaged image would otherwise flood the log */
	int level = atomic_exchange(&s->problem_logged, true) ? LOG_DEBUG : LOG_WARNING;
	log_msg(level, "%s: %s", s->name, msg);
}

uint64_t source_hash(uint64_t h, const void *data, size_t len)
{
	h = fnv1a(h, data, len);
	/* splitmix64 finalizer: FNV alone mixes the last bytes poorly */
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ULL;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebULL;
	h ^= h >> 31;
	return h;
}

/*
 * Reopens what O_PATH fd pfd names with real access, checking that the
 * name still leads to the same object (it could have been replaced in
 * between).  O_PATH first so that a FIFO or device is never opened.
 */
static int reopen_checked(int dirfd, const char *path, int flags, const struct stat *want)
{
	int fd = openat(dirfd, path, flags | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) < 0 || st.st_dev != want->st_dev || st.st_ino != want->st_ino) {
		close(fd);
		return -EAGAIN;
	}
	return fd;
}

int source_open(int dirfd, const char *path, const char *name, struct source **ret,
		char *err, size_t errlen)
{
	return source_open_pinned(dirfd, path, name, NULL, ret, err, errlen);
}

int source_open_remote(const char *url, const struct remote_options *o, const uint8_t *digest,
		       struct source **ret, char *err, size_t errlen)
{
	return source_squashfs_open_url(url, o, digest, ret, err, errlen);
}

int source_open_pinned(int dirfd, const char *path, const char *name, const uint8_t *digest,
		       struct source **ret, char *err, size_t errlen)
{
	struct stat st;
	int pfd = openat(dirfd, path, O_PATH | O_CLOEXEC);
	if (pfd < 0) {
		int r = -errno;
		snprintf(err, errlen, "%s", strerror(-r));
		return r;
	}
	int r = fstat(pfd, &st) < 0 ? -errno : 0;
	close(pfd);
	if (r < 0) {
		snprintf(err, errlen, "%s", strerror(-r));
		return r;
	}
	if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "not a squashfs image or directory");
		return -EINVAL;
	}
	if (digest && S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "a directory has no digest to pin (only images do)");
		return -EINVAL;
	}
	int fd = reopen_checked(dirfd, path, S_ISDIR(st.st_mode) ? O_RDONLY | O_DIRECTORY : O_RDONLY,
				&st);
	if (fd < 0) {
		snprintf(err, errlen, "%s", fd == -EAGAIN ? "replaced while being opened" :
			 strerror(-fd));
		return fd;
	}
	if (S_ISDIR(st.st_mode))
		return source_dir_open(fd, &st, name, ret, err, errlen);
	return source_squashfs_open(fd, &st, name, digest, ret, err, errlen);
}

void source_get(struct source *s)
{
	atomic_fetch_add(&s->refcount, 1);
}

void source_put(struct source *s)
{
	if (!s)
		return;
	unsigned old = atomic_fetch_sub(&s->refcount, 1);
	if (old == 0) {
		log_err("BUG: source '%s' reference count underflow", s->name);
		abort();
	}
	if (old == 1)
		s->ops->destroy(s);
}

enum source_kind source_kind(const struct source *s)
{
	return s->ops->kind;
}

const char *source_kind_name(const struct source *s)
{
	return s->ops->kind_name;
}

const char *source_name(const struct source *s)
{
	return s->name;
}

uint64_t source_key(const struct source *s)
{
	return s->key;
}

void source_get_stats(struct source *s, struct source_stats *st)
{
	memset(st, 0, sizeof(*st));
	s->ops->stats(s, st);
	st->bad_names = atomic_load(&s->bad_names);
}

int source_root(struct source *s, uint64_t *ret_ref, struct stat *st)
{
	return s->ops->root(s, ret_ref, st);
}

int source_lookup(struct source *s, uint64_t dir_ref, const char *dir_rel, const char *name,
		  uint64_t *ret_ref, struct stat *st)
{
	/* a name that could never be listed cannot be looked up either */
	size_t len = strlen(name);
	if (len == 0 || len > NAME_MAX || strchr(name, '/') || !strcmp(name, ".") ||
	    !strcmp(name, ".."))
		return len > NAME_MAX ? -ENAMETOOLONG : -EINVAL;
	return s->ops->lookup(s, dir_ref, dir_rel, name, ret_ref, st);
}

int source_getattr(struct source *s, uint64_t ref, const char *rel, struct stat *st)
{
	return s->ops->getattr(s, ref, rel, st);
}

int source_readdir(struct source *s, uint64_t ref, const char *rel, source_dirent_fn *fn,
		   void *arg)
{
	return s->ops->readdir(s, ref, rel, fn, arg);
}

ssize_t source_readlink(struct source *s, uint64_t ref, const char *rel, char *buf, size_t size)
{
	return s->ops->readlink(s, ref, rel, buf, size);
}

ssize_t source_read(struct source *s, uint64_t ref, const char *rel, void *buf, size_t size,
		    off_t off)
{
	if (off < 0)
		return -EINVAL;
	return s->ops->read(s, ref, rel, buf, size, off);
}

ssize_t source_listxattr(struct source *s, uint64_t ref, const char *rel, char *buf, size_t size)
{
	return s->ops->listxattr(s, ref, rel, buf, size);
}

ssize_t source_getxattr(struct source *s, uint64_t ref, const char *rel, const char *name,
			void *buf, size_t size)
{
	return s->ops->getxattr(s, ref, rel, name, buf, size);
}
