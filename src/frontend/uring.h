/*
 * FUSE over io_uring (--uring) under libfuse 3.14, through the custom I/O
 * hook (wire.c): one queue per possible CPU, each a ring of 128-byte SQEs
 * holding IORING_OP_URING_CMD commands on /dev/fuse, driven by its own
 * thread alone, pinned to that CPU.  A request taken from a ring is rebuilt as the frame libfuse
 * would have read and handed to fuse_session_process_buf(); its reply,
 * which libfuse writes through the hook, is committed through the ring
 * instead of the device.  INIT, FORGET, INTERRUPT and notifications stay
 * on the device.
 */
#ifndef VENEER_URING_H
#define VENEER_URING_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct fuse_session;
struct iovec;

/*
 * Why this host cannot serve FUSE over io_uring (the kernel lacks it, or
 * its enable_uring parameter is off), or NULL.  Never changes the setting.
 */
const char *uring_unavailable(void);

/*
 * After the INIT reply that asked for io_uring went out: starts the
 * queues, whose requests carry at most payload_size bytes.  0 or -errno
 * (the requests then keep coming through the device).
 */
int uring_start(struct fuse_session *se, int devfd, size_t payload_size);

/*
 * A reply frame from libfuse: when it answers a request taken from a
 * ring, commits it there and returns true with *ret the frame's length
 * (or -errno), as writev would.  False: the frame belongs on the device.
 */
bool uring_reply(const struct iovec *iov, int count, ssize_t *ret);

/* Whether the queues are serving requests, and how many they took so far. */
bool uring_active(void);
unsigned long uring_served(void);

/* After the session ended: stops and frees the queues. */
void uring_stop(void);

#endif
