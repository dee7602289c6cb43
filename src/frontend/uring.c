/*
 * FUSE over io_uring; see uring.h.
 *
 * Each entry owns one buffer: the kernel's header block (fuse_in_header,
 * the opcode's fixed argument, the entry's commit id and payload size),
 * then a gap, then the payload.  A request is rebuilt in place: its header
 * and fixed argument are copied into the gap right before the payload, so
 * the frame libfuse reads is contiguous without copying the data.
 *
 * Only a queue's own thread touches its ring (IORING_SETUP_SINGLE_ISSUER,
 * DEFER_TASKRUN): the kernel then hands it each request in its own context
 * when it waits, with no task work sent to other threads.  The thread is
 * pinned to its queue's CPU, where the kernel queues the requests of tasks
 * running there: a synchronous caller sleeps while the thread serves it on
 * the same CPU, so no request or reply crosses CPUs.  A reply made while
 * the thread serves the request (the usual case) is queued right away and
 * goes out with the next wait in one io_uring_enter().  A reply may also
 * come from another thread (a filter may answer later): the entry whose
 * request it answers is found by its unique, marked, and the queue's
 * thread woken through an eventfd to commit it.  Each thread serves its
 * queue's requests one at a time (see docs/performance.md, "FUSE over
 * io_uring: the unlink regression", for the measured alternatives).
 *
 * Ownership: the queues and buffers belong to this module from
 * uring_start() to uring_stop(); a queue's ring belongs to its thread.
 */
#include "frontend/uring.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
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
	bool commit_pending;		/* atomic: another thread filled a reply to commit */
};

struct ring_queue {
	struct io_uring ring;		/* used by the queue's thread only */
	bool ring_ready;
	bool ring_disabled;		/* created disabled: the thread enables it */
	pthread_t thread;
	bool thread_started;
	unsigned int qid;
	int stop_fd;			/* eventfd: wakes the thread to leave */
	int commit_fd;			/* eventfd: another thread marked a reply */
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
#define COMMIT_MARK ((void *)2)

/* The queue whose request this thread is serving, if any. */
static __thread struct ring_queue *serving;

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

/*
 * On the queue's thread: queues one command of e, sent with the thread's
 * next wait.  0, or -EBUSY if the ring is full (never: the ring has room
 * for every entry's one command and the two polls).
 */
static int queue_cmd(struct ring_ent *e, uint32_t op, uint64_t commit_id)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&e->queue->ring);
	if (!sqe)
		return -EBUSY;
	prep_cmd(sqe, e, op, commit_id);
	return 0;
}

/* Commits a reply for e: the out header, then payload_len bytes already in its payload. */
static int commit(struct ring_ent *e, const struct fuse_out_header *out, size_t payload_len)
{
	struct ring_queue *q = e->queue;
	memcpy(e->headers->in_out, out, sizeof(*out));
	e->headers->ring_ent_in_out.payload_sz = (uint32_t)payload_len;
	if (serving == q)
		return queue_cmd(e, VN_FUSE_IO_URING_CMD_COMMIT_AND_FETCH, e->commit_id);
	/* another thread: the queue's thread commits it when woken */
	__atomic_store_n(&e->commit_pending, true, __ATOMIC_RELEASE);
	uint64_t one = 1;
	if (write(q->commit_fd, &one, sizeof(one)) != sizeof(one))
		return -errno;
	return 0;
}

/* On the queue's thread: queues the commits other threads marked. */
static void commit_marked(struct ring_queue *q)
{
	uint64_t n;
	if (read(q->commit_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		log_warn("uring: queue %u cannot read its commit eventfd: %s", q->qid, strerror(errno));
	for (unsigned int i = 0; i < QUEUE_DEPTH; i++) {
		struct ring_ent *e = &q->ents[i];
		if (__atomic_exchange_n(&e->commit_pending, false, __ATOMIC_ACQ_REL) &&
		    queue_cmd(e, VN_FUSE_IO_URING_CMD_COMMIT_AND_FETCH, e->commit_id) < 0)
			log_warn("uring: queue %u: no room to commit a reply", q->qid);
	}
}

/* On the queue's thread: a poll for one readable eventfd, tagged mark. */
static int queue_poll(struct ring_queue *q, int fd, void *mark)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&q->ring);
	if (!sqe)
		return -EBUSY;
	io_uring_prep_poll_add(sqe, fd, POLLIN);
	io_uring_sqe_set_data(sqe, mark);
	return 0;
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
	serving = e->queue;
	fuse_session_process_buf(U.se, &buf);
	serving = NULL;
}

