/*
 * Squashfs images read in process through libsquashfuse: no mount, no
 * root.  This is the only file that includes libsquashfuse's headers.
 *
 * libsquashfuse is not thread-safe (its caches have no locks), so every
 * call borrows a whole "sqfs" handle from a small per-source pool; two
 * threads therefore decompress at once, each with its own caches.  The
 * image is trusted for nothing: every offset the library would follow
 * without a check (inode and directory cursors, table indices and the
 * block lists of the tables, block sizes, the block-index special case,
 * positions that alias its caches' empty key) is checked here first, and
 * file data is read by our own loop instead of sqfs_read_range, and xz
 * blocks are decoded with a memory limit (xz_bounded.h).
 *
 * libsquashfuse reads the image only through its exported sqfs_pread,
 * which this file defines over it (see "the image reader" below): every
 * byte the library, and this file, takes from an image comes from the
 * source's image_reader, which for an image with a hash tree is the
 * verity reader.  No byte reaches the library unchecked.  The
 * fuzz target tests/fuzz/fuzz_source.c found several of these; its
 * must-fail inputs are in tests/fuzz/crashers/source/.
 */
#include <squashfuse.h>		/* first: its config.h sets _POSIX_C_SOURCE */

#include <endian.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "common/log.h"
#include "layer/dir_index.h"
#include "layer/http_reader.h"
#include "layer/image_reader.h"
#include "layer/source_impl.h"
#include "layer/xz_bounded.h"

/*
 * Memory bound.  Per handle libsquashfuse 0.1.105 keeps (fs.c, cache.c):
 * 8 metadata blocks (SQUASHFS_CACHED_BLKS, at most 8 KiB decompressed or
 * 32 KiB stored uncompressed each), 1 data block and 3 fragment blocks of
 * at most block_size each (we refuse stored sizes above block_size before
 * the library reads them), 8 block indexes of large files (4 bytes per
 * 8 KiB of block list, i.e. ~1 KiB per GiB of file at 128 KiB blocks),
 * plus the id/fragment/export/xattr table directories (8 bytes per
 * 8 KiB of table).  With the largest block size (1 MiB) a handle caches
 * at most about 4 MiB + 256 KiB; with mksquashfs' default (128 KiB)
 * about 770 KiB.  A source never has more than HANDLES_MAX handles (a
 * caller beyond that waits for one), so one image caches at most
 * HANDLES_MAX x 4.25 MiB = 68 MiB, whatever the number of threads.
 * Each handle also owns a NAMEBUF_SIZE name buffer (below).
 */
#define HANDLES_MAX 16

/*
 * libsquashfuse copies a directory entry's name (up to 65536 bytes, from
 * a 16-bit length) and NUL-terminates it without checking the buffer;
 * an sqfs_name (257 bytes) would overflow on a crafted image.  Xattr
 * names add a prefix of up to 9 bytes to a 16-bit length.
 */
#define NAMEBUF_SIZE (65536 + 64)

/*
 * libsquashfuse 0.1.105's caches are keyed by position (metadata and data
 * blocks) or inode number + 1 (block indexes), and an unused entry has
 * key 0: a lookup of key 0 "hits" an empty entry and hands back a NULL
 * block.  No real block starts inside the superblock, so every position
 * handed to the library is checked to lie at or after its end, and an
 * inode number of 0xffffffff (whose key wraps to 0) is refused.
 */
#define FIRST_BLOCK_POS ((uint64_t)sizeof(struct squashfs_super_block))

/* One libsquashfuse instance with its own caches; used by one call at a time. */
struct sq_handle {
	sqfs fs;
	char *namebuf;		/* NAMEBUF_SIZE bytes */
	pid_t tid;		/* the thread that used it last, to keep its caches warm */
	bool busy;		/* protected by sq_source.lock */
};

/*
 * Ownership: the source owns every handle in handles[] until its last
 * reference is put; a call only borrows one (handle_get/handle_put), and
 * no thread-local storage points at a handle, so thread exit needs no
 * cleanup and a handle can never outlive its source.
 */
struct sq_source {
	struct source base;
	int fd;				/* the image file: fstat only (reads go through reader);
					   -1 for a remote image */
	struct image_reader *reader;	/* owned; what every read of the image goes through */
	struct image_reader *remote;	/* a remote image's HTTP reader (below reader), or NULL */
	enum image_integrity integrity;
	uint8_t root[VERITY_DIGEST];	/* the root hash reads are checked against, if verified */
	off_t size;			/* at open, to notice an image rewritten in place */
	struct timespec mtime;
	struct squashfs_super_block sb;	/* host byte order */
	uint32_t xattr_ids;
	pthread_mutex_t lock;		/* leaf lock: nothing is taken inside it */
	pthread_cond_t handle_free;
	struct sq_handle *handles[HANDLES_MAX];	/* protected by lock */
	struct dir_index_cache *indexes;	/* names of large directories */
	unsigned nhandles;		/* protected by lock; slots being created included */
};

static struct sq_source *sq(struct source *s)
{
	return (struct sq_source *)s;
}

static int corrupt(struct sq_source *q, const char *what, uint64_t value)
{
	source_log_problem(&q->base, "corrupt image: %s (%#llx)", what, (unsigned long long)value);
	return -EIO;
}

/* ---- the image reader beneath libsquashfuse ---- */

/*
 * The reader of the image whose handle this thread holds: set by
 * handle_get, cleared by handle_put.  A thread holds at most one handle
 * at a time (sq_walk gives its handle back around each callback), and
 * libsquashfuse reads only inside a call made with a handle held.
 */
static __thread struct image_reader *thread_reader;
/* Reads served by the sqfs_pread below, per thread: proof that it is the one used. */
static __thread uint64_t thread_reads;
static atomic_uint_least64_t reads_past_end;

uint64_t source_squashfs_reads_past_end(void)
{
	return atomic_load(&reads_past_end);
}

