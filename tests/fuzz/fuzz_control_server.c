/*
 * libFuzzer target for the control server: a real control_server (socket
 * in a private VENEER_RUNTIME_DIR, its own thread) with a stand-in
 * handler, and the input sent to it as one client connection's bytes.
 * The client then shuts its side and reads every reply until the server
 * closes; each reply must be well-formed.
 *
 * The stand-in handler answers the daemon's verbs with the parsers the
 * daemon uses on their arguments (vz_layer_spec_parse, vz_path_normalize,
 * trace_query_parse), and "trace" is a streaming verb that sends a few
 * chunks (one over the size of a message) and ends, so stream threads
 * start, run and are reaped on every such input.
 *
 * It does not check the peer-credential refusal (that needs a second uid;
 * tests/test_layers.py does it) and knows nothing of a mount.
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "control/control.h"
#include "control/control_proto.h"
#include "filters/trace/trace.h"
#include "filters/virtualize/vz_internal.h"

#define INPUT_MAX (64u << 10)
#define MOUNTPOINT "/fuzz/mnt"

static char sock_path[sizeof(((struct sockaddr_un *)NULL)->sun_path)];
static struct control_server *server;

static int call(void *arg, const char *verb, int nargs, char **args, char **ret_text, char *err,
		size_t errlen)
{
	char path[PATH_MAX];
	if (!strcmp(verb, "attach") && nargs == 2) {
		char *src, *at, *digest;
		int r = vz_layer_spec_parse(args[0], &src, &at, &digest);
		if (r < 0) {
			snprintf(err, errlen, "bad layer '%s'", args[0]);
			return r;
		}
		r = vz_path_normalize(args[1], path, sizeof(path));
		free(at);
		free(digest);
		if (r < 0) {
			free(src);
			snprintf(err, errlen, "bad path '%s'", args[1]);
			return r;
		}
		*ret_text = src;
		return 0;
	}
	if (!strcmp(verb, "detach") && nargs == 1) {
		if (args[0][0] == '/' && vz_path_normalize(args[0], path, sizeof(path)) < 0)
			return -EINVAL;
		*ret_text = NULL;
		return 0;
	}
	if (!strcmp(verb, "status") && nargs == 1) {
		/* "status big": a reply over the message limit must become an error */
		size_t len = !strcmp(args[0], "big") ? CONTROL_MAX_MESSAGE + 1 : 100;
		char *t = malloc(len + 1);
		if (!t)
			return -ENOMEM;
		memset(t, 's', len);
		t[len] = '\0';
		*ret_text = t;
		return 0;
	}
	snprintf(err, errlen, "unknown request '%s' with %d arguments", verb, nargs);
	return -EINVAL;
}

static bool is_stream(void *arg, const char *verb)
{
	return !strcmp(verb, "trace");
}

struct stream {
	struct trace_query q;
	int left;
};

static int stream_open(void *arg, pid_t peer, const char *verb, int nargs, char **args,
		       void **ret_ctx, char **ret_text, char *err, size_t errlen)
{
	struct stream *st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	int r = trace_query_parse(nargs, args, &st->q, err, errlen);
	if (r < 0) {
		free(st);
		return r;
	}
	st->left = st->q.pid == 1 ? 2 : 4;
	*ret_ctx = st;
	*ret_text = strdup("# header");
	return 0;
}

/* Some text with NULs and newlines, and once a chunk over one message. */
static int stream_next(void *ctx, char **buf, size_t *len, size_t *cap, int timeout_ms)
{
	struct stream *st = ctx;
	if (st->left-- <= 0)
		return -EPIPE;
	size_t want = st->left == 1 && st->q.slow_us == 7 ? CONTROL_MAX_MESSAGE + 100 : 64;
	if (*cap - *len < want) {
		char *n = realloc(*buf, *len + want);
		if (!n)
			return -ENOMEM;
		*buf = n;
		*cap = *len + want;
	}
	for (size_t i = 0; i < want; i++)
		(*buf)[*len + i] = i % 61 == 60 ? '\n' : i % 97 == 3 ? '\0' : 'r';
	*len += want;
	return 1;
}

static void stream_close(void *ctx)
{
	struct stream *st = ctx;
	trace_query_clear(&st->q);
	free(st);
}

static const struct control_stream_ops stream_ops = {
	.is_stream = is_stream,
	.open = stream_open,
	.next = stream_next,
	.close = stream_close,
};

static const struct control_handler handler = {
	.call = call,
	.stream = &stream_ops,
};

static char runtime_dir[] = "/tmp/veneer-fuzz-control.XXXXXX";

static void stop_server(void)
{
	char sdir[PATH_MAX];
	control_server_stop(server);
	server = NULL;
	/* the socket is gone with the server; its two directories are empty now */
	if (control_socket_dir(geteuid(), sdir, sizeof(sdir)) == 0)
		(void)rmdir(sdir);
	(void)rmdir(runtime_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char sdir[PATH_MAX];
	if (!mkdtemp(runtime_dir))
		abort();
	setenv("VENEER_RUNTIME_DIR", runtime_dir, 1);
	if (control_socket_dir(geteuid(), sdir, sizeof(sdir)) != 0 ||
	    control_socket_path_in(sdir, MOUNTPOINT, sock_path, sizeof(sock_path)) != 0 ||
	    control_server_start(MOUNTPOINT, geteuid(), &handler, &server) != 0) {
		fprintf(stderr, "fuzz_control_server: cannot start the server in %s\n",
			runtime_dir);
		abort();
	}
	atexit(stop_server);
	return 0;
}

static int connect_server(void)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	memcpy(addr.sun_path, sock_path, sizeof(sock_path));
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		abort();
	return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > INPUT_MAX)
		return 0;
	int fd = connect_server();
	/* the server may stop reading (and close) before all of it is sent */
	(void)control_write_full(fd, data, size, control_deadline(8000), -1);
	(void)shutdown(fd, SHUT_WR);
	bool first = true;
	for (;;) {
		char *b = NULL, *fields[CONTROL_MAX_FIELDS], *text = NULL, err[256];
		size_t len;
		int n;
		int r = control_msg_recv(fd, control_deadline(8000), -1, &b, &len);
		if (r == -ETIMEDOUT) {
			fprintf(stderr, "fuzz_control_server: no reply within 8 s\n");
			abort();
		}
		if (r < 0)
			break;
		/* every message of the server decodes; the first one is ok or err */
		if (control_msg_decode(b, len, &n, fields) != 0)
			abort();
		err[0] = '\0';
		if (first && control_reply_parse(n, fields, &text, err, sizeof(err)) < 0 &&
		    !strcmp(err, "malformed reply from the daemon"))
			abort();
		free(text);
		free(b);
		first = false;
	}
	close(fd);
	return 0;
}
