/* Shared by the lower's files only. */
#ifndef VENEER_LOWER_INTERNAL_H
#define VENEER_LOWER_INTERNAL_H

#include <stdio.h>

#include "core/inode_map.h"
#include "core/node_table.h"
#include "lower/lower.h"

struct lower {
	struct node_table *nodes;
	struct inode_map *imap;
	bool act_as_caller;
	bool apply_umask;
};

extern struct lower lower_ctx;

#define PROC_FD_PATH_MAX 32
/* "/proc/self/fd/N": the path that reopens or acts on an O_PATH descriptor. */
static inline const char *proc_fd_path(char buf[PROC_FD_PATH_MAX], int fd)
{
	snprintf(buf, PROC_FD_PATH_MAX, "/proc/self/fd/%d", fd);
	return buf;
}

/* Turns a lower stat into what applications see (inode number mapping). */
void lower_fix_stat(struct stat *st);

/*
 * Stats NAME in the directory PFD and takes a kernel lookup on its node.
 * keep_fd: open it (O_PATH) and cache the descriptor in the node, for an
 * object just created, which the next operations will need.
 */
int lower_entry_from_name(struct vn_op *op, struct vn_node *parent, int pfd, const char *name,
			  bool keep_fd);

/* Switches the thread's filesystem identity to the caller for a creation. */
void creds_enter(const struct vn_caller *caller);
void creds_leave(void);

/*
 * Clears setuid, and setgid where group-executable, of the object open as
 * fd (any descriptor, O_PATH too): what the kernel does when a caller
 * without CAP_FSETID writes or truncates, left to the daemon under killpriv
 * v2.  The daemon's own write would keep them (it has CAP_FSETID).
 * unless_capable: for requests where the kernel did not say (fallocate,
 * copy_file_range), the caller whose CAP_FSETID keeps them; else NULL.
 */
int creds_kill_suidgid(int fd, const struct vn_caller *unless_capable);

void lower_entry_op(struct vn_op *op);
void lower_file_op(struct vn_op *op);
void lower_dir_op(struct vn_op *op);
void lower_xattr_op(struct vn_op *op);

#endif
