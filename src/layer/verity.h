/*
 * The hash tree veneer appends to its images: dm-verity's on-disk format
 * (so `veritysetup verify IMG IMG ROOT --hash-offset=N` checks an image
 * in user space), followed by a small footer of veneer's own.
 *
 * An image with a tree is laid out as
 *
 *   [0, hash_offset)          the squashfs image, padded to 4 KiB (the
 *                             "data": data_blocks blocks of 4 KiB)
 *   hash_offset               dm-verity superblock (512 bytes, in a 4 KiB block)
 *   hash_offset + 4 KiB       the hash levels, the level nearest the root first
 *   end - VERITY_FOOTER_SIZE  the footer (struct verity_footer below)
 *
 * SHA-256 (OpenSSL's libcrypto), 4 KiB data and hash blocks, format
 * version 1 (salt before the block).  Salt and UUID are derived from the
 * data, so packing stays reproducible.
 *
 * This file knows the format: geometry, (de)serialization, block hashes
 * and building a tree.  Reading an image through the tree is
 * image_reader.h's job.
 */
#ifndef VENEER_VERITY_H
#define VENEER_VERITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VERITY_BLOCK 4096u		/* data and hash blocks */
#define VERITY_DIGEST 32u		/* SHA-256 */
#define VERITY_PER_BLOCK (VERITY_BLOCK / VERITY_DIGEST)	/* 128 hashes per hash block */
#define VERITY_SALT_MAX 256u
#define VERITY_LEVELS_MAX 8u		/* 128^8 data blocks: far beyond any image */
#define VERITY_FOOTER_SIZE 64u
#define VERITY_FOOTER_MAGIC "VNVERITY"

/* The parameters in the dm-verity superblock that veneer uses. */
struct verity_params {
	uint64_t data_blocks;
	uint8_t salt[VERITY_SALT_MAX];
	uint16_t salt_size;
	uint8_t uuid[16];
};

/*
 * Where each level lies, in blocks from the start of the file.  Level 0
 * holds the hashes of the data blocks, level levels-1 is one block whose
 * hash is the root.  With a single data block there are no levels and the
 * root is that block's hash.
 */
struct verity_geometry {
	unsigned levels;
	uint64_t level_start[VERITY_LEVELS_MAX];	/* first block of each level */
	uint64_t level_blocks[VERITY_LEVELS_MAX];
	uint64_t tree_end;		/* byte offset just past the last hash block */
};

/*
 * veneer's footer, the last 64 bytes of the file, little-endian:
 *   0  root hash (32 bytes)
 *  32  hash_offset: where the dm-verity superblock starts (u64)
 *  40  tree_end: where the hash tree ends and the footer starts (u64)
 *  48  version (u32, 1)
 *  52  reserved (u32, 0)
 *  56  magic "VNVERITY"
 */
struct verity_footer {
	uint8_t root[VERITY_DIGEST];
	uint64_t hash_offset;
	uint64_t tree_end;
};

/* Fills g for a tree of data_blocks (>= 1) whose superblock is at hash_offset; -EINVAL. */
int verity_geometry(uint64_t data_blocks, uint64_t hash_offset, struct verity_geometry *g);

/* SHA-256(salt || block) of one VERITY_BLOCK block (format version 1). */
void verity_hash(const uint8_t *salt, size_t salt_size, const void *block, uint8_t out[VERITY_DIGEST]);

/* The 4 KiB block holding the dm-verity superblock (zero-padded). */
void verity_sb_encode(const struct verity_params *p, uint8_t out[VERITY_BLOCK]);
/* Parses and checks one (SHA-256, 4 KiB blocks, version 1); -EINVAL with a reason. */
int verity_sb_decode(const uint8_t in[VERITY_BLOCK], struct verity_params *p, const char **why);

void verity_footer_encode(const struct verity_footer *f, uint8_t out[VERITY_FOOTER_SIZE]);
/* -ENODATA without the magic (an image without a tree), -EINVAL when malformed. */
int verity_footer_decode(const uint8_t in[VERITY_FOOTER_SIZE], struct verity_footer *f);

/* "sha256:<64 hex digits>" into out (at least 72 bytes). */
void verity_digest_format(const uint8_t d[VERITY_DIGEST], char *out, size_t outlen);
/* Parses "sha256:<hex>"; false if malformed. */
bool verity_digest_parse(const char *s, uint8_t d[VERITY_DIGEST]);

/*
 * Appends superblock, tree and footer to the image open read-write as fd,
 * whose first data_size bytes (a multiple of VERITY_BLOCK) are the data.
 * Salt (SHA-256 of the data) and UUID are derived from the data.  Returns
 * 0 with the root hash, or -errno with a reason in err.
 */
int verity_build(int fd, uint64_t data_size, uint8_t root[VERITY_DIGEST], char *err,
		 size_t errlen);

/*
 * The same with a given salt, for the tests that compare with
 * veritysetup's output; uuid is written as given.
 */
int verity_build_salted(int fd, uint64_t data_size, const uint8_t *salt, uint16_t salt_size,
			const uint8_t uuid[16], uint8_t root[VERITY_DIGEST], char *err,
			size_t errlen);

#endif
