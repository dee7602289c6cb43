/*
 * The on-disk cache of a remote image's chunks, shared by all of one
 * user's mounts and processes: DIR/KEY/<chunk number in hex>, one file a
 * chunk, where KEY names one image (its pinned digest, or a hash of its
 * URL, validator and size).  It survives remounts and reboots.
 *
 * Nothing here trusts what it reads back: a chunk of a verified image is
 * checked against the hash tree on every read by the verity reader above
 * (image_reader.h), and one whose copy is bad is dropped and fetched
 * again.  A truncated file is a miss.
 *
 * Processes share the cache without a lock on the chunks: a chunk is
 * written to a temporary name and renamed into place, so a reader sees
 * a whole file or none.  Eviction (least recently used first, by mtime,
 * which a hit refreshes) takes DIR/lock with flock(LOCK_EX | LOCK_NB), so
 * one process evicts at a time and no thread ever waits for it; each
 * process counts the whole directory again whenever it added a tenth of
 * the limit, so the bound holds within that much per writer.  Eviction
 * unlinks files: a read that already opened a chunk keeps reading it, so
 * no chunk a read is using disappears under it.
 *
 * Each cache keeps the descriptors of the 192 chunk files it read or was
 * advised of last, so that a warm read is one pread; a kept chunk still reads right after
 * another process unlinked it (chunks are never rewritten in place), and
 * dropping a chunk forgets its descriptor.  A hit refreshes the mtime at
 * most once a second.
 *
 * All functions may be called from any thread, in parallel.
 */
#ifndef VENEER_CHUNK_CACHE_H
#define VENEER_CHUNK_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct chunk_cache;

/* DIR when given, else /var/cache/veneer for root, $XDG_CACHE_HOME/veneer
 * (or ~/.cache/veneer) otherwise, into out. */
void chunk_cache_default_dir(char *out, size_t outlen);

/*
 * Opens the cache of image KEY under DIR (NULL: the default), bounded to
 * limit bytes over all images in DIR; with create, making the directories
 * as needed (mode 0700), else -ENOENT when they are missing.  Returns 0
 * or -errno with a reason in err.
 */
int chunk_cache_open(const char *dir, const char *key, uint64_t limit, bool create,
		     struct chunk_cache **ret, char *err, size_t errlen);
void chunk_cache_free(struct chunk_cache *c);

/* Chunk idx, exactly len bytes, into buf: 0, or -ENOENT when missing or short. */
int chunk_cache_get(struct chunk_cache *c, uint64_t idx, void *buf, size_t len);
/* Bytes [off, off+len) of chunk idx into buf: 0, or -ENOENT when missing or short. */
int chunk_cache_read(struct chunk_cache *c, uint64_t idx, size_t off, void *buf, size_t len);
/*
 * A read of chunk idx will follow: when the chunk is cached, starts
 * reading its file from disk in the background (posix_fadvise WILLNEED)
 * and keeps its descriptor.  0 when cached, -ENOENT when not.
 */
int chunk_cache_advise(struct chunk_cache *c, uint64_t idx);
/* Stores chunk idx (best effort: a full disk only costs a refetch). */
void chunk_cache_put(struct chunk_cache *c, uint64_t idx, const void *buf, size_t len);
/* Forgets chunk idx (its copy was found bad). */
void chunk_cache_drop(struct chunk_cache *c, uint64_t idx);

/*
 * The image's size, kept beside its chunks (in KEY/.size) so that a pinned
 * image can be attached from the cache while its server is down.
 */
void chunk_cache_set_size(struct chunk_cache *c, uint64_t size);
/* 0 with the size last set, or -ENOENT. */
int chunk_cache_get_size(struct chunk_cache *c, uint64_t *size);

/* Bytes the whole cache directory holds, as last counted plus what this process added since. */
uint64_t chunk_cache_bytes(struct chunk_cache *c);
const char *chunk_cache_dir(struct chunk_cache *c);

#endif
