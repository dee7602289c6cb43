/*
 * Inode numbers shown to applications, unique within the mount.
 *
 * Objects on the lower's own device keep their st_ino.  Objects on any other
 * device (a filesystem mounted below LOWER, later: layers) get
 *   bit 63 | (device index + 1) << 47 | ino        when ino < 2^47,
 * like overlayfs's xino, and a sequential number with bits 63 and 62 set
 * otherwise (remembered for the life of the mount: the fallback mapping for
 * filesystems that use all 64 bits).
 */
#ifndef VENEER_INODE_MAP_H
#define VENEER_INODE_MAP_H

#include <stdint.h>
#include <sys/types.h>

struct inode_map;

struct inode_map *inode_map_new(dev_t root_dev);	/* NULL: out of memory */
void inode_map_free(struct inode_map *m);
uint64_t inode_map_get(struct inode_map *m, dev_t dev, ino_t ino);

#endif
