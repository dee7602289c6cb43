/*
 * Private to src/control: the control socket's wire format (see control.h
 * for the layout) and the fd I/O under a deadline that both ends use.
 * Nothing here knows about verbs or what the daemon does with them.
 */
#ifndef VENEER_CONTROL_PROTO_H
#define VENEER_CONTROL_PROTO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "control/control.h"

/* How long each side waits for its peer (see control_proto.c for why). */
#define CONTROL_CLIENT_TIMEOUT_MS 60000
#define CONTROL_SERVER_TIMEOUT_MS 5000

/* Size of the length prefix in front of every message. */
#define CONTROL_HEADER_SIZE 4

/*
 * Builds one message (length prefix included) from NFIELDS strings.
 * *ret_buf is malloc'd (caller frees).  Returns 0, -EINVAL (no fields or
 * more than CONTROL_MAX_FIELDS), -EMSGSIZE (body over CONTROL_MAX_MESSAGE)
 * or -ENOMEM.
 */
int control_msg_encode(int nfields, const char *const *fields, char **ret_buf, size_t *ret_len);

/*
 * Splits a message body (without the length prefix) in place into at most
 * CONTROL_MAX_FIELDS fields; the pointers in ret_fields point into body.
 * Returns 0, or -EINVAL (empty body, last byte not NUL, too many fields).
 */
int control_msg_decode(char *body, size_t len, int *ret_nfields,
		       char *ret_fields[CONTROL_MAX_FIELDS]);

/* The length from a 4-byte little-endian prefix. */
uint32_t control_msg_length(const unsigned char header[CONTROL_HEADER_SIZE]);

/*
 * Deadlines are CLOCK_MONOTONIC milliseconds (control_deadline()).
 * CANCEL_FD, when >= 0, is polled with the socket: once it is readable the
 * call gives up with -ECANCELED (the server's stop eventfd).
 */
int64_t control_deadline(int timeout_ms);

/*
 * Waits until FD is ready for EVENTS (poll(2) bits), the deadline passes
 * (-ETIMEDOUT) or CANCEL_FD becomes readable (-ECANCELED).  POLLHUP and
 * POLLERR count as ready: the following recv/send reports what happened.
 */
int control_wait_fd(int fd, short events, int64_t deadline, int cancel_fd);

/*
 * Reads exactly LEN bytes.  Returns 0, -EPROTO (the peer closed before
 * LEN bytes), -ETIMEDOUT, -ECANCELED or another -errno.  Handles EINTR and
 * short reads.
 */
int control_read_full(int fd, void *buf, size_t len, int64_t deadline, int cancel_fd);

/* Writes exactly LEN bytes (never raises SIGPIPE).  Same errors as reading. */
int control_write_full(int fd, const void *buf, size_t len, int64_t deadline, int cancel_fd);

/*
 * Reads one message: *ret_body (malloc'd, caller frees) holds LEN bytes,
 * not yet decoded.  -EMSGSIZE when the announced length is over
 * CONTROL_MAX_MESSAGE (the body is then left unread), -EINVAL when it is 0.
 */
int control_msg_recv(int fd, int64_t deadline, int cancel_fd, char **ret_body, size_t *ret_len);

/* Encodes and writes one message. */
int control_msg_send(int fd, int64_t deadline, int cancel_fd, int nfields,
		     const char *const *fields);

/*
 * Writes one message of one field: the LEN bytes of TEXT (a chunk of a
 * stream; it need not be NUL-terminated).  -EINVAL when TEXT holds a NUL
 * or LEN + 1 is over CONTROL_MAX_MESSAGE.
 */
int control_msg_send_text(int fd, int64_t deadline, int cancel_fd, const char *text, size_t len);

/* Writes an "ok" TEXT reply or an "err" ERRNO MESSAGE reply (ERR > 0). */
int control_reply_ok(int fd, int64_t deadline, int cancel_fd, const char *text);
int control_reply_err(int fd, int64_t deadline, int cancel_fd, int err, const char *message);

/*
 * Interprets a decoded reply.  "ok": returns 0 with *ret_text (malloc'd
 * copy).  "err": returns the daemon's -errno with its message in err.
 * Anything else: -EPROTO with a message.
 */
int control_reply_parse(int nfields, char **fields, char **ret_text, char *err, size_t errlen);

/*
 * control_path.c: the socket path for MOUNTPOINT inside directory DIR (the
 * rule is described at the top of control_path.c).  -EINVAL when
 * MOUNTPOINT is not absolute and normalized.
 */
int control_socket_path_in(const char *dir, const char *mountpoint, char *buf, size_t size);

#endif
