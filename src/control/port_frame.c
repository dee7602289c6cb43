/* Port messages as hex fields; see port_frame.h. */
#include "control/port_frame.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <veneer/filter.h>

static const char digits[] = "0123456789abcdef";

int port_frame_encode(const void *msg, size_t len, char **ret_field)
{
	return port_frame_encode_max(msg, len, VN_PORT_MAX_MESSAGE, ret_field);
}

int port_frame_encode_max(const void *msg, size_t len, size_t max, char **ret_field)
{
	if (len > max)
		return -EMSGSIZE;
	char *field = malloc(2 * len + 1);
	if (!field)
		return -ENOMEM;
	const unsigned char *in = msg;
	for (size_t i = 0; i < len; i++) {
		field[2 * i] = digits[in[i] >> 4];
		field[2 * i + 1] = digits[in[i] & 15];
	}
	field[2 * len] = '\0';
	*ret_field = field;
	return 0;
}

/* Lowercase only, as encode writes them: a stream's frames are decoded a digit at a time. */
static int digit_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int port_frame_decode(const char *field, void **ret_msg, size_t *ret_len)
{
	return port_frame_decode_max(field, strnlen(field, 2 * (size_t)VN_PORT_MAX_MESSAGE + 1),
				     VN_PORT_MAX_MESSAGE, ret_msg, ret_len);
}

int port_frame_decode_max(const char *field, size_t n, size_t max, void **ret_msg,
			  size_t *ret_len)
{
	if (n > 2 * max)
		return -EMSGSIZE;
	if (n % 2)
		return -EINVAL;
	unsigned char *msg = malloc(n / 2 + 1);
	if (!msg)
		return -ENOMEM;
	for (size_t i = 0; i < n / 2; i++) {
		int hi = digit_value(field[2 * i]), lo = digit_value(field[2 * i + 1]);
		if (hi < 0 || lo < 0) {
			free(msg);
			return -EINVAL;
		}
		msg[i] = (unsigned char)(hi << 4 | lo);
	}
	msg[n / 2] = '\0';
	*ret_msg = msg;
	*ret_len = n / 2;
	return 0;
}
