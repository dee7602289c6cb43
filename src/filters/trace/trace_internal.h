/*
 * The trace filter's private parts.
 *
 * trace_filter.c  the callbacks: statistics always, records while traced
 * trace_record.c  one record: capture from the operation, JSON and text
 * trace_subs.c    watchers and the trace file: bounded rings, drop counts
 * trace_query.c   what a watcher asked for
 * trace_port.c    the stream port live watchers connect to
 *
 * A record is reference counted: every ring holding it has one reference.
 * Lock order: subs_lock -> a watcher's ring lock; comm_lock is a leaf.  No
 * lock is held while writing to a file or socket.
 */
#ifndef VENEER_TRACE_INTERNAL_H
#define VENEER_TRACE_INTERNAL_H

#include <limits.h>
#include <stdint.h>
#include <time.h>

#include "common/textbuf.h"
#include "filters/trace/trace.h"

/* The record of an HTTP fetch (trace_fetch), which is not a FUSE operation. */
#define TRACE_OP_FETCH VN_OP_COUNT
_Static_assert(VN_OP_COUNT < 64, "a query's ops mask has a bit per operation and fetch");
/* An operation's name in records and queries, fetch included. */
const char *trace_op_name(enum vn_opcode op);

struct trace_record {
	unsigned int refs;		/* atomic */
	enum vn_opcode op;
	struct timespec wall;		/* when the request reached the daemon */
	uint64_t start_ns;		/* CLOCK_MONOTONIC, for the latency */
	uint64_t latency_ns;
	pid_t pid;
	uid_t uid;
	char comm[16];			/* "" when the process is gone or unknown */
	int error;			/* 0 or a negative errno */
	int64_t bytes;			/* READ WRITE COPY_FILE_RANGE results; -1: none */
	bool is_virtual;
	char origin[32];		/* "layer 3" for a virtual target, else "" */
	/* arguments, -1 / 0 when the operation has none */
	int64_t offset;
	int64_t size;
	int flags;
	bool has_flags;
	int mode;			/* -1: none */
	char *path;			/* as seen in the mount (a fetch: its URL); all strings in
					   the record's block */
	char *path2;			/* RENAME LINK: the new name; SYMLINK: the target; NULL */
	char *xname;			/* xattr name; NULL */
};

/* trace_record.c */
struct trace_record *trace_record_capture(const struct vn_op *op);
void trace_record_finish(struct trace_record *r, const struct vn_op *op, uint64_t latency_ns);
/* The object a result is about: the entry it answers with, else op->node. */
struct vn_node *trace_result_node(const struct vn_op *op);
void trace_record_get(struct trace_record *r);
void trace_record_put(struct trace_record *r);
bool trace_record_matches(const struct trace_record *r, const struct trace_query *q);
/* Appends one line for R (JSON or text) to *buf. 0 or -ENOMEM. */
int trace_record_format(const struct trace_record *r, bool json, char **buf, size_t *len,
			size_t *cap);

/* trace_subs.c */
extern struct vn_filter *trace_self;	/* set at attach */
extern int trace_active;		/* atomic: watchers plus the trace file */
void trace_publish(struct trace_record *r);
/* Starts the trace file at the absolute PATH; 0, or -errno with a reason in err. */
int trace_file_start(const char *path, char *err, size_t errlen);

/* trace_filter.c */
uint64_t trace_now_ns(void);

/*
 * The stream port `veneer trace` reads (docs/trace.md): opened by attach.
 * Its name is part of the protocol: the command line names it too.
 */
#define TRACE_WATCH_PORT "watch"
int trace_port_open(struct vn_filter *f);

#endif
