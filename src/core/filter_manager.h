/*
 * The filter manager: the stack of registered filters in altitude order and
 * the dispatch of one operation through it (pre callbacks top-down, the
 * lower, post callbacks bottom-up for the filters that asked).
 *
 * It knows nothing of FUSE: the frontend embeds a struct fm_call in each
 * request, fills call->op and calls fm_dispatch(); fm_call.finish is called
 * exactly once when the result is final, from whatever thread completed it.
 */
#ifndef VENEER_FILTER_MANAGER_H
#define VENEER_FILTER_MANAGER_H

#include <stdint.h>

#include "core/objects.h"

struct fm_call;
typedef void fm_lower_fn(struct vn_op *op);
typedef void fm_finish_fn(struct fm_call *call);

struct fm_call {
	struct vn_op op;		/* first: filters see &call->op */
	fm_finish_fn *finish;
	fm_finish_fn *on_pending;	/* called before a pended pre returns; may be NULL */
	uint32_t post_mask;		/* filters whose post runs on the way up */
	int level;			/* filter running its pre, while pended */
	void *post_ctx[VN_MAX_FILTERS];
};

/* A named port a filter opened (filter_ports.c). */
struct fm_port {
	char name[VN_PORT_NAME_MAX];
	vn_port_fn *fn;
	void *priv;
};

struct vn_filter {
	const struct vn_filter_ops *ops;
	unsigned int index;		/* slot in node and file context arrays */
	void *priv;
	void *dl_handle;		/* dlopen handle of an out-of-tree filter, or NULL */
	char *origin;			/* path of the shared object; NULL: built in */
	vn_pre_fn *pre[VN_OP_COUNT];
	vn_post_fn *post[VN_OP_COUNT];
	/* Ports: protected by filter_ports.c's port_lock. */
	struct fm_port ports[VN_MAX_PORTS];
	unsigned int nports;
};

/* Sets the bottom of the stack. */
void fm_init(fm_lower_fn *lower);

/*
 * Registers a filter (before the mount starts serving).  args is passed to
 * ops->attach.  dl_handle: takes ownership, may be NULL.  origin: the
 * object's path (copied), NULL for a built-in filter.
 * Returns 0, -EINVAL (bad version or table), -ENOSPC (too many filters) or
 * what attach returned.
 */
int fm_register(const struct vn_filter_ops *ops, const char *args, void *dl_handle,
		const char *origin);

/*
 * The registered filters, highest altitude first, into out; returns how
 * many.  Called on the control thread.
 */
unsigned int fm_filters(struct vn_filter *out[VN_MAX_FILTERS]);

/* The registered filter named NAME, or NULL. */
struct vn_filter *fm_find(const char *name);

/* Detaches every filter, lowest altitude first. */
void fm_shutdown(void);

/* True when some filter has a callback for OP. */
bool fm_has_handler(enum vn_opcode op);

/* True when a filter must see every open: the kernel may not skip them. */
bool fm_wants_opens(void);

/* Whether reads and writes of real files must reach the daemon now (no passthrough). */
bool fm_data_wanted(void);

void fm_dispatch(struct fm_call *call);

/* Frees the filter contexts in slots (a node's or file's) and the array. */
void fm_free_node_contexts(void **slots);
void fm_free_file_contexts(void **slots);

#endif