/*
 * libsquashfuse 0.1.105 reads every byte of an image through this
 * exported function (its nonstd-pread.c), called through the PLT: the
 * definition in the program takes precedence over the library's.  A read
 * with no handle held has no reader and fails rather than going around
 * the check.  Default visibility (the build hides everything else): the
 * linker exports a symbol the library refers to only when it is visible.
 */
__attribute__((visibility("default")))
ssize_t sqfs_pread(sqfs_fd_t fd, void *buf, size_t count, sqfs_off_t off);
ssize_t sqfs_pread(sqfs_fd_t fd, void *buf, size_t count, sqfs_off_t off)
{
	struct image_reader *r = thread_reader;
	if (!r || off < 0) {
		errno = EIO;
		return -1;
	}
	thread_reads++;
	if ((uint64_t)off > r->size)
		atomic_fetch_add(&reads_past_end, 1);
	ssize_t n = image_reader_read(r, buf, count, (uint64_t)off);
	if (n < 0) {
		errno = (int)-n;
		return -1;
	}
	return n;
}

/* ---- handles ---- */

static void handle_free(struct sq_handle *h);

/*
 * Whether every metadata block a table's index names starts inside the
 * image: sqfs_init reads these indexes (id, fragment, export and xattr
 * id tables) without looking at them, and sqfs_table_get would read a
 * block at whatever offset the image wrote there.
 */
static bool table_blocks_ok(const struct sq_source *q, const sqfs_table *t, uint64_t count,
			    uint64_t each)
{
	uint64_t nblocks = (count * each + SQUASHFS_METADATA_SIZE - 1) / SQUASHFS_METADATA_SIZE;
	if (count == 0)
		return true;
	if (!t->blocks)
		return false;
	for (uint64_t i = 0; i < nblocks; i++)
		if (t->blocks[i] < FIRST_BLOCK_POS || t->blocks[i] >= q->sb.bytes_used)
			return false;
	return true;
}

static bool tables_ok(const struct sq_source *q, sqfs *fs)
{
	bool xattrs = q->sb.xattr_id_table_start != (uint64_t)SQUASHFS_INVALID_BLK;
	return table_blocks_ok(q, &fs->id_table, q->sb.no_ids, 4) &&
	       table_blocks_ok(q, &fs->frag_table, q->sb.fragments,
			       sizeof(struct squashfs_fragment_entry)) &&
	       (q->sb.lookup_table_start == (uint64_t)SQUASHFS_INVALID_BLK ||
		table_blocks_ok(q, &fs->export_table, q->sb.inodes, 8)) &&
	       (!xattrs || (fs->xattr_info.xattr_table_start >= FIRST_BLOCK_POS &&
			    fs->xattr_info.xattr_table_start < q->sb.bytes_used &&
			    table_blocks_ok(q, &fs->xattr_table, fs->xattr_info.xattr_ids,
					    sizeof(struct squashfs_xattr_id))));
}

/* libsquashfuse's own xz call has no memory limit (see xz_bounded.h) */
static sqfs_err xz_decompress(void *in, size_t insz, void *out, size_t *outsz)
{
	return xz_bounded_decode(in, insz, out, outsz) == 0 ? SQFS_OK : SQFS_ERR;
}

static struct sq_handle *handle_new(struct sq_source *q)
{
	struct sq_handle *h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->namebuf = malloc(NAMEBUF_SIZE);
	if (!h->namebuf || sqfs_init(&h->fs, q->fd, 0) != SQFS_OK) {
		/* sqfs_init cleans up after itself, except for the xattr table */
		if (h->namebuf)
			sqfs_table_destroy(&h->fs.xattr_table);
		free(h->namebuf);
		free(h);
		return NULL;
	}
	if (!tables_ok(q, &h->fs)) {
		handle_free(h);
		return NULL;
	}
	if (q->sb.compression == XZ_COMPRESSION)
		h->fs.decompressor = xz_decompress;
	return h;
}

static void handle_free(struct sq_handle *h)
{
	sqfs_destroy(&h->fs);
	/* libsquashfuse 0.1.105's sqfs_destroy forgets the xattr table */
	sqfs_table_destroy(&h->fs.xattr_table);
	free(h->namebuf);
	free(h);
}

/* The calling thread's id, asked of the kernel once per thread. */
static pid_t thread_id(void)
{
	static __thread pid_t tid;
	if (!tid)
		tid = gettid();
	return tid;
}

static int handle_get(struct sq_source *q, struct sq_handle **ret)
{
	pid_t self = thread_id();
	thread_reader = q->reader;	/* sqfs_init in handle_new reads too */
	pthread_mutex_lock(&q->lock);
	for (;;) {
		struct sq_handle *any = NULL;
		for (unsigned i = 0; i < HANDLES_MAX; i++) {
			struct sq_handle *h = q->handles[i];
			if (!h || h->busy)
				continue;
			if (h->tid == self || !any)
				any = h;
			if (h->tid == self)
				break;
		}
		if (any) {
			any->busy = true;
			any->tid = self;
			pthread_mutex_unlock(&q->lock);
			*ret = any;
			return 0;
		}
		if (q->nhandles < HANDLES_MAX)
			break;
		pthread_cond_wait(&q->handle_free, &q->lock);
	}
	q->nhandles++;		/* reserve the slot; sqfs_init reads the image, not under the lock */
	pthread_mutex_unlock(&q->lock);

	struct sq_handle *h = handle_new(q);
	pthread_mutex_lock(&q->lock);
	if (!h) {
		q->nhandles--;
		pthread_cond_signal(&q->handle_free);
		pthread_mutex_unlock(&q->lock);
		thread_reader = NULL;
		return -ENOMEM;
	}
	for (unsigned i = 0; i < HANDLES_MAX; i++) {
		if (!q->handles[i]) {
			q->handles[i] = h;
			break;
		}
	}
	h->busy = true;
	h->tid = self;
	pthread_mutex_unlock(&q->lock);
	*ret = h;
	return 0;
}

static void handle_put(struct sq_source *q, struct sq_handle *h)
{
	thread_reader = NULL;
	pthread_mutex_lock(&q->lock);
	h->busy = false;
	pthread_cond_signal(&q->handle_free);
	pthread_mutex_unlock(&q->lock);
}

