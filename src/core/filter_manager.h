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
struct fm_stack;
typedef void fm_lower_fn(struct vn_op *op);
typedef void fm_finish_fn(struct fm_call *call);

struct fm_call {
	struct vn_op op;		/* first: filters see &call->op */
	struct fm_stack *stack;		/* the stack this call runs through, start to reply */
	fm_finish_fn *finish;
	/*
	 * Called just before finish, except when the call finishes inside
	 * fm_call_interrupt() on the interrupting thread; may be NULL.  The
	 * frontend stops interrupts reaching the call there.
	 */
	fm_finish_fn *disarm;
	uint32_t post_mask;		/* filters whose post runs on the way up */
	int level;			/* atomic: filter running its pre, or pending */
	unsigned int cancel_state;	/* atomic: FM_IN_PRE, FM_INTERRUPTED; zeroed by the caller */
	void *post_ctx[VN_MAX_FILTERS];
};

#define FM_IN_PRE 1u		/* a pre runs, or its filter pends the call */
#define FM_INTERRUPTED 2u	/* the application was interrupted: EINTR at the next step */

struct port_client;
struct port_stream;

/* A named port a filter opened (filter_ports.c). */
struct fm_port {
	char name[VN_PORT_NAME_MAX];
	vn_port_fn *fn;
	void *priv;
	struct port_client *client;	/* the connected client, or NULL */
	const struct vn_stream_ops *stream;	/* a stream port (fn NULL), or NULL */
	struct port_stream *streams;	/* a stream port's open streams */
};

struct vn_filter {
	/*
	 * &ops_copy: the object's ops as far as its version has them, later
	 * fields zero, so no caller needs to check the version before reading one.
	 */
	const struct vn_filter_ops *ops;
	struct vn_filter_ops ops_copy;
	unsigned int index;		/* slot in node and file context arrays */
	void *priv;
	void *dl_handle;		/* dlopen handle of an out-of-tree filter, or NULL */
	char *origin;			/* path of the shared object; NULL: built in */
	vn_pre_fn *pre[VN_OP_COUNT];
	vn_post_fn *post[VN_OP_COUNT];
	char attach_err[2048];		/* vn_attach_error's text while attach runs */
	bool live;			/* loaded on a live mount (fm_load_live) */
	bool has_ports;			/* atomic: opened a port that may ask, so it may pend on a client */
	bool serves_virtual;		/* atomic: made a virtual node; cannot be unloaded */
	unsigned int nctx;		/* atomic: its node and file contexts alive */
	int data_wants;			/* atomic: its share of vn_want_data's count */
	/* Ports: protected by filter_ports.c's port_lock. */
	struct fm_port ports[VN_MAX_PORTS];
	unsigned int nports;
};

/*
 * Checks what the daemon must know before reading OPS: a version it loads
 * and, from version 4, a size within what that version and the daemon
 * know.  0, or -EINVAL with a message naming ORIGIN and both versions.
 */
int fm_ops_check(const struct vn_filter_ops *ops, const char *origin, char *err, size_t errlen);

/* Sets the bottom of the stack. */
void fm_init(fm_lower_fn *lower);

/*
 * Registers a filter (before the mount starts serving).  args is passed to
 * ops->attach.  dl_handle: takes ownership, may be NULL.  origin: the
 * object's path (copied), NULL for a built-in filter.
 * Returns 0, or -EINVAL (bad version or table), -ENOSPC (too many filters)
 * or what attach returned, with a message in err: a built-in filter's
 * vn_attach_error() text as it is (the user named an option, not the
 * filter), any other's after the filter's name.
 */
int fm_register(const struct vn_filter_ops *ops, const char *args, void *dl_handle,
		const char *origin, char *err, size_t errlen);

/*
 * Registers a filter on a live mount: it attaches at its altitude for
 * calls that begin afterwards.  OPENS_SKIPPED: the kernel skips opens on
 * this mount, so a filter that needs every open is refused (-EOPNOTSUPP).
 * Also -EEXIST (a filter of that name is loaded) and fm_register's errors,
 * with a message in err.  On the control thread.
 */
int fm_load_live(const struct vn_filter_ops *ops, const char *args, void *dl_handle,
		 const char *origin, bool opens_skipped, char *err, size_t errlen);

/*
 * Visits the context slot array of every node (NODE true) and open file (SLOTS may be
 * NULL), under whatever lock keeps the array alive; VISIT must not block.
 */
typedef void fm_slot_visit_fn(void **slots, bool node, void *arg);
typedef void fm_sweep_fn(fm_slot_visit_fn *visit, void *arg);

/*
 * Unloads the filter NAME from a live mount: calls that begin afterwards
 * no longer reach it; waits (at most FM_DRAIN_TIMEOUT_MS) until the calls
 * that did, pended ones too, have replied; asks its teardown (a refusal
 * stands unless FORCE); frees its contexts (SWEEP finds them), detaches
 * and dlcloses it.  When draining times out or teardown refuses, the
 * filter goes back into the stack and -EBUSY / teardown's error is
 * returned.  -ENOENT (no such filter), -EPERM (built in), -EBUSY (it
 * serves virtual nodes), with a message in err.  On the control thread.
 */
#define FM_DRAIN_TIMEOUT_MS 5000
int fm_unload(const char *name, bool force, fm_sweep_fn *sweep, char *err, size_t errlen);

/*
 * The filters now in the stack, highest altitude first, into out; returns
 * how many.  They stay valid on the control thread (which alone unloads).
 */
unsigned int fm_filters(struct vn_filter *out[VN_MAX_FILTERS]);

/* The filter named NAME now in the stack, or NULL; as fm_filters. */
struct vn_filter *fm_find(const char *name);

/*
 * A call runs through the stack that was current when it began, also
 * across pending, and holds it until fm_call_end() (after the reply): so
 * an unload knows when the calls that may reach a filter are done.
 */
void fm_call_begin(struct fm_call *call);
void fm_call_end(struct fm_call *call);

/* True when a filter in CALL's stack has a callback for OP. */
bool fm_call_handles(const struct fm_call *call, enum vn_opcode op);

/* Detaches every filter, lowest altitude first.  No call may be running. */
void fm_shutdown(void);

/* True when a filter must see every open: the kernel may not skip them. */
bool fm_wants_opens(void);

/* Whether reads and writes of real files must reach the daemon now (no passthrough). */
bool fm_data_wanted(void);

/*
 * True when CALL may be pended by a filter that can be told it was
 * cancelled: a filter in its stack handles its opcode and has a cancel
 * callback or ports.  Only then does the frontend pass interrupts on.
 */
bool fm_call_cancellable(const struct fm_call *call);

/*
 * The application gave up on CALL (FUSE INTERRUPT).  When a filter's pre
 * runs or pends it, the questions asked about it are withdrawn (their DONE
 * gets -EINTR) and then, unless that finished it, the filter's cancel
 * callback is called; otherwise the call completes with -EINTR before its
 * next filter or the lower.  On the thread that received the interrupt;
 * CALL must stay alive until this returns (libfuse's request lock).
 */
void fm_call_interrupt(struct fm_call *call);

/* Runs CALL (begun with fm_call_begin) through its stack. */
void fm_dispatch(struct fm_call *call);

/* Frees the filter contexts in slots (a node's or file's) and the array. */
void fm_free_node_contexts(void **slots);
void fm_free_file_contexts(void **slots);

#endif
