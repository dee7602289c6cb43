/* Shared by the frontend's files only: the request record and helpers. */
#ifndef VENEER_FUSE_REQUEST_H
#define VENEER_FUSE_REQUEST_H

#include "core/filter_manager.h"
#include "frontend/frontend.h"

struct request {
	struct fm_call call;		/* first: the filter manager hands back &call */
	fuse_req_t req;
	struct fuse_file_info fi;	/* copy of the kernel's, for the open reply */
	char *owned[3];			/* strings copied out of the kernel's buffer */
	void *wbuf;			/* data copied out of the kernel's buffer */
	size_t size;			/* readdir: the kernel's buffer size */
	off_t offset;			/* readdir: where the kernel resumes */
	bool plus;			/* readdirplus */
	bool holds_file;		/* a reference on call.op.file, dropped when freed */
	bool holds_file_out;		/* same for in.copy.file_out */
};

struct frontend {
	struct node_table *nodes;
	struct frontend_config cfg;
};

extern struct frontend frontend;

struct vn_node *node_of(fuse_ino_t ino);
fuse_ino_t ino_of(struct vn_node *node);

void request_init(struct request *r, fuse_req_t req, enum vn_opcode opc, fuse_ino_t ino,
		  fm_finish_fn *finish);
/* NULL after replying ENOMEM. */
struct request *request_new(fuse_req_t req, enum vn_opcode opc, fuse_ino_t ino,
			    fm_finish_fn *finish);
void request_free(struct request *r);
/*
 * Runs R through the filter manager; when a filter that can hear of
 * cancels handles it, a FUSE INTERRUPT for it reaches fm_call_interrupt().
 */
void request_dispatch(struct request *r);
void fill_entry(const struct vn_op *op, struct fuse_entry_param *e);

struct vn_file *file_new(struct vn_node *node);	/* takes a node reference; refs = 1 */
/* The file of FI (NULL for fh 0) with one more reference. */
struct vn_file *file_get(struct fuse_file_info *fi);
/* Drops a reference; the last closes the descriptor and frees. Accepts NULL. */
void file_put(struct vn_file *f);
void request_use_file(struct request *r, struct fuse_file_info *fi);
/* OPEN, CREATE, OPENDIR: a new vn_file in the request, dispatched. */
void open_op(fuse_req_t req, enum vn_opcode opc, fuse_ino_t ino, const char *name, mode_t mode,
	     struct fuse_file_info *fi, fm_finish_fn *finish);
void release_op(fuse_req_t req, enum vn_opcode opc, fuse_ino_t ino, struct fuse_file_info *fi);

void frontend_conn_init(struct fuse_conn_info *conn);

void fuse_op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fuse_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		     struct fuse_file_info *fi);
void fuse_op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			 struct fuse_file_info *fi);
void fuse_op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);

#endif