/* ---- checked access to the image ---- */

/* An image rewritten in place would serve a mix of old and new bytes. */
static int check_unchanged(struct sq_source *q)
{
	struct stat st;
	if (q->fd < 0)
		return 0;	/* remote: the hash tree and the validator catch a change */
	if (fstat(q->fd, &st) < 0)
		return -errno;
	if (st.st_size != q->size || st.st_mtim.tv_sec != q->mtime.tv_sec ||
	    st.st_mtim.tv_nsec != q->mtime.tv_nsec) {
		source_log_problem(&q->base, "image changed on disk since it was attached "
				   "(size or mtime); its reads fail until it is attached again");
		return -EIO;
	}
	return 0;
}

/*
 * Whether a metadata cursor (block at pos, offset inside it) is inside
 * its block: libsquashfuse's sqfs_md_read computes "size - offset"
 * unchecked and would copy from beyond the block.
 */
static int md_cursor_ok(struct sq_source *q, sqfs *fs, uint64_t pos, size_t offset)
{
	sqfs_block *block;
	sqfs_off_t p = (sqfs_off_t)pos;
	if (pos < FIRST_BLOCK_POS || pos >= q->sb.bytes_used || offset >= SQUASHFS_METADATA_SIZE)
		return -EIO;
	if (sqfs_md_cache(fs, &p, &block) != SQFS_OK)
		return -EIO;
	return offset < block->size ? 0 : -EIO;
}

/*
 * Whether entry idx of a table lies inside the metadata block that holds
 * it: sqfs_table_get copies "each" bytes at the entry's offset without
 * looking at the block's size, and a block may decompress short.
 */
static bool table_entry_ok(struct sq_source *q, sqfs *fs, const sqfs_table *t, uint64_t idx)
{
	uint64_t pos = idx * t->each;
	sqfs_off_t bpos = (sqfs_off_t)t->blocks[pos / SQUASHFS_METADATA_SIZE];
	sqfs_block *block;
	if (sqfs_md_cache(fs, &bpos, &block) != SQFS_OK)
		return false;
	return pos % SQUASHFS_METADATA_SIZE + t->each <= block->size;
}

/*
 * Whether a regular file's block list (4 bytes per block, stored after its
 * inode) could fit in the inode table at all: sqfs_blockidx_add allocates
 * by the block count the file size implies, and a hostile inode claims a
 * size near 2^64 (found by fuzzing: a 162 GB malloc).  A metadata block
 * holds at most 8 KiB and takes at least 3 bytes of the image, which bounds
 * what the table can hold.
 */
static bool blocklist_fits(const struct sq_source *q, sqfs *fs, sqfs_inode *in)
{
	uint64_t start = q->sb.inode_table_start, end = q->sb.directory_table_start;
	uint64_t room = end > start ? (end - start) * (SQUASHFS_METADATA_SIZE / 3) : 0;
	return (uint64_t)sqfs_blocklist_count(fs, in) <= room / sizeof(sqfs_blocklist_entry);
}

static int inode_load(struct sq_source *q, sqfs *fs, uint64_t ref, sqfs_inode *in)
{
	if (ref >> 48 || md_cursor_ok(q, fs, q->sb.inode_table_start + (ref >> 16), ref & 0xffff))
		return corrupt(q, "inode reference out of the inode table", ref);
	if (sqfs_inode_get(fs, in, ref) != SQFS_OK)
		return corrupt(q, "unreadable inode", ref);
	if (in->base.inode_number == UINT32_MAX)
		return corrupt(q, "inode number 0xffffffff", ref);
	if (in->base.uid >= q->sb.no_ids || in->base.guid >= q->sb.no_ids)
		return corrupt(q, "owner index out of the id table", ref);
	if (in->xattr != SQUASHFS_INVALID_XATTR && in->xattr >= q->xattr_ids)
		return corrupt(q, "xattr index out of the xattr table", ref);
	if (S_ISREG(in->base.mode) && in->xtra.reg.frag_idx != SQUASHFS_INVALID_FRAG &&
	    in->xtra.reg.frag_idx >= q->sb.fragments)
		return corrupt(q, "fragment index out of the fragment table", ref);
	if (S_ISREG(in->base.mode) && !blocklist_fits(q, fs, in))
		return corrupt(q, "file size beyond what the inode table can list", ref);
	if (!table_entry_ok(q, fs, &fs->id_table, in->base.uid) ||
	    !table_entry_ok(q, fs, &fs->id_table, in->base.guid) ||
	    (in->xattr != SQUASHFS_INVALID_XATTR &&
	     !table_entry_ok(q, fs, &fs->xattr_table, in->xattr)) ||
	    (S_ISREG(in->base.mode) && in->xtra.reg.frag_idx != SQUASHFS_INVALID_FRAG &&
	     !table_entry_ok(q, fs, &fs->frag_table, in->xtra.reg.frag_idx)))
		return corrupt(q, "table entry out of its block", ref);
	if (S_ISDIR(in->base.mode) && in->xtra.dir.dir_size > 3 &&
	    md_cursor_ok(q, fs, q->sb.directory_table_start + in->xtra.dir.start_block,
			 in->xtra.dir.offset))
		return corrupt(q, "directory listing out of the directory table", ref);
	return 0;
}

static int fill_stat(struct sq_source *q, sqfs *fs, const sqfs_inode *in, struct stat *st)
{
	sqfs_id_t uid, gid;
	if (sqfs_id_get(fs, in->base.uid, &uid) != SQFS_OK ||
	    sqfs_id_get(fs, in->base.guid, &gid) != SQFS_OK)
		return corrupt(q, "unreadable id table", in->base.inode_number);
	memset(st, 0, sizeof(*st));
	st->st_ino = in->base.inode_number;
	st->st_mode = in->base.mode;
	st->st_nlink = in->nlink > 0 ? (nlink_t)in->nlink : 1;
	st->st_uid = uid;
	st->st_gid = gid;
	st->st_blksize = q->sb.block_size;
	st->st_mtim.tv_sec = in->base.mtime;
	st->st_atim = st->st_ctim = st->st_mtim;
	if (S_ISREG(in->base.mode))
		st->st_size = (off_t)in->xtra.reg.file_size;
	else if (S_ISDIR(in->base.mode))
		st->st_size = in->xtra.dir.dir_size;
	else if (S_ISLNK(in->base.mode))
		st->st_size = (off_t)in->xtra.symlink_size;
	else if (S_ISCHR(in->base.mode) || S_ISBLK(in->base.mode))
		st->st_rdev = makedev(in->xtra.dev.major, in->xtra.dev.minor);
	st->st_blocks = (st->st_size + 511) / 512;
	return 0;
}

