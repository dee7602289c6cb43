/*
 * The session's read and writev on /dev/fuse; see wire.h.
 *
 * Requests are read as libfuse would read them (or taken from an io_uring
 * queue, uring.c); two things are kept: which in-flight requests are INIT,
 * OPEN or CREATE (by unique), so that their replies, and only theirs, are
 * patched; and, per thread, whether the request just read asks to clear
 * setuid/setgid bits (libfuse 3.14 drops write_flags and open_flags before
 * the handlers see them).  A reply is matched by the unique in its header,
 * never by its shape.  The table is consulted only while it holds
 * something, so other replies cost one atomic load.  A reply to a request
 * from an io_uring queue is committed there instead of written.
 *
 * Ownership: the hook owns no request or reply buffer; it patches reply
 * payloads in place (libfuse's own memory, valid for the writev call).
 * Lock order: wire_lock is a leaf; nothing is called while it is held.
 */
#include "frontend/wire.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

#include "common/log.h"
#include "frontend/uring.h"

#if FUSE_MAJOR_VERSION != 3 || FUSE_MINOR_VERSION < 14
#error "the custom I/O hook needs libfuse 3.14 or later"
#endif

#define PENDING_BUCKETS 256

struct pending {
	uint64_t unique;
	uint32_t opcode;
	struct pending *next;
};

static struct {
	int fd;				/* the session's /dev/fuse descriptor */
	pthread_mutex_t lock;		/* leaf: the pending table */
	struct pending *buckets[PENDING_BUCKETS];
	unsigned int npending;		/* atomic reads outside the lock */
	uint64_t kernel_flags;		/* from INIT */
	struct fuse_session *se;
	struct wire_wants want;		/* set before the session starts */
	size_t uring_payload;		/* from the INIT reply that asked for io_uring */
	bool uring;			/* set once, by the INIT reply */
	bool passthrough;		/* set once, by the INIT reply */
	bool killpriv;			/* set once, by the INIT reply */
	const char *refusal;		/* atomic */
} wire = { .fd = -1, .lock = PTHREAD_MUTEX_INITIALIZER };

/* ---- frame patching ---- */

uint64_t wire_init_flags(const void *frame, size_t len)
{
	const struct fuse_in_header *h = frame;
	if (len < sizeof(*h) + sizeof(struct fuse_init_in) || h->opcode != FUSE_INIT)
		return 0;
	const struct fuse_init_in *in = (const void *)(h + 1);
	uint64_t flags = in->flags;
	if (flags & FUSE_INIT_EXT)
		flags |= (uint64_t)in->flags2 << 32;
	return flags;
}

bool wire_patch_init(void *payload, size_t len, uint64_t kernel_flags, const char **ret_refusal)
{
	struct vn_fuse_init_out *out = payload;
	const char *why = NULL;
	if (len < sizeof(*out))
		why = "the kernel speaks a FUSE protocol older than 7.23";
	else if (!(kernel_flags & FUSE_INIT_EXT) || !(kernel_flags & VN_FUSE_PASSTHROUGH))
		why = "the kernel does not offer FUSE passthrough (it needs Linux 6.9 or later "
		      "with CONFIG_FUSE_PASSTHROUGH)";
	else if (out->flags & FUSE_WRITEBACK_CACHE)
		why = "passthrough excludes the writeback cache";
	if (why) {
		if (ret_refusal)
			*ret_refusal = why;
		return false;
	}
	out->flags |= FUSE_INIT_EXT;
	out->flags2 |= (uint32_t)(VN_FUSE_PASSTHROUGH >> 32);
	/*
	 * 1: backing files must be on a filesystem that stacks on nothing
	 * (ext4, xfs, btrfs, tmpfs...), and the mount itself may still be a
	 * lower layer of an overlay.  A backing file on an overlay is refused
	 * (ELOOP) and that open takes the daemon's path.
	 */
	out->max_stack_depth = 1;
	return true;
}

bool wire_patch_init_killpriv(void *payload, size_t len, uint64_t kernel_flags)
{
	struct vn_fuse_init_out *out = payload;
	if (len < offsetof(struct vn_fuse_init_out, max_background) ||
	    !(kernel_flags & FUSE_HANDLE_KILLPRIV_V2))
		return false;
	/* v1 would have the daemon clear the bits on every write, even root's */
	out->flags &= ~(uint32_t)FUSE_HANDLE_KILLPRIV;
	out->flags |= FUSE_HANDLE_KILLPRIV_V2;
	return true;
}

