/*
 * The on-disk chunk cache (chunk_cache.h).
 */
#include "layer/chunk_cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"

/*
 * Eviction brings the cache down to its limit less limit / SLACK, so it
 * does not run on every put.  Other images and processes add to the same
 * directory unseen: the cache is counted again once this one added
 * limit / SLACK, so it overshoots by at most that much per writer.
 */
#define SLACK 10u

/*
 * Descriptors of the chunk files read last (and of those advised for a
 * read ahead, chunk_cache_advise), so that a warm read of a chunk is one
 * pread, not an open, a pread, a futimens and a close.  A chunk file
 * is never rewritten in place by the cache (a new copy is renamed in), so
 * a kept descriptor reads the chunk's bytes even after another process
 * evicted (unlinked) it; a copy found bad is dropped (chunk_cache_drop),
 * which forgets its descriptor too.  A hit refreshes the file's mtime, the
 * eviction's clock, at most once per TOUCH_EVERY_NS.
 */
#define FD_SLOTS 192
#define TOUCH_EVERY_NS 1000000000ll

struct fd_slot {
	uint64_t idx;
	int fd;				/* -1: free */
	unsigned users;			/* reads using fd now */
	bool dropped;			/* forgotten: closed by its last user */
	uint64_t used;			/* clock of the last use, for eviction */
	long long touched_ns;		/* CLOCK_MONOTONIC of the last futimens */
};

struct chunk_cache {
	char *dir;			/* the cache directory (all images) */
	int dirfd;			/* of dir */
	int imagefd;			/* of dir/key */
	uint64_t limit;
	atomic_uint_least64_t bytes;	/* all images, as last counted + added since */
	atomic_uint_least64_t added;	/* by this cache since it last counted */
	atomic_uint tmp_seq;		/* names of temporary files */
	/*
	 * Leaf lock over slots[] and clock, held to find, pin, install or
	 * forget a slot; never across a syscall (the descriptors it lets go
	 * of are closed after it is released).
	 */
	pthread_mutex_t lock;
	struct fd_slot slots[FD_SLOTS];
	uint64_t clock;
};

void chunk_cache_default_dir(char *out, size_t outlen)
{
	const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	if (geteuid() == 0)
		snprintf(out, outlen, "/var/cache/veneer");
	else if (xdg && xdg[0] == '/')
		snprintf(out, outlen, "%s/veneer", xdg);
	else
		snprintf(out, outlen, "%s/.cache/veneer", home && home[0] == '/' ? home : "/tmp");
}

/* mkdir -p with mode 0700 for the parts it creates. */
static int make_dirs(const char *path)
{
	char buf[PATH_MAX];
	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return -ENAMETOOLONG;
	for (char *p = buf + 1;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char c = *p;
		*p = '\0';
		if (mkdir(buf, 0700) < 0 && errno != EEXIST)
			return -errno;
		*p = c;
		if (!c)
			return 0;
	}
}

/* Chunk names are hex numbers; image directories are keys (64 hex digits). */
#define KEY_MAX 128u
#define CHUNK_NAME_MAX 32u

struct entry {
	char path[KEY_MAX + CHUNK_NAME_MAX];	/* "KEY/CHUNK" under the cache directory */
	struct timespec mtime;
	uint64_t size;
};

static int by_age(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;
	if (x->mtime.tv_sec != y->mtime.tv_sec)
		return x->mtime.tv_sec < y->mtime.tv_sec ? -1 : 1;
	return (x->mtime.tv_nsec > y->mtime.tv_nsec) - (x->mtime.tv_nsec < y->mtime.tv_nsec);
}

/* A listing of directory fd from its start, on a descriptor of its own. */
static DIR *open_listing(int fd)
{
	int own = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = own >= 0 ? fdopendir(own) : NULL;
	if (!d && own >= 0)
		close(own);
	return d;
}

