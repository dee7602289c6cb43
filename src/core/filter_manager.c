/* Filter registration and dispatch; see filter_manager.h. */
#include "core/filter_manager.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Written only before the mount serves requests; read-only afterwards. */
static struct vn_filter *stack[VN_MAX_FILTERS];	/* highest altitude first */
static unsigned int nfilters;
static fm_lower_fn *lower_fn;
static bool has_handler[VN_OP_COUNT];
static bool wants_opens;	/* a filter needs every OPEN, RELEASE, FLUSH, OPENDIR, RELEASEDIR */
static bool wants_all_data;	/* a filter needs every READ and WRITE */
static int data_wanted;		/* atomic: vn_want_data's count, all filters */

void fm_init(fm_lower_fn *lower)
{
	lower_fn = lower;
}

static int fill_handlers(struct vn_filter *f)
{
	for (const struct vn_filter_handler *h = f->ops->handlers; h && h->op != VN_OP_NONE; h++) {
		if (h->op <= VN_OP_NONE || h->op >= VN_OP_COUNT || (!h->pre && !h->post))
			return -EINVAL;
		f->pre[h->op] = h->pre;
		f->post[h->op] = h->post;
		has_handler[h->op] = true;
		if ((h->op == VN_OP_OPEN || h->op == VN_OP_RELEASE || h->op == VN_OP_FLUSH ||
		     h->op == VN_OP_OPENDIR || h->op == VN_OP_RELEASEDIR) &&
		    !(f->ops->flags & VN_FILTER_OPENS_SKIPPABLE))
			wants_opens = true;
		if ((h->op == VN_OP_READ || h->op == VN_OP_WRITE) &&
		    !(f->ops->flags & VN_FILTER_DATA_SKIPPABLE))
			wants_all_data = true;
	}
	return 0;
}

static void filter_free(struct vn_filter *f)
{
	free(f->origin);
	free(f);
}

int fm_register(const struct vn_filter_ops *ops, const char *args, void *dl_handle,
		const char *origin)
{
	if (!ops || ops->api_version < VN_FILTER_API_MIN_VERSION ||
	    ops->api_version > VN_FILTER_API_VERSION || !ops->name)
		return -EINVAL;
	if (nfilters >= VN_MAX_FILTERS)
		return -ENOSPC;
	struct vn_filter *f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->ops = ops;
	f->index = nfilters;
	f->dl_handle = dl_handle;
	int r = origin && !(f->origin = strdup(origin)) ? -ENOMEM : fill_handlers(f);
	if (r == 0 && ops->attach)
		r = ops->attach(f, args);
	if (r < 0) {
		filter_free(f);
		return r;
	}
	unsigned int pos = nfilters++;
	while (pos > 0 && stack[pos - 1]->ops->altitude < ops->altitude) {
		stack[pos] = stack[pos - 1];
		pos--;
	}
	stack[pos] = f;
	return 0;
}

void fm_shutdown(void)
{
	while (nfilters > 0) {
		struct vn_filter *f = stack[--nfilters];
		if (f->ops->detach)
			f->ops->detach(f);
		if (f->dl_handle)
			dlclose(f->dl_handle);
		filter_free(f);
	}
}

unsigned int fm_filters(struct vn_filter *out[VN_MAX_FILTERS])
{
	for (unsigned int i = 0; i < nfilters; i++)
		out[i] = stack[i];
	return nfilters;
}

struct vn_filter *fm_find(const char *name)
{
	for (unsigned int i = 0; i < nfilters; i++)
		if (!strcmp(stack[i]->ops->name, name))
			return stack[i];
	return NULL;
}

bool fm_has_handler(enum vn_opcode op)
{
	return op > VN_OP_NONE && op < VN_OP_COUNT && has_handler[op];
}

bool fm_wants_opens(void)
{
	return wants_opens;
}

bool fm_data_wanted(void)
{
	return wants_all_data || __atomic_load_n(&data_wanted, __ATOMIC_ACQUIRE) > 0;
}

void vn_want_data(struct vn_filter *f, int on)
{
	(void)f;
	__atomic_add_fetch(&data_wanted, on ? 1 : -1, __ATOMIC_ACQ_REL);
}

static void run_post(struct fm_call *c, int from)
{
	for (int i = from; i >= 0; i--) {
		if (!(c->post_mask & (1u << i)))
			continue;
		struct vn_filter *f = stack[i];
		f->post[c->op.opcode](f, &c->op, c->post_ctx[i]);
	}
}

/*
 * Runs pre callbacks from level START down, then the lower and the posts.
 * After a pre returns VN_PENDING, c may already be finished and freed by
 * another thread: nothing here touches it again.
 */
