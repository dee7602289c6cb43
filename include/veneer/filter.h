/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * veneer public filter API.
 *
 * A filter is one const struct vn_filter_ops.  The filter manager calls its
 * pre callbacks from the highest altitude down, then the lower (the real
 * filesystem), then the post callbacks bottom-up, only for filters whose pre
 * asked for one.  Filters never call "the next filter" themselves.
 *
 * This header is all a filter may include: it does not expose libfuse.
 * Every pointer a callback receives is borrowed for the duration of the call
 * unless a comment says otherwise.  See docs/filter-api.md for the verdicts
 * valid per operation and what may block.
 */
#ifndef VENEER_FILTER_H
#define VENEER_FILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The daemon is built with hidden visibility and exports exactly the
 * functions declared VN_PUBLIC here (src/filter_api.list): a filter can
 * call nothing else of the daemon's.
 */
#define VN_PUBLIC __attribute__((visibility("default")))

/*
 * The version a filter is built for (vn_filter_ops.api_version).  Version 3
 * added communication ports (vn_port_open) and, at the end of struct
 * vn_filter_ops, teardown; version 4 added the size field and cancel;
 * version 5 added stream ports (vn_port_open_stream) and I/O on the real
 * tree below the stack (vn_real_open, vn_real_openat), with the struct
 * unchanged.  The
 * daemon also loads objects built for VN_FILTER_API_MIN_VERSION and up,
 * reading only the fields their version has, and refuses newer ones; see
 * docs/filter-api.md, "Versions".
 */
#define VN_FILTER_API_VERSION 5
#define VN_FILTER_API_MIN_VERSION 2

enum vn_opcode {
	VN_OP_NONE = 0,
	VN_OP_LOOKUP,
	VN_OP_GETATTR,
	VN_OP_SETATTR,
	VN_OP_READLINK,
	VN_OP_MKNOD,
	VN_OP_MKDIR,
	VN_OP_UNLINK,
	VN_OP_RMDIR,
	VN_OP_SYMLINK,
	VN_OP_RENAME,
	VN_OP_LINK,
	VN_OP_OPEN,
	VN_OP_CREATE,
	VN_OP_READ,
	VN_OP_WRITE,
	VN_OP_FLUSH,
	VN_OP_RELEASE,
	VN_OP_FSYNC,
	VN_OP_OPENDIR,
	VN_OP_READDIR,
	VN_OP_RELEASEDIR,
	VN_OP_FSYNCDIR,
	VN_OP_STATFS,
	VN_OP_SETXATTR,
	VN_OP_GETXATTR,
	VN_OP_LISTXATTR,
	VN_OP_REMOVEXATTR,
	VN_OP_ACCESS,
	VN_OP_FALLOCATE,
	VN_OP_COPY_FILE_RANGE,
	VN_OP_LSEEK,
	VN_OP_COUNT
};

/* "lookup", "getattr", ...; NULL for out-of-range values. */
VN_PUBLIC const char *vn_opcode_name(enum vn_opcode op);

/* What an opcode is, as vn_opcode_facts() reports it: one table the daemon reads too. */
enum vn_opcode_fact {
	VN_OPF_NAMED = 1 << 0,		/* op->name is an entry of the directory op->node */
	VN_OPF_NEW_NAME = 1 << 1,	/* op->newparent and op->newname name a second entry */
	VN_OPF_ENTRY_OUT = 1 << 2,	/* success answers with op->out.entry */
	VN_OPF_CREATES = 1 << 3,	/* makes a new entry: MKNOD, MKDIR, SYMLINK, LINK, CREATE */
	VN_OPF_OPENS = 1 << 4,		/* makes an open file or directory (op->file) */
	VN_OPF_CLOSES = 1 << 5,		/* part of closing one: FLUSH, RELEASE, RELEASEDIR */
	VN_OPF_MUTATES = 1 << 6,	/* may change the tree, an object or its data */
	VN_OPF_FILE = 1 << 7,		/* works on (or makes) an open regular file */
	VN_OPF_DIR_HANDLE = 1 << 8,	/* works on (or makes) an open directory */
	VN_OPF_XATTR = 1 << 9,		/* about extended attributes; op->name, if set, names one */
	VN_OPF_DATA = 1 << 10,		/* moves file data: READ and WRITE */
};

