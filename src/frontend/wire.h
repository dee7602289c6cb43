/*
 * The session's own read and writev on /dev/fuse (libfuse's custom I/O
 * hook, fuse_session_custom_io), so the daemon can ask the kernel for what
 * libfuse 3.14 cannot: FUSE passthrough, where the kernel reads and writes
 * a real file itself; FUSE_HANDLE_KILLPRIV_V2, where the kernel stops
 * asking for security.capability before writes and tells the daemon when
 * a write, truncate or open must clear setuid/setgid bits; and FUSE over
 * io_uring (uring.c).  The hook sees every request frame and every reply
 * frame; it patches only the INIT reply (to ask for them) and the OPEN and
 * CREATE replies that carry a backing file, notes the kill flags of
 * requests, and hands replies to requests taken from an io_uring queue
 * back to that queue.
 *
 * libfuse splices only where the custom I/O supplies it: the hook splices
 * data replies (a spliced reply bypasses writev, and none of them needs
 * patching; with io_uring they are not asked for) but not requests, which
 * must pass through read.
 */
#ifndef VENEER_WIRE_H
#define VENEER_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "frontend/fuse_kernel_ext.h"

struct fuse_session;

/*
 * Installs the hook on a mounted session; asks for passthrough, killpriv
 * v2 and io_uring (as chosen) in the INIT reply when the kernel offers
 * them, and starts the io_uring queues once that reply went out.
 * Passthrough needs root: without it only the others are asked for.
 * Returns 0 or -errno (the session then keeps libfuse's own I/O;
 * wire_passthrough_refusal() says why when it can).
 */
struct wire_wants {
	bool passthrough;
	bool killpriv;
	bool uring;	/* FUSE over io_uring (uring.c) */
};
int wire_install(struct fuse_session *se, const struct wire_wants *want);

/*
 * After the session: frees what the table still holds (requests never
 * answered) and forgets what INIT negotiated.
 */
void wire_shutdown(void);

/* After INIT: whether the kernel handles setuid/setgid by telling the daemon (killpriv v2). */
bool wire_killpriv(void);

/*
 * In a request handler: whether the kernel asked this request (a WRITE
 * with FUSE_WRITE_KILL_SUIDGID, an OPEN or CREATE with
 * FUSE_OPEN_KILL_SUIDGID) to clear setuid/setgid bits.  Only valid on the
 * thread that read the request, before it reads another.
 */
bool wire_kills_suidgid(void);

/* After INIT: whether the kernel agreed to passthrough. */
bool wire_passthrough(void);

/* Why passthrough is off, once that is known (for the log and status); NULL otherwise. */
const char *wire_passthrough_refusal(void);

/* Registers fd as a backing file: returns its id (> 0) or -errno. */
int wire_backing_open(int fd);
void wire_backing_close(int id);

/*
 * Supplied by the frontend: the backing id an OPEN or CREATE reply with
 * handle fh is to carry, or 0 for an ordinary open.  Called from inside
 * the reply's writev; marks the open as passed through.
 */
int32_t frontend_open_backing(uint64_t fh);

/* ---- the hook's functions and the patching: unit-tested with recorded frames ---- */

struct iovec;
#include <sys/types.h>

/* What the INIT reply asks for (wire_install sets it; the unit test directly). */
void wire_want(const struct wire_wants *want);

/*
 * Notes what the hook keeps of a request frame (INIT's flags, which
 * replies to patch, the kill flags): from the device read, or from an
 * io_uring queue, on the thread that then serves the request.
 */
void wire_note_request(const void *frame, size_t len);

/*
 * During INIT (the kernel's flags are known): whether the reply will ask
 * for io_uring.  Spliced replies bypass the hook, so they must then stay off.
 */
bool wire_uring_planned(void);

/* Asks for io_uring in an INIT reply payload; *ret_payload: the ring's payload size. */
bool wire_patch_init_uring(void *payload, size_t len, uint64_t kernel_flags, size_t *ret_payload);

/* libfuse's read and writev for the session, on the device descriptor fd. */
ssize_t wire_read_frame(int fd, void *buf, size_t len, void *userdata);
ssize_t wire_write_frame(int fd, struct iovec *iov, int count, void *userdata);

/*
 * The kernel's INIT flags (flags, plus flags2 when FUSE_INIT_EXT is set)
 * from an INIT request frame; 0 when the frame is not a whole INIT.
 */
uint64_t wire_init_flags(const void *frame, size_t len);

/*
 * Adds passthrough to an INIT reply payload when the kernel offered it
 * and nothing in the reply excludes it (writeback cache).  Returns true
 * when the reply now asks for passthrough.
 */
bool wire_patch_init(void *payload, size_t len, uint64_t kernel_flags, const char **ret_refusal);

/* Asks for killpriv v2 in an INIT reply payload when the kernel offered it. */
bool wire_patch_init_killpriv(void *payload, size_t len, uint64_t kernel_flags);

/* Whether a request frame carries a kill-setuid/setgid flag (see wire_kills_suidgid). */
bool wire_request_kills_suidgid(const void *frame, size_t len);

/* Makes an OPEN reply's fuse_open_out pass through to backing_id. */
void wire_patch_open_out(struct vn_fuse_open_out *o, int32_t backing_id);

#endif