static void run_from(struct fm_call *c, unsigned int start)
{
	enum vn_opcode opc = c->op.opcode;
	for (unsigned int i = start; i < nfilters; i++) {
		struct vn_filter *f = stack[i];
		if (!f->pre[opc]) {
			if (f->post[opc])
				c->post_mask |= 1u << i;
			continue;
		}
		c->level = (int)i;
		c->post_ctx[i] = NULL;
		switch (f->pre[opc](f, &c->op, &c->post_ctx[i])) {
		case VN_PASS:
			break;
		case VN_PASS_WITH_POST:
			if (f->post[opc])
				c->post_mask |= 1u << i;
			break;
		case VN_COMPLETE:
			run_post(c, (int)i - 1);
			c->finish(c);
			return;
		case VN_PENDING:
			return;
		default:
			c->op.error = -EIO;
			run_post(c, (int)i - 1);
			c->finish(c);
			return;
		}
	}
	lower_fn(&c->op);
	run_post(c, (int)nfilters - 1);
	c->finish(c);
}

void fm_dispatch(struct fm_call *c)
{
	c->post_mask = 0;
	if (!has_handler[c->op.opcode]) {
		lower_fn(&c->op);
		c->finish(c);
		return;
	}
	run_from(c, 0);
}

void vn_op_resume(struct vn_op *op, enum vn_verdict verdict)
{
	struct fm_call *c = (struct fm_call *)op;
	unsigned int i = (unsigned int)c->level;
	switch (verdict) {
	case VN_PASS_WITH_POST:
		if (stack[i]->post[op->opcode])
			c->post_mask |= 1u << i;
		run_from(c, i + 1);
		break;
	case VN_PASS:
		run_from(c, i + 1);
		break;
	default:
		if (verdict != VN_COMPLETE)
			op->error = -EIO;
		run_post(c, (int)i - 1);
		c->finish(c);
		break;
	}
}

/* ---- contexts ---- */

static void **slots_of(void ***where)
{
	void **slots = __atomic_load_n(where, __ATOMIC_ACQUIRE);
	if (slots)
		return slots;
	void **fresh = calloc(VN_MAX_FILTERS, sizeof(*fresh));
	if (!fresh)
		return NULL;
	void **expected = NULL;
	if (__atomic_compare_exchange_n(where, &expected, fresh, false, __ATOMIC_ACQ_REL,
					__ATOMIC_ACQUIRE))
		return fresh;
	free(fresh);
	return expected;
}

static void *context_of(void ***where, unsigned int index, size_t size)
{
	if (!size)
		return NULL;
	void **slots = slots_of(where);
	if (!slots)
		return NULL;
	void *ctx = __atomic_load_n(&slots[index], __ATOMIC_ACQUIRE);
	if (ctx)
		return ctx;
	void *fresh = calloc(1, size);
	if (!fresh)
		return NULL;
	void *expected = NULL;
	if (__atomic_compare_exchange_n(&slots[index], &expected, fresh, false, __ATOMIC_ACQ_REL,
					__ATOMIC_ACQUIRE))
		return fresh;
	free(fresh);
	return expected;
}

void *vn_node_context(struct vn_filter *f, struct vn_node *node)
{
	return context_of(&node->filter_ctx, f->index, f->ops->node_ctx_size);
}

void *vn_file_context(struct vn_filter *f, struct vn_file *file)
{
	return context_of(&file->filter_ctx, f->index, f->ops->file_ctx_size);
}

static void free_contexts(void **slots, bool node)
{
	if (!slots)
		return;
	for (unsigned int i = 0; i < nfilters; i++) {
		struct vn_filter *f = stack[i];
		void *ctx = slots[f->index];
		if (!ctx)
			continue;
		void (*cleanup)(struct vn_filter *, void *) =
			node ? f->ops->node_ctx_cleanup : f->ops->file_ctx_cleanup;
		if (cleanup)
			cleanup(f, ctx);
		free(ctx);
	}
	free(slots);
}

void fm_free_node_contexts(void **slots)
{
	free_contexts(slots, true);
}

void fm_free_file_contexts(void **slots)
{
	free_contexts(slots, false);
}

int vn_node_origin(struct vn_node *node, char *buf, size_t size)
{
	struct vn_filter *f = node->owner;
	if (!f || !f->ops->node_origin)
		return -ENOENT;
	return f->ops->node_origin(f, node, buf, size);
}

void *vn_filter_private(struct vn_filter *f)
{
	return f->priv;
}

void vn_filter_set_private(struct vn_filter *f, void *priv)
{
	f->priv = priv;
}