/* The vn_opcode_fact bits of OP; 0 for out-of-range values. */
VN_PUBLIC unsigned int vn_opcode_facts(enum vn_opcode op);

enum vn_verdict {
	VN_PASS = 0,		/* go on down; no post callback */
	VN_PASS_WITH_POST,	/* go on down; call post on the way up */
	VN_COMPLETE,		/* op->error (and the result) are final; nothing below runs */
	VN_PENDING,		/* the filter calls vn_op_resume() later, from any thread */
};

/* Opaque handles owned by the daemon. */
struct vn_node;
struct vn_file;
struct vn_filter;

/* Which attributes a SETATTR changes. */
enum vn_setattr_flags {
	VN_SET_MODE = 1 << 0,
	VN_SET_UID = 1 << 1,
	VN_SET_GID = 1 << 2,
	VN_SET_SIZE = 1 << 3,
	VN_SET_ATIME = 1 << 4,
	VN_SET_MTIME = 1 << 5,
	VN_SET_ATIME_NOW = 1 << 6,
	VN_SET_MTIME_NOW = 1 << 7,
	VN_SET_CTIME = 1 << 8,
	/*
	 * With VN_SET_SIZE (a truncate by a caller without CAP_FSETID) or
	 * VN_SET_UID/GID: clear setuid, and setgid where group-executable, as
	 * the kernel would (it leaves that to the daemon: killpriv v2).  Alone:
	 * a chown(2) that changes neither owner nor group, which clears them too.
	 */
	VN_SET_KILL_SUIDGID = 1 << 9,
};

/* One entry of a directory listing. */
struct vn_dirent {
	char *name;		/* owned by the listing */
	ino_t ino;		/* as shown to applications */
	mode_t type;		/* S_IFMT bits only */
};

/*
 * A directory listing: the whole directory, read when the application
 * starts at offset 0 (and READDIR may come without an open file, see
 * "Skipped opens").  The daemon derives each entry's offset from its name,
 * so order does not matter and offsets stay stable across listings.
 * Filters may edit it in READDIR post callbacks with vn_dirlist_add() /
 * vn_dirlist_remove().
 */
struct vn_dirlist {
	struct vn_dirent *entries;
	size_t count;
	size_t capacity;
};

VN_PUBLIC int vn_dirlist_add(struct vn_dirlist *list, const char *name, ino_t ino, mode_t type);
VN_PUBLIC void vn_dirlist_remove(struct vn_dirlist *list, size_t index);
/* Index of NAME, or -1. Linear: callers that merge many names build their own index. */
VN_PUBLIC ssize_t vn_dirlist_find(const struct vn_dirlist *list, const char *name);

/* Data of a READ result: either bytes in memory or a range of a descriptor. */
struct vn_read_data {
	char *buf;		/* malloc'd, freed by the daemon; NULL when fd is used */
	size_t size;		/* bytes in buf, or bytes to take from fd */
	int fd;			/* -1, or a descriptor the daemon reads (splice) from */
	off_t fd_offset;
};

/*
 * Makes D hold its bytes in buf (reading them from fd when the lower gave a
 * descriptor range), so a post callback can inspect or rewrite them.
 * Returns 0 or -errno.
 */
VN_PUBLIC int vn_read_data_load(struct vn_read_data *d);

#define VN_CALLER_MAX_GROUPS 64

struct vn_caller {
	pid_t pid;		/* thread id of the caller; 0 when the kernel gave none */
	uid_t uid;
	gid_t gid;
	mode_t umask;
	/*
	 * Supplementary groups: read (from /proc) only for creations that ask
	 * for a setgid bit, where they decide whether it is kept; ngroups is -1
	 * when they were not read.
	 */
	int ngroups;
	gid_t groups[VN_CALLER_MAX_GROUPS];
};

