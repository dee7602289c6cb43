/*
 * The control socket's wire format: encode/decode over buffers, and the
 * read/write loops both ends use.  Every wait is bounded by a deadline, so
 * a silent or dead peer cannot hang the CLI or the daemon's control thread:
 * the server gives a client 5 s to send its request, the client gives the
 * daemon 60 s to answer (attaching a large image may take a while).
 * It does not know any verb; control_server.c and control_client.c do.
 */
#include "control/control_proto.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

int control_msg_encode(int nfields, const char *const *fields, char **ret_buf, size_t *ret_len)
{
	if (nfields < 1 || nfields > CONTROL_MAX_FIELDS)
		return -EINVAL;
	size_t body = 0;
	for (int i = 0; i < nfields; i++) {
		body += strlen(fields[i]) + 1;
		/* checked inside the loop so the sum cannot wrap */
		if (body > CONTROL_MAX_MESSAGE)
			return -EMSGSIZE;
	}
	char *buf = malloc(CONTROL_HEADER_SIZE + body);
	if (!buf)
		return -ENOMEM;
	for (int i = 0; i < CONTROL_HEADER_SIZE; i++)
		buf[i] = (char)((body >> (8 * i)) & 0xff);
	char *p = buf + CONTROL_HEADER_SIZE;
	for (int i = 0; i < nfields; i++) {
		size_t n = strlen(fields[i]) + 1;
		memcpy(p, fields[i], n);
		p += n;
	}
	*ret_buf = buf;
	*ret_len = CONTROL_HEADER_SIZE + body;
	return 0;
}

int control_msg_decode(char *body, size_t len, int *ret_nfields,
		       char *ret_fields[CONTROL_MAX_FIELDS])
{
	/* the last field must be terminated: this also rejects len == 0 */
	if (len == 0 || body[len - 1] != '\0')
		return -EINVAL;
	char *fields[CONTROL_MAX_FIELDS];
	int n = 0;
	for (size_t off = 0; off < len; off += strlen(body + off) + 1) {
		if (n == CONTROL_MAX_FIELDS)
			return -EINVAL;
		fields[n++] = body + off;
	}
	memcpy(ret_fields, fields, (size_t)n * sizeof(fields[0]));
	*ret_nfields = n;
	return 0;
}

uint32_t control_msg_length(const unsigned char header[CONTROL_HEADER_SIZE])
{
	return (uint32_t)header[0] | (uint32_t)header[1] << 8 | (uint32_t)header[2] << 16 |
	       (uint32_t)header[3] << 24;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t control_deadline(int timeout_ms)
{
	return now_ms() + timeout_ms;
}

int control_wait_fd(int fd, short events, int64_t deadline, int cancel_fd)
{
	for (;;) {
		int64_t left = deadline - now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		struct pollfd pfd[2] = {
			{ .fd = fd, .events = events },
			{ .fd = cancel_fd, .events = POLLIN },
		};
		int r = poll(pfd, cancel_fd >= 0 ? 2 : 1, left > INT_MAX ? INT_MAX : (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (cancel_fd >= 0 && pfd[1].revents)
			return -ECANCELED;
		if (pfd[0].revents)
			return 0;
	}
}

int control_read_full(int fd, void *buf, size_t len, int64_t deadline, int cancel_fd)
{
	char *p = buf;
	while (len > 0) {
		int r = control_wait_fd(fd, POLLIN, deadline, cancel_fd);
		if (r < 0)
			return r;
		ssize_t n = recv(fd, p, len, MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EPROTO;	/* the peer closed in the middle of a message */
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int control_write_full(int fd, const void *buf, size_t len, int64_t deadline, int cancel_fd)
{
	const char *p = buf;
	while (len > 0) {
		int r = control_wait_fd(fd, POLLOUT, deadline, cancel_fd);
		if (r < 0)
			return r;
		/* MSG_NOSIGNAL: a client that went away must not kill the daemon */
		ssize_t n = send(fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int control_msg_recv(int fd, int64_t deadline, int cancel_fd, char **ret_body, size_t *ret_len)
{
	unsigned char header[CONTROL_HEADER_SIZE];
	int r = control_read_full(fd, header, sizeof(header), deadline, cancel_fd);
	if (r < 0)
		return r;
	uint32_t len = control_msg_length(header);
	if (len > CONTROL_MAX_MESSAGE)
		return -EMSGSIZE;
	if (len == 0)
		return -EINVAL;
	char *body = malloc(len);
	if (!body)
		return -ENOMEM;
	r = control_read_full(fd, body, len, deadline, cancel_fd);
	if (r < 0) {
		free(body);
		return r;
	}
	*ret_body = body;
	*ret_len = len;
	return 0;
}

int control_msg_send(int fd, int64_t deadline, int cancel_fd, int nfields,
		     const char *const *fields)
{
	char *buf;
	size_t len;
	int r = control_msg_encode(nfields, fields, &buf, &len);
	if (r < 0)
		return r;
	r = control_write_full(fd, buf, len, deadline, cancel_fd);
	free(buf);
	return r;
}

int control_msg_send_text(int fd, int64_t deadline, int cancel_fd, const char *text, size_t len)
{
	if (len + 1 > CONTROL_MAX_MESSAGE || memchr(text, '\0', len))
		return -EINVAL;
	char *buf = malloc(CONTROL_HEADER_SIZE + len + 1);
	if (!buf)
		return -ENOMEM;
	size_t body = len + 1;
	for (int i = 0; i < CONTROL_HEADER_SIZE; i++)
		buf[i] = (char)((body >> (8 * i)) & 0xff);
	memcpy(buf + CONTROL_HEADER_SIZE, text, len);
	buf[CONTROL_HEADER_SIZE + len] = '\0';
	int r = control_write_full(fd, buf, CONTROL_HEADER_SIZE + body, deadline, cancel_fd);
	free(buf);
	return r;
}

int control_reply_ok(int fd, int64_t deadline, int cancel_fd, const char *text)
{
	const char *fields[] = { "ok", text ? text : "" };
	return control_msg_send(fd, deadline, cancel_fd, 2, fields);
}

int control_reply_err(int fd, int64_t deadline, int cancel_fd, int err, const char *message)
{
	char num[16];
	snprintf(num, sizeof(num), "%d", err);
	const char *fields[] = { "err", num, message && *message ? message : strerror(err) };
	return control_msg_send(fd, deadline, cancel_fd, 3, fields);
}

/* A positive errno from its decimal text, or 0 when it is not one. */
static int parse_errno(const char *s)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v <= 0 || v >= 4096)
		return 0;
	return (int)v;
}

int control_reply_parse(int nfields, char **fields, char **ret_text, char *err, size_t errlen)
{
	if (nfields == 2 && !strcmp(fields[0], "ok")) {
		char *text = strdup(fields[1]);
		if (!text) {
			snprintf(err, errlen, "%s", strerror(ENOMEM));
			return -ENOMEM;
		}
		*ret_text = text;
		return 0;
	}
	if (nfields == 3 && !strcmp(fields[0], "err")) {
		int e = parse_errno(fields[1]);
		if (e) {
			snprintf(err, errlen, "%s", fields[2]);
			return -e;
		}
	}
	snprintf(err, errlen, "malformed reply from the daemon");
	return -EPROTO;
}
