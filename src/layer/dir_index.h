/*
 * Name indexes of large directories of an immutable source, so a lookup
 * does not scan the directory: without them listing a directory of n
 * entries with their attributes costs n^2.
 *
 * One cache per source, bounded by the number of names it holds (when a
 * new index would pass the bound, the cache is emptied first).  All calls
 * are thread-safe; the lock is a leaf, held for hash probes only.
 */
#ifndef VENEER_DIR_INDEX_H
#define VENEER_DIR_INDEX_H

#include <stddef.h>
#include <stdint.h>

struct dir_index_cache;
struct dir_index;

struct dir_index_cache *dir_index_cache_new(size_t max_names);	/* NULL: no memory */
void dir_index_cache_free(struct dir_index_cache *c);

/*
 * Looks NAME up in the index of directory DIR: 1 and *ret_ref when found,
 * 0 when the index says it is absent, -ENOENT when there is no index.
 */
int dir_index_lookup(struct dir_index_cache *c, uint64_t dir, const char *name, uint64_t *ret_ref);

/* Building one: add every entry, then publish (or drop) it. */
struct dir_index *dir_index_new(void);
int dir_index_add(struct dir_index *ix, const char *name, uint64_t ref);	/* 0 or -ENOMEM */
/* Takes ownership of IX; a concurrent build of the same DIR loses harmlessly. */
void dir_index_publish(struct dir_index_cache *c, uint64_t dir, struct dir_index *ix);
void dir_index_drop(struct dir_index *ix);
size_t dir_index_size(const struct dir_index *ix);

#endif