/*
 * In op->in.open.flags of OPEN: the kernel opens the file to execute it
 * (execve; the kernel's __FMODE_EXEC, which FUSE passes on).  An exec
 * reaches the daemon as an OPEN with O_RDONLY and this bit; the dynamic
 * loader's opens (dlopen, shared libraries) are plain read opens.  The
 * lower drops it.  Only on mounts that send opens (docs/filter-api.md,
 * "Skipped opens").
 */
#define VN_OPEN_EXEC 040

/*
 * The operation record.  Inputs are read-only for filters except where a pre
 * callback deliberately rewrites them for the filters below.  Outputs are
 * filled by the lower or by the filter that completes the operation.
 */
struct vn_op {
	enum vn_opcode opcode;
	struct vn_caller caller;

	/* Target.  For name-based operations node is the parent directory. */
	struct vn_node *node;
	const char *name;	/* LOOKUP MKNOD MKDIR UNLINK RMDIR SYMLINK RENAME CREATE, xattr name */
	struct vn_node *newparent;	/* RENAME LINK */
	const char *newname;		/* RENAME LINK */
	/*
	 * The open file of file operations; NULL when the kernel skips opens
	 * (see docs/filter-api.md, "Skipped opens"): then only node is known.
	 */
	struct vn_file *file;

	union {
		/* OPEN OPENDIR CREATE (mode: CREATE); kill_suidgid: see VN_SET_KILL_SUIDGID */
		struct { int flags; mode_t mode; bool kill_suidgid; } open;
		struct { mode_t mode; dev_t rdev; } make;	/* MKNOD MKDIR */
		struct { const char *target; } symlink;
		struct { unsigned int flags; } rename;
		struct { struct stat attr; int valid; } setattr; /* valid: enum vn_setattr_flags */
		struct { off_t offset; size_t size; } read;
		struct {
			off_t offset; size_t size; const void *buf; int fd; off_t fd_offset;
			bool kill_suidgid;	/* clear setuid/setgid first (see VN_SET_KILL_SUIDGID) */
		} write;
		struct { int datasync; } fsync;
		struct { const void *value; size_t size; int flags; } setxattr;
		struct { size_t size; } getxattr;		/* also LISTXATTR; 0 = probe */
		struct { int mask; } access;
		/*
		 * kill_suidgid (fallocate, copy): the kernel left clearing
		 * setuid/setgid to the daemon without saying whether the caller
		 * may keep them: clear them unless it has CAP_FSETID.
		 */
		struct { int mode; off_t offset; off_t length; bool kill_suidgid; } fallocate;
		struct {
			struct vn_file *file_out; struct vn_node *node_out;
			off_t off_in; off_t off_out; size_t len; int flags;
			bool kill_suidgid;
		} copy;
		struct { off_t offset; int whence; } lseek;
	} in;

	/* Result: 0 or a negative errno. */
	int error;
	struct {
		struct stat attr;		/* LOOKUP GETATTR SETATTR MKNOD MKDIR SYMLINK LINK CREATE */
		struct vn_node *entry;		/* LOOKUP MKNOD MKDIR SYMLINK LINK CREATE: the node, one reference */
		char *link;			/* READLINK: malloc'd */
		struct vn_read_data data;	/* READ */
		size_t count;			/* WRITE COPY_FILE_RANGE: bytes written */
		char *xattr;			/* GETXATTR LISTXATTR: malloc'd value, count bytes */
		size_t xattr_size;
		struct statvfs statfs;
		off_t offset;			/* LSEEK */
		struct vn_dirlist *dir;		/* READDIR: the listing to fill or edit */
		double attr_timeout;		/* seconds the kernel may cache attr; <0: mount default */
		double entry_timeout;		/* seconds the kernel may cache the name; <0: default */
		int keep_cache;			/* OPEN: 1 keeps the page cache, 0 drops it, -1 default */
	} out;
};

/* ---- Services for filters ---- */