bool wire_request_kills_suidgid(const void *frame, size_t len)
{
	const struct fuse_in_header *h = frame;
	if (len < sizeof(*h))
		return false;
	const void *arg = h + 1;
	len -= sizeof(*h);
	switch (h->opcode) {
	case FUSE_WRITE:
		return len >= sizeof(struct fuse_write_in) &&
		       (((const struct fuse_write_in *)arg)->write_flags & FUSE_WRITE_KILL_SUIDGID);
	case FUSE_OPEN:
		return len >= sizeof(struct fuse_open_in) &&
		       (((const struct fuse_open_in *)arg)->open_flags & FUSE_OPEN_KILL_SUIDGID);
	case FUSE_CREATE:
		return len >= sizeof(struct fuse_create_in) &&
		       (((const struct fuse_create_in *)arg)->open_flags & FUSE_OPEN_KILL_SUIDGID);
	default:
		return false;
	}
}

void wire_patch_open_out(struct vn_fuse_open_out *o, int32_t backing_id)
{
	/* the kernel refuses a passthrough open that also keeps the page cache */
	o->open_flags &= ~(uint32_t)(FOPEN_KEEP_CACHE | FOPEN_DIRECT_IO | FOPEN_CACHE_DIR);
	o->open_flags |= VN_FOPEN_PASSTHROUGH;
	o->backing_id = backing_id;
}

/* ---- the pending table ---- */

static unsigned int bucket_of(uint64_t unique)
{
	return (unsigned int)((unique >> 1) * 0x9E3779B97F4A7C15ULL >> 56) % PENDING_BUCKETS;
}

static void pending_add(uint64_t unique, uint32_t opcode)
{
	struct pending *p = malloc(sizeof(*p));
	if (!p) {
		/* the reply goes out unpatched: an ordinary open (see frontend_open_backing) */
		log_debug("wire: no memory to track request %llu", (unsigned long long)unique);
		return;
	}
	p->unique = unique;
	p->opcode = opcode;
	unsigned int b = bucket_of(unique);
	pthread_mutex_lock(&wire.lock);
	p->next = wire.buckets[b];
	wire.buckets[b] = p;
	__atomic_add_fetch(&wire.npending, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&wire.lock);
}

/* Removes unique from the table: its opcode, or 0 when it was not there. */
static uint32_t pending_take(uint64_t unique)
{
	if (__atomic_load_n(&wire.npending, __ATOMIC_ACQUIRE) == 0)
		return 0;
	uint32_t opcode = 0;
	struct pending *found = NULL;
	unsigned int b = bucket_of(unique);
	pthread_mutex_lock(&wire.lock);
	for (struct pending **pp = &wire.buckets[b]; *pp; pp = &(*pp)->next) {
		if ((*pp)->unique == unique) {
			found = *pp;
			*pp = found->next;
			opcode = found->opcode;
			__atomic_sub_fetch(&wire.npending, 1, __ATOMIC_RELEASE);
			break;
		}
	}
	pthread_mutex_unlock(&wire.lock);
	free(found);
	return opcode;
}

/* ---- the hook ---- */

/*
 * libfuse 3.14 serves a request on the thread that read it, before that
 * thread reads the next (fuse_session_loop_mt), so the handler finds the
 * flag of its own request here.
 */
static __thread bool read_kills_suidgid;

bool wire_kills_suidgid(void)
{
	return read_kills_suidgid;
}

void wire_note_request(const void *frame, size_t len)
{
	read_kills_suidgid = wire_request_kills_suidgid(frame, len);
	if (len < sizeof(struct fuse_in_header))
		return;
	const struct fuse_in_header *h = frame;
	switch (h->opcode) {
	case FUSE_INIT:
		wire.kernel_flags = wire_init_flags(frame, len);
		pending_add(h->unique, h->opcode);
		break;
	case FUSE_OPEN:
	case FUSE_CREATE:
		if (wire.want.passthrough)
			pending_add(h->unique, h->opcode);
		break;
	default:
		break;
	}
}

ssize_t wire_read_frame(int fd, void *buf, size_t len, void *userdata)
{
	(void)userdata;
	ssize_t n = read(fd, buf, len);
	wire_note_request(buf, n > 0 ? (size_t)n : 0);
	return n;
}

