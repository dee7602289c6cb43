/*
 * Layer sources: the read-only trees a layer projects into the view.
 *
 * Two implementations behind one interface: a squashfs image read in
 * process (source_squashfs.c, the only file that includes libsquashfuse's
 * headers) and a plain directory (source_dir.c).  Every call is safe from
 * any thread at any time; calls on one source may run in parallel.
 *
 * An entry is named by a ref (an opaque number the source hands out from
 * source_root / source_lookup) together with its path relative to the
 * source's root (rel: "" for the root, no leading '/', components separated
 * by '/').  Each implementation uses the one it needs: squashfs the ref,
 * directories the path.  Callers always pass both, as they were returned.
 *
 * Attributes (struct stat) are those stored in the source: st_ino is the
 * entry's number inside the source (hard links share it; stable for the
 * same source after reopening), owners and modes as stored, st_dev 0.
 *
 * Names a source returns are checked: names containing '/', empty, "." or
 * "..", or longer than NAME_MAX never reach the caller (skipped in
 * listings, counted in source_stats.bad_names, logged once per source).
 *
 * Errors are negative errno: -ENOENT, -ENOTDIR, -EINVAL (bad name or
 * wrong entry type), -ENOMEM, and -EIO for anything the source finds
 * corrupt or changed (logged with the source's name).
 */
#ifndef VENEER_SOURCE_H
#define VENEER_SOURCE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "layer/http_reader.h"

struct source;

enum source_kind {
	SOURCE_SQUASHFS,
	SOURCE_DIRECTORY,
};

struct source_stats {
	uint64_t entries;		/* objects in the source (inodes), as far as known */
	uint64_t bytes;			/* sum of regular file sizes (image: bytes used) */
	uint64_t bad_names;		/* names refused so far */
	const char *integrity;		/* "unverified", "verified" (against the image's
					   footer), "pinned" (against a digest); NULL for a
					   directory */
	char digest[80];		/* "sha256:<hex>" of a verified image, else "" */
	bool remote;			/* an image at a URL: fetch figures below */
	struct remote_stats fetch;
};

/*
 * Opens the source at PATH relative to DIRFD (AT_FDCWD, or a descriptor
 * of the lower when the source lies inside the covered tree).  A regular
 * file must be a squashfs image; a directory becomes a directory source.
 * NAME is how messages and status name it (usually the absolute path the
 * user gave).  On failure returns -errno and writes a one-line reason to
 * err ("not a squashfs image (bad magic)", "truncated image: ...", ...)
 * without the source's name.
 */
int source_open(int dirfd, const char *path, const char *name, struct source **ret,
		char *err, size_t errlen);

/*
 * The same, pinning an image to digest (a SHA-256 root hash, or NULL):
 * an image whose hash tree has another root, or has no tree, is refused
 * with both hashes in err; a directory is refused.  Without a digest an
 * image that carries a tree is verified against the root in its footer,
 * and one without is read unverified (see image_reader.h).
 */
int source_open_pinned(int dirfd, const char *path, const char *name, const uint8_t *digest,
		       struct source **ret, char *err, size_t errlen);

/*
 * The squashfs image at an http:// or https:// URL (http_is_url), read
 * lazily and cached as http_reader.h says; digest as above.
 */
int source_open_remote(const char *url, const struct remote_options *o, const uint8_t *digest,
		       struct source **ret, char *err, size_t errlen);

/*
 * How many reads libsquashfuse asked for that start past the end of an
 * image (of its data, for a verified image), in this process: an offset
 * the library followed without a check.  They fail; the fuzz target
 * (tests/fuzz/fuzz_source.c) aborts on one.
 */
uint64_t source_squashfs_reads_past_end(void);

/* Reference counting: source_open returns one reference. */
void source_get(struct source *s);
void source_put(struct source *s);

enum source_kind source_kind(const struct source *s);
const char *source_kind_name(const struct source *s);	/* "squashfs" / "directory" */
const char *source_name(const struct source *s);

/*
 * Identity of the source for inode numbers: the same image (superblock
 * fields and size) or the same directory (device and inode of its root)
 * gives the same key after reopening.
 */
uint64_t source_key(const struct source *s);

void source_get_stats(struct source *s, struct source_stats *st);

int source_root(struct source *s, uint64_t *ret_ref, struct stat *st);

/* NAME in directory (dir_ref, dir_rel); fills the child's ref and attributes. */
int source_lookup(struct source *s, uint64_t dir_ref, const char *dir_rel, const char *name,
		  uint64_t *ret_ref, struct stat *st);

int source_getattr(struct source *s, uint64_t ref, const char *rel, struct stat *st);

/*
 * Calls fn for each entry of a directory ("." and ".." excluded), in the
 * source's own order.  fn returns 0 to go on or a negative errno to stop;
 * that value is returned.
 */
typedef int source_dirent_fn(void *arg, const char *name, uint64_t ino, mode_t type);
int source_readdir(struct source *s, uint64_t ref, const char *rel, source_dirent_fn *fn,
		   void *arg);

/* The link's target into buf (NUL-terminated); returns its length or -errno (-ERANGE: too small). */
ssize_t source_readlink(struct source *s, uint64_t ref, const char *rel, char *buf, size_t size);

/* Up to size bytes at off of a regular file; short only at end of file. */
ssize_t source_read(struct source *s, uint64_t ref, const char *rel, void *buf, size_t size,
		    off_t off);

/*
 * Extended attributes, as listxattr(2)/getxattr(2): size 0 probes the
 * length; -ERANGE when size is too small; -ENODATA for a missing name.
 */
ssize_t source_listxattr(struct source *s, uint64_t ref, const char *rel, char *buf, size_t size);
ssize_t source_getxattr(struct source *s, uint64_t ref, const char *rel, const char *name,
			void *buf, size_t size);

#endif
