/*
 * Image readers (image_reader.h): a local file, and the verity reader
 * that checks every block it hands out against the image's hash tree.
 *
 * The verity reader reads whole 4 KiB data blocks, hashes each and
 * compares it with its entry in the level-0 hash block; a hash block is
 * checked the same way against its parent, up to the root.  Checked hash
 * blocks are kept in a bounded cache, so a warm read hashes only its own
 * data blocks.  Data blocks are never cached here: libsquashfuse and the
 * kernel cache what they decompress.  A block that does not match gives
 * -EIO for the read and a log line naming the image and the offset; no
 * byte of a read that touches it is handed out.
 */
#include "layer/image_reader.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

/*
 * Checked hash blocks kept per image: 512 x 4 KiB = 2 MiB at most, which
 * covers the level-0 blocks of 256 MiB of data plus every upper level.
 * Direct-mapped by block number: a collision evicts, which costs one
 * re-read and re-hash, never a wrong answer.
 */
#define CACHE_SLOTS 512u
/* Corruption messages at warning level per image; later ones at debug. */
#define LOGGED_MAX 16u

int image_reader_read_exact(struct image_reader *r, void *buf, size_t size, uint64_t off)
{
	size_t done = 0;
	while (done < size) {
		ssize_t n = image_reader_read(r, (char *)buf + done, size - done, off + done);
		if (n < 0)
			return (int)n;
		if (n == 0)
			return -EIO;
		done += (size_t)n;
	}
	return 0;
}

const char *image_integrity_name(enum image_integrity i)
{
	switch (i) {
	case IMAGE_VERIFIED_FOOTER:
		return "verified";
	case IMAGE_VERIFIED_PINNED:
		return "pinned";
	case IMAGE_UNVERIFIED:
		break;
	}
	return "unverified";
}

/* ---- a local file ---- */

struct file_reader {
	struct image_reader base;
	int fd;				/* borrowed */
};

static ssize_t file_read(struct image_reader *r, void *buf, size_t size, uint64_t off)
{
	ssize_t n = pread(((struct file_reader *)r)->fd, buf, size, (off_t)off);
	return n < 0 ? -errno : n;
}

static void file_destroy(struct image_reader *r)
{
	free(r);
}

static const struct image_reader_ops file_ops = { .read = file_read, .destroy = file_destroy };

int image_reader_file_new(int fd, uint64_t size, struct image_reader **ret)
{
	struct file_reader *f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->base.ops = &file_ops;
	f->base.size = size;
	f->fd = fd;
	*ret = &f->base;
	return 0;
}

/* ---- the verity reader ---- */

struct cache_slot {
	uint64_t block;			/* block number in the image + 1; 0: empty */
	uint8_t *data;			/* VERITY_BLOCK bytes, allocated on first use */
};

struct verity_reader {
	struct image_reader base;
	struct image_reader *below;	/* owned */
	char *name;			/* owned */
	struct verity_params p;
	struct verity_geometry g;
	uint8_t root[VERITY_DIGEST];
	atomic_uint logged;
	pthread_mutex_t lock;		/* leaf lock over cache[]; no I/O or hashing inside */
	struct cache_slot cache[CACHE_SLOTS];
};

static struct verity_reader *vr(struct image_reader *r)
{
	return (struct verity_reader *)r;
}

/*
 * A read whose block did not match, from a reader below that keeps
 * copies (the chunk cache of a remote image), is made once more after the
 * copy was dropped: corrupt_block marks the first attempt, verity_read
 * makes the second.  Per thread, as a read runs on one thread.
 */
static __thread enum { FIRST_TRY, DROPPED_COPY, SECOND_TRY } attempt;

static int corrupt_block(struct verity_reader *v, const char *what, uint64_t off)
{
	if (v->below->ops->invalidate && attempt != SECOND_TRY) {
		log_debug("%s: %s block at offset %llu does not match the hash tree; "
			  "fetching it again", v->name, what, (unsigned long long)off);
		v->below->ops->invalidate(v->below, off, VERITY_BLOCK);
		attempt = DROPPED_COPY;
		return -EIO;
	}
	int level = atomic_fetch_add(&v->logged, 1) < LOGGED_MAX ? LOG_WARNING : LOG_DEBUG;
	log_msg(level, "%s: corrupt image: %s block at offset %llu does not match the hash tree",
		v->name, what, (unsigned long long)off);
	return -EIO;
}

