/*
 * The per-mount control socket: `veneer attach`, `detach`, `status`,
 * `trace` and `filter` talk to the daemon of a mount through it.
 *
 * Location (DESIGN section 2, Control): /run/veneer/ for root and
 * $XDG_RUNTIME_DIR/veneer/ for other users (created 0700), file name
 * derived from the absolute mount point, so a client finds it from the
 * mount point alone.  Only the mount's owner (the uid that started the
 * daemon) or root may use it: the server checks SO_PEERCRED on every
 * connection and answers anyone else with EACCES.
 *
 * Wire format (control_proto.c): each message is a 4-byte little-endian
 * length followed by that many bytes of NUL-terminated fields.
 *   request: "VERB" "\0" ARG1 "\0" ARG2 "\0" ...
 *   reply:   "ok" "\0" TEXT "\0"   or   "err" "\0" ERRNO "\0" MESSAGE "\0"
 * Messages are at most CONTROL_MAX_MESSAGE bytes; anything malformed gets
 * an err reply (EINVAL / EMSGSIZE) and the connection is closed, never a
 * crash.
 */
#ifndef VENEER_CONTROL_H
#define VENEER_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define CONTROL_MAX_MESSAGE (1u << 20)
#define CONTROL_MAX_FIELDS 16

/*
 * What the daemon does for each verb.  Called on the control thread (never
 * a FUSE request thread); may block.  Each returns 0 and sets *ret_text
 * (malloc'd, may be NULL for no text) or returns -errno and writes a
 * one-line message into err.
 *   attach SOURCE_PATH VIEW_PATH        text: the new layer's id
 *   detach PATH_OR_ID
 *   status json|text                    text: the status report
 */
struct control_handler {
	int (*call)(void *arg, const char *verb, int nargs, char **args, char **ret_text,
		    char *err, size_t errlen);
	void *arg;
	/* Streaming verbs (stream, listen); NULL: none.  See struct control_stream_ops. */
	const struct control_stream_ops *stream;
};

/*
 * A streaming verb keeps its connection: the server answers "ok" (with the
 * text of open, if any) and then sends one message of one field per chunk
 * of text next() produced, until the client hangs up or the server stops.
 * Each stream runs on a thread of its own, so a watcher never holds up
 * attach or another watcher; at most CONTROL_MAX_STREAMS at once (more are
 * refused with EBUSY).
 */
#define CONTROL_MAX_STREAMS 16

struct control_stream_ops {
	/* True when VERB streams (then open/next/close are used instead of call). */
	bool (*is_stream)(void *arg, const char *verb);
	/*
	 * 0 and *ret_ctx (and *ret_text, malloc'd or NULL), or -errno with err.
	 * PEER is the client's process id, as SO_PEERCRED gave it.
	 */
	int (*open)(void *arg, pid_t peer, const char *verb, int nargs, char **args,
		    void **ret_ctx, char **ret_text, char *err, size_t errlen);
	/*
	 * Appends text to *buf (malloc'd, *len used of *cap), waiting at most
	 * timeout_ms; returns >= 0 (0: nothing yet) or -errno to end the stream.
	 */
	int (*next)(void *ctx, char **buf, size_t *len, size_t *cap, int timeout_ms);
	void (*close)(void *ctx);
};

struct control_server;

/*
 * The socket path for MOUNTPOINT (absolute, normalized) as user UID would
 * use it: written to buf.  The name is the escaped mount point, or a hash
 * plus a readable tail when that would not fit in sun_path (the rule is
 * at the top of control_path.c).  Returns 0, or -ENAMETOOLONG / -ENOENT (a
 * user without XDG_RUNTIME_DIR) / -EINVAL (MOUNTPOINT not normalized).
 */
int control_socket_path(const char *mountpoint, uid_t uid, char *buf, size_t size);

/*
 * The directory holding UID's sockets (/run/veneer or
 * $XDG_RUNTIME_DIR/veneer; $VENEER_RUNTIME_DIR/veneer when that is set,
 * for tests and for root running more than one set of mounts).  Returns 0,
 * -ENOENT (no XDG_RUNTIME_DIR for a non-root user) or -ENAMETOOLONG.
 */
int control_socket_dir(uid_t uid, char *buf, size_t size);

/*
 * mkdir -p DIR (new directories 0700), then checks that DIR is a directory
 * owned by OWNER that nobody else may write to.  Returns 0, -EPERM when
 * the check fails, or the -errno of mkdir/lstat.
 */
int control_make_dir(const char *dir, uid_t owner);

/*
 * Creates the socket for MOUNTPOINT (replacing a stale one left by a dead
 * daemon, refusing with -EADDRINUSE when a live daemon answers on it) and
 * starts the control thread.  Only OWNER and root are served.  The socket
 * goes in the directory of the daemon's effective uid (normally OWNER).
 * Connections are served one at a time on that thread.
 */
int control_server_start(const char *mountpoint, uid_t owner, const struct control_handler *h,
			 struct control_server **ret);
/* Stops the thread, closes connections and removes the socket file. */
void control_server_stop(struct control_server *srv);

/*
 * Client side of a streaming verb: sends the request, and on "ok" calls
 * on_text(arg, text, len) for the opening text and for every chunk until
 * the daemon ends the stream (returns 0), on_text returns non-zero (that
 * value is returned), *stop becomes true (checked at least every 200 ms;
 * returns 0), or an error (-errno with err).
 */
int control_stream(const char *mountpoint, const char *verb, int nargs, const char *const *args,
		   int (*on_text)(void *arg, const char *text, size_t len), void *arg,
		   volatile int *stop, char *err, size_t errlen);

/*
 * Client side: sends one request to the daemon of MOUNTPOINT and waits for
 * the reply.  Returns 0 with *ret_text (malloc'd, "" when empty) on "ok";
 * -errno with the daemon's message (or a local one: "no veneer mount at
 * ...", "permission denied") in err otherwise.
 */
int control_call(const char *mountpoint, const char *verb, int nargs, const char *const *args,
		 char **ret_text, char *err, size_t errlen);

#endif