/* Appends the chunks in image directory key (open as fd) to *v; returns their bytes. */
static uint64_t scan_image(int fd, const char *key, struct entry **v, size_t *n, size_t *cap)
{
	uint64_t total = 0;
	DIR *d = open_listing(fd);
	if (!d)
		return 0;
	struct dirent *e;
	struct stat st;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.' || strlen(e->d_name) >= CHUNK_NAME_MAX ||
		    fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
			continue;
		total += (uint64_t)st.st_size;
		if (*n == *cap) {
			size_t ncap = *cap ? *cap * 2 : 256;
			struct entry *nv = realloc(*v, ncap * sizeof(**v));
			if (!nv)
				continue;
			*v = nv;
			*cap = ncap;
		}
		struct entry *en = &(*v)[(*n)++];
		snprintf(en->path, sizeof(en->path), "%s/%s", key, e->d_name);
		en->mtime = st.st_mtim;
		en->size = (uint64_t)st.st_size;
	}
	closedir(d);
	return total;
}

/*
 * Counts the whole cache and, over its limit, unlinks the least recently
 * used chunks.  Another process evicting already: leave it to that one.
 */
static void evict(struct chunk_cache *c)
{
	int lock = openat(c->dirfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lock < 0)
		return;
	if (flock(lock, LOCK_EX | LOCK_NB) < 0) {
		close(lock);
		return;
	}
	struct entry *v = NULL;
	size_t n = 0, cap = 0;
	uint64_t total = 0;
	DIR *d = open_listing(c->dirfd);
	struct dirent *e;
	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.' || e->d_type != DT_DIR || strlen(e->d_name) >= KEY_MAX)
			continue;
		int fd = openat(c->dirfd, e->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			continue;
		total += scan_image(fd, e->d_name, &v, &n, &cap);
		close(fd);
	}
	if (d)
		closedir(d);
	uint64_t target = c->limit - c->limit / SLACK;
	if (total > c->limit) {
		qsort(v, n, sizeof(*v), by_age);
		for (size_t i = 0; i < n && total > target; i++)
			if (unlinkat(c->dirfd, v[i].path, 0) == 0)
				total -= v[i].size;
		log_debug("chunk cache %s: evicted down to %" PRIu64 " bytes", c->dir, total);
	}
	atomic_store(&c->bytes, total);
	atomic_store(&c->added, 0);
	free(v);
	close(lock);
}

