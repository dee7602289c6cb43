/*
 * The lower: the bottom of the filter stack.  Executes operations on the
 * real tree with fd-relative syscalls on descriptors opened before the
 * mount; never resolves a path through veneer's own mount point.
 */
#ifndef VENEER_LOWER_H
#define VENEER_LOWER_H

#include <stdbool.h>

#include "core/objects.h"

struct node_table;

/*
 * act_as_caller: create objects with the caller's fsuid/fsgid (the daemon
 * runs as root and other users reach the mount).
 */
int lower_init(struct node_table *nodes, bool act_as_caller);

/*
 * Creations apply the caller's umask themselves (the kernel sends it
 * unapplied: FUSE_CAP_DONT_MASK).  Set before any request is served.
 */
void lower_set_apply_umask(bool on);

/* Executes OP (the filter manager's bottom); sets op->error and the outputs. */
void lower_execute(struct vn_op *op);

#endif
