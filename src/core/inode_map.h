/*
 * Inode numbers shown to applications, unique within the mount.
 *
 * Objects on the lower's own device keep their st_ino.  Objects on any other
 * device (a filesystem mounted below LOWER, later: layers) get
 *   bit 63 | (device index + 1) << 47 | ino        when ino < 2^47,
 * like overlayfs's xino, and a sequential number with bits 63 and 62 set
 * otherwise (remembered for the life of the mount: the fallback mapping for
 * filesystems that use all 64 bits).  Device indexes below 2^14 are
 * for devices, the others for layer sources (inode_map_get_source).
 */
#ifndef VENEER_INODE_MAP_H
#define VENEER_INODE_MAP_H

#include <stdint.h>
#include <sys/types.h>

struct inode_map;

struct inode_map *inode_map_new(dev_t root_dev);	/* NULL: out of memory */
void inode_map_free(struct inode_map *m);
uint64_t inode_map_get(struct inode_map *m, dev_t dev, ino_t ino);

/*
 * The number of entry INO of a layer source identified by KEY.  Sources
 * take the upper half of the device indexes (bit 61 set), at a position
 * derived from KEY, so a source gets the same numbers again after it is
 * detached and attached, or after a remount, unless another source already
 * took that position (then the next free one is used).
 */
uint64_t inode_map_get_source(struct inode_map *m, uint64_t key, uint64_t ino);

#endif
