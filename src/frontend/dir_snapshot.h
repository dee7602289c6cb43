/*
 * A directory listing as the kernel is served it: the whole directory
 * (after the filters edited it), ordered by offset, shared by reference.
 *
 * Offsets come from the names, not from positions: "." is 1, ".." is 2,
 * any other name a 62-bit hash of itself (plus 3).  Two listings of the
 * same directory therefore agree on every offset of a name both hold, so
 * a reader may continue in a newer listing than the one it started in and
 * still sees each name that stayed exactly once.  That is what lets the
 * kernel list directories without opening them (a listing per node
 * instead of per handle, see fuse_readdir.c), and keeps telldir/seekdir
 * working within a handle.  Two names whose hashes collide in one listing
 * get consecutive offsets there; only they could be skipped or repeated
 * when a listing is replaced mid-way.
 */
#ifndef VENEER_DIR_SNAPSHOT_H
#define VENEER_DIR_SNAPSHOT_H

#include <sys/types.h>

#include <veneer/filter.h>

struct dir_snapshot {
	unsigned int refs;		/* atomic */
	struct vn_dirlist *list;	/* owned; sorted by offset */
	off_t *offs;			/* offs[i]: the offset of entry i, increasing */
};

/* Takes LIST (freed with the snapshot, or now on failure): NULL only without memory. */
struct dir_snapshot *dir_snapshot_new(struct vn_dirlist *list);
struct dir_snapshot *dir_snapshot_get(struct dir_snapshot *s);	/* accepts NULL */
void dir_snapshot_put(struct dir_snapshot *s);			/* accepts NULL */
/* Index of the first entry after offset OFF (count when none). */
size_t dir_snapshot_seek(const struct dir_snapshot *s, off_t off);

#endif