/* Copies hash `slot` of cached block `block`; false on a miss. */
static bool cache_digest(struct verity_reader *v, uint64_t block, unsigned slot,
			 uint8_t out[VERITY_DIGEST])
{
	struct cache_slot *c = &v->cache[block % CACHE_SLOTS];
	bool hit;
	pthread_mutex_lock(&v->lock);
	hit = c->block == block + 1;
	if (hit)
		memcpy(out, c->data + slot * VERITY_DIGEST, VERITY_DIGEST);
	pthread_mutex_unlock(&v->lock);
	return hit;
}

static void cache_insert(struct verity_reader *v, uint64_t block, const uint8_t *data)
{
	struct cache_slot *c = &v->cache[block % CACHE_SLOTS];
	uint8_t *fresh = NULL;
	pthread_mutex_lock(&v->lock);
	bool need = !c->data;
	pthread_mutex_unlock(&v->lock);
	if (need && !(fresh = malloc(VERITY_BLOCK)))
		return;		/* no memory: the next read checks again */
	pthread_mutex_lock(&v->lock);
	if (!c->data) {
		c->data = fresh;
		fresh = NULL;
	}
	memcpy(c->data, data, VERITY_BLOCK);
	c->block = block + 1;
	pthread_mutex_unlock(&v->lock);
	free(fresh);
}

/*
 * The hash that block idx of level lvl must have; lvl -1 is the data.
 * Reads and checks the hash blocks on the way up that are not cached.
 */
static int expected_hash(struct verity_reader *v, int lvl, uint64_t idx, uint8_t out[VERITY_DIGEST])
{
	if (lvl + 1 == (int)v->g.levels) {
		memcpy(out, v->root, VERITY_DIGEST);
		return 0;
	}
	unsigned parent = (unsigned)(lvl + 1);
	uint64_t pidx = idx / VERITY_PER_BLOCK;
	unsigned slot = (unsigned)(idx % VERITY_PER_BLOCK);
	uint64_t block = v->g.level_start[parent] + pidx;
	if (cache_digest(v, block, slot, out))
		return 0;

	uint8_t data[VERITY_BLOCK], want[VERITY_DIGEST], got[VERITY_DIGEST];
	int r = image_reader_read_exact(v->below, data, VERITY_BLOCK, block * VERITY_BLOCK);
	if (r < 0)
		return r == -EIO ? corrupt_block(v, "short hash", block * VERITY_BLOCK) : r;
	r = expected_hash(v, (int)parent, pidx, want);
	if (r < 0)
		return r;
	verity_hash(v->p.salt, v->p.salt_size, data, got);
	if (memcmp(got, want, VERITY_DIGEST))
		return corrupt_block(v, "hash tree", block * VERITY_BLOCK);
	cache_insert(v, block, data);
	memcpy(out, data + slot * VERITY_DIGEST, VERITY_DIGEST);
	return 0;
}

static int check_data_block(struct verity_reader *v, const uint8_t *data, uint64_t idx)
{
	uint8_t want[VERITY_DIGEST], got[VERITY_DIGEST];
	int r = expected_hash(v, -1, idx, want);
	if (r < 0)
		return r;
	verity_hash(v->p.salt, v->p.salt_size, data, got);
	return memcmp(got, want, VERITY_DIGEST) ? corrupt_block(v, "data", idx * VERITY_BLOCK) : 0;
}

static ssize_t verity_read_once(struct image_reader *r, void *buf, size_t size, uint64_t off);

static ssize_t verity_read(struct image_reader *r, void *buf, size_t size, uint64_t off)
{
	attempt = FIRST_TRY;
	ssize_t n = verity_read_once(r, buf, size, off);
	if (n == -EIO && attempt == DROPPED_COPY) {
		attempt = SECOND_TRY;
		n = verity_read_once(r, buf, size, off);
	}
	attempt = FIRST_TRY;
	return n;
}

static ssize_t verity_read_once(struct image_reader *r, void *buf, size_t size, uint64_t off)
{
	struct verity_reader *v = vr(r);
	if (off >= v->base.size)
		return 0;
	if (size > v->base.size - off)
		size = (size_t)(v->base.size - off);
	if (size == 0)
		return 0;
	uint64_t first = off / VERITY_BLOCK, last = (off + size - 1) / VERITY_BLOCK;
	size_t span = (size_t)(last - first + 1) * VERITY_BLOCK;
	uint8_t *blocks = malloc(span);
	if (!blocks)
		return -ENOMEM;
	int rc = image_reader_read_exact(v->below, blocks, span, first * VERITY_BLOCK);
	if (rc == -EIO)
		rc = corrupt_block(v, "short data", first * VERITY_BLOCK);
	for (uint64_t b = first; b <= last && rc == 0; b++)
		rc = check_data_block(v, blocks + (b - first) * VERITY_BLOCK, b);
	if (rc == 0)
		memcpy(buf, blocks + (off - first * VERITY_BLOCK), size);
	free(blocks);
	return rc < 0 ? rc : (ssize_t)size;
}

