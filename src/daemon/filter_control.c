/* `veneer filter` on the daemon's side; see filter_control.h. */
#include "daemon/filter_control.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/textbuf.h"
#include "control/port_frame.h"
#include "core/filter_list.h"
#include "core/filter_loader.h"
#include "core/filter_ports.h"
#include "core/filter_streams.h"
#include "core/node_table.h"
#include "frontend/fuse_request.h"

bool filter_control_serves(const char *verb)
{
	return !strcmp(verb, "filters") || !strcmp(verb, "port") || !strcmp(verb, "load") ||
	       !strcmp(verb, "unload") || !strcmp(verb, "answer");
}

/* ---- the sweep of an unloaded filter's contexts: every node, every open file ---- */

struct sweep {
	fm_slot_visit_fn *visit;
	void *arg;
};

static void visit_node(struct vn_node *node, void *arg)
{
	struct sweep *s = arg;
	s->visit(__atomic_load_n(&node->filter_ctx, __ATOMIC_ACQUIRE), true, s->arg);
}

static void visit_file(struct vn_file *file, void *arg)
{
	struct sweep *s = arg;
	s->visit(__atomic_load_n(&file->filter_ctx, __ATOMIC_ACQUIRE), false, s->arg);
}

static void sweep_all(fm_slot_visit_fn *visit, void *arg)
{
	struct sweep s = { visit, arg };
	node_table_each(frontend.nodes, visit_node, &s);
	frontend_each_file(visit_file, &s);
}

static int load(const char *spec, char **ret_text, char *err, size_t errlen)
{
	const char *name;
	int r = filter_load_live(spec, frontend_skips_opens(), &name, err, errlen);
	if (r == 0 && !(*ret_text = strdup(name)))
		r = -ENOMEM;
	return r;
}

static int port_send(char **args, char **ret_text, char *err, size_t errlen)
{
	void *msg, *reply = NULL;
	size_t len, reply_len = 0;
	int r = port_frame_decode(args[2], &msg, &len);
	if (r < 0) {
		if (r == -EMSGSIZE)
			snprintf(err, errlen, "message over %d bytes", VN_PORT_MAX_MESSAGE);
		else
			snprintf(err, errlen, "message is not a port frame (hex)");
		return r;
	}
	r = fm_port_send(args[0], args[1], msg, len, &reply, &reply_len, err, errlen);
	free(msg);
	if (r == 0)
		r = port_frame_encode(reply, reply_len, ret_text);
	free(reply);
	return r;
}

/* ---- a port's client: questions out, answers in ---- */

static int answer(char **args, char *err, size_t errlen)
{
	char *end;
	errno = 0;
	unsigned long long id = strtoull(args[2], &end, 10);
	if (errno || *end || !args[2][0]) {
		snprintf(err, errlen, "bad question number '%s'", args[2]);
		return -EINVAL;
	}
	void *reply;
	size_t len;
	int r = port_frame_decode(args[3], &reply, &len);
	if (r < 0) {
		snprintf(err, errlen, "the answer is not a port frame of at most %d bytes",
			 VN_PORT_MAX_MESSAGE);
		return r;
	}
	r = fm_port_answer(args[0], args[1], id, reply, len, err, errlen);
	free(reply);
	return r;
}

int filter_control_listen(pid_t peer, int nargs, char **args, void **ret_ctx, char *err,
			  size_t errlen)
{
	if (nargs != 2) {
		snprintf(err, errlen, "listen takes FILTER and PORT");
		return -EINVAL;
	}
	return fm_port_listen(args[0], args[1], peer, (struct port_client **)ret_ctx, err, errlen);
}

int filter_control_listen_next(void *ctx, char **buf, size_t *len, size_t *cap, int timeout_ms)
{
	struct fm_question *qs;
	size_t n;
	int r = fm_port_client_next(ctx, timeout_ms, &qs, &n);
	for (size_t i = 0; i < n; i++) {
		char *hex = NULL;
		if (r == 0)
			r = port_frame_encode(qs[i].msg, qs[i].len, &hex);
		if (r == 0)
			r = textbuf_printf(buf, len, cap, "%llu %s\n",
					   (unsigned long long)qs[i].id, hex);
		/* a question that could not be sent times out like an unanswered one */
		free(hex);
		free(qs[i].msg);
	}
	free(qs);
	return r;
}

void filter_control_listen_close(void *ctx)
{
	fm_port_client_close(ctx);
}

/* ---- a stream port's client: frames out ---- */

int filter_control_stream(int nargs, char **args, void **ret_ctx, char *err, size_t errlen)
{
	if (nargs != 3) {
		snprintf(err, errlen, "stream takes FILTER, PORT and a request");
		return -EINVAL;
	}
	void *msg;
	size_t len;
	int r = port_frame_decode(args[2], &msg, &len);
	if (r < 0) {
		snprintf(err, errlen, "the request is not a port frame of at most %d bytes",
			 VN_PORT_MAX_MESSAGE);
		return r;
	}
	r = fm_stream_open(args[0], args[1], msg, len, (struct fm_stream **)ret_ctx, err, errlen);
	free(msg);
	return r;
}

int filter_control_stream_next(void *ctx, char **buf, size_t *len, size_t *cap, int timeout_ms)
{
	void *frame;
	size_t flen;
	int r = fm_stream_next(ctx, timeout_ms, &frame, &flen);
	if (r < 0 || !frame)
		return r;
	char *hex = NULL;
	r = port_frame_encode_max(frame, flen, VN_PORT_MAX_FRAME, &hex);
	free(frame);
	if (r == 0)
		r = textbuf_printf(buf, len, cap, "%s\n", hex);
	free(hex);
	return r < 0 ? r : 1;
}

void filter_control_stream_close(void *ctx)
{
	fm_stream_close(ctx);
}

int filter_control_call(const char *verb, int nargs, char **args, char **ret_text, char *err,
			size_t errlen)
{
	if (!strcmp(verb, "filters") && nargs == 1)
		return fm_list(!strcmp(args[0], "json"), ret_text);
	if (!strcmp(verb, "port") && nargs == 3)
		return port_send(args, ret_text, err, errlen);
	if (!strcmp(verb, "load") && nargs == 1)
		return load(args[0], ret_text, err, errlen);
	if (!strcmp(verb, "answer") && nargs == 4)
		return answer(args, err, errlen);
	if (!strcmp(verb, "unload") && nargs == 2)
		return fm_unload(args[0], !strcmp(args[1], "force"), sweep_all, err, errlen);
	snprintf(err, errlen, "wrong arguments for '%s'", verb);
	return -EINVAL;
}