int chunk_cache_open(const char *dir, const char *key, uint64_t limit, bool create,
		     struct chunk_cache **ret, char *err, size_t errlen)
{
	char def[PATH_MAX];
	if (!dir) {
		chunk_cache_default_dir(def, sizeof(def));
		dir = def;
	}
	struct chunk_cache *c = calloc(1, sizeof(*c));
	int r = -ENOMEM;
	if (!c || !(c->dir = strdup(dir)))
		goto fail;
	c->dirfd = c->imagefd = -1;
	pthread_mutex_init(&c->lock, NULL);
	for (int i = 0; i < FD_SLOTS; i++)
		c->slots[i].fd = -1;
	r = create ? make_dirs(dir) : 0;
	if (r == 0 && (c->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		r = -errno;
	if (r == 0 && create && mkdirat(c->dirfd, key, 0700) < 0 && errno != EEXIST)
		r = -errno;
	if (r == 0 && (c->imagefd = openat(c->dirfd, key, O_RDONLY | O_DIRECTORY |
					   O_CLOEXEC)) < 0)
		r = -errno;
	if (r < 0)
		goto fail;
	c->limit = limit;
	atomic_init(&c->bytes, 0);
	atomic_init(&c->added, 0);
	atomic_init(&c->tmp_seq, 0);
	evict(c);
	*ret = c;
	return 0;
fail:
	snprintf(err, errlen, "cache directory %s: %s", dir, strerror(-r));
	chunk_cache_free(c);
	return r;
}

void chunk_cache_free(struct chunk_cache *c)
{
	if (!c)
		return;
	for (int i = 0; i < FD_SLOTS; i++)
		if (c->slots[i].fd >= 0)
			close(c->slots[i].fd);
	pthread_mutex_destroy(&c->lock);
	if (c->imagefd >= 0)
		close(c->imagefd);
	if (c->dirfd >= 0)
		close(c->dirfd);
	free(c->dir);
	free(c);
}

static void chunk_name(uint64_t idx, char out[32])
{
	snprintf(out, 32, "%" PRIx64, idx);
}

static long long now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000000000ll + t.tv_nsec;
}

/* The slot keeping chunk idx, pinned (users + 1); -1 when none.  Under c->lock. */
static int slot_find(struct chunk_cache *c, uint64_t idx)
{
	for (int i = 0; i < FD_SLOTS; i++) {
		struct fd_slot *sl = &c->slots[i];
		if (sl->fd >= 0 && !sl->dropped && sl->idx == idx) {
			sl->users++;
			sl->used = ++c->clock;
			return i;
		}
	}
	return -1;
}

/*
 * Keeps fd for chunk idx in a free slot or the least recently used idle
 * one; false when every slot is busy or another read kept the chunk first
 * (fd stays the caller's).  *evicted: a descriptor to close once c->lock
 * is released, or -1.  Under c->lock.
 */
static bool slot_install(struct chunk_cache *c, uint64_t idx, int fd, long long touched,
			 int *evicted)
{
	int victim = -1;
	*evicted = -1;
	for (int i = 0; i < FD_SLOTS; i++) {
		struct fd_slot *sl = &c->slots[i];
		if (sl->fd >= 0 && !sl->dropped && sl->idx == idx)
			return false;
		if (sl->fd < 0) {
			if (victim < 0 || c->slots[victim].fd >= 0)
				victim = i;
		} else if (sl->users == 0 && (victim < 0 || (c->slots[victim].fd >= 0 &&
							    sl->used < c->slots[victim].used))) {
			victim = i;
		}
	}
	if (victim < 0)
		return false;
	*evicted = c->slots[victim].fd;
	c->slots[victim] = (struct fd_slot){ idx, fd, 0, false, ++c->clock, touched };
	return true;
}

/* Unpins slot i; returns a descriptor to close after c->lock, or -1.  Under c->lock. */
static int slot_put(struct chunk_cache *c, int i)
{
	struct fd_slot *sl = &c->slots[i];
	if (--sl->users > 0 || !sl->dropped)
		return -1;
	int fd = sl->fd;
	sl->fd = -1;
	return fd;
}

/* Forgets the slot of chunk idx, if any; returns a descriptor to close
 * after c->lock (when no read uses it), or -1.  Under c->lock. */
static int slot_forget(struct chunk_cache *c, uint64_t idx)
{
	for (int i = 0; i < FD_SLOTS; i++) {
		struct fd_slot *sl = &c->slots[i];
		if (sl->fd >= 0 && !sl->dropped && sl->idx == idx) {
			sl->dropped = true;
			if (sl->users == 0) {
				int fd = sl->fd;
				sl->fd = -1;
				return fd;
			}
		}
	}
	return -1;
}

static bool read_whole(int fd, void *buf, size_t len, size_t off)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
		if (n <= 0)
			break;
		done += (size_t)n;
	}
	return done == len;
}