/* The payload byte range [off, off+size) when it lies within one iovec. */
static void *payload_at(struct iovec *iov, int count, size_t off, size_t size)
{
	for (int i = 1; i < count; i++) {
		if (off < iov[i].iov_len) {
			if (off + size > iov[i].iov_len)
				return NULL;
			return (char *)iov[i].iov_base + off;
		}
		off -= iov[i].iov_len;
	}
	return NULL;
}

static size_t payload_len(const struct iovec *iov, int count)
{
	size_t len = 0;
	for (int i = 1; i < count; i++)
		len += iov[i].iov_len;
	return len;
}

/*
 * Killpriv v2 only without passthrough: a passthrough write by a caller
 * without CAP_FSETID would then clear nothing.  The kernel's
 * file_remove_privs() on the FUSE inode becomes a setattr that killpriv v2
 * tells it to leave to the daemon (fuse_setattr drops ATTR_KILL_SUID and
 * ATTR_KILL_SGID), the daemon never sees the write, and the backing file
 * is written with the daemon's credentials, CAP_FSETID included.
 */
static void patch_init_killpriv(void *out, size_t len)
{
	if (!wire.want.killpriv)
		return;
	if (__atomic_load_n(&wire.passthrough, __ATOMIC_ACQUIRE)) {
		log_info("killpriv v2 off: passthrough writes would keep setuid/setgid bits");
	} else if (out && wire_patch_init_killpriv(out, len, wire.kernel_flags)) {
		__atomic_store_n(&wire.killpriv, true, __ATOMIC_RELEASE);
		log_debug("wire: killpriv v2 on");
	} else {
		log_info("killpriv v2 off: the kernel does not offer it");
	}
}

bool wire_patch_init_uring(void *payload, size_t len, uint64_t kernel_flags, size_t *ret_payload)
{
	struct vn_fuse_init_out *out = payload;
	if (len < sizeof(*out) || !(kernel_flags & FUSE_INIT_EXT) ||
	    !(kernel_flags & VN_FUSE_OVER_IO_URING))
		return false;
	out->flags |= FUSE_INIT_EXT;
	out->flags2 |= (uint32_t)(VN_FUSE_OVER_IO_URING >> 32);
	/* the kernel's own bound for a ring entry's payload (fuse_uring_create) */
	size_t size = 8192;
	if (out->max_write > size)
		size = out->max_write;
	size_t pages = (size_t)out->max_pages * (size_t)sysconf(_SC_PAGESIZE);
	if (pages > size)
		size = pages;
	*ret_payload = size;
	return true;
}

bool wire_uring_planned(void)
{
	return wire.want.uring && (wire.kernel_flags & VN_FUSE_OVER_IO_URING);
}

static void patch_init_uring(void *out, size_t len)
{
	if (!wire.want.uring)
		return;
	if (out && wire_patch_init_uring(out, len, wire.kernel_flags, &wire.uring_payload))
		wire.uring = true;
	else
		log_warn("uring off: the kernel does not offer FUSE over io_uring; requests go "
			 "through the device");
}

static void patch_init_reply(struct iovec *iov, int count)
{
	size_t len = payload_len(iov, count);
	void *out = payload_at(iov, count, 0, len);
	patch_init_uring(out, len);
	const char *why = "the INIT reply is not in one piece";
	if (!wire.want.passthrough) {
		/* nothing to refuse */
	} else if (out && wire_patch_init(out, len, wire.kernel_flags, &why)) {
		__atomic_store_n(&wire.passthrough, true, __ATOMIC_RELEASE);
		log_debug("wire: passthrough on");
	} else {
		__atomic_store_n(&wire.refusal, why, __ATOMIC_RELEASE);
		log_warn("passthrough off: %s; reads and writes go through the daemon", why);
	}
	patch_init_killpriv(out, len);
}

static void patch_open_reply(struct iovec *iov, int count, uint32_t opcode)
{
	size_t len = payload_len(iov, count);
	size_t off = opcode == FUSE_CREATE ? sizeof(struct fuse_entry_out) : 0;
	if (len != off + sizeof(struct vn_fuse_open_out))
		return;
	struct vn_fuse_open_out *o = payload_at(iov, count, off, sizeof(*o));
	if (!o)
		return;
	int32_t id = frontend_open_backing(o->fh);
	if (id > 0)
		wire_patch_open_out(o, id);
}

