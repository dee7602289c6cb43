/* One trace record: what the operation asked, what it got; JSON and text lines. */
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/textbuf.h"
#include "filters/trace/trace_internal.h"

/* ---- process names: a small cache, so a busy process costs one read ---- */

#define COMM_SLOTS 256
#define COMM_TTL_NS 1000000000ULL

static struct {
	pid_t pid;
	uint64_t when;
	char comm[16];
} comm_cache[COMM_SLOTS];
static pthread_mutex_t comm_lock = PTHREAD_MUTEX_INITIALIZER;

static void read_comm(pid_t pid, char *out)
{
	char path[32];
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	out[0] = '\0';
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t n = read(fd, out, 15);
	close(fd);
	if (n <= 0)
		return;
	out[n] = '\0';
	out[strcspn(out, "\n")] = '\0';
}

static void comm_of(pid_t pid, char *out)
{
	out[0] = '\0';
	if (pid <= 0)
		return;
	uint64_t now = trace_now_ns();
	unsigned int k = (unsigned int)pid % COMM_SLOTS;
	pthread_mutex_lock(&comm_lock);
	if (comm_cache[k].pid == pid && now - comm_cache[k].when < COMM_TTL_NS) {
		memcpy(out, comm_cache[k].comm, 16);
		pthread_mutex_unlock(&comm_lock);
		return;
	}
	pthread_mutex_unlock(&comm_lock);
	read_comm(pid, out);
	pthread_mutex_lock(&comm_lock);
	comm_cache[k].pid = pid;
	comm_cache[k].when = now;
	memcpy(comm_cache[k].comm, out, 16);
	pthread_mutex_unlock(&comm_lock);
}

/* ---- capture ---- */

static int node_path(struct vn_node *node, const char *name, char *buf, size_t size)
{
	if (!node)
		return snprintf(buf, size, "?");
	int r = vn_node_path(node, buf, size);
	if (r < 0)
		return snprintf(buf, size, "%s", r == -ENOENT ? "(deleted)" : "(too long)");
	if (name && name[0]) {
		size_t len = (size_t)r;
		int n = snprintf(buf + len, size - len, "%s%s", len == 1 ? "" : "/", name);
		return n < 0 || (size_t)n >= size - len ? (int)len : (int)len + n;
	}
	return r;
}

static void capture_args(struct trace_record *r, const struct vn_op *op)
{
	r->offset = -1;
	r->size = -1;
	r->mode = -1;
	switch (op->opcode) {
	case VN_OP_OPEN:
	case VN_OP_OPENDIR:
		r->flags = op->in.open.flags;
		r->has_flags = true;
		break;
	case VN_OP_CREATE:
		r->flags = op->in.open.flags;
		r->has_flags = true;
		r->mode = (int)op->in.open.mode;
		break;
	case VN_OP_MKNOD:
	case VN_OP_MKDIR:
		r->mode = (int)op->in.make.mode;
		break;
	case VN_OP_READ:
		r->offset = op->in.read.offset;
		r->size = (int64_t)op->in.read.size;
		break;
	case VN_OP_WRITE:
		r->offset = op->in.write.offset;
		r->size = (int64_t)op->in.write.size;
		break;
	case VN_OP_SETATTR:
		r->flags = op->in.setattr.valid;
		r->has_flags = true;
		if (op->in.setattr.valid & VN_SET_SIZE)
			r->size = op->in.setattr.attr.st_size;
		if (op->in.setattr.valid & VN_SET_MODE)
			r->mode = (int)op->in.setattr.attr.st_mode;
		break;
	case VN_OP_RENAME:
		r->flags = (int)op->in.rename.flags;
		r->has_flags = true;
		break;
	case VN_OP_ACCESS:
		r->mode = op->in.access.mask;
		break;
	case VN_OP_FALLOCATE:
		r->flags = op->in.fallocate.mode;
		r->has_flags = true;
		r->offset = op->in.fallocate.offset;
		r->size = op->in.fallocate.length;
		break;
	case VN_OP_COPY_FILE_RANGE:
		r->offset = op->in.copy.off_in;
		r->size = (int64_t)op->in.copy.len;
		break;
	case VN_OP_LSEEK:
		r->offset = op->in.lseek.offset;
		r->flags = op->in.lseek.whence;
		r->has_flags = true;
		break;
	case VN_OP_SETXATTR:
		r->size = (int64_t)op->in.setxattr.size;
		r->flags = op->in.setxattr.flags;
		r->has_flags = true;
		break;
	case VN_OP_GETXATTR:
	case VN_OP_LISTXATTR:
		r->size = (int64_t)op->in.getxattr.size;
		break;
	case VN_OP_FSYNC:
	case VN_OP_FSYNCDIR:
		r->flags = op->in.fsync.datasync;
		r->has_flags = true;
		break;
	default:
		break;
	}
}

/* The second path of RENAME and LINK, or a symlink's target. */
static int second_path(const struct vn_op *op, char *buf, size_t size)
{
	if (vn_opcode_facts(op->opcode) & VN_OPF_NEW_NAME)
		return node_path(op->newparent, op->newname, buf, size);
	if (op->opcode == VN_OP_SYMLINK)
		return snprintf(buf, size, "%s", op->in.symlink.target);
	return -1;
}

