/*
 * Where records go: live watchers and the trace file.  Each has a bounded
 * ring of record references; publishing never waits: a full ring drops the
 * record and counts it.  The trace file is a watcher like any other, served
 * by a writer thread of its own.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/textbuf.h"
#include "filters/trace/trace_internal.h"

#define WATCHER_RING 8192
#define FILE_RING 65536
#define MAX_SUBS 32

struct trace_sub {
	struct trace_query q;
	pthread_mutex_t lock;
	pthread_cond_t ready;
	struct trace_record **ring;
	size_t cap, head, count;	/* under lock */
	uint64_t dropped;		/* under lock */
	uint64_t dropped_told;		/* reader's own */
};

int trace_active;

static pthread_mutex_t subs_lock = PTHREAD_MUTEX_INITIALIZER;
static struct trace_sub *subs[MAX_SUBS];
static unsigned int nsubs;

static void push(struct trace_sub *s, struct trace_record *r)
{
	pthread_mutex_lock(&s->lock);
	if (s->count == s->cap) {
		s->dropped++;
	} else {
		trace_record_get(r);
		s->ring[(s->head + s->count++) % s->cap] = r;
		if (s->count == 1)
			pthread_cond_signal(&s->ready);
	}
	pthread_mutex_unlock(&s->lock);
}

void trace_publish(struct trace_record *r)
{
	pthread_mutex_lock(&subs_lock);
	for (unsigned int i = 0; i < nsubs; i++)
		if (trace_record_matches(r, &subs[i]->q))
			push(subs[i], r);
	pthread_mutex_unlock(&subs_lock);
}

static int sub_new(const struct trace_query *q, size_t cap, struct trace_sub **ret)
{
	struct trace_sub *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->ring = calloc(cap, sizeof(*s->ring));
	s->q = *q;
	s->q.path_glob = q->path_glob ? strdup(q->path_glob) : NULL;
	if (!s->ring || (q->path_glob && !s->q.path_glob)) {
		free(s->ring);
		free(s->q.path_glob);
		free(s);
		return -ENOMEM;
	}
	s->cap = cap;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->ready, NULL);
	pthread_mutex_lock(&subs_lock);
	if (nsubs == MAX_SUBS) {
		pthread_mutex_unlock(&subs_lock);
		trace_unsubscribe(s);
		return -EBUSY;
	}
	subs[nsubs++] = s;
	__atomic_add_fetch(&trace_active, 1, __ATOMIC_RELEASE);
	vn_want_data(trace_self, 1);	/* a listener sees every read and write */
	pthread_mutex_unlock(&subs_lock);
	*ret = s;
	return 0;
}

int trace_subscribe(const struct trace_query *q, struct trace_sub **ret)
{
	return sub_new(q, WATCHER_RING, ret);
}

