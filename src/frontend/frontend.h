/*
 * The frontend: the only code that knows libfuse.  Turns each FUSE request
 * into a struct vn_op, hands it to the filter manager and turns the
 * finished record into exactly one reply.
 */
#ifndef VENEER_FRONTEND_H
#define VENEER_FRONTEND_H

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>
#include <stdbool.h>

struct node_table;

struct frontend_config {
	double entry_timeout;		/* seconds the kernel keeps names */
	double attr_timeout;		/* seconds the kernel keeps attributes */
	double negative_timeout;	/* seconds the kernel remembers a missing name; 0: never */
	bool keep_cache;		/* keep page cache across opens */
	bool cache_readdir;		/* let the kernel cache listings */
	bool posix_acl;			/* kernel checks ACLs too (with default_permissions) */
	bool skip_opens;		/* the kernel opens files without asking (cleared at init
					   when it cannot, or a filter handles open/release/flush) */
	bool skip_opendirs;		/* ... and directories (set at init: with skip_opens
					   and cache_readdir, when the kernel can) */
	bool passthrough;		/* hand real regular files to the kernel (wire.c) */
	bool killpriv;			/* ask for FUSE_HANDLE_KILLPRIV_V2 (wire.c) */
	bool uring;			/* ask for FUSE over io_uring (uring.c) */
};

struct vn_file;

void frontend_init(struct node_table *nodes, const struct frontend_config *cfg);
const struct fuse_lowlevel_ops *frontend_ops(void);

/* Calls FN for every open file, under the files' lock: FN must not block. */
void frontend_each_file(void (*fn)(struct vn_file *f, void *arg), void *arg);

/* After the session ends: closes and frees the files the kernel never released. */
void frontend_release_all(void);

/*
 * Whether the kernel opens files without asking.  Set before mounting and
 * cleared by INIT on a FUSE thread; threads that may run before INIT (the
 * control thread) read it here.
 */
bool frontend_skips_opens(void);

#endif
