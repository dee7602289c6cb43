/*
 * The parts of the FUSE protocol newer than the kernel headers the build
 * uses (Debian 12 ships protocol 7.38): kernel passthrough (7.40) and FUSE
 * over io_uring (7.42).  Only the wire module (wire.c, uring.c) uses them.  The layouts are the kernel's ABI,
 * which never changes once released; each is checked by size below.
 */
#ifndef VENEER_FUSE_KERNEL_EXT_H
#define VENEER_FUSE_KERNEL_EXT_H

#include <linux/fuse.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/ioctl.h>

/* INIT flags past bit 31 travel in flags2 (FUSE_INIT_EXT). */
#define VN_FUSE_PASSTHROUGH		(1ULL << 37)

/* INIT: requests may come through io_uring queues (flags2). */
#define VN_FUSE_OVER_IO_URING		(1ULL << 41)

/* fuse_open_out.open_flags: this open's reads and writes go to the backing file. */
#define VN_FOPEN_PASSTHROUGH		(1u << 7)

/* struct fuse_init_out as of 7.40: max_stack_depth took the first unused word. */
struct vn_fuse_init_out {
	uint32_t major;
	uint32_t minor;
	uint32_t max_readahead;
	uint32_t flags;
	uint16_t max_background;
	uint16_t congestion_threshold;
	uint32_t max_write;
	uint32_t time_gran;
	uint16_t max_pages;
	uint16_t map_alignment;
	uint32_t flags2;
	uint32_t max_stack_depth;
	uint32_t unused[6];
};

/* struct fuse_open_out as of 7.40: backing_id took the padding. */
struct vn_fuse_open_out {
	uint64_t fh;
	uint32_t open_flags;
	int32_t backing_id;
};

/* Argument of FUSE_DEV_IOC_BACKING_OPEN. */
struct vn_fuse_backing_map {
	int32_t fd;
	uint32_t flags;
	uint64_t padding;
};

#define VN_FUSE_DEV_IOC_BACKING_OPEN	_IOW(FUSE_DEV_IOC_MAGIC, 1, struct vn_fuse_backing_map)
#define VN_FUSE_DEV_IOC_BACKING_CLOSE	_IOW(FUSE_DEV_IOC_MAGIC, 2, uint32_t)

/* The headers part of a ring entry: iov[0] of its registration. */
#define VN_FUSE_URING_IN_OUT_HEADER_SZ	128
#define VN_FUSE_URING_OP_IN_OUT_SZ	128

struct vn_fuse_uring_ent_in_out {
	uint64_t flags;
	uint64_t commit_id;	/* to be given back with the reply */
	uint32_t payload_sz;	/* bytes of the payload buffer in use */
	uint32_t padding;
	uint64_t reserved;
};

struct vn_fuse_uring_req_header {
	char in_out[VN_FUSE_URING_IN_OUT_HEADER_SZ];	/* fuse_in_header / fuse_out_header */
	char op_in[VN_FUSE_URING_OP_IN_OUT_SZ];		/* the opcode's fixed argument */
	struct vn_fuse_uring_ent_in_out ring_ent_in_out;
};

/* IORING_OP_URING_CMD command codes on /dev/fuse. */
enum {
	VN_FUSE_IO_URING_CMD_REGISTER = 1,		/* hand a buffer, wait for a request */
	VN_FUSE_IO_URING_CMD_COMMIT_AND_FETCH = 2,	/* reply, wait for the next */
};

/* In the 80-byte command area of a 128-byte SQE. */
struct vn_fuse_uring_cmd_req {
	uint64_t flags;
	uint64_t commit_id;
	uint16_t qid;
	uint8_t padding[6];
};

_Static_assert(sizeof(struct vn_fuse_uring_req_header) == 288, "fuse_uring_req_header is 288 bytes");
_Static_assert(sizeof(struct vn_fuse_uring_cmd_req) == 24, "fuse_uring_cmd_req is 24 bytes");

_Static_assert(sizeof(struct vn_fuse_init_out) == sizeof(struct fuse_init_out),
	       "fuse_init_out changed size");
_Static_assert(offsetof(struct vn_fuse_init_out, flags2) == offsetof(struct fuse_init_out, flags2),
	       "fuse_init_out.flags2 moved");
_Static_assert(sizeof(struct vn_fuse_open_out) == sizeof(struct fuse_open_out),
	       "fuse_open_out changed size");
_Static_assert(sizeof(struct vn_fuse_backing_map) == 16, "fuse_backing_map is 16 bytes");

#endif