static void verity_destroy(struct image_reader *r)
{
	struct verity_reader *v = vr(r);
	for (unsigned i = 0; i < CACHE_SLOTS; i++)
		free(v->cache[i].data);
	pthread_mutex_destroy(&v->lock);
	image_reader_free(v->below);
	free(v->name);
	free(v);
}

static const struct image_reader_ops verity_ops = { .read = verity_read,
						    .destroy = verity_destroy };

/* Reads footer and superblock and checks that they describe this image. */
/*
 * The dm-verity superblock and the levels above level 0 are read by the
 * open and then by every lookup and read, one block at a time: below a
 * remote image, ask for them at once, so that they cost one request and
 * not one per level (a 1 GiB image has three).  The request starts at the
 * last data block, where the squashfs tables end, which the first lookup
 * reads.  Bounded, because the upper levels of a very large image are
 * large too (6.5 MiB at 100 GiB): there they are fetched as reads reach
 * them.
 */
#define UPPER_LEVELS_PREFETCH_MAX (1024u * 1024u)

static void prefetch_upper_levels(struct image_reader *below, const struct verity_footer *f)
{
	struct verity_geometry g;
	if (!below->ops->prefetch || f->hash_offset % VERITY_BLOCK ||
	    verity_geometry(f->hash_offset / VERITY_BLOCK, f->hash_offset, &g) < 0 || !g.levels)
		return;
	uint64_t start = f->hash_offset - VERITY_BLOCK;	/* >= 0: the data has a block */
	uint64_t end = g.level_start[0] * VERITY_BLOCK;	/* level 0 comes last */
	if (end > start && end - start <= UPPER_LEVELS_PREFETCH_MAX)
		below->ops->prefetch(below, start, (size_t)(end - start));
}

static int read_layout(struct image_reader *below, struct verity_footer *f,
		       struct verity_params *p, struct verity_geometry *g, char *err,
		       size_t errlen)
{
	/*
	 * The footer, and in the same read the last hash block: the level-0
	 * hashes of the image's last 512 KiB, where squashfs keeps its tables,
	 * which the first lookup reads (below a remote image, one request).
	 */
	uint8_t tail[VERITY_BLOCK + VERITY_FOOTER_SIZE], sb[VERITY_BLOCK];
	const uint8_t *foot = tail + VERITY_BLOCK;
	const char *why = NULL;
	if (below->size < VERITY_FOOTER_SIZE + 2 * VERITY_BLOCK)
		return -ENODATA;
	int r = image_reader_read_exact(below, tail, sizeof(tail), below->size - sizeof(tail));
	if (r < 0) {
		snprintf(err, errlen, "cannot read the footer: %s", strerror(-r));
		return r;
	}
	r = verity_footer_decode(foot, f);
	if (r == -ENODATA)
		return r;
	if (r < 0 || f->tree_end != below->size - VERITY_FOOTER_SIZE) {
		snprintf(err, errlen, "corrupt hash tree footer");
		return -EINVAL;
	}
	prefetch_upper_levels(below, f);
	r = image_reader_read_exact(below, sb, sizeof(sb), f->hash_offset);
	if (r < 0) {
		snprintf(err, errlen, "cannot read the dm-verity superblock: %s", strerror(-r));
		return r;
	}
	if (verity_sb_decode(sb, p, &why) < 0) {
		snprintf(err, errlen, "%s", why);
		return -EINVAL;
	}
	/* the tree must cover exactly the data in front of it, and end at the footer */
	if (p->data_blocks != f->hash_offset / VERITY_BLOCK ||
	    verity_geometry(p->data_blocks, f->hash_offset, g) < 0 || g->tree_end != f->tree_end) {
		snprintf(err, errlen, "hash tree does not fit the image (%llu data blocks, "
			 "tree at %llu)", (unsigned long long)p->data_blocks,
			 (unsigned long long)f->hash_offset);
		return -EINVAL;
	}
	return 0;
}

static struct verity_reader *verity_new(struct image_reader *below, const char *name)
{
	struct verity_reader *v = calloc(1, sizeof(*v));
	if (!v)
		return NULL;
	v->name = strdup(name);
	if (!v->name) {
		free(v);
		return NULL;
	}
	v->base.ops = &verity_ops;
	v->below = below;
	atomic_init(&v->logged, 0);
	pthread_mutex_init(&v->lock, NULL);
	return v;
}

