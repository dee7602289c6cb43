/*
 * Test filter: fault injection.  Makes chosen operations on chosen paths
 * fail with a chosen errno, or wait before they go on, as if the real
 * filesystem below had failed or stalled.  It sits just above the lower
 * (altitude 10), so every filter above it, and the application, see the
 * fault as they would see one from the real filesystem.
 *
 * ARGS (the text after ".so:" in --filter) is a list of rules:
 *
 *   RULE[;RULE...]         the first rule that matches an operation applies
 *   RULE = KEY=VALUE[,KEY=VALUE...]
 *     op=NAME[|NAME...]    opcodes by vn_opcode_name() ("read", "write",
 *                          "lookup", ...), or "*" (the default: every one)
 *     path=GLOB            fnmatch(3) glob, without FNM_PATHNAME (so "*"
 *                          also matches "/"), on the path in the mount: the
 *                          node's path, plus "/NAME" for operations on a
 *                          name in a directory (LOOKUP, CREATE, MKDIR,
 *                          UNLINK, RENAME's source, ...).  Default "*"
 *     errno=E              the result: a name (EIO, ENOSPC, ...) or a
 *                          number from 1 to 4095
 *     delay_ms=N           wait N ms (0 to 600000) before going on (to the
 *                          lower, or to the error when errno= is given too)
 *     count=N              apply to the first N matching operations only
 *
 * A rule needs errno= or delay_ms=.  Delays do not occupy a FUSE worker:
 * the operation is pended (VN_PENDING) and a timer thread resumes it, so
 * other operations go on meanwhile (except the LOOKUPs of READDIRPLUS,
 * which hold their worker, see docs/filter-api.md).  A bad ARGS makes
 * attach fail with -EINVAL, and the mount with it, after one log line
 * naming the bad part.
 *
 * FLUSH, RELEASE and RELEASEDIR are never handled: a FLUSH handler would
 * change what the kernel sends, and a release cannot fail.  The opcode set
 * is fixed before attach, so every other opcode has a handler; an
 * operation no rule names passes untouched.
 */
#include <errno.h>
#include <fnmatch.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include <veneer/filter.h>

#define MAX_RULES 32
#define MAX_DELAY_MS 600000

struct rule {
	bool ops[VN_OP_COUNT];
	char *glob;		/* NULL: every path */
	int error;		/* 0 or a positive errno */
	long delay_ms;		/* -1: none */
	long limit;		/* -1: unlimited */
	atomic_long used;
};

/* An operation waiting for its delay; a list sorted by deadline. */
struct delayed {
	struct timespec due;	/* CLOCK_MONOTONIC */
	struct vn_op *op;
	int error;		/* applied when resumed */
	struct delayed *next;
};

static struct rule rules[MAX_RULES];
static unsigned int nrules;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;	/* leaf */
static pthread_cond_t cond;
static struct delayed *queue;	/* protected by lock */
static bool stopping;		/* protected by lock */
static pthread_t timer;
static bool timer_started;

static bool names_an_entry(enum vn_opcode op)
{
	switch (op) {
	case VN_OP_LOOKUP:
	case VN_OP_MKNOD:
	case VN_OP_MKDIR:
	case VN_OP_UNLINK:
	case VN_OP_RMDIR:
	case VN_OP_SYMLINK:
	case VN_OP_RENAME:
	case VN_OP_CREATE:
		return true;
	default:
		return false;
	}
}

/* The path the rules match against; "" when the node has no name any more. */
static void op_path(const struct vn_op *op, char *buf, size_t size)
{
	int n = vn_node_path(op->node, buf, size);
	if (n < 0) {
		buf[0] = '\0';
		return;
	}
	if (names_an_entry(op->opcode) && op->name)
		snprintf(buf + n, size - (size_t)n, "%s%s", n == 1 ? "" : "/", op->name);
}

static struct rule *match(const struct vn_op *op)
{
	char path[PATH_MAX + NAME_MAX + 2];
	bool have_path = false;
	for (unsigned int i = 0; i < nrules; i++) {
		struct rule *r = &rules[i];
		if (!r->ops[op->opcode])
			continue;
		if (r->glob) {
			if (!have_path) {
				op_path(op, path, sizeof(path));
				have_path = true;
			}
			if (fnmatch(r->glob, path, 0) != 0)
				continue;
		}
		if (r->limit >= 0 && atomic_fetch_add(&r->used, 1) >= r->limit)
			continue;
		return r;
	}
	return NULL;
}