/* ---- the interface ---- */

static void sq_destroy(struct source *s)
{
	struct sq_source *q = sq(s);
	/* the last reference is gone, so no call holds a handle */
	for (unsigned i = 0; i < HANDLES_MAX; i++)
		if (q->handles[i])
			handle_free(q->handles[i]);
	pthread_cond_destroy(&q->handle_free);
	pthread_mutex_destroy(&q->lock);
	dir_index_cache_free(q->indexes);
	image_reader_free(q->reader);
	if (q->fd >= 0)
		close(q->fd);
	source_base_release(s);
	free(q);
}

static void sq_stats(struct source *s, struct source_stats *st)
{
	st->entries = sq(s)->sb.inodes;
	st->bytes = sq(s)->sb.bytes_used;
	st->integrity = image_integrity_name(sq(s)->integrity);
	if (sq(s)->integrity != IMAGE_UNVERIFIED)
		verity_digest_format(sq(s)->root, st->digest, sizeof(st->digest));
	st->remote = sq(s)->remote != NULL;
	if (sq(s)->remote)
		http_reader_stats(sq(s)->remote, &st->fetch);
}

static int sq_getattr(struct source *s, uint64_t ref, const char *rel, struct stat *st)
{
	struct sq_source *q = sq(s);
	struct sq_handle *h;
	sqfs_inode in;
	int r = handle_get(q, &h);
	if (r < 0)
		return r;
	r = inode_load(q, &h->fs, ref, &in);
	if (r == 0)
		r = fill_stat(q, &h->fs, &in, st);
	handle_put(q, h);
	return r;
}

static int sq_root(struct source *s, uint64_t *ret_ref, struct stat *st)
{
	uint64_t ref = sq(s)->sb.root_inode;
	int r = sq_getattr(s, ref, "", st);
	if (r == 0)
		*ret_ref = ref;
	return r;
}

/*
 * Walks a directory; visit() sees each entry with a valid name and
 * returns 0 to go on, 1 to stop with success, or -errno.  When the visit
 * runs a caller's callback (REENTRANT), the handle is given back around
 * it, so the callback may call into the source (with HANDLES_MAX callers
 * inside readdir callbacks it would otherwise wait forever for a handle);
 * a visit of the source's own keeps it: a lookup scans its directory, and
 * taking a handle per entry made READDIRPLUS quadratic in system calls.
 */
typedef int sq_visit_fn(struct sq_source *q, void *arg, uint32_t listing_size, const char *name,
			uint64_t inode_ref, uint64_t ino, mode_t type);

static int sq_walk(struct sq_source *q, uint64_t ref, sq_visit_fn *visit, void *arg,
		   bool reentrant)
{
	struct sq_handle *h;
	sqfs_inode in;
	sqfs_dir dir;
	sqfs_dir_entry e;
	sqfs_err serr;
	char name[NAME_MAX + 1];
	int r = handle_get(q, &h);
	if (r < 0)
		return r;
	r = inode_load(q, &h->fs, ref, &in);
	if (r == 0 && !S_ISDIR(in.base.mode))
		r = -ENOTDIR;
	if (r == 0 && sqfs_dir_open(&h->fs, &in, &dir, 0) != SQFS_OK)
		r = corrupt(q, "unreadable directory", ref);
	while (r == 0) {
		/*
		 * Not sqfs_dir_lookup: it follows the directory index into a
		 * fixed name buffer with a 32-bit length.  Lookups scan.
		 */
		sqfs_dentry_init(&e, h->namebuf);
		if (!sqfs_dir_next(&h->fs, &dir, &e, &serr)) {
			if (serr != SQFS_OK)
				r = corrupt(q, "unreadable directory entry", ref);
			break;
		}
		size_t len = sqfs_dentry_name_size(&e);
		const char *n = sqfs_dentry_name(&e);
		if (!source_name_ok(&q->base, n, len))
			continue;
		memcpy(name, n, len + 1);
		uint64_t child = sqfs_dentry_inode(&e);
		uint64_t ino = sqfs_dentry_inode_num(&e);
		mode_t type = sqfs_dentry_mode(&e) & S_IFMT;
		if (!reentrant) {
			r = visit(q, arg, in.xtra.dir.dir_size, name, child, ino, type);
			continue;
		}
		handle_put(q, h);
		r = visit(q, arg, in.xtra.dir.dir_size, name, child, ino, type);
		int r2 = handle_get(q, &h);
		if (r2 < 0)
			return r < 0 ? r : r2;
	}
	handle_put(q, h);
	return r > 0 ? 0 : r;
}

struct readdir_arg {
	source_dirent_fn *fn;
	void *arg;
};

static int readdir_visit(struct sq_source *q, void *arg, uint32_t listing_size, const char *name,
			 uint64_t inode_ref, uint64_t ino, mode_t type)
{
	struct readdir_arg *a = arg;
	int r = a->fn(a->arg, name, ino, type);
	return r < 0 ? r : 0;
}

static int sq_readdir(struct source *s, uint64_t ref, const char *rel, source_dirent_fn *fn,
		      void *arg)
{
	struct sq_source *q = sq(s);
	int r = check_unchanged(q);
	if (r < 0)
		return r;
	struct readdir_arg a = { fn, arg };
	return sq_walk(q, ref, readdir_visit, &a, true);
}