/*
 * Continues an operation a pre callback returned VN_PENDING for.
 * verdict is VN_PASS, VN_PASS_WITH_POST or VN_COMPLETE (op->error set).
 * May be called from any thread, exactly once per pended operation.
 */
VN_PUBLIC void vn_op_resume(struct vn_op *op, enum vn_verdict verdict);

/*
 * Writes the path of NODE as seen in the mount ("/" for the root) into buf.
 * Returns the length, or -ENAMETOOLONG / -ENOENT (the node has no name any
 * more, e.g. unlinked).  Paths are a best effort: a node reached by several
 * hard links reports the name it was last seen under.
 */
VN_PUBLIC int vn_node_path(const struct vn_node *node, char *buf, size_t size);

/* The node's mode bits (S_IFMT included) as last seen. */
VN_PUBLIC mode_t vn_node_mode(const struct vn_node *node);

/*
 * NODE's parent, with a reference the caller drops with vn_node_unref(),
 * and NODE's name in it copied into name (size bytes).  NULL for the root,
 * for a node that has no name any more (unlinked), or when the name does
 * not fit.  For a filter that keeps per-directory state derived from the
 * parent's (no path is built).
 */
VN_PUBLIC struct vn_node *vn_node_parent(struct vn_node *node, char *name, size_t size);

/*
 * A reference that keeps NODE alive, unless it is already being freed:
 * false then (a filter that lists nodes in its own registry, whose context
 * cleanup may be waiting to unlink them).  Dropped with vn_node_unref().
 */
VN_PUBLIC bool vn_node_tryref(struct vn_node *node);
VN_PUBLIC void vn_node_unref(struct vn_node *node);

/*
 * Per-node and per-open-file context of the calling filter.  Allocated on
 * first use (zeroed, size from vn_filter_ops), freed after the ctx_cleanup
 * callback when the node is freed (the kernel forgot it and no request holds
 * it) or the file is released.  Returns NULL when the filter registered no
 * context of that kind or memory is short.  Contexts are not locked: a filter
 * that writes to one from several threads brings its own lock.
 */
VN_PUBLIC void *vn_node_context(struct vn_filter *f, struct vn_node *node);
VN_PUBLIC void *vn_file_context(struct vn_filter *f, struct vn_file *file);

/* ---- Virtual nodes ---- */

/*
 * A filter can serve objects that do not exist on the lower: virtual
 * nodes.  It must complete every operation on its own virtual nodes (the
 * lower refuses them with EIO), including operations whose second node
 * (RENAME, LINK newparent, COPY_FILE_RANGE node_out) is one.
 *
 * vn_node_virtual() finds or creates the virtual node numbered INO, owned
 * by F, named NAME in PARENT, and adds one kernel lookup: the filter puts
 * it in op->out.entry of the LOOKUP it completes (with op->out.attr,
 * st_ino = INO).  INO must be unique within the mount: take it from
 * vn_virtual_ino().  Returns 0 or -ENOMEM.
 */
VN_PUBLIC int vn_node_virtual(struct vn_filter *f, struct vn_node *parent, const char *name,
			      uint64_t ino, mode_t mode, struct vn_node **ret_node);

/* The filter serving NODE, or NULL for a real node. */
VN_PUBLIC struct vn_filter *vn_node_owner(const struct vn_node *node);

/*
 * Where a virtual node comes from, in the owner's words ("layer 3"), via
 * its node_origin callback.  Returns the length, or -ENOENT for a real
 * node or an owner without the callback.
 */
VN_PUBLIC int vn_node_origin(struct vn_node *node, char *buf, size_t size);

/*
 * An inode number for entry INO of a source identified by KEY (any 64-bit
 * identity the filter derives from its source): no real object and no
 * other key gets it, and the same (KEY, INO) gets it again after a remount
 * (unless two keys collide in the range; then attach order decides).
 */
VN_PUBLIC uint64_t vn_virtual_ino(uint64_t key, uint64_t ino);