struct trace_record *trace_record_capture(const struct vn_op *op)
{
	char path[PATH_MAX + NAME_MAX + 2], path2[PATH_MAX + NAME_MAX + 2];
	const char *name = (vn_opcode_facts(op->opcode) & VN_OPF_XATTR) ? NULL : op->name;
	int len = node_path(op->node, name, path, sizeof(path));
	int len2 = second_path(op, path2, sizeof(path2));
	const char *xname = (vn_opcode_facts(op->opcode) & VN_OPF_XATTR) && op->name ? op->name : NULL;
	size_t xlen = xname ? strlen(xname) : 0;
	size_t need = sizeof(struct trace_record) + (size_t)len + 1 +
		      (len2 >= 0 ? (size_t)len2 + 1 : 0) + (xname ? xlen + 1 : 0);
	struct trace_record *r = calloc(1, need);
	if (!r)
		return NULL;
	r->refs = 1;
	r->op = op->opcode;
	clock_gettime(CLOCK_REALTIME, &r->wall);
	r->pid = op->caller.pid;
	r->uid = op->caller.uid;
	char *p = (char *)(r + 1);
	r->path = memcpy(p, path, (size_t)len + 1);
	p += len + 1;
	if (len2 >= 0) {
		r->path2 = memcpy(p, path2, (size_t)len2 + 1);
		p += len2 + 1;
	}
	if (xname)
		r->xname = memcpy(p, xname, xlen + 1);
	capture_args(r, op);
	return r;
}

void trace_fetch(const char *url, uint64_t offset, uint64_t size, uint64_t bytes,
		 uint64_t latency_ns, int error)
{
	if (__atomic_load_n(&trace_active, __ATOMIC_ACQUIRE) <= 0)
		return;
	size_t len = strlen(url);
	struct trace_record *r = calloc(1, sizeof(*r) + len + 1);
	if (!r)
		return;		/* a record lost, as when a watcher falls behind */
	r->refs = 1;
	r->op = TRACE_OP_FETCH;
	/* the time the fetch started, as an operation's is when it arrived */
	clock_gettime(CLOCK_REALTIME, &r->wall);
	int64_t ns = (int64_t)r->wall.tv_sec * 1000000000LL + r->wall.tv_nsec - (int64_t)latency_ns;
	r->wall.tv_sec = ns / 1000000000LL;
	r->wall.tv_nsec = ns % 1000000000LL;
	r->latency_ns = latency_ns;
	r->error = error;
	r->bytes = (int64_t)bytes;
	r->offset = (int64_t)offset;
	r->size = (int64_t)size;
	r->mode = -1;
	r->path = memcpy(r + 1, url, len + 1);
	trace_publish(r);
	trace_record_put(r);
}

struct vn_node *trace_result_node(const struct vn_op *op)
{
	if (op->error == 0 && (vn_opcode_facts(op->opcode) & VN_OPF_ENTRY_OUT) && op->out.entry)
		return op->out.entry;
	return op->node;
}

void trace_record_finish(struct trace_record *r, const struct vn_op *op, uint64_t latency_ns)
{
	r->latency_ns = latency_ns;
	r->error = op->error;
	r->bytes = -1;
	if (op->error == 0) {
		if (op->opcode == VN_OP_READ)
			r->bytes = (int64_t)op->out.data.size;
		else if (op->opcode == VN_OP_WRITE || op->opcode == VN_OP_COPY_FILE_RANGE)
			r->bytes = (int64_t)op->out.count;
	}
	struct vn_node *t = trace_result_node(op);
	r->is_virtual = t && vn_node_owner(t) != NULL;
	if (r->is_virtual && vn_node_origin(t, r->origin, sizeof(r->origin)) < 0)
		r->origin[0] = '\0';
	comm_of(r->pid, r->comm);
}

void trace_record_get(struct trace_record *r)
{
	__atomic_add_fetch(&r->refs, 1, __ATOMIC_RELAXED);
}

void trace_record_put(struct trace_record *r)
{
	if (r && __atomic_sub_fetch(&r->refs, 1, __ATOMIC_ACQ_REL) == 0)
		free(r);
}

bool trace_record_matches(const struct trace_record *r, const struct trace_query *q)
{
	if (q->ops && !(q->ops & (1ULL << r->op)))
		return false;
	if (q->pid && q->pid != r->pid)
		return false;
	if (q->errors_only && r->error == 0)
		return false;
	if (q->slow_us && r->latency_ns < q->slow_us * 1000)
		return false;
	if (q->path_glob && fnmatch(q->path_glob, r->path, 0) != 0 &&
	    !(r->path2 && fnmatch(q->path_glob, r->path2, 0) == 0))
		return false;
	return true;
}

/* ---- formatting ---- */

static const char *errno_name(int error)
{
	const char *n = strerrorname_np(-error);
	return n ? n : "E?";
}

