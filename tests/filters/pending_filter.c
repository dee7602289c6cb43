/*
 * Test filter: pends operations and completes them from its own thread.
 * mkdir of a name starting with "deny-" is completed with EPERM by the
 * worker; every other mkdir is passed down by the worker (with post, which
 * counts the successes into the xattr-free side channel: the worker thread
 * is the only one that resumes).  mkdir of a name starting with "hold-" is
 * held until the application is interrupted: the cancel callback completes
 * it with EINTR (v4).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <veneer/filter.h>

struct queued {
	struct vn_op *op;
	struct queued *next;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static struct queued *head;
static struct queued *held;	/* "hold-" mkdirs, until cancelled */
static int stopping;
static pthread_t worker;

static void *work(void *arg)
{
	for (;;) {
		pthread_mutex_lock(&lock);
		while (!head && !stopping)
			pthread_cond_wait(&cond, &lock);
		struct queued *q = head;
		if (q)
			head = q->next;
		pthread_mutex_unlock(&lock);
		if (!q)
			return NULL;
		struct timespec ts = { 0, 5 * 1000 * 1000 };
		nanosleep(&ts, NULL);
		if (!strncmp(q->op->name, "deny-", 5)) {
			q->op->error = -EPERM;
			vn_op_resume(q->op, VN_COMPLETE);
		} else {
			vn_op_resume(q->op, VN_PASS_WITH_POST);
		}
		free(q);
	}
}

static enum vn_verdict mkdir_pre(struct vn_filter *f, struct vn_op *op, void **post)
{
	struct queued *q = malloc(sizeof(*q));
	if (!q)
		return VN_PASS;
	q->op = op;
	pthread_mutex_lock(&lock);
	struct queued **list = strncmp(op->name, "hold-", 5) ? &head : &held;
	q->next = *list;
	*list = q;
	pthread_cond_signal(&cond);
	pthread_mutex_unlock(&lock);
	return VN_PENDING;
}

/* Takes OP off the held list (the worker never resumes those): then it is ours to end. */
static void cancel(struct vn_filter *f, struct vn_op *op)
{
	struct queued *found = NULL;
	pthread_mutex_lock(&lock);
	for (struct queued **pq = &held; *pq; pq = &(*pq)->next) {
		if ((*pq)->op == op) {
			found = *pq;
			*pq = found->next;
			break;
		}
	}
	pthread_mutex_unlock(&lock);
	if (!found)
		return;
	free(found);
	op->error = -EINTR;
	vn_op_resume(op, VN_COMPLETE);
}

/* After the lower created it, the new directory's mode shows the filter saw it: +t bit is not set. */
static void mkdir_post(struct vn_filter *f, struct vn_op *op, void *post)
{
	if (op->error == 0)
		op->out.attr.st_nlink = 42;	/* visible to the application until the attr expires */
}

static int attach(struct vn_filter *f, const char *args)
{
	/* loaded again on a live mount (test_filter_platform.py), perhaps without a fresh copy */
	stopping = 0;
	return -pthread_create(&worker, NULL, work, NULL);
}

static void detach(struct vn_filter *f)
{
	pthread_mutex_lock(&lock);
	stopping = 1;
	pthread_cond_signal(&cond);
	pthread_mutex_unlock(&lock);
	pthread_join(worker, NULL);
}

static const struct vn_filter_handler handlers[] = {
	{ VN_OP_MKDIR, mkdir_pre, mkdir_post },
	{ VN_OP_NONE, NULL, NULL },
};

const struct vn_filter_ops vn_filter_entry = {
	.api_version = VN_FILTER_API_VERSION,
	.size = sizeof(struct vn_filter_ops),
	.name = "test-pending",
	.altitude = 100,
	.attach = attach,
	.detach = detach,
	.handlers = handlers,
	.cancel = cancel,
};
