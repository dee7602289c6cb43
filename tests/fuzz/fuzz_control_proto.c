/*
 * libFuzzer target for the control socket's wire format and the parsers
 * behind it, without a server: the input is a byte stream as a peer would
 * send it.
 *
 *   - framing: the input is written into a socketpair and read back with
 *     control_msg_recv until it fails (several messages per input);
 *   - every body read, and the whole input as one body, goes through
 *     control_msg_decode (in a buffer of exactly its size, so ASan sees
 *     any read past it), control_reply_parse and an encode round trip;
 *   - every decoded field goes through the parsers that take request
 *     arguments: trace_query_parse (the fields as "trace" arguments),
 *     vz_layer_spec_parse, vz_path_normalize (into buffers of several
 *     sizes), the path helpers and control_socket_path_in.
 *
 * The server's own handling of a connection is fuzz_control_server.c.
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "control/control_proto.h"
#include "filters/trace/trace.h"
#include "filters/virtualize/vz_internal.h"

/* Bigger inputs would not fit in the socketpair's buffer in one write. */
#define INPUT_MAX (64u << 10)
#define MAX_MESSAGES 64

static void paths(const char *f)
{
	static const size_t sizes[] = { PATH_MAX, 64, 2, 1 };
	char out[PATH_MAX], sock[108];
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		int r = vz_path_normalize(f, out, sizes[i]);
		if (r == 0 && (strlen(out) >= sizes[i] || out[0] != '/'))
			abort();
	}
	if (vz_path_normalize(f, out, sizeof(out)) == 0) {
		/* a normalized path is its own normal form */
		char again[PATH_MAX], joined[PATH_MAX];
		size_t len;
		if (vz_path_normalize(out, again, sizeof(again)) != 0 || strcmp(out, again))
			abort();
		(void)vz_path_under(out, "/a", 2);
		(void)vz_path_under("/a/b", out, strlen(out));
		(void)vz_path_next_component(out, "/a/b/c", &len);
		(void)vz_path_next_component("/", out, &len);
		(void)vz_path_join(out, "name", joined, sizeof(joined));
		(void)vz_path_join(out, "name", joined, 16);
		if (control_socket_path_in("/run/veneer", out, sock, sizeof(sock)) == 0 &&
		    strlen(sock) >= sizeof(sock))
			abort();
	}
	char *src = NULL, *path = NULL, *digest = NULL;
	if (vz_layer_spec_parse(f, &src, &path, &digest) == 0) {
		if (!src[0] || !path[0] || (digest && strncmp(digest, "sha256:", 7)))
			abort();
		free(src);
		free(path);
		free(digest);
	}
}

static void fields_parse(int n, char **fields)
{
	char err[256] = "", *text = NULL;
	if (control_reply_parse(n, fields, &text, err, sizeof(err)) == 0)
		free(text);
	struct trace_query q;
	if (trace_query_parse(n - 1, fields + 1, &q, err, sizeof(err)) == 0)
		trace_query_clear(&q);
	if (trace_query_parse(n, fields, &q, err, sizeof(err)) == 0)
		trace_query_clear(&q);
	for (int i = 0; i < n; i++)
		paths(fields[i]);
}

/* Decodes LEN bytes of DATA as one body, in a buffer of exactly that size. */
static void body(const uint8_t *data, size_t len)
{
	char *b = malloc(len ? len : 1);
	char *fields[CONTROL_MAX_FIELDS];
	int n;
	if (!b)
		abort();
	memcpy(b, data, len);
	if (control_msg_decode(b, len, &n, fields) == 0) {
		if (n < 1 || n > CONTROL_MAX_FIELDS)
			abort();
		fields_parse(n, fields);
		/* encoding the fields gives the same body back */
		char *buf;
		size_t blen;
		if (control_msg_encode(n, (const char *const *)fields, &buf, &blen) != 0 ||
		    blen != CONTROL_HEADER_SIZE + len ||
		    control_msg_length((unsigned char *)buf) != len ||
		    memcmp(buf + CONTROL_HEADER_SIZE, data, len))
			abort();
		free(buf);
	}
	free(b);
}

static void framing(const uint8_t *data, size_t size)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	if (control_write_full(sv[0], data, size, control_deadline(5000), -1) != 0)
		abort();
	(void)shutdown(sv[0], SHUT_WR);
	for (int i = 0; i < MAX_MESSAGES; i++) {
		char *b = NULL;
		size_t len = 0;
		int r = control_msg_recv(sv[1], control_deadline(5000), -1, &b, &len);
		if (r == -ETIMEDOUT)
			abort();	/* the whole input is there: nothing may wait */
		if (r < 0)
			break;
		if (len == 0 || len > CONTROL_MAX_MESSAGE)
			abort();
		body((const uint8_t *)b, len);
		free(b);
	}
	close(sv[0]);
	close(sv[1]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > INPUT_MAX)
		return 0;
	framing(data, size);
	body(data, size);
	if (size > CONTROL_HEADER_SIZE)
		body(data + CONTROL_HEADER_SIZE, size - CONTROL_HEADER_SIZE);
	/* as a raw text chunk of a stream */
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0) {
		if (control_msg_send_text(sv[0], control_deadline(5000), -1, (const char *)data,
					  size) == 0) {
			char *b = NULL;
			size_t len;
			if (control_msg_recv(sv[1], control_deadline(5000), -1, &b, &len) != 0 ||
			    len != size + 1)
				abort();
			free(b);
		}
		close(sv[0]);
		close(sv[1]);
	}
	return 0;
}