/*
 * Whether the top of the tree (or the single data block) hashes to the
 * root; a top hash block that does is cached right away.
 */
static bool top_matches(struct verity_reader *v, uint8_t got[VERITY_DIGEST])
{
	uint8_t top[VERITY_BLOCK];
	uint64_t block = v->g.levels ? v->g.level_start[v->g.levels - 1] : 0;
	memset(got, 0, VERITY_DIGEST);
	if (image_reader_read_exact(v->below, top, sizeof(top), block * VERITY_BLOCK) < 0)
		return false;
	verity_hash(v->p.salt, v->p.salt_size, top, got);
	if (memcmp(got, v->root, VERITY_DIGEST))
		return false;
	if (v->g.levels)
		cache_insert(v, block, top);
	return true;
}

static int verity_open_once(struct image_reader *below, const uint8_t *pin, const char *name,
			    struct image_reader **ret, uint8_t *root, char *err, size_t errlen);

int image_reader_verity_open(struct image_reader *below, const uint8_t *pin, const char *name,
			     struct image_reader **ret, uint8_t *root, char *err, size_t errlen)
{
	int r = verity_open_once(below, pin, name, ret, root, err, errlen);
	if (r < 0 && r != -ENODATA && r != -ENOMEM && below->ops->invalidate) {
		/* footer or tree may come from a bad cached copy: fetch them again */
		below->ops->invalidate(below, 0, below->size);
		r = verity_open_once(below, pin, name, ret, root, err, errlen);
	}
	return r;
}

static int verity_open_once(struct image_reader *below, const uint8_t *pin, const char *name,
			    struct image_reader **ret, uint8_t *root, char *err, size_t errlen)
{
	struct verity_footer f;
	struct verity_params p;
	struct verity_geometry g;
	char a[80], b[80];
	int r = read_layout(below, &f, &p, &g, err, errlen);
	if (r < 0)
		return r;
	if (pin && memcmp(pin, f.root, VERITY_DIGEST)) {
		verity_digest_format(f.root, a, sizeof(a));
		verity_digest_format(pin, b, sizeof(b));
		snprintf(err, errlen, "digest mismatch: the image's is %s, expected %s", a, b);
		return -EINVAL;
	}
	struct verity_reader *v = verity_new(below, name);
	if (!v) {
		snprintf(err, errlen, "%s", strerror(ENOMEM));
		return -ENOMEM;
	}
	v->p = p;
	v->g = g;
	v->base.size = f.hash_offset;
	memcpy(v->root, f.root, VERITY_DIGEST);
	uint8_t got[VERITY_DIGEST];
	if (!top_matches(v, got)) {
		verity_digest_format(got, a, sizeof(a));
		verity_digest_format(f.root, b, sizeof(b));
		snprintf(err, errlen, "hash tree mismatch: its root is %s, expected %s", a, b);
		v->below = NULL;	/* the caller keeps it */
		verity_destroy(&v->base);
		return -EIO;
	}
	if (root)
		memcpy(root, f.root, VERITY_DIGEST);
	*ret = &v->base;
	return 0;
}

int image_reader_open_file(int fd, uint64_t size, const uint8_t *pin, const char *name,
			   struct image_reader **ret, enum image_integrity *integ, uint8_t *root,
			   char *err, size_t errlen)
{
	struct image_reader *file;
	int r = image_reader_file_new(fd, size, &file);
	if (r < 0) {
		snprintf(err, errlen, "%s", strerror(-r));
		return r;
	}
	return image_reader_open_verified(file, pin, name, ret, integ, root, err, errlen);
}

int image_reader_open_verified(struct image_reader *file, const uint8_t *pin, const char *name,
			       struct image_reader **ret, enum image_integrity *integ,
			       uint8_t *root, char *err, size_t errlen)
{
	int r = image_reader_verity_open(file, pin, name, ret, root, err, errlen);
	if (r == 0) {
		*integ = pin ? IMAGE_VERIFIED_PINNED : IMAGE_VERIFIED_FOOTER;
		return 0;
	}
	if (r == -ENODATA && !pin) {
		*integ = IMAGE_UNVERIFIED;
		*ret = file;
		return 0;
	}
	if (r == -ENODATA)
		snprintf(err, errlen, "no hash tree to check the digest against "
			 "(packed without one)");
	image_reader_free(file);
	return r == -ENODATA ? -EINVAL : r;
}
