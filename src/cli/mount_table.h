/* What is mounted where: /proc/self/mountinfo, and dead veneer mounts. */
#ifndef VENEER_MOUNT_TABLE_H
#define VENEER_MOUNT_TABLE_H

#include <stdbool.h>
#include <stddef.h>

/* Writes the fstype of the mount whose mount point is exactly PATH; false when none. */
bool mount_table_fstype(const char *path, char *fstype, size_t size);

/* True when PATH is a veneer mount whose daemon is gone (ENOTCONN). */
bool mount_table_is_dead_veneer(const char *path);

/* Unmounts PATH (lazily when lazy); as root with umount2, else through fusermount3. */
int mount_table_unmount(const char *path, bool lazy);

#endif
