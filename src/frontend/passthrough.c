/*
 * Which opens the kernel serves itself (FUSE passthrough): their reads,
 * writes, splice and mmap go straight to the real file and never reach
 * the daemon.  See docs/performance.md for when, docs/semantics.md for
 * what it changes.
 *
 * The kernel keeps one I/O mode per inode: while a file is open in
 * passthrough, every other open of it must be too (an ordinary open then
 * fails with EIO), and while it is open through the page cache no open
 * may pass through (EIO as well).  So every open of a real regular file
 * is counted on its node as one or the other, the choice is made only
 * when the node has no open of the other kind, and one backing id serves
 * all passthrough opens of a node until the last is released.
 *
 * Not passed through: virtual files, anything that is not a regular file,
 * and every open while a filter wants to see reads and writes
 * (fm_data_wanted).  Setuid files need no exception: the kernel clears
 * the bits with the writer's own credentials (through SETATTR) before a
 * passthrough write, which itself runs with the daemon's.
 *
 * Lock order: pt_lock is a leaf.  The backing ioctls run outside it.
 */
#include "frontend/passthrough.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/log.h"
#include "core/filter_manager.h"
#include "frontend/fuse_request.h"
#include "frontend/uring.h"
#include "frontend/wire.h"

static pthread_mutex_t pt_lock = PTHREAD_MUTEX_INITIALIZER;	/* leaf: the pt_* fields */
/* Set once the kernel refused a backing file for a reason that holds for all; atomic. */
static const char *pt_broken_why;
static unsigned long pt_files;	/* open files the kernel serves itself; under pt_lock */

/* For a real file with a descriptor (passthrough_choose checked both). */
static bool pt_allowed(const struct vn_file *f)
{
	struct stat st;
	if (fstat(f->fd, &st) < 0 || !S_ISREG(st.st_mode))
		return false;
	return !fm_data_wanted();
}

/* The kernel said no for every file (no CAP_SYS_ADMIN, passthrough off): stop asking. */
static void backing_refused(int err)
{
	if (err != -EPERM && err != -EOPNOTSUPP && err != -ENOTTY)
		return;
	const char *why = err == -EPERM ? "registering a backing file needs CAP_SYS_ADMIN"
					: "the kernel refuses backing files";
	if (!__atomic_exchange_n(&pt_broken_why, why, __ATOMIC_ACQ_REL))
		log_warn("passthrough off: the kernel refuses backing files (%s); "
			 "reads and writes go through the daemon",
			 err == -EPERM ? "registering one needs CAP_SYS_ADMIN" : strerror(-err));
}

/* Counts f as an ordinary (page cache) open of its node. */
static void count_cached(struct vn_file *f)
{
	f->pt_mode = PT_CACHED;
	f->node->pt_cached_opens++;
}

void passthrough_choose(struct vn_file *f)
{
	if (!wire_passthrough() || f->pt_mode != PT_NONE || !f->node || f->fd < 0 ||
	    f->node->owner)
		return;
	struct vn_node *n = f->node;
	bool allowed = !__atomic_load_n(&pt_broken_why, __ATOMIC_ACQUIRE) && pt_allowed(f);
	pthread_mutex_lock(&pt_lock);
	if (n->pt_opens > 0) {	/* the kernel insists: same mode, same backing file */
		f->pt_mode = PT_PASSTHROUGH;
		f->backing_id = n->pt_backing_id;
		n->pt_opens++;
		pt_files++;
		pthread_mutex_unlock(&pt_lock);
		return;
	}
	if (!allowed || n->pt_cached_opens > 0) {
		count_cached(f);
		pthread_mutex_unlock(&pt_lock);
		return;
	}
	pthread_mutex_unlock(&pt_lock);

	int id = wire_backing_open(f->fd);
	if (id <= 0)
		backing_refused(id);
	pthread_mutex_lock(&pt_lock);
	int spare = 0;
	if (n->pt_opens > 0) {	/* another open registered one meanwhile: share it */
		spare = id;
		f->backing_id = n->pt_backing_id;
		f->pt_mode = PT_PASSTHROUGH;
		n->pt_opens++;
		pt_files++;
	} else if (id > 0 && n->pt_cached_opens == 0) {
		n->pt_backing_id = id;
		n->pt_opens = 1;
		f->backing_id = id;
		f->pt_mode = PT_PASSTHROUGH;
		pt_files++;
	} else {
		spare = id;
		count_cached(f);
	}
	pthread_mutex_unlock(&pt_lock);
	if (spare > 0)
		wire_backing_close(spare);
}

int32_t frontend_open_backing(uint64_t fh)
{
	struct vn_file *f = (struct vn_file *)(uintptr_t)fh;
	if (!f || f->pt_mode != PT_PASSTHROUGH)
		return 0;
	f->pt_applied = true;
	return f->backing_id;
}