static void due_in(struct timespec *ts, long ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

static bool before(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

static void finish(struct vn_op *op, int error)
{
	if (error) {
		op->error = -error;
		vn_op_resume(op, VN_COMPLETE);
	} else {
		vn_op_resume(op, VN_PASS);
	}
}

/* Resumes operations whose delay is over, outside the lock. */
static void *timer_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&lock);
	while (!stopping) {
		if (!queue) {
			pthread_cond_wait(&cond, &lock);
			continue;
		}
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (before(&now, &queue->due)) {
			pthread_cond_timedwait(&cond, &lock, &queue->due);
			continue;
		}
		struct delayed *d = queue;
		queue = d->next;
		pthread_mutex_unlock(&lock);
		finish(d->op, d->error);
		free(d);
		pthread_mutex_lock(&lock);
	}
	pthread_mutex_unlock(&lock);
	return NULL;
}

static enum vn_verdict delay(struct vn_op *op, const struct rule *r)
{
	struct delayed *d = malloc(sizeof(*d));
	if (!d) {
		/* cannot wait without blocking a worker: fail like a short system would */
		op->error = -ENOMEM;
		return VN_COMPLETE;
	}
	due_in(&d->due, r->delay_ms);
	d->op = op;
	d->error = r->error;
	pthread_mutex_lock(&lock);
	struct delayed **p = &queue;
	while (*p && !before(&d->due, &(*p)->due))
		p = &(*p)->next;
	d->next = *p;
	*p = d;
	pthread_cond_signal(&cond);
	pthread_mutex_unlock(&lock);
	return VN_PENDING;
}

static enum vn_verdict inject_pre(struct vn_filter *f, struct vn_op *op, void **post)
{
	(void)f;
	(void)post;
	const struct rule *r = match(op);
	if (!r)
		return VN_PASS;
	if (r->delay_ms >= 0)
		return delay(op, r);
	op->error = -r->error;
	return VN_COMPLETE;
}

/* ---- ARGS ---- */

static int parse_errno(const char *v)
{
	char *end;
	errno = 0;
	long n = strtol(v, &end, 10);
	if (!errno && end != v && !*end)
		return n >= 1 && n <= 4095 ? (int)n : -1;
	for (int e = 1; e < 4096; e++) {
		const char *name = strerrorname_np(e);
		if (name && !strcmp(name, v))
			return e;
	}
	return -1;
}

static long parse_number(const char *v, long max)
{
	char *end;
	errno = 0;
	long n = strtol(v, &end, 10);
	if (errno || end == v || *end || n < 0 || n > max)
		return -1;
	return n;
}

static int parse_ops(struct rule *r, char *v)
{
	char *save = NULL;
	for (char *name = strtok_r(v, "|", &save); name; name = strtok_r(NULL, "|", &save)) {
		bool found = false;
		for (int op = VN_OP_NONE + 1; op < VN_OP_COUNT; op++) {
			if (!strcmp(name, "*") || !strcmp(name, vn_opcode_name(op))) {
				r->ops[op] = true;
				found = true;
			}
		}
		if (!found) {
			vn_log(LOG_ERR, "inject: unknown operation '%s'", name);
			return -EINVAL;
		}
	}
	return 0;
}

static int parse_field(struct rule *r, char *field, bool *have_op)
{
	char *eq = strchr(field, '=');
	if (!eq || eq == field) {
		vn_log(LOG_ERR, "inject: '%s' is not KEY=VALUE", field);
		return -EINVAL;
	}
	*eq = '\0';
	const char *key = field;
	char *v = eq + 1;
	if (!strcmp(key, "op")) {
		*have_op = true;
		return parse_ops(r, v);
	}
	if (!strcmp(key, "path")) {
		free(r->glob);
		r->glob = strdup(v);
		return r->glob ? 0 : -ENOMEM;
	}
	if (!strcmp(key, "errno")) {
		r->error = parse_errno(v);
		if (r->error > 0)
			return 0;
	} else if (!strcmp(key, "delay_ms")) {
		r->delay_ms = parse_number(v, MAX_DELAY_MS);
		if (r->delay_ms >= 0)
			return 0;
	} else if (!strcmp(key, "count")) {
		r->limit = parse_number(v, LONG_MAX - 1);
		if (r->limit >= 0)
			return 0;
	} else {
		vn_log(LOG_ERR, "inject: unknown key '%s' (op, path, errno, delay_ms, count)", key);
		return -EINVAL;
	}
	vn_log(LOG_ERR, "inject: bad value '%s' for '%s'", v, key);
	return -EINVAL;
}

