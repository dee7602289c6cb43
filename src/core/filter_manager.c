/*
 * Filter registration and dispatch; see filter_manager.h.
 *
 * The stack is an immutable struct fm_stack: loading or unloading a filter
 * builds a new one and swaps the pointer under stack_lock.  Each call takes
 * a reference on the stack current when it begins and keeps it until its
 * reply, so it sees one stack from start to end, also across pending, and
 * a replaced stack lives until its last call ends.  An unload waits until
 * no replaced stack that holds the filter is in use.
 */
#include "core/filter_manager.h"
#include "core/filter_ports.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

struct fm_stack {
	unsigned int refs;		/* atomic: calls running through it, +1 while current */
	unsigned int n;
	struct vn_filter *filters[VN_MAX_FILTERS];	/* highest altitude first */
	bool has_handler[VN_OP_COUNT];
	bool cancellable[VN_OP_COUNT];	/* a pre of a filter that can be told of a cancel */
	bool wants_opens;		/* a filter needs every OPEN, RELEASE, FLUSH, OPENDIR, RELEASEDIR */
	bool wants_all_data;		/* a filter needs every READ and WRITE */
	struct fm_stack *next_retired;
};

static pthread_mutex_t stack_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t stack_retired_cond = PTHREAD_COND_INITIALIZER;	/* a retired stack ended */
static struct fm_stack empty_stack = { .refs = 1 };
static struct fm_stack *current = &empty_stack;	/* stack_lock */
static struct fm_stack *retired;		/* stack_lock: replaced stacks still in use */
/* The filter owning each context slot; set under stack_lock, read with acquire. */
static struct vn_filter *slot_owner[VN_MAX_FILTERS];
static fm_lower_fn *lower_fn;
static bool all_data;		/* atomic: current->wants_all_data */
static int data_wanted;		/* atomic: vn_want_data's count, all filters */

void fm_init(fm_lower_fn *lower)
{
	lower_fn = lower;
}

/* F handles an opcode with one of the facts ANY and none of NONE. */
static bool handles_any(const struct vn_filter *f, unsigned int any, unsigned int none)
{
	for (int op = VN_OP_NONE + 1; op < VN_OP_COUNT; op++) {
		unsigned int facts = vn_opcode_facts(op);
		if ((facts & any) && !(facts & none) && (f->pre[op] || f->post[op]))
			return true;
	}
	return false;
}

/* The kernel skips opens and closes of existing objects, never a CREATE. */
static bool handles_opens(const struct vn_filter *f)
{
	return !(f->ops->flags & VN_FILTER_OPENS_SKIPPABLE) &&
	       handles_any(f, VN_OPF_OPENS | VN_OPF_CLOSES, VN_OPF_CREATES);
}

/* F can be told that an operation it pends was cancelled: by its callback or its questions. */
static bool hears_cancels(const struct vn_filter *f)
{
	return f->ops->cancel || (!(f->ops->flags & VN_FILTER_PORTS_ANSWER_ONLY) &&
				  __atomic_load_n(&f->has_ports, __ATOMIC_ACQUIRE));
}

static bool handles_all_data(const struct vn_filter *f)
{
	return !(f->ops->flags & VN_FILTER_DATA_SKIPPABLE) && handles_any(f, VN_OPF_DATA, 0);
}

static int fill_handlers(struct vn_filter *f)
{
	for (const struct vn_filter_handler *h = f->ops->handlers; h && h->op != VN_OP_NONE; h++) {
		if (h->op <= VN_OP_NONE || h->op >= VN_OP_COUNT || (!h->pre && !h->post))
			return -EINVAL;
		f->pre[h->op] = h->pre;
		f->post[h->op] = h->post;
	}
	return 0;
}

/* ---- stacks ---- */