/*
 * Directories with fewer entries are scanned: an index would not pay.
 * Before a scan the entries are not counted yet; a listing this short
 * (about 32 names of 8 bytes, 8 bytes of entry header each) is never
 * indexed, so a lookup in a small directory allocates nothing.
 */
#define INDEX_MIN_ENTRIES 32
#define INDEX_MIN_LISTING (INDEX_MIN_ENTRIES * 16)
/* At most this many names indexed per image (about 64 bytes each). */
#define INDEX_MAX_NAMES (256 * 1024)

struct lookup_arg {
	const char *name;
	bool found;
	uint64_t ref;
	bool started;
	struct dir_index *ix;		/* being built, or NULL */
};

static int lookup_visit(struct sq_source *q, void *arg, uint32_t listing_size, const char *name,
			uint64_t inode_ref, uint64_t ino, mode_t type)
{
	struct lookup_arg *a = arg;
	if (!a->started) {
		a->started = true;
		if (q->indexes && listing_size >= INDEX_MIN_LISTING)
			a->ix = dir_index_new();	/* NULL: no memory, the scan still answers */
	}
	if (!a->found && !strcmp(name, a->name)) {
		a->found = true;
		a->ref = inode_ref;
		if (!a->ix)
			return 1;
	}
	if (a->ix && dir_index_add(a->ix, name, inode_ref) < 0) {
		dir_index_drop(a->ix);	/* no memory for it: the scan still answers */
		a->ix = NULL;
		return a->found ? 1 : 0;
	}
	return 0;
}

/*
 * A name in a directory: from the directory's index when it has one, else
 * by a scan that builds the index on the way (the image never changes
 * while attached, so it stays right).
 */
static int find_name(struct sq_source *q, uint64_t dir_ref, const char *name, uint64_t *ret_ref)
{
	uint64_t ref;
	int r = q->indexes ? dir_index_lookup(q->indexes, dir_ref, name, &ref) : -ENOENT;
	if (r >= 0) {
		*ret_ref = ref;
		return r ? 0 : -ENOENT;
	}
	struct lookup_arg a = { .name = name };
	r = sq_walk(q, dir_ref, lookup_visit, &a, false);
	if (a.ix) {
		if (r == 0 && dir_index_size(a.ix) >= INDEX_MIN_ENTRIES)
			dir_index_publish(q->indexes, dir_ref, a.ix);
		else
			dir_index_drop(a.ix);
	}
	if (r < 0)
		return r;
	if (!a.found)
		return -ENOENT;
	*ret_ref = a.ref;
	return 0;
}

static int sq_lookup(struct source *s, uint64_t dir_ref, const char *dir_rel, const char *name,
		     uint64_t *ret_ref, struct stat *st)
{
	uint64_t ref;
	int r = find_name(sq(s), dir_ref, name, &ref);
	if (r == 0)
		r = sq_getattr(s, ref, "", st);
	if (r == 0)
		*ret_ref = ref;
	return r;
}

static ssize_t sq_readlink(struct source *s, uint64_t ref, const char *rel, char *buf, size_t size)
{
	struct sq_source *q = sq(s);
	struct sq_handle *h;
	sqfs_inode in;
	int r = handle_get(q, &h);
	if (r < 0)
		return r;
	r = inode_load(q, &h->fs, ref, &in);
	if (r == 0 && !S_ISLNK(in.base.mode))
		r = -EINVAL;
	size_t len = r == 0 ? in.xtra.symlink_size : 0;
	if (r == 0 && len + 1 > size)
		r = -ERANGE;
	size_t got = size;
	if (r == 0 && sqfs_readlink(&h->fs, &in, buf, &got) != SQFS_OK)
		r = corrupt(q, "unreadable symlink", ref);
	handle_put(q, h);
	return r < 0 ? r : (ssize_t)len;
}

/* Reads one stored data block (header hdr at pos) through the handle's cache. */
static int data_block(struct sq_source *q, sqfs *fs, sqfs_cache *cache, uint64_t pos,
		      uint32_t hdr, sqfs_block **ret)
{
	bool compressed;
	uint32_t stored;
	sqfs_data_header(hdr, &compressed, &stored);
	/* the library would allocate and read up to 16 MiB for a bad header */
	if (stored > q->sb.block_size || pos < FIRST_BLOCK_POS || pos > q->sb.bytes_used ||
	    stored > q->sb.bytes_used - pos)
		return corrupt(q, "data block out of bounds", pos);
	if (sqfs_data_cache(fs, cache, (sqfs_off_t)pos, hdr, ret) != SQFS_OK)
		return corrupt(q, "data block does not decompress", pos);
	return 0;
}

/* The part of [off, off+size) that lies in the file's full blocks. */
static ssize_t read_blocks(struct sq_source *q, sqfs *fs, sqfs_inode *in, char *buf, size_t size,
			   uint64_t off)
{
	uint64_t bs = q->sb.block_size, file_size = in->xtra.reg.file_size;
	sqfs_blocklist bl;
	size_t done = 0;
	if (sqfs_blockidx_blocklist(fs, in, &bl, (sqfs_off_t)off) != SQFS_OK)
		return corrupt(q, "unreadable block list", in->base.inode_number);
	while (done < size && bl.remain > 0) {
		if (sqfs_blocklist_next(&bl) != SQFS_OK)
			return corrupt(q, "unreadable block list", in->base.inode_number);
		uint64_t cur = off + done;
		if (bl.pos + bs <= cur)
			continue;
		if (bl.pos > cur)
			return corrupt(q, "block index points past the read", in->base.inode_number);
		uint64_t in_block = file_size - bl.pos < bs ? file_size - bl.pos : bs;
		size_t boff = cur - bl.pos;
		size_t take = in_block - boff < size - done ? in_block - boff : size - done;
		if (bl.input_size == 0) {
			memset(buf + done, 0, take);	/* a hole: mksquashfs stores no block */
		} else {
			sqfs_block *block;
			int r = data_block(q, fs, &fs->data_cache, bl.block, bl.header, &block);
			if (r < 0)
				return r;
			if (block->size < boff + take)
				return corrupt(q, "short data block", bl.block);
			memcpy(buf + done, (char *)block->data + boff, take);
		}
		done += take;
	}
	return (ssize_t)done;
}

