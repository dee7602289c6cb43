/*
 * FUSE over io_uring; see uring.h.
 *
 * Each entry owns one buffer: the kernel's header block (fuse_in_header,
 * the opcode's fixed argument, the entry's commit id and payload size),
 * then a gap, then the payload.  A request is rebuilt in place: its header
 * and fixed argument are copied into the gap right before the payload, so
 * the frame libfuse reads is contiguous without copying the data.
 *
 * A reply may come from any thread (a filter may answer later): the entry
 * whose request it answers is found by its unique, and the SQE that
 * commits it is queued under its queue's lock.  Each queue's thread only
 * waits for completions and serves them, one at a time, on that thread.
 *
 * Ownership: the queues and buffers belong to this module from
 * uring_start() to uring_stop().  Lock order: a queue's sq_lock is a leaf.
 */
#include "frontend/uring.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <unistd.h>

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

#include "common/log.h"
#include "frontend/fuse_kernel_ext.h"
#include "frontend/wire.h"

#define QUEUE_DEPTH 8
/* Room before the payload for a fuse_in_header and the largest fixed argument. */
#define GAP (sizeof(struct fuse_in_header) + VN_FUSE_URING_OP_IN_OUT_SZ)
#define HEADERS_SPACE 512	/* the header block, rounded up; the gap ends here */

struct ring_queue;

struct ring_ent {
	struct ring_queue *queue;
	char *mem;			/* [headers][gap][payload] */
	struct vn_fuse_uring_req_header *headers;
	char *payload;
	struct iovec iov[2];		/* what REGISTER hands the kernel */
	uint64_t commit_id;
	uint64_t unique;		/* atomic: the request being served, 0 when none */
};

struct ring_queue {
	struct io_uring ring;
	bool ring_ready;
	pthread_mutex_t sq_lock;	/* leaf: the submission side of ring */
	pthread_t thread;
	bool thread_started;
	unsigned int qid;
	int stop_fd;			/* eventfd: wakes the thread to leave */
	struct ring_ent ents[QUEUE_DEPTH];
};

static struct {
	struct fuse_session *se;
	int devfd;
	size_t payload_size;
	unsigned int nqueues;
	struct ring_queue *queues;
	bool active;			/* atomic */
	unsigned long served;		/* atomic: requests taken from the rings */
} U = { .devfd = -1 };

#define STOP_MARK ((void *)1)