/* A new stack: FROM without DROP (may be NULL), with ADD (may be NULL) at its altitude. */
static struct fm_stack *stack_build(const struct fm_stack *from, struct vn_filter *drop,
				    struct vn_filter *add)
{
	struct fm_stack *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->refs = 1;
	for (unsigned int i = 0; i <= from->n; i++) {
		struct vn_filter *f = i < from->n ? from->filters[i] : NULL;
		/* among equal altitudes the filter loaded first sits higher */
		if (add && (!f || f->ops->altitude < add->ops->altitude)) {
			s->filters[s->n++] = add;
			add = NULL;
		}
		if (f && f != drop)
			s->filters[s->n++] = f;
	}
	for (unsigned int i = 0; i < s->n; i++) {
		struct vn_filter *f = s->filters[i];
		bool cancels = hears_cancels(f);
		for (int op = VN_OP_NONE + 1; op < VN_OP_COUNT; op++) {
			s->has_handler[op] |= f->pre[op] || f->post[op];
			s->cancellable[op] |= cancels && f->pre[op];
		}
		s->wants_opens |= handles_opens(f);
		s->wants_all_data |= handles_all_data(f);
	}
	return s;
}

static void stack_put(struct fm_stack *s)
{
	if (__atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	/* only a retired stack reaches zero: the current one holds a reference */
	pthread_mutex_lock(&stack_lock);
	for (struct fm_stack **p = &retired; *p; p = &(*p)->next_retired) {
		if (*p == s) {
			*p = s->next_retired;
			break;
		}
	}
	pthread_cond_broadcast(&stack_retired_cond);
	pthread_mutex_unlock(&stack_lock);
	free(s);
}

/* Makes S current; the old one is retired until its calls end. Under stack_lock. */
static struct fm_stack *stack_publish_locked(struct fm_stack *s)
{
	struct fm_stack *old = current;
	current = s;
	__atomic_store_n(&all_data, s->wants_all_data, __ATOMIC_RELEASE);
	if (old != &empty_stack) {
		old->next_retired = retired;
		retired = old;
	}
	return old == &empty_stack ? NULL : old;
}

static void stack_publish(struct fm_stack *s)
{
	pthread_mutex_lock(&stack_lock);
	struct fm_stack *old = stack_publish_locked(s);
	pthread_mutex_unlock(&stack_lock);
	if (old)
		stack_put(old);
}

static bool stack_holds(const struct fm_stack *s, const struct vn_filter *f)
{
	for (unsigned int i = 0; i < s->n; i++)
		if (s->filters[i] == f)
			return true;
	return false;
}

/* Waits until no retired stack holds F: 0, or -ETIMEDOUT after FM_DRAIN_TIMEOUT_MS. */
static int wait_drained(const struct vn_filter *f)
{
	struct timespec deadline;
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += FM_DRAIN_TIMEOUT_MS / 1000;
	int r = 0;
	pthread_mutex_lock(&stack_lock);
	for (;;) {
		bool busy = false;
		for (struct fm_stack *s = retired; s && !busy; s = s->next_retired)
			busy = stack_holds(s, f);
		if (!busy || r == ETIMEDOUT)
			break;
		r = pthread_cond_timedwait(&stack_retired_cond, &stack_lock, &deadline);
	}
	bool drained = true;
	for (struct fm_stack *s = retired; s && drained; s = s->next_retired)
		drained = !stack_holds(s, f);
	pthread_mutex_unlock(&stack_lock);
	return drained ? 0 : -ETIMEDOUT;
}

void fm_call_begin(struct fm_call *c)
{
	pthread_mutex_lock(&stack_lock);
	c->stack = current;
	__atomic_add_fetch(&c->stack->refs, 1, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&stack_lock);
}

void fm_call_end(struct fm_call *c)
{
	if (c->stack)
		stack_put(c->stack);
	c->stack = NULL;
}

bool fm_call_handles(const struct fm_call *c, enum vn_opcode op)
{
	return op > VN_OP_NONE && op < VN_OP_COUNT && c->stack->has_handler[op];
}

bool fm_call_cancellable(const struct fm_call *c)
{
	return c->stack->cancellable[c->op.opcode];
}

static void filter_free(struct vn_filter *f)
{
	free(f->origin);
	free(f);
}

/* A free context slot, claimed for F; -ENOSPC when all are taken. Under stack_lock. */
static int slot_claim_locked(struct vn_filter *f)
{
	for (unsigned int i = 0; i < VN_MAX_FILTERS; i++) {
		if (!slot_owner[i]) {
			f->index = i;
			__atomic_store_n(&slot_owner[i], f, __ATOMIC_RELEASE);
			return 0;
		}
	}
	return -ENOSPC;
}

static void slot_release(struct vn_filter *f)
{
	pthread_mutex_lock(&stack_lock);
	__atomic_store_n(&slot_owner[f->index], NULL, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&stack_lock);
}

/* ---- versions ---- */

/* How much of struct vn_filter_ops an object of VERSION has; 0 from version 4 (it says). */
static size_t ops_size_of_version(unsigned int version)
{
	switch (version) {
	case 2:
		return offsetof(struct vn_filter_ops, teardown);
	case 3:
		return offsetof(struct vn_filter_ops, cancel);
	default:
		return 0;
	}
}

/* The smallest size an object of version 4 or later may give: the fields of version 4. */
#define OPS_SIZE_V4 \
	(offsetof(struct vn_filter_ops, cancel) + sizeof(((struct vn_filter_ops *)0)->cancel))

int fm_ops_check(const struct vn_filter_ops *ops, const char *origin, char *err, size_t errlen)
{
	if (ops->api_version < VN_FILTER_API_MIN_VERSION ||
	    ops->api_version > VN_FILTER_API_VERSION) {
		snprintf(err, errlen,
			 "filter '%s' was built for filter API %u, this veneer loads %u to %u%s",
			 origin, ops->api_version, VN_FILTER_API_MIN_VERSION,
			 VN_FILTER_API_VERSION,
			 ops->api_version > VN_FILTER_API_VERSION ? ": update veneer" :
								    ": rebuild the filter");
		return -EINVAL;
	}
	/* before version 4 the size field was padding, which 32-bit systems lack */
	if (ops->api_version < 4 && sizeof(void *) < 8) {
		snprintf(err, errlen,
			 "filter '%s' was built for filter API %u, whose layout this 32-bit "
			 "veneer (API %u) cannot read: rebuild the filter",
			 origin, ops->api_version, VN_FILTER_API_VERSION);
		return -EINVAL;
	}
	if (ops->api_version >= 4 &&
	    (ops->size < OPS_SIZE_V4 || ops->size > sizeof(struct vn_filter_ops))) {
		snprintf(err, errlen,
			 "filter '%s' (filter API %u) gives a struct vn_filter_ops of %u bytes, "
			 "this veneer (API %u) reads %zu to %zu: set .size = sizeof(struct "
			 "vn_filter_ops)",
			 origin, ops->api_version, ops->size, VN_FILTER_API_VERSION,
			 (size_t)OPS_SIZE_V4, sizeof(struct vn_filter_ops));
		return -EINVAL;
	}
	if (!ops->name) {
		snprintf(err, errlen, "filter '%s' has no name", origin);
		return -EINVAL;
	}
	return 0;
}

/* ---- registration ---- */

/* A filter object for OPS, its handlers filled in and a slot claimed; not attached. */
static int filter_new(const struct vn_filter_ops *ops, void *dl_handle, const char *origin,
		      struct vn_filter **ret)
{
	char err[256];
	if (!ops || fm_ops_check(ops, origin ? origin : "built-in", err, sizeof(err)) < 0)
		return -EINVAL;
	struct vn_filter *f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	size_t size = ops->api_version >= 4 ? ops->size : ops_size_of_version(ops->api_version);
	memcpy(&f->ops_copy, ops, size);	/* the rest stays zero: fields it does not have */
	f->ops_copy.size = sizeof(f->ops_copy);
	f->ops = &f->ops_copy;
	f->dl_handle = dl_handle;
	int r = origin && !(f->origin = strdup(origin)) ? -ENOMEM : fill_handlers(f);
	if (r == 0) {
		pthread_mutex_lock(&stack_lock);
		r = slot_claim_locked(f);
		pthread_mutex_unlock(&stack_lock);
	}
	if (r < 0) {
		filter_free(f);
		return r;
	}
	*ret = f;
	return 0;
}

void vn_attach_error(struct vn_filter *f, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(f->attach_err, sizeof(f->attach_err), fmt, ap);
	va_end(ap);
}

/* Why F refused to attach with R: in ERR. */
static void attach_refused(const struct vn_filter *f, int r, char *err, size_t errlen)
{
	const char *why = f->attach_err[0] ? f->attach_err : strerror(-r);
	if (!f->origin && f->attach_err[0])
		snprintf(err, errlen, "%s", why);
	else
		snprintf(err, errlen, "filter '%s' refused to attach: %s",
			 f->origin ? f->origin : f->ops->name, why);
}

/* Attaches F and puts it into the stack; undoes filter_new on failure, saying why in ERR. */
static int filter_attach(struct vn_filter *f, const char *args, char *err, size_t errlen)
{
	int r = f->ops->attach ? f->ops->attach(f, args) : 0;
	struct fm_stack *s = NULL;
	if (r == 0) {
		pthread_mutex_lock(&stack_lock);
		s = stack_build(current, NULL, f);
		pthread_mutex_unlock(&stack_lock);
		if (!s) {
			r = -ENOMEM;
			if (f->ops->detach)
				f->ops->detach(f);
		}
	}
	if (r < 0) {
		attach_refused(f, r, err, errlen);
		slot_release(f);
		filter_free(f);
		return r;
	}
	stack_publish(s);
	return 0;
}

int fm_register(const struct vn_filter_ops *ops, const char *args, void *dl_handle,
		const char *origin, char *err, size_t errlen)
{
	struct vn_filter *f;
	int r = filter_new(ops, dl_handle, origin, &f);
	if (r < 0) {
		snprintf(err, errlen, "filter '%s' refused to attach: %s",
			 origin ? origin : ops && ops->name ? ops->name : "built-in",
			 r == -ENOSPC ? "too many filters" : strerror(-r));
		return r;
	}
	return filter_attach(f, args, err, errlen);
}

int fm_load_live(const struct vn_filter_ops *ops, const char *args, void *dl_handle,
		 const char *origin, bool opens_skipped, char *err, size_t errlen)
{
	if (ops && ops->name && fm_find(ops->name)) {
		snprintf(err, errlen, "a filter named '%s' is already loaded", ops->name);
		return -EEXIST;
	}
	struct vn_filter *f;
	int r = filter_new(ops, dl_handle, origin, &f);
	if (r < 0) {
		snprintf(err, errlen, "filter '%s' cannot be registered: %s", origin,
			 r == -ENOSPC ? "too many filters" : strerror(-r));
		return r;
	}
	if (opens_skipped && handles_opens(f)) {
		snprintf(err, errlen,
			 "filter '%s' handles opens, but this mount lets the kernel skip them "
			 "(--opens=skip): mount with --opens=send to load it live",
			 ops->name);
		slot_release(f);
		filter_free(f);
		return -EOPNOTSUPP;
	}
	f->live = true;
	return filter_attach(f, args, err, errlen);
}

/* ---- unload ---- */

/* Contexts of one slot taken out of every node and file by a sweep. */
struct swept {
	unsigned int index;
	struct swept_ctx { void *ctx; bool node; } *found;
	size_t n, cap;
};

static void sweep_slot(void **slots, bool node, void *arg)
{
	struct swept *w = arg;
	if (!slots || !__atomic_load_n(&slots[w->index], __ATOMIC_ACQUIRE))
		return;
	if (w->n == w->cap) {
		size_t cap = w->cap ? 2 * w->cap : 64;
		struct swept_ctx *grown = realloc(w->found, cap * sizeof(*grown));
		if (!grown)
			return;		/* left in place: the next pass takes it */
		w->found = grown;
		w->cap = cap;
	}
	void *ctx = __atomic_exchange_n(&slots[w->index], NULL, __ATOMIC_ACQ_REL);
	if (ctx)
		w->found[w->n++] = (struct swept_ctx){ ctx, node };
}

static void context_free(struct vn_filter *f, void *ctx, bool node)
{
	void (*cleanup)(struct vn_filter *, void *) =
		node ? f->ops->node_ctx_cleanup : f->ops->file_ctx_cleanup;
	if (cleanup)
		cleanup(f, ctx);
	free(ctx);
	__atomic_sub_fetch(&f->nctx, 1, __ATOMIC_ACQ_REL);
}

/*
 * Frees every context of F that SWEEP finds, then waits for those a node
 * or file being freed right now took out of its slots first (its
 * fm_free_*_contexts runs their cleanup), at most about a second.
 */
static int free_all_contexts(struct vn_filter *f, fm_sweep_fn *sweep)
{
	for (int pass = 0; pass < 100; pass++) {
		struct swept w = { .index = f->index };
		sweep(sweep_slot, &w);
		for (size_t i = 0; i < w.n; i++)
			context_free(f, w.found[i].ctx, w.found[i].node);
		free(w.found);
		if (__atomic_load_n(&f->nctx, __ATOMIC_ACQUIRE) == 0)
			return 0;
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	return -EBUSY;
}

/* Puts F back into the stack after an unload that did not go through. */
static void restore(struct vn_filter *f)
{
	pthread_mutex_lock(&stack_lock);
	struct fm_stack *s = stack_build(current, NULL, f);
	struct fm_stack *old = s ? stack_publish_locked(s) : NULL;
	pthread_mutex_unlock(&stack_lock);
	if (old)
		stack_put(old);
}

/* Takes F out of the stack and waits for its calls: 0, -EBUSY or -ENOMEM. */
static int take_out(struct vn_filter *f, char *err, size_t errlen)
{
	pthread_mutex_lock(&stack_lock);
	struct fm_stack *s = stack_build(current, f, NULL);
	struct fm_stack *old = s ? stack_publish_locked(s) : NULL;
	pthread_mutex_unlock(&stack_lock);
	if (!s) {
		snprintf(err, errlen, "out of memory unloading '%s'", f->ops->name);
		return -ENOMEM;
	}
	stack_put(old);
	/* questions to its clients would hold their operations up to their timeouts */
	fm_ports_cancel(f);
	if (wait_drained(f) == 0)
		return 0;
	restore(f);
	snprintf(err, errlen,
		 "operations that reached '%s' were still pending after %d s: it stays loaded",
		 f->ops->name, FM_DRAIN_TIMEOUT_MS / 1000);
	return -EBUSY;
}

/* The filter NAME, if a live mount may unload it; else NULL with err. */
static struct vn_filter *unloadable(const char *name, int *ret_err, char *err, size_t errlen)
{
	struct vn_filter *f = fm_find(name);
	*ret_err = -ENOENT;
	if (!f) {
		snprintf(err, errlen, "no filter '%s' on this mount", name);
		return NULL;
	}
	*ret_err = -EPERM;
	if (!f->dl_handle) {
		snprintf(err, errlen, "'%s' is built in and cannot be unloaded", name);
		return NULL;
	}
	*ret_err = -EBUSY;
	if (__atomic_load_n(&f->serves_virtual, __ATOMIC_ACQUIRE)) {
		snprintf(err, errlen, "'%s' serves virtual nodes and cannot be unloaded", name);
		return NULL;
	}
	return f;
}

static int ask_teardown(struct vn_filter *f, bool force, char *err, size_t errlen)
{
	if (!f->ops->teardown)
		return 0;
	int r = f->ops->teardown(f, force);
	if (r >= 0 || force)
		return 0;
	snprintf(err, errlen, "filter '%s' refused to unload: %s (--force unloads it anyway)",
		 f->ops->name, strerror(-r));
	return r;
}

/* Detaches and frees an unloaded filter, its share of vn_want_data and its slot. */
static void filter_destroy(struct vn_filter *f)
{
	fm_ports_close(f);
	if (f->ops->detach)
		f->ops->detach(f);
	__atomic_sub_fetch(&data_wanted, __atomic_load_n(&f->data_wants, __ATOMIC_ACQUIRE),
			   __ATOMIC_ACQ_REL);
	if (f->dl_handle)
		dlclose(f->dl_handle);
	slot_release(f);
	filter_free(f);
}

int fm_unload(const char *name, bool force, fm_sweep_fn *sweep, char *err, size_t errlen)
{
	int r;
	struct vn_filter *f = unloadable(name, &r, err, errlen);
	if (!f)
		return r;
	r = take_out(f, err, errlen);
	if (r < 0)
		return r;
	r = ask_teardown(f, force, err, errlen);
	if (r < 0) {
		restore(f);
		return r;
	}
	if (free_all_contexts(f, sweep) < 0) {
		/* a context still in use: keep the code it would call mapped */
		vn_log(LOG_WARNING, "filter '%s' unloaded with contexts still held; not unmapped",
		       name);
		return 0;
	}
	filter_destroy(f);
	return 0;
}

void fm_shutdown(void)
{
	pthread_mutex_lock(&stack_lock);
	struct fm_stack *s = current;
	current = &empty_stack;
	pthread_mutex_unlock(&stack_lock);
	if (s == &empty_stack)
		return;
	for (unsigned int i = s->n; i-- > 0;)
		filter_destroy(s->filters[i]);
	stack_put(s);
}

unsigned int fm_filters(struct vn_filter *out[VN_MAX_FILTERS])
{
	pthread_mutex_lock(&stack_lock);
	unsigned int n = current->n;
	memcpy(out, current->filters, n * sizeof(*out));
	pthread_mutex_unlock(&stack_lock);
	return n;
}

struct vn_filter *fm_find(const char *name)
{
	struct vn_filter *found = NULL;
	pthread_mutex_lock(&stack_lock);
	for (unsigned int i = 0; i < current->n && !found; i++)
		if (!strcmp(current->filters[i]->ops->name, name))
			found = current->filters[i];
	pthread_mutex_unlock(&stack_lock);
	return found;
}

bool fm_wants_opens(void)
{
	pthread_mutex_lock(&stack_lock);
	bool wants = current->wants_opens;
	pthread_mutex_unlock(&stack_lock);
	return wants;
}

bool fm_data_wanted(void)
{
	return __atomic_load_n(&all_data, __ATOMIC_ACQUIRE) ||
	       __atomic_load_n(&data_wanted, __ATOMIC_ACQUIRE) > 0;
}

void vn_want_data(struct vn_filter *f, int on)
{
	__atomic_add_fetch(&f->data_wants, on ? 1 : -1, __ATOMIC_ACQ_REL);
	__atomic_add_fetch(&data_wanted, on ? 1 : -1, __ATOMIC_ACQ_REL);
}

/* ---- dispatch ---- */

/* The call fm_call_interrupt() runs for on this thread, and whether it finished meanwhile. */
static __thread const struct fm_call *interrupting;
static __thread bool interrupted_call_finished;

static void call_finish(struct fm_call *c)
{
	if (c == interrupting)
		interrupted_call_finished = true;	/* libfuse holds the request: no disarm */
	else if (c->disarm)
		c->disarm(c);
	c->finish(c);
}

static void run_post(struct fm_call *c, int from)
{
	for (int i = from; i >= 0; i--) {
		if (!(c->post_mask & (1u << i)))
			continue;
		struct vn_filter *f = c->stack->filters[i];
		f->post[c->op.opcode](f, &c->op, c->post_ctx[i]);
	}
}

/* Completes C with EINTR when it was interrupted, after the filters above LEVEL. */
static bool finished_interrupted(struct fm_call *c, int level)
{
	if (!(__atomic_load_n(&c->cancel_state, __ATOMIC_ACQUIRE) & FM_INTERRUPTED))
		return false;
	c->op.error = -EINTR;
	run_post(c, level - 1);
	call_finish(c);
	return true;
}

/*
 * Runs pre callbacks from level START down, then the lower and the posts.
 * After a pre returns VN_PENDING, c may already be finished and freed by
 * another thread: nothing here touches it again.
 */
static void run_from(struct fm_call *c, unsigned int start)
{
	enum vn_opcode opc = c->op.opcode;
	const struct fm_stack *s = c->stack;
	for (unsigned int i = start; i < s->n; i++) {
		struct vn_filter *f = s->filters[i];
		if (!f->pre[opc]) {
			if (f->post[opc])
				c->post_mask |= 1u << i;
			continue;
		}
		__atomic_store_n(&c->level, (int)i, __ATOMIC_RELAXED);
		/* either the interrupt sees the pre running, or this sees the interrupt */
		if (__atomic_fetch_or(&c->cancel_state, FM_IN_PRE, __ATOMIC_ACQ_REL) &
		    FM_INTERRUPTED) {
			c->op.error = -EINTR;
			run_post(c, (int)i - 1);
			call_finish(c);
			return;
		}
		c->post_ctx[i] = NULL;
		enum vn_verdict v = f->pre[opc](f, &c->op, &c->post_ctx[i]);
		if (v == VN_PENDING)
			return;
		__atomic_and_fetch(&c->cancel_state, ~FM_IN_PRE, __ATOMIC_ACQ_REL);
		switch (v) {
		case VN_PASS:
			break;
		case VN_PASS_WITH_POST:
			if (f->post[opc])
				c->post_mask |= 1u << i;
			break;
		case VN_COMPLETE:
			run_post(c, (int)i - 1);
			call_finish(c);
			return;
		default:
			c->op.error = -EIO;
			run_post(c, (int)i - 1);
			call_finish(c);
			return;
		}
	}
	if (finished_interrupted(c, (int)s->n))
		return;
	lower_fn(&c->op);
	run_post(c, (int)s->n - 1);
	call_finish(c);
}

void fm_dispatch(struct fm_call *c)
{
	c->post_mask = 0;
	if (!c->stack->has_handler[c->op.opcode]) {
		lower_fn(&c->op);
		call_finish(c);
		return;
	}
	run_from(c, 0);
}

void vn_op_resume(struct vn_op *op, enum vn_verdict verdict)
{
	struct fm_call *c = (struct fm_call *)op;
	unsigned int i = (unsigned int)__atomic_load_n(&c->level, __ATOMIC_RELAXED);
	__atomic_and_fetch(&c->cancel_state, ~FM_IN_PRE, __ATOMIC_ACQ_REL);
	switch (verdict) {
	case VN_PASS_WITH_POST:
		if (c->stack->filters[i]->post[op->opcode])
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
		call_finish(c);
		break;
	}
}

void fm_call_interrupt(struct fm_call *c)
{
	if (!(__atomic_fetch_or(&c->cancel_state, FM_INTERRUPTED, __ATOMIC_ACQ_REL) & FM_IN_PRE))
		return;		/* run_from sees it before the next step */
	struct vn_filter *f = c->stack->filters[__atomic_load_n(&c->level, __ATOMIC_RELAXED)];
	interrupting = c;
	interrupted_call_finished = false;
	fm_ports_withdraw(&c->op);
	if (!interrupted_call_finished && f->ops->cancel)
		f->ops->cancel(f, &c->op);
	interrupting = NULL;
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

static void *context_of(struct vn_filter *f, void ***where, size_t size)
{
	if (!size)
		return NULL;
	void **slots = slots_of(where);
	if (!slots)
		return NULL;
	void *ctx = __atomic_load_n(&slots[f->index], __ATOMIC_ACQUIRE);
	if (ctx)
		return ctx;
	void *fresh = calloc(1, size);
	if (!fresh)
		return NULL;
	/* counted before it is visible, so an unload never sees it freed and uncounted */
	__atomic_add_fetch(&f->nctx, 1, __ATOMIC_ACQ_REL);
	void *expected = NULL;
	if (__atomic_compare_exchange_n(&slots[f->index], &expected, fresh, false, __ATOMIC_ACQ_REL,
					__ATOMIC_ACQUIRE))
		return fresh;
	__atomic_sub_fetch(&f->nctx, 1, __ATOMIC_ACQ_REL);
	free(fresh);
	return expected;
}

void *vn_node_context(struct vn_filter *f, struct vn_node *node)
{
	return context_of(f, &node->filter_ctx, f->ops->node_ctx_size);
}

void *vn_file_context(struct vn_filter *f, struct vn_file *file)
{
	return context_of(f, &file->filter_ctx, f->ops->file_ctx_size);
}

/* Each context is taken out of its slot with an exchange: a concurrent unload's sweep gets it, or this. */
static void free_contexts(void **slots, bool node)
{
	if (!slots)
		return;
	for (unsigned int i = 0; i < VN_MAX_FILTERS; i++) {
		void *ctx = __atomic_exchange_n(&slots[i], NULL, __ATOMIC_ACQ_REL);
		if (ctx)
			context_free(__atomic_load_n(&slot_owner[i], __ATOMIC_ACQUIRE), ctx, node);
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