static const char *target_name(const struct trace_record *r)
{
	return r->op == TRACE_OP_FETCH ? "remote" : r->is_virtual ? "virtual" : "real";
}

static int format_json(const struct trace_record *r, char **b, size_t *l, size_t *c)
{
	struct tm tm;
	gmtime_r(&r->wall.tv_sec, &tm);
	int e = textbuf_printf(b, l, c,
				 "{\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ\",\"pid\":%d,"
				 "\"comm\":", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
				 tm.tm_hour, tm.tm_min, tm.tm_sec, r->wall.tv_nsec / 1000,
				 (int)r->pid);
	e = e ?: textbuf_json_string(b, l, c, r->comm);
	e = e ?: textbuf_printf(b, l, c, ",\"uid\":%u,\"op\":\"%s\",\"%s\":", (unsigned)r->uid,
				  trace_op_name(r->op), r->op == TRACE_OP_FETCH ? "url" : "path");
	e = e ?: textbuf_json_string(b, l, c, r->path);
	if (r->path2) {
		e = e ?: textbuf_printf(b, l, c, ",\"%s\":",
					  r->op == VN_OP_SYMLINK ? "link" : "newpath");
		e = e ?: textbuf_json_string(b, l, c, r->path2);
	}
	if (r->xname) {
		e = e ?: textbuf_printf(b, l, c, ",\"name\":");
		e = e ?: textbuf_json_string(b, l, c, r->xname);
	}
	if (r->offset >= 0)
		e = e ?: textbuf_printf(b, l, c, ",\"offset\":%lld", (long long)r->offset);
	if (r->size >= 0)
		e = e ?: textbuf_printf(b, l, c, ",\"size\":%lld", (long long)r->size);
	if (r->has_flags)
		e = e ?: textbuf_printf(b, l, c, ",\"flags\":\"0x%x\"", (unsigned)r->flags);
	if (r->mode >= 0)
		e = e ?: textbuf_printf(b, l, c, ",\"mode\":\"0%o\"", (unsigned)r->mode);
	if (r->error)
		e = e ?: textbuf_printf(b, l, c, ",\"result\":\"%s\"", errno_name(r->error));
	else
		e = e ?: textbuf_printf(b, l, c, ",\"result\":\"ok\"");
	if (r->bytes >= 0)	/* a failed fetch too: what did arrive */
		e = e ?: textbuf_printf(b, l, c, ",\"bytes\":%lld", (long long)r->bytes);
	e = e ?: textbuf_printf(b, l, c, ",\"target\":\"%s\"", target_name(r));
	if (r->origin[0]) {
		e = e ?: textbuf_printf(b, l, c, ",\"origin\":");
		e = e ?: textbuf_json_string(b, l, c, r->origin);
	}
	return e ?: textbuf_printf(b, l, c, ",\"latency_us\":%llu}\n",
				     (unsigned long long)(r->latency_ns / 1000));
}

const char *trace_text_header(void)
{
	return "TIME            PID   COMM            UID    OP              RESULT       "
	       "LAT(us)  TARGET      PATH [ARGS]\n";
}

static int format_text(const struct trace_record *r, char **b, size_t *l, size_t *c)
{
	struct tm tm;
	localtime_r(&r->wall.tv_sec, &tm);
	char result[32];
	if (r->error)
		snprintf(result, sizeof(result), "%s", errno_name(r->error));
	else if (r->bytes >= 0)
		snprintf(result, sizeof(result), "%lld B", (long long)r->bytes);
	else
		snprintf(result, sizeof(result), "ok");
	char target[40];
	snprintf(target, sizeof(target), "%s", r->is_virtual && r->origin[0] ? r->origin
									     : target_name(r));
	int e = textbuf_printf(b, l, c, "%02d:%02d:%02d.%06ld %-5d %-15s %-6u %-15s %-12s %8llu  "
				 "%-11s %s", tm.tm_hour, tm.tm_min, tm.tm_sec,
				 r->wall.tv_nsec / 1000, (int)r->pid, r->comm[0] ? r->comm : "-",
				 (unsigned)r->uid, trace_op_name(r->op), result,
				 (unsigned long long)(r->latency_ns / 1000), target, r->path);
	if (r->path2)
		e = e ?: textbuf_printf(b, l, c, " -> %s", r->path2);
	if (r->xname)
		e = e ?: textbuf_printf(b, l, c, " name=%s", r->xname);
	if (r->offset >= 0)
		e = e ?: textbuf_printf(b, l, c, " off=%lld", (long long)r->offset);
	if (r->size >= 0)
		e = e ?: textbuf_printf(b, l, c, " size=%lld", (long long)r->size);
	if (r->has_flags)
		e = e ?: textbuf_printf(b, l, c, " flags=0x%x", (unsigned)r->flags);
	if (r->mode >= 0)
		e = e ?: textbuf_printf(b, l, c, " mode=0%o", (unsigned)r->mode);
	return e ?: textbuf_printf(b, l, c, "\n");
}

int trace_record_format(const struct trace_record *r, bool json, char **buf, size_t *len,
			size_t *cap)
{
	return json ? format_json(r, buf, len, cap) : format_text(r, buf, len, cap);
}