/*
 * Runs the thread on its queue's CPU, where the kernel puts the requests
 * of the tasks running there.  A CPU this process may not use stays
 * unpinned: its queue is then served from wherever the thread runs.
 */
static void pin_to_cpu(unsigned int qid)
{
	if (qid >= CPU_SETSIZE)
		return;
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(qid, &set);
	int r = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	if (r != 0)
		log_debug("uring: queue %u runs unpinned: %s", qid, strerror(r));
}

/* liburing 2.3 declares io_uring_enable_rings() but does not export it. */
static int enable_ring(struct ring_queue *q)
{
	long r = syscall(__NR_io_uring_register, q->ring.ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0);
	return r < 0 ? -errno : 0;
}

/* One completion: false when the thread must leave. */
static bool handle_cqe(struct ring_queue *q, void *data, int res)
{
	if (data == STOP_MARK)
		return false;
	if (data == COMMIT_MARK) {
		if (res == -ECANCELED)
			return false;	/* the ring is going away */
		commit_marked(q);
		if (queue_poll(q, q->commit_fd, COMMIT_MARK) < 0)
			log_warn("uring: queue %u cannot poll its commit eventfd", q->qid);
		return true;
	}
	if (res == -ENOTCONN || res == -ECONNABORTED || res == -ECANCELED)
		return false;	/* the mount went away */
	if (res < 0) {
		log_warn("uring: queue %u: a command failed: %s", q->qid, strerror(-res));
		return true;	/* the entry is lost; the others go on */
	}
	serve(data);
	return true;
}

static void *queue_thread(void *arg)
{
	struct ring_queue *q = arg;
	char name[16];
	snprintf(name, sizeof(name), "vn-uring-%u", q->qid);
	pthread_setname_np(pthread_self(), name);
	pin_to_cpu(q->qid);
	/* from here on this thread is the ring's only submitter */
	int r = q->ring_disabled ? enable_ring(q) : 0;
	if (r < 0) {
		log_warn("uring: queue %u cannot enable its ring: %s", q->qid, strerror(-r));
		return NULL;
	}
	r = queue_poll(q, q->stop_fd, STOP_MARK);
	if (r == 0)
		r = queue_poll(q, q->commit_fd, COMMIT_MARK);
	/* the registrations come from this thread: the kernel fills entries in its context */
	for (unsigned int i = 0; i < QUEUE_DEPTH && r == 0; i++)
		r = queue_cmd(&q->ents[i], VN_FUSE_IO_URING_CMD_REGISTER, 0);
	if (r < 0) {
		log_warn("uring: queue %u cannot register its buffers: %s", q->qid, strerror(-r));
		return NULL;
	}
	for (bool go = true; go;) {
		/* sends the commits queued since the last wait, then waits: one syscall */
		r = io_uring_submit_and_wait(&q->ring, 1);
		if (r == -EINTR)
			continue;
		if (r < 0) {
			log_warn("uring: queue %u: %s", q->qid, strerror(-r));
			break;
		}
		struct io_uring_cqe *cqe;
		while (go && io_uring_peek_cqe(&q->ring, &cqe) == 0) {
			void *data = io_uring_cqe_get_data(cqe);
			int res = cqe->res;
			io_uring_cqe_seen(&q->ring, cqe);
			go = handle_cqe(q, data, res);
		}
	}
	return NULL;
}

static int queue_init(struct ring_queue *q, unsigned int qid)
{
	q->qid = qid;
	q->stop_fd = -1;
	q->commit_fd = -1;
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
	q->commit_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (q->stop_fd < 0 || q->commit_fd < 0)
		return -errno;
	/* room for each entry's one command and the two polls */
	const unsigned int entries = QUEUE_DEPTH + 2;
	struct io_uring_params p = {
		.flags = IORING_SETUP_SQE128 | IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER |
			 IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_R_DISABLED,
		.cq_entries = 2 * entries,
	};
	int r = io_uring_queue_init_params(entries, &q->ring, &p);
	q->ring_disabled = r == 0;
	if (r == -EINVAL) {
		/* a kernel before 6.1: the thread still submits alone, without the flags */
		p = (struct io_uring_params){ .flags = IORING_SETUP_SQE128 | IORING_SETUP_CQSIZE,
					      .cq_entries = 2 * entries };
		r = io_uring_queue_init_params(entries, &q->ring, &p);
	}
	if (r < 0)
		return r;
	q->ring_ready = true;
	return 0;
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
		if (q->commit_fd >= 0)
			close(q->commit_fd);
		for (unsigned int j = 0; j < QUEUE_DEPTH; j++)
			free(q->ents[j].mem);
	}
	free(U.queues);
	U.queues = NULL;
	U.nqueues = 0;
}
