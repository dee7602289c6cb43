/* What is mounted where: /proc/self/mountinfo, and dead veneer mounts. */
#ifndef VENEER_MOUNT_TABLE_H
#define VENEER_MOUNT_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Writes the fstype of the mount whose mount point is exactly PATH; false when none. */
bool mount_table_fstype(const char *path, char *fstype, size_t size);

/* True when PATH is a veneer mount whose daemon is gone (ENOTCONN). */
bool mount_table_is_dead_veneer(const char *path);

/*
 * Unmounts PATH (lazily when lazy); as root with umount2, else through
 * fusermount3.  0, -EBUSY (in use), -EPERM (fusermount3 refuses: not the
 * caller's mount), -ENOENT (no fusermount3) or another -errno.
 */
int mount_table_unmount(const char *path, bool lazy);

struct mount_holder {
	pid_t pid;
	char comm[17];		/* /proc/PID/comm, "?" when unreadable */
};

/*
 * The processes that keep the mount at PATH busy: an open descriptor, the
 * working or root directory, or a mapping in it.  Only processes the
 * caller may inspect in /proc, in its own mount namespace, are seen; the
 * caller itself is left out.  Returns 0 with *ret_list (caller frees) and
 * *ret_n in /proc order, or -errno (-ENOENT: nothing is mounted at PATH).
 */
int mount_table_holders(const char *path, struct mount_holder **ret_list, size_t *ret_n);

#endif
