/*
 * A port message in a control message.  Control fields are NUL-terminated
 * text, a port message is any bytes: it travels as one field of lowercase
 * hex, two digits a byte.  Both directions (the client's message, the
 * filter's reply) use it, and both ends check the bound, so a peer can
 * neither smuggle a NUL into the fields nor send more than
 * VN_PORT_MAX_MESSAGE bytes.
 */
#ifndef VENEER_PORT_FRAME_H
#define VENEER_PORT_FRAME_H

#include <stddef.h>

/*
 * LEN bytes of MSG as a field: *ret_field malloc'd, NUL-terminated.
 * 0, -EMSGSIZE (LEN over VN_PORT_MAX_MESSAGE) or -ENOMEM.
 */
int port_frame_encode(const void *msg, size_t len, char **ret_field);
/* The same with the bound MAX (a stream's frames: VN_PORT_MAX_FRAME). */
int port_frame_encode_max(const void *msg, size_t len, size_t max, char **ret_field);

/*
 * The bytes of FIELD: *ret_msg malloc'd (one NUL past the end, so text
 * prints as is; NULL only on error), *ret_len.  0, -EMSGSIZE (more than
 * VN_PORT_MAX_MESSAGE bytes), -EINVAL (an odd length or a character that
 * is not a lowercase hex digit) or -ENOMEM.
 */
int port_frame_decode(const char *field, void **ret_msg, size_t *ret_len);
/* The same for the N digits at FIELD (no NUL needed) with the bound MAX bytes. */
int port_frame_decode_max(const char *field, size_t n, size_t max, void **ret_msg,
			  size_t *ret_len);

#endif