static int parse_rule(struct rule *r, char *text)
{
	r->delay_ms = -1;
	r->limit = -1;
	bool have_op = false;
	char *save = NULL;
	for (char *field = strtok_r(text, ",", &save); field; field = strtok_r(NULL, ",", &save)) {
		int e = parse_field(r, field, &have_op);
		if (e < 0)
			return e;
	}
	if (!have_op)
		for (int op = VN_OP_NONE + 1; op < VN_OP_COUNT; op++)
			r->ops[op] = true;
	r->ops[VN_OP_FLUSH] = r->ops[VN_OP_RELEASE] = r->ops[VN_OP_RELEASEDIR] = false;
	if (!r->error && r->delay_ms < 0) {
		vn_log(LOG_ERR, "inject: a rule needs errno= or delay_ms=");
		return -EINVAL;
	}
	return 0;
}

static void free_rules(void)
{
	for (unsigned int i = 0; i < nrules; i++)
		free(rules[i].glob);
	nrules = 0;
}

static int parse_args(const char *args)
{
	if (!args || !*args) {
		vn_log(LOG_ERR, "inject: no rules (--filter inject_filter.so:op=read,errno=EIO;...)");
		return -EINVAL;
	}
	char *copy = strdup(args);
	if (!copy)
		return -ENOMEM;
	int e = 0;
	char *save = NULL;
	for (char *text = strtok_r(copy, ";", &save); text; text = strtok_r(NULL, ";", &save)) {
		if (nrules == MAX_RULES) {
			vn_log(LOG_ERR, "inject: more than %d rules", MAX_RULES);
			e = -EINVAL;
			break;
		}
		struct rule *r = &rules[nrules++];
		memset(r, 0, sizeof(*r));
		e = parse_rule(r, text);
		if (e < 0)
			break;
	}
	free(copy);
	if (e < 0)
		free_rules();
	return e;
}

static int attach(struct vn_filter *f, const char *args)
{
	(void)f;
	int e = parse_args(args);
	if (e < 0)
		return e;
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&cond, &ca);
	pthread_condattr_destroy(&ca);
	e = pthread_create(&timer, NULL, timer_main, NULL);
	if (e) {
		free_rules();
		return -e;
	}
	timer_started = true;
	return 0;
}

/*
 * After the unmount: nothing is left to reply to, so operations still
 * waiting (only after a lazy unmount) are dropped, never resumed.
 */
static void detach(struct vn_filter *f)
{
	(void)f;
	if (timer_started) {
		pthread_mutex_lock(&lock);
		stopping = true;
		pthread_cond_signal(&cond);
		pthread_mutex_unlock(&lock);
		pthread_join(timer, NULL);
	}
	unsigned int dropped = 0;
	while (queue) {
		struct delayed *d = queue;
		queue = d->next;
		free(d);
		dropped++;
	}
	if (dropped)
		vn_log(LOG_WARNING, "inject: %u delayed operations dropped at shutdown", dropped);
	free_rules();
}

#define H(op) { op, inject_pre, NULL }
static const struct vn_filter_handler handlers[] = {
	H(VN_OP_LOOKUP), H(VN_OP_GETATTR), H(VN_OP_SETATTR), H(VN_OP_READLINK),
	H(VN_OP_MKNOD), H(VN_OP_MKDIR), H(VN_OP_UNLINK), H(VN_OP_RMDIR),
	H(VN_OP_SYMLINK), H(VN_OP_RENAME), H(VN_OP_LINK), H(VN_OP_OPEN),
	H(VN_OP_CREATE), H(VN_OP_READ), H(VN_OP_WRITE), H(VN_OP_FSYNC),
	H(VN_OP_OPENDIR), H(VN_OP_READDIR), H(VN_OP_FSYNCDIR), H(VN_OP_STATFS),
	H(VN_OP_SETXATTR), H(VN_OP_GETXATTR), H(VN_OP_LISTXATTR), H(VN_OP_REMOVEXATTR),
	H(VN_OP_ACCESS), H(VN_OP_FALLOCATE), H(VN_OP_COPY_FILE_RANGE), H(VN_OP_LSEEK),
	{ VN_OP_NONE, NULL, NULL },
};
#undef H

const struct vn_filter_ops vn_filter_entry = {
	.api_version = VN_FILTER_API_VERSION,
	.size = sizeof(struct vn_filter_ops),
	.name = "test-inject",
	/* just above the lower: faults look as if they came from the real filesystem */
	.altitude = 10,
	/* its OPEN handler only matters for opens the kernel sends */
	.flags = VN_FILTER_OPENS_SKIPPABLE,
	.attach = attach,
	.detach = detach,
	.handlers = handlers,
};