/*
 * Kernel cache invalidation, queued to the daemon's invalidation thread
 * (FUSE forbids notifying from inside a request): the kernel forgets the
 * cached entry NAME of directory PARENT (positive or negative), or NODE's
 * cached attributes, pages and listing.  Nodes are not dereferenced later:
 * queuing an invalidation of a node that is then freed is harmless.
 * vn_invalidate_flush() waits until everything queued so far was sent; it
 * must never be called from a callback of a request (it may wait for one).
 */
VN_PUBLIC void vn_invalidate_entry(struct vn_node *parent, const char *name);
VN_PUBLIC void vn_invalidate_node(struct vn_node *node);
VN_PUBLIC void vn_invalidate_flush(void);

/*
 * Offers the kernel SIZE bytes of DATA (copied) as the contents of NODE at
 * OFFSET, for its page cache (FUSE notify_store), through the same thread.
 * For a filter that produced more of a virtual file than a read asked for
 * (a whole decompressed block): later reads of it are then served by the
 * kernel.  Best effort: dropped while too much is queued.  The range must
 * lie within the file's size (the kernel would extend the file), and NODE's
 * contents must not change while the kernel may cache them.
 */
VN_PUBLIC void vn_cache_offer(struct vn_node *node, off_t offset, const void *data, size_t size);

/*
 * Stats NAME in the real directory PARENT on the lower, as it is, without
 * running any filter (st_ino as stored there).  0 or -errno; -ENOENT when
 * PARENT is virtual.  May block.
 */
VN_PUBLIC int vn_real_stat(struct vn_node *parent, const char *name, struct stat *st);

/*
 * (v5) I/O below one's own altitude: a new descriptor (close it with
 * close(2)) of NODE's real object on the lower, opened from the node's own
 * descriptor there, never through the mount: reading it runs no filter,
 * this one included, so a callback may use it without recursion or
 * deadlock.  FLAGS: O_RDONLY, O_WRONLY or O_RDWR, with any of
 * O_DIRECTORY, O_NONBLOCK, O_TRUNC, O_APPEND, O_NOATIME, O_NOFOLLOW (a
 * symbolic link: -ELOOP) and O_PATH; anything else (O_CREAT: nothing is
 * created) is -EINVAL.  Opened as the daemon, not as the caller: a filter
 * that acts for a caller checks the caller's rights itself.  -ENOENT for
 * a virtual node.  Writes through it bypass every filter and the
 * kernel's cache of the file.  May block.
 */
VN_PUBLIC int vn_real_open(struct vn_node *node, int flags);

/*
 * (v5) The same for PATH relative to the real directory DIR (a leading
 * '/' is ignored: vn_real_openat(vn_root_node(), "/etc/x", ...) opens
 * etc/x under the mount's root on the lower).  The walk stays beneath DIR
 * (".." above it, an absolute symbolic link: -EXDEV) and crosses no mount
 * point (-EXDEV), so it never reaches the mount itself; a name no filter
 * has looked up yet works too.  The other rules are vn_real_open's.
 */
VN_PUBLIC int vn_real_openat(struct vn_node *dir, const char *path, int flags);

/* The root node of the mount. */
VN_PUBLIC struct vn_node *vn_root_node(void);

/* The filter's private pointer, as set by its attach callback. */
VN_PUBLIC void *vn_filter_private(struct vn_filter *f);
VN_PUBLIC void vn_filter_set_private(struct vn_filter *f, void *priv);

/* ---- Communication ports (v3) ---- */

/* The largest message a client sends to a port, and the largest reply. */
#define VN_PORT_MAX_MESSAGE (64 * 1024)
#define VN_PORT_NAME_MAX 32
#define VN_MAX_PORTS 8

/*
 * Answers one message a client sent to the port: MSG holds LEN bytes
 * (borrowed; not NUL-terminated).  Returns 0 with *ret_reply (malloc'd,
 * freed by the daemon; NULL for an empty reply) and *ret_len (at most
 * VN_PORT_MAX_MESSAGE), or -errno, which the client gets as its error,
 * with the reason vn_port_error() gave, if any.
 * Called on the daemon's control thread, one message at a time for the
 * whole mount: it may block, but every other client of the mount's control
 * socket waits meanwhile, so answer promptly.
 */