/* The part of the read in the file's tail, stored in a fragment block. */
static int read_fragment(struct sq_source *q, sqfs *fs, sqfs_inode *in, char *buf, size_t size,
			 uint64_t off)
{
	uint64_t bs = q->sb.block_size;
	uint64_t tail_start = in->xtra.reg.file_size / bs * bs;
	struct squashfs_fragment_entry fe;
	sqfs_block *block;
	if (in->xtra.reg.frag_idx == SQUASHFS_INVALID_FRAG || off < tail_start)
		return corrupt(q, "file longer than its blocks", in->base.inode_number);
	if (sqfs_frag_entry(fs, &fe, in->xtra.reg.frag_idx) != SQFS_OK)
		return corrupt(q, "unreadable fragment table", in->xtra.reg.frag_idx);
	int r = data_block(q, fs, &fs->frag_cache, fe.start_block, fe.size, &block);
	if (r < 0)
		return r;
	uint64_t boff = (uint64_t)in->xtra.reg.frag_off + (off - tail_start);
	if (boff > block->size || size > block->size - boff)
		return corrupt(q, "fragment out of its block", in->xtra.reg.frag_idx);
	memcpy(buf, (char *)block->data + boff, size);
	return 0;
}

static ssize_t sq_read(struct source *s, uint64_t ref, const char *rel, void *buf, size_t size,
		       off_t off)
{
	struct sq_source *q = sq(s);
	struct sq_handle *h;
	sqfs_inode in;
	ssize_t done = 0;
	int r = check_unchanged(q);
	if (r < 0)
		return r;
	r = handle_get(q, &h);
	if (r < 0)
		return r;
	r = inode_load(q, &h->fs, ref, &in);
	if (r == 0 && !S_ISREG(in.base.mode))
		r = S_ISDIR(in.base.mode) ? -EISDIR : -EINVAL;
	if (r < 0 || (uint64_t)off >= in.xtra.reg.file_size)
		goto out;
	if (size > in.xtra.reg.file_size - (uint64_t)off)
		size = in.xtra.reg.file_size - (uint64_t)off;
	if (size > SSIZE_MAX)
		size = SSIZE_MAX;
	/*
	 * Only ask the block index about offsets inside the full blocks:
	 * for an offset in the tail of a file whose block list fills whole
	 * metadata blocks, sqfs_blockidx_blocklist reads past its index.
	 */
	if ((uint64_t)off / q->sb.block_size < sqfs_blocklist_count(&h->fs, &in)) {
		done = read_blocks(q, &h->fs, &in, buf, size, (uint64_t)off);
		if (done < 0) {
			r = (int)done;
			goto out;
		}
	}
	if ((size_t)done < size)
		r = read_fragment(q, &h->fs, &in, (char *)buf + done, size - (size_t)done,
				  (uint64_t)off + (size_t)done);
	done = (ssize_t)size;
out:
	handle_put(q, h);
	return r < 0 ? r : done;
}

/*
 * Iterates the xattrs of ref; each() gets the full name (prefix included,
 * NUL-terminated) and returns 0 to go on, 1 to stop, or -errno.
 */
typedef int sq_xattr_fn(void *arg, sqfs_xattr *x, const char *name, size_t len);

static int xattr_walk(struct sq_source *q, uint64_t ref, sq_xattr_fn *each, void *arg)
{
	struct sq_handle *h;
	sqfs_inode in;
	sqfs_xattr x;
	int r = handle_get(q, &h);
	if (r < 0)
		return r;
	r = inode_load(q, &h->fs, ref, &in);
	if (r < 0 || in.xattr == SQUASHFS_INVALID_XATTR)
		goto out;
	if (sqfs_xattr_open(&h->fs, &in, &x) != SQFS_OK ||
	    (x.remain > 0 && md_cursor_ok(q, &h->fs, x.c_next.block, x.c_next.offset))) {
		r = corrupt(q, "unreadable xattrs", ref);
		goto out;
	}
	while (r == 0 && x.remain > 0) {
		if (sqfs_xattr_read(&x) != SQFS_OK) {
			r = corrupt(q, "unreadable xattr", ref);
			break;
		}
		size_t len = sqfs_xattr_name_size(&x);
		if (len + 1 > NAMEBUF_SIZE || sqfs_xattr_name(&x, h->namebuf, true) != SQFS_OK) {
			r = corrupt(q, "unreadable xattr name", ref);
			break;
		}
		h->namebuf[len] = '\0';
		r = each(arg, &x, h->namebuf, len);
	}
out:
	handle_put(q, h);
	return r > 0 ? 0 : r;
}

struct list_arg {
	char *buf;
	size_t size, total;
};

static int list_each(void *arg, sqfs_xattr *x, const char *name, size_t len)
{
	struct list_arg *a = arg;
	if (a->size > 0) {
		if (a->total + len + 1 > a->size)
			return -ERANGE;
		memcpy(a->buf + a->total, name, len + 1);
	}
	a->total += len + 1;
	return 0;
}

static ssize_t sq_listxattr(struct source *s, uint64_t ref, const char *rel, char *buf,
			    size_t size)
{
	struct list_arg a = { buf, size, 0 };
	int r = xattr_walk(sq(s), ref, list_each, &a);
	return r < 0 ? r : (ssize_t)a.total;
}

struct get_arg {
	struct sq_source *q;
	const char *name;
	void *buf;
	size_t size;
	ssize_t result;
};

/*
 * An out-of-line value is reached through a reference stored in the image
 * (block << 16 | offset from the xattr table's start), which
 * sqfs_xattr_value_size follows unchecked: check where it leads first.
 */
