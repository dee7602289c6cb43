/* `veneer filter` on the daemon's side; see filter_control.h. */
#include "frontend/filter_control.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/port_frame.h"
#include "core/filter_list.h"
#include "core/filter_loader.h"
#include "core/filter_ports.h"
#include "core/node_table.h"
#include "frontend/fuse_request.h"

bool filter_control_serves(const char *verb)
{
	return !strcmp(verb, "filters") || !strcmp(verb, "port") || !strcmp(verb, "load") ||
	       !strcmp(verb, "unload");
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
	int r = filter_load_live(spec, frontend.cfg.skip_opens, &name, err, errlen);
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

int filter_control_call(const char *verb, int nargs, char **args, char **ret_text, char *err,
			size_t errlen)
{
	if (!strcmp(verb, "filters") && nargs == 1)
		return fm_list(!strcmp(args[0], "json"), ret_text);
	if (!strcmp(verb, "port") && nargs == 3)
		return port_send(args, ret_text, err, errlen);
	if (!strcmp(verb, "load") && nargs == 1)
		return load(args[0], ret_text, err, errlen);
	if (!strcmp(verb, "unload") && nargs == 2)
		return fm_unload(args[0], !strcmp(args[1], "force"), sweep_all, err, errlen);
	snprintf(err, errlen, "wrong arguments for '%s'", verb);
	return -EINVAL;
}