typedef int vn_port_fn(struct vn_filter *f, void *port_priv, const void *msg, size_t len,
		       void **ret_reply, size_t *ret_len);

/*
 * Opens the port NAME (letters, digits, '-', '_' and '.', at most
 * VN_PORT_NAME_MAX - 1 bytes, unique within the filter) on the mount's
 * control socket: the mount's owner and root may send it messages
 * (`veneer filter send`, libveneer-client).  PRIV is passed to FN.  Usually
 * called from attach; ports close when the filter is detached.  Returns 0,
 * -EINVAL (bad name), -EEXIST or -ENOSPC (VN_MAX_PORTS already open).
 */
VN_PUBLIC int vn_port_open(struct vn_filter *f, const char *name, vn_port_fn *fn, void *priv);

/*
 * (v4) From a vn_port_fn only, before it returns -errno: why it refuses the
 * message, as one line naming what was wrong.  The client prints it as
 * "filter 'NAME' port 'PORT': REASON" in place of the errno's text (a
 * built-in filter's reason alone, since the user named a command, not the
 * filter).  Called anywhere else, it does nothing.
 */
VN_PUBLIC void vn_port_error(struct vn_filter *f, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * Filter -> client.  A program connects to a port as its client
 * (vn_client_listen in <veneer/client.h>; one client per port at a time)
 * and answers the questions the filter asks it.
 *
 * DONE is called exactly once per question that vn_port_ask accepted,
 * with no veneer lock held: ERROR 0 and the client's REPLY (LEN bytes,
 * borrowed for the call), or ERROR -ETIMEDOUT (no answer within the
 * timeout) or -ENOTCONN (the client went away, or the filter is being
 * unloaded) and REPLY NULL: then the filter applies its own default for
 * the port; or (v4) -EINTR: the application that started OP was
 * interrupted, and the filter completes OP with -EINTR.  It runs on the
 * control thread or the client's stream thread, and for -EINTR on the FUSE
 * worker that received the interrupt (never on the worker of OP itself).
 * DONE may call vn_op_resume(): the rest of that operation then runs on
 * DONE's thread.
 */
typedef void vn_port_reply_fn(struct vn_filter *f, void *ctx, int error, const void *reply,
			      size_t len);

/*
 * Asks the client of F's port PORT: sends MSG (LEN bytes, copied) and
 * returns at once, so a pre callback can return VN_PENDING and resume the
 * operation from DONE.  OP is the operation the question is about (or
 * NULL): when it comes from the client's own process, the question is not
 * asked, since the client may be waiting for that very operation (the
 * policy-process exclusion).  Returns 0 (DONE will be called), or, with
 * DONE never called: -ENOTCONN (no client connected: apply the default),
 * -EDEADLK (OP comes from the client's process: let it through unasked),
 * -ENOENT (no such port), -EMSGSIZE (over VN_PORT_MAX_MESSAGE), -EINVAL
 * (TIMEOUT_MS not in 1..VN_PORT_MAX_TIMEOUT_MS), -EPERM (the filter has
 * VN_FILTER_PORTS_ANSWER_ONLY) or -ENOMEM.  Never blocks.
 */
#define VN_PORT_MAX_TIMEOUT_MS 600000
VN_PUBLIC int vn_port_ask(struct vn_filter *f, const char *port, const struct vn_op *op,
			  const void *msg, size_t len, int timeout_ms, vn_port_reply_fn *done,
			  void *ctx);

/* ---- Stream ports (v5) ---- */

/* The largest frame a stream port's next callback may produce. */
#define VN_PORT_MAX_FRAME (4 * 1024 * 1024)