bool passthrough_keep_cache(struct vn_file *f, bool keep)
{
	if (f->pt_mode != PT_CACHED)
		return keep;
	pthread_mutex_lock(&pt_lock);
	bool stale = f->node->pt_pages_stale;
	f->node->pt_pages_stale = false;
	pthread_mutex_unlock(&pt_lock);
	/* passthrough writes went around the page cache: start it afresh */
	return keep && !stale;
}

void passthrough_release(struct vn_file *f)
{
	if (f->pt_mode == PT_NONE)
		return;
	struct vn_node *n = f->node;
	int close_id = 0;
	pthread_mutex_lock(&pt_lock);
	if (f->pt_mode == PT_CACHED) {
		n->pt_cached_opens--;
	} else {
		/*
		 * Pages an earlier ordinary open left in the kernel's cache do
		 * not show what passthrough wrote.
		 */
		if ((f->flags & O_ACCMODE) != O_RDONLY)
			n->pt_pages_stale = true;
		pt_files--;
		if (--n->pt_opens == 0) {
			close_id = n->pt_backing_id;
			n->pt_backing_id = 0;
		}
	}
	f->pt_mode = PT_NONE;
	pthread_mutex_unlock(&pt_lock);
	if (close_id > 0)
		wire_backing_close(close_id);
}

void passthrough_reply_sent(struct vn_file *f, bool sent)
{
	if (f->pt_mode != PT_PASSTHROUGH || (sent && f->pt_applied))
		return;
	/*
	 * The reply went out unpatched (its request was not tracked) or not at
	 * all: the kernel holds an ordinary open, or none.
	 */
	passthrough_release(f);
	if (sent) {
		pthread_mutex_lock(&pt_lock);
		count_cached(f);
		pthread_mutex_unlock(&pt_lock);
	}
}

/* The --opens mode in effect. */
static const char *open_mode(void)
{
	return frontend.cfg.passthrough ? "passthrough" : frontend_skips_opens() ? "skip" : "send";
}

int passthrough_metrics(char **ret_text)
{
	const char *mode = open_mode();
	bool on = wire_passthrough() && !__atomic_load_n(&pt_broken_why, __ATOMIC_ACQUIRE);
	pthread_mutex_lock(&pt_lock);
	unsigned long files = pt_files;
	pthread_mutex_unlock(&pt_lock);
	if (asprintf(ret_text, "# HELP veneer_opens_info How opens reach the daemon (--opens).\n"
		     "# TYPE veneer_opens_info gauge\nveneer_opens_info{mode=\"%s\"} 1\n"
		     "# HELP veneer_passthrough_active Whether files open in kernel passthrough.\n"
		     "# TYPE veneer_passthrough_active gauge\nveneer_passthrough_active %d\n"
		     "# HELP veneer_passthrough_files Files open in kernel passthrough now.\n"
		     "# TYPE veneer_passthrough_files gauge\nveneer_passthrough_files %lu\n",
		     mode, on, files) < 0) {
		*ret_text = NULL;
		return -ENOMEM;
	}
	return 0;
}

int passthrough_status(bool json, char **ret_text)
{
	const char *mode = open_mode();
	const char *broken = __atomic_load_n(&pt_broken_why, __ATOMIC_ACQUIRE);
	bool on = wire_passthrough() && !broken;
	const char *why = NULL;
	if (frontend.cfg.passthrough && !on) {
		why = wire_passthrough() ? broken : wire_passthrough_refusal();
		if (!why)
			why = "not negotiated with the kernel";
	}
	pthread_mutex_lock(&pt_lock);
	unsigned long files = pt_files;
	pthread_mutex_unlock(&pt_lock);
	const char *kp = wire_killpriv() ? "true" : "false";
	char ur[64] = "";
	if (frontend.cfg.uring)
		snprintf(ur, sizeof(ur), "; io_uring: %s, %lu requests", uring_active() ? "on" : "off",
			 uring_served());
	int n;
	if (json)
		n = asprintf(ret_text, "\"opens\":{\"mode\":\"%s\",\"passthrough\":%s,"
			     "\"passthrough_files\":%lu,\"passthrough_off\":%s%s%s,\"killpriv\":%s,"
			     "\"uring\":%s,\"uring_requests\":%lu}",
			     mode, on ? "true" : "false", files, why ? "\"" : "", why ? why : "null",
			     why ? "\"" : "", kp, uring_active() ? "true" : "false", uring_served());
	else if (why)
		n = asprintf(ret_text, "opens: %s; passthrough off: %s; killpriv v2: %s%s\n", mode,
			     why, kp, ur);
	else if (on)
		n = asprintf(ret_text, "opens: %s; files open in passthrough: %lu; killpriv v2: %s%s\n",
			     mode, files, kp, ur);
	else
		n = asprintf(ret_text, "opens: %s; killpriv v2: %s%s\n", mode, kp, ur);
	if (n < 0) {
		*ret_text = NULL;
		return -ENOMEM;
	}
	return 0;
}