int chunk_cache_read(struct chunk_cache *c, uint64_t idx, size_t off, void *buf, size_t len)
{
	int fd, slot, spare = -1;
	bool touch = false;
	long long now = now_ns();
	pthread_mutex_lock(&c->lock);
	slot = slot_find(c, idx);
	if (slot >= 0) {
		fd = c->slots[slot].fd;
		if (now - c->slots[slot].touched_ns >= TOUCH_EVERY_NS) {
			c->slots[slot].touched_ns = now;
			touch = true;
		}
	}
	pthread_mutex_unlock(&c->lock);

	if (slot < 0) {
		char name[32];
		chunk_name(idx, name);
		fd = openat(c->imagefd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			return -ENOENT;
		touch = true;
	}
	bool ok = read_whole(fd, buf, len, off);
	if (ok && touch)
		futimens(fd, NULL);	/* most recently used */

	pthread_mutex_lock(&c->lock);
	if (slot >= 0) {
		if (!ok)	/* shorter than asked, or truncated under us: forget it */
			c->slots[slot].dropped = true;
		spare = slot_put(c, slot);
	} else if (!ok || !slot_install(c, idx, fd, now, &spare)) {
		spare = fd;
	}
	pthread_mutex_unlock(&c->lock);
	if (spare >= 0)
		close(spare);
	return ok ? 0 : -ENOENT;
}

int chunk_cache_get(struct chunk_cache *c, uint64_t idx, void *buf, size_t len)
{
	return chunk_cache_read(c, idx, 0, buf, len);
}

int chunk_cache_advise(struct chunk_cache *c, uint64_t idx)
{
	int spare = -1;
	bool kept;
	pthread_mutex_lock(&c->lock);
	kept = false;
	for (int i = 0; i < FD_SLOTS && !kept; i++)
		kept = c->slots[i].fd >= 0 && !c->slots[i].dropped && c->slots[i].idx == idx;
	pthread_mutex_unlock(&c->lock);
	if (kept)
		return 0;	/* advised already, or read a moment ago */

	char name[32];
	chunk_name(idx, name);
	int fd = openat(c->imagefd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -ENOENT;
	/* the disk reads start now, in the background; the next read finds them done */
	posix_fadvise(fd, 0, 0, POSIX_FADV_WILLNEED);
	pthread_mutex_lock(&c->lock);
	/* touched long ago: its first read refreshes the mtime, an unread advice does not */
	if (!slot_install(c, idx, fd, now_ns() - TOUCH_EVERY_NS, &spare))
		spare = fd;
	pthread_mutex_unlock(&c->lock);
	if (spare >= 0)
		close(spare);
	return 0;
}

/*
 * Writes name in the image's directory through a temporary file renamed
 * into place (flags: 0 or RENAME_NOREPLACE); false if it was not stored.
 */
static bool store(struct chunk_cache *c, const char *name, const void *buf, size_t len,
		  unsigned flags)
{
	char tmp[64];
	snprintf(tmp, sizeof(tmp), ".%s.%d.%u", name, (int)getpid(),
		 atomic_fetch_add(&c->tmp_seq, 1));
	int fd = openat(c->imagefd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return false;
	bool ok = write(fd, buf, len) == (ssize_t)len;
	close(fd);
	if (!ok || renameat2(c->imagefd, tmp, c->imagefd, name, flags) < 0) {
		unlinkat(c->imagefd, tmp, 0);
		return false;
	}
	return true;
}

void chunk_cache_set_size(struct chunk_cache *c, uint64_t size)
{
	char text[32];
	int n = snprintf(text, sizeof(text), "%" PRIu64 "\n", size);
	store(c, ".size", text, (size_t)n, 0);
}

int chunk_cache_get_size(struct chunk_cache *c, uint64_t *size)
{
	char text[32] = "";
	int fd = openat(c->imagefd, ".size", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -ENOENT;
	ssize_t n = read(fd, text, sizeof(text) - 1);
	close(fd);
	char *end;
	errno = 0;
	unsigned long long v = n > 0 ? strtoull(text, &end, 10) : 0;
	if (n <= 0 || errno || *end != '\n' || v == 0)
		return -ENOENT;
	*size = v;
	return 0;
}

void chunk_cache_put(struct chunk_cache *c, uint64_t idx, const void *buf, size_t len)
{
	char name[32];
	chunk_name(idx, name);
	/* no replacing: another thread or process stored the same chunk first */
	if (!store(c, name, buf, len, RENAME_NOREPLACE))
		return;
	uint64_t total = atomic_fetch_add(&c->bytes, len) + len;
	if (total > c->limit || atomic_fetch_add(&c->added, len) + len >= c->limit / SLACK)
		evict(c);
}

void chunk_cache_drop(struct chunk_cache *c, uint64_t idx)
{
	char name[32];
	chunk_name(idx, name);
	pthread_mutex_lock(&c->lock);
	int fd = slot_forget(c, idx);
	pthread_mutex_unlock(&c->lock);
	if (fd >= 0)
		close(fd);
	unlinkat(c->imagefd, name, 0);
}

uint64_t chunk_cache_bytes(struct chunk_cache *c)
{
	return atomic_load(&c->bytes);
}

const char *chunk_cache_dir(struct chunk_cache *c)
{
	return c->dir;
}