/*
 * A stream port: each client that connects (vn_client_stream in
 * <veneer/client.h>, `veneer trace` for the trace filter) gets a stream of
 * frames of its own until it disconnects or the filter is unloaded.  Any
 * number of clients at once (up to the control socket's bound on streams).
 *
 * The daemon runs each connection on a thread of its own and pulls frames
 * from the filter there: no FUSE worker ever waits for a client.  A filter
 * that produces records on request paths queues them per stream in a
 * bounded buffer and drops (and counts) what a slow client does not take,
 * as the trace filter does; it never blocks a request on a client.
 *
 * OPEN: a client connected with MSG (LEN bytes, borrowed; its request,
 * e.g. a query).  0 with *ret_stream (the filter's state for this
 * connection, may be NULL), or -errno, which the client gets as its error,
 * with the reason vn_port_error() gave, if any.
 * NEXT: waits at most TIMEOUT_MS for data, then 0 with *ret_frame
 * (malloc'd, freed by the daemon; NULL when nothing came) and *ret_len (at
 * most VN_PORT_MAX_FRAME), or -errno to end the stream.  Return within
 * TIMEOUT_MS: an unload waits for a NEXT in progress (a filter that waits
 * in NEXT wakes it from its teardown, which runs before its ports close).
 * CLOSE: the stream ended (the client went, NEXT failed, or the filter is
 * being unloaded: then before its detach); frees the state.
 * All three run on the connection's thread (CLOSE on the control thread
 * during an unload), with no veneer lock held; never two at once for one
 * stream.
 */
struct vn_stream_ops {
	int (*open)(struct vn_filter *f, void *port_priv, const void *msg, size_t len,
		    void **ret_stream);
	int (*next)(struct vn_filter *f, void *stream, int timeout_ms, void **ret_frame,
		    size_t *ret_len);
	void (*close)(struct vn_filter *f, void *stream);
};

/*
 * (v5) Opens the stream port NAME (the same names and bound as
 * vn_port_open; the two kinds share the filter's VN_MAX_PORTS).  OPS (not
 * copied: static) and PRIV stay in use until the filter is detached.  A
 * stream port takes no messages (vn_client_send) and no question client
 * (vn_client_listen).  Returns 0, -EINVAL, -EEXIST or -ENOSPC.
 */
VN_PUBLIC int vn_port_open_stream(struct vn_filter *f, const char *name,
				  const struct vn_stream_ops *ops, void *priv);

/* Logs one line to the daemon's log (stderr or syslog). level: LOG_* from syslog.h */
VN_PUBLIC void vn_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- Registration ---- */

typedef enum vn_verdict vn_pre_fn(struct vn_filter *f, struct vn_op *op, void **ret_post_ctx);
typedef void vn_post_fn(struct vn_filter *f, struct vn_op *op, void *post_ctx);

struct vn_filter_handler {
	enum vn_opcode op;
	vn_pre_fn *pre;		/* may be NULL: the filter only watches with post */
	vn_post_fn *post;	/* called only when pre returned VN_PASS_WITH_POST, or pre is NULL */
};

enum vn_filter_flags {
	/*
	 * The filter's OPEN, RELEASE, FLUSH, OPENDIR and RELEASEDIR handlers
	 * are only needed for opens the kernel sends: the daemon may still let
	 * the kernel skip opens (docs/filter-api.md, "Skipped opens").  Without
	 * this flag a handler for any of them turns skipped opens off.
	 */
	VN_FILTER_OPENS_SKIPPABLE = 1 << 0,
	/*
	 * The filter's READ and WRITE handlers are only needed for data the
	 * daemon serves: the kernel may read and write real regular files
	 * itself (passthrough, docs/filter-api.md "Passthrough"), and the
	 * filter then sees their open, flush and release but not their data.
	 * Without this flag a READ or WRITE handler turns passthrough off.
	 * A filter that wants the data for a while says so with vn_want_data.
	 */
	VN_FILTER_DATA_SKIPPABLE = 1 << 1,
	/*
	 * (v4) The filter's ports only answer its clients' messages: it never
	 * asks (vn_port_ask refuses with -EPERM), so opening a port does not
	 * make its operations interruptible.  Without this flag a filter with
	 * a port may pend an operation on a client's answer, and the daemon
	 * arms FUSE interrupts for each operation it handles
	 * (docs/filter-api.md, "Cancellation"), which costs every one of them.
	 */
	VN_FILTER_PORTS_ANSWER_ONLY = 1 << 2,
};