static int ool_value_ok(struct sq_source *q, sqfs_xattr *x)
{
	if (!x->ool)
		return 0;
	sqfs_md_cursor c = x->c_vsize;
	struct squashfs_xattr_val val;
	uint64_t pos;
	if (md_cursor_ok(q, x->fs, (uint64_t)c.block, c.offset) ||
	    sqfs_md_read(x->fs, &c, &val, sizeof(val)) != SQFS_OK ||
	    sqfs_md_read(x->fs, &c, &pos, sizeof(pos)) != SQFS_OK)
		return -EIO;
	pos = le64toh(pos);
	uint64_t start = x->fs->xattr_info.xattr_table_start;
	if ((pos >> 16) > q->sb.bytes_used)
		return -EIO;
	return md_cursor_ok(q, x->fs, start + (pos >> 16), pos & 0xffff);
}

static int get_each(void *arg, sqfs_xattr *x, const char *name, size_t len)
{
	struct get_arg *a = arg;
	size_t vsize;
	if (strcmp(name, a->name))
		return 0;
	if (ool_value_ok(a->q, x) < 0 || sqfs_xattr_value_size(x, &vsize) != SQFS_OK)
		return -EIO;
	if (a->size == 0) {
		a->result = (ssize_t)vsize;
		return 1;
	}
	if (vsize > a->size)
		return -ERANGE;
	if (sqfs_xattr_value(x, a->buf) != SQFS_OK)
		return -EIO;
	a->result = (ssize_t)vsize;
	return 1;
}

static ssize_t sq_getxattr(struct source *s, uint64_t ref, const char *rel, const char *name,
			   void *buf, size_t size)
{
	struct get_arg a = { sq(s), name, buf, size, -ENODATA };
	int r = xattr_walk(sq(s), ref, get_each, &a);
	return r < 0 ? r : a.result;
}

static const struct source_ops sq_ops = {
	.kind = SOURCE_SQUASHFS,
	.kind_name = "squashfs",
	.destroy = sq_destroy,
	.stats = sq_stats,
	.root = sq_root,
	.lookup = sq_lookup,
	.getattr = sq_getattr,
	.readdir = sq_readdir,
	.readlink = sq_readlink,
	.read = sq_read,
	.listxattr = sq_listxattr,
	.getxattr = sq_getxattr,
};

/* ---- opening ---- */

static const char *comp_name(unsigned comp)
{
	static const char *const names[] = { "none", "gzip", "lzma", "lzo", "xz", "lz4", "zstd" };
	return comp < sizeof(names) / sizeof(names[0]) ? names[comp] : "unknown";
}

static void sb_from_disk(struct squashfs_super_block *sb)
{
	sb->s_magic = le32toh(sb->s_magic);
	sb->inodes = le32toh(sb->inodes);
	sb->mkfs_time = le32toh(sb->mkfs_time);
	sb->block_size = le32toh(sb->block_size);
	sb->fragments = le32toh(sb->fragments);
	sb->compression = le16toh(sb->compression);
	sb->block_log = le16toh(sb->block_log);
	sb->flags = le16toh(sb->flags);
	sb->no_ids = le16toh(sb->no_ids);
	sb->s_major = le16toh(sb->s_major);
	sb->s_minor = le16toh(sb->s_minor);
	sb->root_inode = le64toh(sb->root_inode);
	sb->bytes_used = le64toh(sb->bytes_used);
	sb->id_table_start = le64toh(sb->id_table_start);
	sb->xattr_id_table_start = le64toh(sb->xattr_id_table_start);
	sb->inode_table_start = le64toh(sb->inode_table_start);
	sb->directory_table_start = le64toh(sb->directory_table_start);
	sb->fragment_table_start = le64toh(sb->fragment_table_start);
	sb->lookup_table_start = le64toh(sb->lookup_table_start);
}

/* Whether a table of count entries of each bytes has its block list inside the image. */
static bool table_fits(const struct squashfs_super_block *sb, uint64_t start, uint64_t count,
		       uint64_t each)
{
	uint64_t list = (count * each + SQUASHFS_METADATA_SIZE - 1) / SQUASHFS_METADATA_SIZE * 8;
	return start <= sb->bytes_used && list <= sb->bytes_used - start;
}

/* The checks that give a clear reason before libsquashfuse sees the image. */
static int sb_check(const struct squashfs_super_block *sb, off_t size, char *err, size_t errlen)
{
	if (sb->s_magic != SQUASHFS_MAGIC) {
		snprintf(err, errlen, "not a squashfs image (bad magic)");
		return -EINVAL;
	}
	if (sb->s_major != 4 || sb->s_minor != 0) {
		snprintf(err, errlen, "squashfs version %u.%u not supported (only 4.0)",
			 sb->s_major, sb->s_minor);
		return -EOPNOTSUPP;
	}
	if (!sqfs_decompressor_get(sb->compression)) {
		snprintf(err, errlen, "compression %s (%u) not supported by this build",
			 comp_name(sb->compression), sb->compression);
		return -EOPNOTSUPP;
	}
	if (sb->block_size < 4096 || sb->block_size > SQUASHFS_FILE_MAX_SIZE ||
	    sb->block_log > 20 || sb->block_size != (1u << sb->block_log)) {
		snprintf(err, errlen, "corrupt superblock: block size %u", sb->block_size);
		return -EUCLEAN;
	}
	if (sb->bytes_used > (uint64_t)size) {
		snprintf(err, errlen, "truncated image: superblock says %llu bytes, file has %lld",
			 (unsigned long long)sb->bytes_used, (long long)size);
		return -EUCLEAN;
	}
	if (sb->inode_table_start >= sb->bytes_used || sb->directory_table_start >= sb->bytes_used ||
	    sb->inode_table_start < sizeof(*sb) || sb->directory_table_start < sizeof(*sb) ||
	    !table_fits(sb, sb->id_table_start, sb->no_ids, 4) || sb->no_ids == 0 ||
	    (sb->fragments && !table_fits(sb, sb->fragment_table_start, sb->fragments, 16)) ||
	    (sb->lookup_table_start != (uint64_t)SQUASHFS_INVALID_BLK &&
	     !table_fits(sb, sb->lookup_table_start, sb->inodes, 8)) ||
	    /* sqfs_xattr_init reads the xattr id table's header there unchecked */
	    (sb->xattr_id_table_start != (uint64_t)SQUASHFS_INVALID_BLK &&
	     (sb->xattr_id_table_start > sb->bytes_used ||
	      sizeof(struct squashfs_xattr_id_table) > sb->bytes_used - sb->xattr_id_table_start))) {
		snprintf(err, errlen, "corrupt superblock: a table lies outside the image");
		return -EUCLEAN;
	}
	return 0;
}

