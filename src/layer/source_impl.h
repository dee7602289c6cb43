/*
 * Internals shared by source.c and the two implementations: the common
 * part of struct source, the operations table and the name check.
 * Nothing outside src/layer/ includes this.  It includes only system
 * headers, so source_squashfs.c can include it after libsquashfuse's.
 */
#ifndef VENEER_SOURCE_IMPL_H
#define VENEER_SOURCE_IMPL_H

#include <stdatomic.h>
#include <stdbool.h>

#include "common/hash.h"
#include "layer/source.h"

/*
 * What an implementation provides.  Every function may be called from
 * any thread, in parallel.  destroy runs once, when the last reference is
 * put, and frees the whole object (the common part included, through
 * source_base_release).
 */
struct source_ops {
	enum source_kind kind;
	const char *kind_name;
	void (*destroy)(struct source *s);
	void (*stats)(struct source *s, struct source_stats *st);	/* entries, bytes */
	int (*root)(struct source *s, uint64_t *ret_ref, struct stat *st);
	int (*lookup)(struct source *s, uint64_t dir_ref, const char *dir_rel, const char *name,
		      uint64_t *ret_ref, struct stat *st);
	int (*getattr)(struct source *s, uint64_t ref, const char *rel, struct stat *st);
	int (*readdir)(struct source *s, uint64_t ref, const char *rel, source_dirent_fn *fn,
		       void *arg);
	ssize_t (*readlink)(struct source *s, uint64_t ref, const char *rel, char *buf,
			    size_t size);
	ssize_t (*read)(struct source *s, uint64_t ref, const char *rel, void *buf, size_t size,
			off_t off);
	ssize_t (*listxattr)(struct source *s, uint64_t ref, const char *rel, char *buf,
			     size_t size);
	ssize_t (*getxattr)(struct source *s, uint64_t ref, const char *rel, const char *name,
			    void *buf, size_t size);
};

/* Embedded first in each implementation's struct. */
struct source {
	const struct source_ops *ops;
	atomic_uint refcount;
	char *name;			/* owned */
	uint64_t key;			/* set by the implementation's open */
	atomic_uint_least64_t bad_names;
	atomic_bool bad_name_logged;	/* the first bad name is logged, the rest counted */
	atomic_bool problem_logged;	/* one "corrupt"/"changed" message per source */
};

/* Fills the common part (one reference); returns -ENOMEM. */
int source_base_init(struct source *s, const struct source_ops *ops, const char *name);
void source_base_release(struct source *s);

/*
 * Whether NAME (LEN bytes, not necessarily NUL-terminated) may reach a
 * caller.  A refused name is counted and the first one logged.
 */
bool source_name_ok(struct source *s, const char *name, size_t len);

/* Logs a corruption or change once per source (later ones at debug level). */
void source_log_problem(struct source *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* 64-bit mixing for source keys (FNV-1a over the bytes, then a final mix). */
uint64_t source_hash(uint64_t h, const void *data, size_t len);
#define SOURCE_HASH_INIT FNV1A_INIT

/* The two constructors; fd is theirs on success and on failure. */
int source_squashfs_open(int fd, const struct stat *st, const char *name, const uint8_t *digest,
			 struct source **ret, char *err, size_t errlen);
/* A squashfs image at an http(s):// URL (http_reader.h). */
int source_squashfs_open_url(const char *url, const struct remote_options *o,
			     const uint8_t *digest, struct source **ret, char *err, size_t errlen);
int source_dir_open(int fd, const struct stat *st, const char *name, struct source **ret,
		    char *err, size_t errlen);

#endif