/*
 * While any filter's count is above zero, new opens of real files are
 * served by the daemon, so READ and WRITE handlers see their data; files
 * already open in passthrough stay so until closed.  on: +1, off: -1.
 */
VN_PUBLIC void vn_want_data(struct vn_filter *f, int on);

/*
 * (v4) From attach only: why the filter refuses ARGS, as one line naming
 * what was wrong.  The daemon reports it in place of attach's errno.
 */
VN_PUBLIC void vn_attach_error(struct vn_filter *f, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

struct vn_filter_ops {
	unsigned int api_version;	/* VN_FILTER_API_VERSION */
	/*
	 * (v4) sizeof(struct vn_filter_ops) as built: the daemon reads no field
	 * past it.  It sits where versions 2 and 3 had padding on 64-bit
	 * systems (0 there), so their layout is unchanged.
	 */
	unsigned int size;
	const char *name;
	int altitude;			/* higher = nearer the application */
	unsigned int flags;		/* enum vn_filter_flags */
	size_t node_ctx_size;		/* 0: no per-node context */
	size_t file_ctx_size;		/* 0: no per-open-file context */
	void (*node_ctx_cleanup)(struct vn_filter *f, void *ctx);
	void (*file_ctx_cleanup)(struct vn_filter *f, void *ctx);
	/* args: the text after ':' in --filter PATH.so:ARGS, or NULL. Returns 0 or -errno. */
	int (*attach)(struct vn_filter *f, const char *args);
	void (*detach)(struct vn_filter *f);
	const struct vn_filter_handler *handlers;	/* ends with { VN_OP_NONE } */
	/* Describes a virtual node this filter owns (vn_node_origin); may be NULL. */
	int (*node_origin)(struct vn_filter *f, struct vn_node *node, char *buf, size_t size);
	/*
	 * (v3; read only from objects built for version 3 or later.)  Called
	 * when the filter is unloaded from a live mount (`veneer filter
	 * unload`), after every operation that reached it has replied and
	 * before its contexts are freed and detach is called.  Returns 0, or
	 * -errno (e.g. -EBUSY) to stay loaded; when FORCE is set the answer is
	 * ignored.  May be NULL: the filter may always be unloaded.
	 */
	int (*teardown)(struct vn_filter *f, bool force);
	/*
	 * (v4; read only from objects built for version 4 or later.)  The
	 * application that started OP was interrupted (a signal; FUSE
	 * INTERRUPT) while this filter's pre for OP runs or after it returned
	 * VN_PENDING.  Questions asked about OP (vn_port_ask) were withdrawn
	 * just before: their DONE got -EINTR.  A filter that pends OP should
	 * resume it soon, usually with op->error = -EINTR and VN_COMPLETE; it
	 * may do so from inside cancel, and must still resume it exactly once
	 * (its own completion may race with cancel).  A cancel for an
	 * operation the filter does not pend is ignored.  Called at most once
	 * per operation, on the FUSE worker that received the interrupt; OP
	 * stays valid until cancel returns.  May be NULL: OP stays pended until
	 * the filter resumes it, and then completes with EINTR.
	 */
	void (*cancel)(struct vn_filter *f, struct vn_op *op);
	/* New fields go here, at the end, each with a new VN_FILTER_API_VERSION. */
};

/*
 * An out-of-tree filter (a shared object loaded with --filter) exports this
 * symbol; the daemon refuses the object when it is missing, when its
 * api_version is outside VN_FILTER_API_MIN_VERSION..VN_FILTER_API_VERSION,
 * or when (from version 4) its size is smaller than that version's
 * struct or larger than the daemon's.
 */
#define VN_FILTER_ENTRY_SYMBOL "vn_filter_entry"
extern VN_PUBLIC const struct vn_filter_ops vn_filter_entry;

#ifdef __cplusplus
}
#endif
#endif
