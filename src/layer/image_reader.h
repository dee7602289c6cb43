/*
 * Readers of an image's bytes: what libsquashfuse (and veneer's own
 * superblock check) reads an image through.  Readers stack: a file
 * reader preads a local descriptor; a verity reader sits on another
 * reader and hands out only bytes that match the image's hash tree
 * (verity.h).  The HTTP reader (http_reader.h) takes the file reader's
 * place for a remote image.
 *
 * Every function may be called from any thread, in parallel.
 */
#ifndef VENEER_IMAGE_READER_H
#define VENEER_IMAGE_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "layer/verity.h"

struct image_reader;

struct image_reader_ops {
	/* Up to size bytes at off; short only at the end; -errno (-EIO: corrupt). */
	ssize_t (*read)(struct image_reader *r, void *buf, size_t size, uint64_t off);
	void (*destroy)(struct image_reader *r);
	/*
	 * Optional: forget any copy of [off, off+size) kept below, so that
	 * the next read fetches it again.  The verity reader calls it when a
	 * block does not match and then reads once more: a bad cached copy
	 * heals, a bad original still fails.
	 */
	void (*invalidate)(struct image_reader *r, uint64_t off, uint64_t size);
	/*
	 * Optional: bring [off, off+size) close (for a remote image, into its
	 * chunk cache, with one request for each run of missing chunks), for
	 * reads that will follow.  Best effort: a failure here is the
	 * following reads' to report.
	 */
	void (*prefetch)(struct image_reader *r, uint64_t off, size_t size);
};

/* Embedded first in each implementation. */
struct image_reader {
	const struct image_reader_ops *ops;
	uint64_t size;			/* bytes readable */
};

static inline ssize_t image_reader_read(struct image_reader *r, void *buf, size_t size,
					uint64_t off)
{
	return r->ops->read(r, buf, size, off);
}

static inline void image_reader_free(struct image_reader *r)
{
	if (r)
		r->ops->destroy(r);
}

/* All of [off, off+size): 0, -EIO when short, or the reader's -errno. */
int image_reader_read_exact(struct image_reader *r, void *buf, size_t size, uint64_t off);

/* preads fd (borrowed: the caller closes it after freeing the reader); -ENOMEM. */
int image_reader_file_new(int fd, uint64_t size, struct image_reader **ret);

/* What an image's reads are checked against (veneer status shows it). */
enum image_integrity {
	IMAGE_UNVERIFIED,		/* no hash tree: served as read */
	IMAGE_VERIFIED_FOOTER,		/* checked against the root in its own footer */
	IMAGE_VERIFIED_PINNED,		/* checked against a digest the user gave */
};

/* "unverified", "verified" (against its footer), "pinned" (against a digest) */
const char *image_integrity_name(enum image_integrity i);

/*
 * Opens the hash tree of the image below (which the new reader owns on
 * success; on failure the caller keeps it).  The new reader's size is
 * the data area (the squashfs image padded to 4 KiB); reads beyond it
 * return 0 bytes.  With pin (a SHA-256 root), the tree must have that
 * root; without, the footer's.  The root level is checked here.
 *
 * Returns 0, -ENODATA when the image has no tree (no footer), or -EINVAL
 * / -EIO / -errno with a one-line reason in err.  name is what log lines
 * about corrupt blocks call the image.  root (may be NULL) receives the
 * root the tree is checked against.
 */
int image_reader_verity_open(struct image_reader *below, const uint8_t *pin, const char *name,
			     struct image_reader **ret, uint8_t *root, char *err, size_t errlen);

/*
 * The reader for a local image: the verity reader over the file when the
 * image carries a tree (integrity *integ says against what), the file
 * itself when it does not.  With pin, an image without a tree is refused.
 * fd stays the caller's.  Returns 0 or -errno with a reason in err.
 */
int image_reader_open_file(int fd, uint64_t size, const uint8_t *pin, const char *name,
			   struct image_reader **ret, enum image_integrity *integ, uint8_t *root,
			   char *err, size_t errlen);

/*
 * The same over any reader below (owned by the new reader on success,
 * freed on failure).
 */
int image_reader_open_verified(struct image_reader *below, const uint8_t *pin, const char *name,
			       struct image_reader **ret, enum image_integrity *integ,
			       uint8_t *root, char *err, size_t errlen);

#endif