static int sq_read_sb(struct image_reader *reader, struct squashfs_super_block *sb, char *err,
		      size_t errlen)
{
	off_t size = (off_t)reader->size;
	size_t want = size < (off_t)sizeof(*sb) ? (size_t)size : sizeof(*sb);
	memset(sb, 0, sizeof(*sb));
	int r = image_reader_read_exact(reader, sb, want, 0);
	if (r < 0) {
		snprintf(err, errlen, "cannot read the superblock: %s", strerror(-r));
		return r;
	}
	/* a short text file is "not squashfs" rather than "truncated" */
	if (want >= sizeof(sb->s_magic) && le32toh(sb->s_magic) != SQUASHFS_MAGIC) {
		snprintf(err, errlen, "not a squashfs image (bad magic)");
		return -EINVAL;
	}
	if (want < sizeof(*sb)) {
		snprintf(err, errlen, "truncated image (%lld bytes)", (long long)size);
		return -EUCLEAN;
	}
	sb_from_disk(sb);
	return sb_check(sb, size, err, errlen);
}

static uint64_t sq_key(const struct squashfs_super_block *sb, off_t size)
{
	uint64_t fields[] = { sb->inodes, sb->mkfs_time, sb->block_size, sb->fragments,
			      sb->compression, sb->flags, sb->no_ids, sb->root_inode,
			      sb->bytes_used, sb->id_table_start, sb->inode_table_start,
			      sb->directory_table_start, (uint64_t)size };
	return source_hash(SOURCE_HASH_INIT, fields, sizeof(fields));
}

/* Opens the first handle and checks the tables and the root with it. */
static int sq_check_root(struct sq_source *q, char *err, size_t errlen)
{
	struct sq_handle *h;
	struct stat st;
	uint64_t reads = thread_reads;
	int r = handle_get(q, &h);
	if (r < 0) {
		snprintf(err, errlen, "corrupt metadata: cannot read the id, fragment, export "
			 "or xattr tables");
		return -EUCLEAN;
	}
	q->xattr_ids = h->fs.xattr_info.xattr_ids;
	handle_put(q, h);
	if (thread_reads == reads) {
		/* a libsquashfuse that reads around sqfs_pread would bypass every check */
		snprintf(err, errlen, "this libsquashfuse does not read images through "
			 "sqfs_pread: veneer cannot check what it reads");
		return -ENOTSUP;
	}
	/* the root is read before the source is shared: nothing is logged yet */
	atomic_store(&q->base.problem_logged, true);
	r = sq_getattr(&q->base, q->sb.root_inode, "", &st);
	atomic_store(&q->base.problem_logged, false);
	if (r < 0 || !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "corrupt metadata: %s",
			 r < 0 ? "root inode unreadable" : "root inode is not a directory");
		return -EUCLEAN;
	}
	return 0;
}

/*
 * Opens the image q->reader reads (of size bytes, changed at mtime for a
 * local one); on failure frees q and its reader.
 */
static int sq_open_reader(struct sq_source *q, int fd, uint64_t size, const struct timespec *mtime,
			  const char *name, struct source **ret, char *err, size_t errlen)
{
	int r = sq_read_sb(q->reader, &q->sb, err, errlen);
	if (r < 0)
		goto out_free;
	r = source_base_init(&q->base, &sq_ops, name);
	if (r < 0) {
		snprintf(err, errlen, "%s", strerror(-r));
		goto out_free;
	}
	q->fd = fd;
	q->size = (off_t)size;
	q->mtime = *mtime;
	q->xattr_ids = 0;
	q->base.key = sq_key(&q->sb, (off_t)size);
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->handle_free, NULL);
	q->indexes = dir_index_cache_new(INDEX_MAX_NAMES);	/* NULL: lookups scan */
	r = sq_check_root(q, err, errlen);
	if (r < 0) {
		sq_destroy(&q->base);	/* closes fd */
		return r;
	}
	*ret = &q->base;
	return 0;
out_free:
	image_reader_free(q->reader);
	free(q);
	if (fd >= 0)
		close(fd);
	return r;
}

int source_squashfs_open(int fd, const struct stat *st, const char *name, const uint8_t *digest,
			 struct source **ret, char *err, size_t errlen)
{
	struct sq_source *q = calloc(1, sizeof(*q));
	int r = -ENOMEM;
	if (!q) {
		snprintf(err, errlen, "%s", strerror(ENOMEM));
		close(fd);
		return r;
	}
	r = image_reader_open_file(fd, (uint64_t)st->st_size, digest, name, &q->reader,
				   &q->integrity, q->root, err, errlen);
	if (r < 0) {
		free(q);
		close(fd);
		return r;
	}
	return sq_open_reader(q, fd, (uint64_t)st->st_size, &st->st_mtim, name, ret, err,
			      errlen);
}

int source_squashfs_open_url(const char *url, const struct remote_options *o,
			     const uint8_t *digest, struct source **ret, char *err, size_t errlen)
{
	struct sq_source *q = calloc(1, sizeof(*q));
	struct image_reader *remote;
	static const struct timespec never = { 0 };
	char shown[PATH_MAX];	/* the name in log lines: without its query */
	http_url_redact(url, shown, sizeof(shown));
	if (!q) {
		snprintf(err, errlen, "%s", strerror(ENOMEM));
		return -ENOMEM;
	}
	int r = http_reader_open(url, o, digest, &remote, err, errlen);
	if (r == 0)
		r = image_reader_open_verified(remote, digest, shown, &q->reader, &q->integrity,
					       q->root, err, errlen);
	if (r < 0) {
		free(q);
		return r;
	}
	q->remote = remote;	/* owned by q->reader */
	return sq_open_reader(q, -1, remote->size, &never, shown, ret, err, errlen);
}