const char *uring_unavailable(void)
{
	int fd = open("/sys/module/fuse/parameters/enable_uring", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return "this kernel has no FUSE over io_uring (it needs Linux 6.14 or later with "
		       "CONFIG_FUSE_IO_URING)";
	char c = 0;
	ssize_t n = read(fd, &c, 1);
	close(fd);
	if (n == 1 && (c == 'Y' || c == '1'))
		return NULL;
	return "FUSE over io_uring is switched off on this host: "
	       "/sys/module/fuse/parameters/enable_uring is N (root may set it to 1; "
	       "veneer never changes it)";
}

/* The kernel makes one queue per possible CPU; every one must be served. */
static unsigned int possible_cpus(void)
{
	FILE *f = fopen("/sys/devices/system/cpu/possible", "re");
	unsigned int first = 0, last = 0;
	int n = f ? fscanf(f, "%u-%u", &first, &last) : 0;
	if (f)
		fclose(f);
	if (n == 1)
		last = first;
	return n >= 1 ? last + 1 : 1;
}

static void prep_cmd(struct io_uring_sqe *sqe, struct ring_ent *e, uint32_t op, uint64_t commit_id)
{
	memset(sqe, 0, 2 * sizeof(*sqe));	/* a 128-byte SQE */
	sqe->opcode = IORING_OP_URING_CMD;
	sqe->fd = U.devfd;
	sqe->cmd_op = op;
	if (op == VN_FUSE_IO_URING_CMD_REGISTER) {
		sqe->addr = (uint64_t)(uintptr_t)e->iov;
		sqe->len = 2;
	}
	struct vn_fuse_uring_cmd_req req = { .commit_id = commit_id, .qid = (uint16_t)e->queue->qid };
	memcpy(sqe->cmd, &req, sizeof(req));
	io_uring_sqe_set_data(sqe, e);
}

/* Queues and submits one command of e: 0 or -errno. */
static int submit_cmd(struct ring_ent *e, uint32_t op, uint64_t commit_id)
{
	struct ring_queue *q = e->queue;
	pthread_mutex_lock(&q->sq_lock);
	struct io_uring_sqe *sqe = io_uring_get_sqe(&q->ring);
	int r = -EBUSY;	/* never: each entry has at most one command queued */
	if (sqe) {
		prep_cmd(sqe, e, op, commit_id);
		r = io_uring_submit(&q->ring);
	}
	pthread_mutex_unlock(&q->sq_lock);
	return r < 0 ? r : 0;
}

/* Commits a reply for e: the out header, then payload_len bytes already in its payload. */
static int commit(struct ring_ent *e, const struct fuse_out_header *out, size_t payload_len)
{
	memcpy(e->headers->in_out, out, sizeof(*out));
	e->headers->ring_ent_in_out.payload_sz = (uint32_t)payload_len;
	return submit_cmd(e, VN_FUSE_IO_URING_CMD_COMMIT_AND_FETCH, e->commit_id);
}

static struct ring_ent *take_entry(uint64_t unique)
{
	for (unsigned int i = 0; i < U.nqueues; i++) {
		struct ring_ent *ents = U.queues[i].ents;
		for (unsigned int j = 0; j < QUEUE_DEPTH; j++) {
			uint64_t expected = unique;
			if (__atomic_compare_exchange_n(&ents[j].unique, &expected, 0, false,
							__ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
				return &ents[j];
		}
	}
	return NULL;
}

bool uring_reply(const struct iovec *iov, int count, ssize_t *ret)
{
	if (!__atomic_load_n(&U.active, __ATOMIC_ACQUIRE) || count < 1 ||
	    iov[0].iov_len != sizeof(struct fuse_out_header))
		return false;
	struct fuse_out_header out;
	memcpy(&out, iov[0].iov_base, sizeof(out));
	struct ring_ent *e = out.unique ? take_entry(out.unique) : NULL;
	if (!e)
		return false;
	size_t len = 0;
	for (int i = 1; i < count; i++) {
		if (len + iov[i].iov_len > U.payload_size) {
			log_warn("uring: a reply of %zu bytes or more does not fit the ring's %zu",
				 len + iov[i].iov_len, U.payload_size);
			out.error = -EIO;
			len = 0;
			break;
		}
		/* a reply may point into the request it answers, which lies there too */
		memmove(e->payload + len, iov[i].iov_base, iov[i].iov_len);
		len += iov[i].iov_len;
	}
	out.len = (uint32_t)(sizeof(out) + len);
	int r = commit(e, &out, len);
	*ret = r < 0 ? r : (ssize_t)(sizeof(out) + len);
	return true;
}

/* A request arrived in e: rebuild its frame before the payload and let libfuse serve it. */
static void serve(struct ring_ent *e)
{
	struct fuse_in_header in;
	memcpy(&in, e->headers->in_out, sizeof(in));
	size_t payload = e->headers->ring_ent_in_out.payload_sz;
	e->commit_id = e->headers->ring_ent_in_out.commit_id;
	size_t fixed = in.len - sizeof(in) - payload;
	if (in.len < sizeof(in) + payload || fixed > VN_FUSE_URING_OP_IN_OUT_SZ ||
	    payload > U.payload_size) {
		log_warn("uring: a malformed request (opcode %u, length %u): answered EIO",
			 in.opcode, in.len);
		struct fuse_out_header out = { .len = sizeof(out), .error = -EIO, .unique = in.unique };
		(void)commit(e, &out, 0);
		return;
	}
	char *frame = e->payload - fixed - sizeof(in);
	memcpy(frame, &in, sizeof(in));
	memcpy(frame + sizeof(in), e->headers->op_in, fixed);
	__atomic_store_n(&e->unique, in.unique, __ATOMIC_RELEASE);
	__atomic_add_fetch(&U.served, 1, __ATOMIC_RELAXED);
	wire_note_request(frame, in.len);
	const struct fuse_buf buf = { .size = in.len, .mem = frame };
	fuse_session_process_buf(U.se, &buf);
}

static void *queue_thread(void *arg)
{
	struct ring_queue *q = arg;
	char name[16];
	snprintf(name, sizeof(name), "vn-uring-%u", q->qid);
	pthread_setname_np(pthread_self(), name);
	/* the registrations come from this thread: the kernel fills entries in its context */
	for (unsigned int i = 0; i < QUEUE_DEPTH; i++) {
		int r = submit_cmd(&q->ents[i], VN_FUSE_IO_URING_CMD_REGISTER, 0);
		if (r < 0) {
			log_warn("uring: queue %u cannot register its buffers: %s", q->qid, strerror(-r));
			return NULL;
		}
	}
	for (;;) {
		struct io_uring_cqe *cqe;
		int r = io_uring_wait_cqe(&q->ring, &cqe);
		if (r == -EINTR)
			continue;
		if (r < 0) {
			log_warn("uring: queue %u: %s", q->qid, strerror(-r));
			break;
		}
		void *data = io_uring_cqe_get_data(cqe);
		int res = cqe->res;
		io_uring_cqe_seen(&q->ring, cqe);
		if (data == STOP_MARK)
			break;
		struct ring_ent *e = data;
		if (res == -ENOTCONN || res == -ECONNABORTED || res == -ECANCELED)
			break;	/* the mount went away */
		if (res < 0) {
			log_warn("uring: queue %u: a command failed: %s", q->qid, strerror(-res));
			continue;	/* the entry is lost; the others go on */
		}
		serve(e);
	}
	return NULL;
}

static int queue_init(struct ring_queue *q, unsigned int qid)
{
	q->qid = qid;
	q->stop_fd = -1;
	pthread_mutex_init(&q->sq_lock, NULL);
	size_t size = HEADERS_SPACE + U.payload_size;
	for (unsigned int i = 0; i < QUEUE_DEPTH; i++) {
		struct ring_ent *e = &q->ents[i];
		e->queue = q;
		if (posix_memalign((void **)&e->mem, 4096, size) != 0)
			return -ENOMEM;
		e->headers = (void *)e->mem;
		e->payload = e->mem + HEADERS_SPACE;
		e->iov[0] = (struct iovec){ e->headers, sizeof(*e->headers) };
		e->iov[1] = (struct iovec){ e->payload, U.payload_size };
	}
	_Static_assert(sizeof(struct vn_fuse_uring_req_header) + GAP <= HEADERS_SPACE,
		       "the gap must fit between the headers and the payload");
	q->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (q->stop_fd < 0)
		return -errno;
	struct io_uring_params p = { .flags = IORING_SETUP_SQE128 | IORING_SETUP_CQSIZE,
				     .cq_entries = 2 * (QUEUE_DEPTH + 1) };
	int r = io_uring_queue_init_params(QUEUE_DEPTH + 1, &q->ring, &p);
	if (r < 0)
		return r;
	q->ring_ready = true;
	struct io_uring_sqe *sqe = io_uring_get_sqe(&q->ring);
	io_uring_prep_poll_add(sqe, q->stop_fd, POLLIN);
	io_uring_sqe_set_data(sqe, STOP_MARK);
	r = io_uring_submit(&q->ring);
	return r < 0 ? r : 0;
}

int uring_start(struct fuse_session *se, int devfd, size_t payload_size)
{
	U.se = se;
	U.devfd = devfd;
	U.payload_size = payload_size;
	U.nqueues = possible_cpus();
	U.queues = calloc(U.nqueues, sizeof(*U.queues));
	if (!U.queues)
		return -ENOMEM;
	int r = 0;
	for (unsigned int i = 0; i < U.nqueues && r == 0; i++)
		r = queue_init(&U.queues[i], i);
	/* replies find their entries from now on */
	__atomic_store_n(&U.active, r == 0, __ATOMIC_RELEASE);
	for (unsigned int i = 0; i < U.nqueues && r == 0; i++) {
		r = -pthread_create(&U.queues[i].thread, NULL, queue_thread, &U.queues[i]);
		U.queues[i].thread_started = r == 0;
	}
	if (r < 0) {
		log_warn("uring off: %s; requests go through the device", strerror(-r));
		uring_stop();
	}
	return r;
}

bool uring_active(void)
{
	return __atomic_load_n(&U.active, __ATOMIC_ACQUIRE);
}

unsigned long uring_served(void)
{
	return __atomic_load_n(&U.served, __ATOMIC_RELAXED);
}

void uring_stop(void)
{
	if (!U.queues)
		return;
	for (unsigned int i = 0; i < U.nqueues; i++) {
		struct ring_queue *q = &U.queues[i];
		if (q->thread_started) {
			uint64_t one = 1;
			if (write(q->stop_fd, &one, sizeof(one)) != sizeof(one))
				log_warn("uring: cannot wake queue %u: %s", i, strerror(errno));
			pthread_join(q->thread, NULL);
		}
	}
	__atomic_store_n(&U.active, false, __ATOMIC_RELEASE);
	for (unsigned int i = 0; i < U.nqueues; i++) {
		struct ring_queue *q = &U.queues[i];
		if (q->ring_ready)
			io_uring_queue_exit(&q->ring);
		if (q->stop_fd >= 0)
			close(q->stop_fd);
		for (unsigned int j = 0; j < QUEUE_DEPTH; j++)
			free(q->ents[j].mem);
		pthread_mutex_destroy(&q->sq_lock);
	}
	free(U.queues);
	U.queues = NULL;
	U.nqueues = 0;
}