ssize_t wire_write_frame(int fd, struct iovec *iov, int count, void *userdata)
{
	(void)userdata;
	if (count >= 1 && iov[0].iov_len == sizeof(struct fuse_out_header)) {
		const struct fuse_out_header *h = iov[0].iov_base;
		uint32_t opcode = h->unique ? pending_take(h->unique) : 0;
		if (opcode == FUSE_INIT && h->error == 0) {
			patch_init_reply(iov, count);
			ssize_t n = writev(fd, iov, count);
			/* the ring registers only once the kernel has taken INIT's reply */
			if (n > 0 && wire.uring && uring_start(wire.se, fd, wire.uring_payload) == 0)
				log_info("uring on: requests come through io_uring queues");
			return n;
		}
		if ((opcode == FUSE_OPEN || opcode == FUSE_CREATE) && h->error == 0 &&
		    wire.passthrough)
			patch_open_reply(iov, count, opcode);
		ssize_t n;
		if (uring_reply(iov, count, &n))
			return n;
	}
	return writev(fd, iov, count);
}

/*
 * Data replies libfuse splices from a descriptor: never INIT, OPEN or
 * CREATE, so they need no patching, and splicing them keeps the reads the
 * daemon still serves free of a copy.
 */
static ssize_t wire_splice_send(int fdin, off_t *offin, int fdout, off_t *offout, size_t len,
				unsigned int flags, void *userdata)
{
	(void)userdata;
	return splice(fdin, offin, fdout, offout, len, flags);
}

void wire_want(const struct wire_wants *want)
{
	wire.want = *want;
}

int wire_install(struct fuse_session *se, const struct wire_wants *want)
{
	const struct fuse_custom_io io = { .read = wire_read_frame, .writev = wire_write_frame,
					   .splice_send = wire_splice_send };
	struct wire_wants w = *want;
	if (w.passthrough && geteuid() != 0) {
		/* the kernel's check is CAP_SYS_ADMIN; root is how one has it */
		__atomic_store_n(&wire.refusal, "registering a backing file needs CAP_SYS_ADMIN",
				 __ATOMIC_RELEASE);
		w.passthrough = false;
	}
	if (!w.passthrough && !w.killpriv && !w.uring)
		return -EPERM;
	wire_want(&w);
	wire.se = se;
	wire.fd = fuse_session_fd(se);
	if (wire.fd < 0)
		return -EBADF;
	int r = fuse_session_custom_io(se, &io, wire.fd);
	return r < 0 ? r : 0;
}

void wire_shutdown(void)
{
	uring_stop();
	wire.uring = false;
	pthread_mutex_lock(&wire.lock);
	for (unsigned int b = 0; b < PENDING_BUCKETS; b++) {
		while (wire.buckets[b]) {
			struct pending *p = wire.buckets[b];
			wire.buckets[b] = p->next;
			free(p);
		}
	}
	wire.npending = 0;
	pthread_mutex_unlock(&wire.lock);
	__atomic_store_n(&wire.passthrough, false, __ATOMIC_RELEASE);
	__atomic_store_n(&wire.killpriv, false, __ATOMIC_RELEASE);
	__atomic_store_n(&wire.refusal, NULL, __ATOMIC_RELEASE);
}

bool wire_killpriv(void)
{
	return __atomic_load_n(&wire.killpriv, __ATOMIC_ACQUIRE);
}

bool wire_passthrough(void)
{
	return __atomic_load_n(&wire.passthrough, __ATOMIC_ACQUIRE);
}

const char *wire_passthrough_refusal(void)
{
	return __atomic_load_n(&wire.refusal, __ATOMIC_ACQUIRE);
}

int wire_backing_open(int fd)
{
	struct vn_fuse_backing_map map = { .fd = fd };
	int id = ioctl(wire.fd, VN_FUSE_DEV_IOC_BACKING_OPEN, &map);
	if (id == 0)	/* never a valid id: the device is not /dev/fuse */
		return -ENOTTY;
	return id < 0 ? -errno : id;
}

void wire_backing_close(int id)
{
	uint32_t arg = (uint32_t)id;
	if (ioctl(wire.fd, VN_FUSE_DEV_IOC_BACKING_CLOSE, &arg) < 0)
		log_debug("wire: closing backing id %d: %s", id, strerror(errno));
}