void trace_unsubscribe(struct trace_sub *s)
{
	pthread_mutex_lock(&subs_lock);
	for (unsigned int i = 0; i < nsubs; i++) {
		if (subs[i] == s) {
			subs[i] = subs[--nsubs];
			__atomic_sub_fetch(&trace_active, 1, __ATOMIC_RELEASE);
			vn_want_data(trace_self, 0);
			break;
		}
	}
	pthread_mutex_unlock(&subs_lock);
	for (size_t i = 0; i < s->count; i++)
		trace_record_put(s->ring[(s->head + i) % s->cap]);
	free(s->ring);
	free(s->q.path_glob);
	pthread_cond_destroy(&s->ready);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

uint64_t trace_sub_dropped(const struct trace_sub *s)
{
	struct trace_sub *m = (struct trace_sub *)s;
	pthread_mutex_lock(&m->lock);
	uint64_t d = m->dropped;
	pthread_mutex_unlock(&m->lock);
	return d;
}

static void deadline_in(struct timespec *ts, int ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

/* Takes up to max records out of the ring, waiting up to timeout_ms for the first. */
static size_t take(struct trace_sub *s, struct trace_record **out, size_t max, int timeout_ms,
		   uint64_t *dropped)
{
	struct timespec ts;
	deadline_in(&ts, timeout_ms);
	pthread_mutex_lock(&s->lock);
	while (s->count == 0 && s->dropped == s->dropped_told) {
		if (pthread_cond_timedwait(&s->ready, &s->lock, &ts) == ETIMEDOUT)
			break;
	}
	size_t n = 0;
	while (n < max && s->count > 0) {
		out[n++] = s->ring[s->head];
		s->head = (s->head + 1) % s->cap;
		s->count--;
	}
	*dropped = s->dropped;
	pthread_mutex_unlock(&s->lock);
	return n;
}

int trace_sub_read(struct trace_sub *s, char **buf, size_t *len, size_t *cap, int timeout_ms)
{
	struct trace_record *batch[256];
	uint64_t dropped;
	size_t n = take(s, batch, 256, timeout_ms, &dropped);
	int r = 0;
	if (dropped != s->dropped_told) {
		uint64_t d = dropped - s->dropped_told;
		s->dropped_told = dropped;
		r = s->q.json ? textbuf_printf(buf, len, cap, "{\"dropped\":%llu}\n",
						 (unsigned long long)d)
			      : textbuf_printf(buf, len, cap, "# %llu records dropped\n",
						 (unsigned long long)d);
	}
	for (size_t i = 0; i < n; i++) {
		if (r == 0)
			r = trace_record_format(batch[i], s->q.json, buf, len, cap);
		trace_record_put(batch[i]);
	}
	return r < 0 ? r : (int)n;
}

/* ---- the trace file ---- */

static struct {
	struct trace_sub *sub;
	int fd;
	pthread_t thread;
	int stop;			/* atomic */
	bool running;
} tfile = { .fd = -1 };

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static void *file_writer(void *arg)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;
	bool failed = false;
	for (;;) {
		bool stopping = __atomic_load_n(&tfile.stop, __ATOMIC_ACQUIRE);
		int n = trace_sub_read(tfile.sub, &buf, &len, &cap, stopping ? 0 : 200);
		if (len > 0 && !failed) {
			int r = write_all(tfile.fd, buf, len);
			if (r < 0) {
				log_err("trace file: %s: records from now on are lost", strerror(-r));
				failed = true;
			}
		}
		len = 0;
		if (stopping && n <= 0)
			break;
	}
	free(buf);
	return NULL;
}

static const char *mount_point = "/";	/* trace_mount_init */
static int mount_lower_fd = -1;

void trace_mount_init(const char *mountpoint, int lower_fd)
{
	mount_point = mountpoint;
	mount_lower_fd = lower_fd;
}

/* Opens PATH for appending, through the lower when it lies under the mount point. */
static int open_trace_file(const char *path, const char *mountpoint, int lower_fd)
{
	size_t mlen = strlen(mountpoint);
	const char *rel = NULL;
	if (!strcmp(path, mountpoint))
		return -EISDIR;
	if (mlen == 1)
		rel = path + 1;
	else if (!strncmp(path, mountpoint, mlen) && path[mlen] == '/')
		rel = path + mlen + 1;
	int flags = O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY;
	if (!rel) {
		int fd = open(path, flags, 0644);
		return fd < 0 ? -errno : fd;
	}
	struct open_how how = {
		.flags = (uint64_t)flags | O_NOFOLLOW,
		.mode = 0644,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	long fd = syscall(SYS_openat2, lower_fd, rel, &how, sizeof(how));
	return fd < 0 ? -errno : (int)fd;
}

int trace_file_start(const char *path, char *err, size_t errlen)
{
	if (tfile.running) {
		snprintf(err, errlen, "trace file %s: the trace already writes a file", path);
		return -EBUSY;
	}
	if (path[0] != '/') {
		snprintf(err, errlen, "trace file %s: not an absolute path", path);
		return -EINVAL;
	}
	int fd = open_trace_file(path, mount_point, mount_lower_fd);
	if (fd < 0) {
		snprintf(err, errlen, "trace file %s: %s", path, strerror(-fd));
		return fd;
	}
	struct trace_query all = { .json = true };
	int r = sub_new(&all, FILE_RING, &tfile.sub);
	if (r == 0) {
		tfile.fd = fd;
		r = -pthread_create(&tfile.thread, NULL, file_writer, NULL);
		if (r < 0)
			trace_unsubscribe(tfile.sub);
	}
	if (r < 0) {
		close(fd);
		snprintf(err, errlen, "trace file %s: %s", path, strerror(-r));
		return r;
	}
	tfile.running = true;
	return 0;
}

void trace_file_stop(void)
{
	if (!tfile.running)
		return;
	__atomic_store_n(&tfile.stop, 1, __ATOMIC_RELEASE);
	pthread_join(tfile.thread, NULL);
	uint64_t dropped = trace_sub_dropped(tfile.sub);
	if (dropped)
		log_warn("trace file: %llu records dropped (the disk could not keep up)",
			 (unsigned long long)dropped);
	trace_unsubscribe(tfile.sub);
	close(tfile.fd);
	tfile.fd = -1;
	tfile.running = false;
}
