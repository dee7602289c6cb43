/*
 * dm-verity's on-disk format and veneer's footer (verity.h): geometry,
 * encoding, block hashes and the tree builder `veneer pack` uses.  The
 * layout follows cryptsetup's lib/verity (format version 1, hash type 1):
 * levels are stored from the root down, each hash padded to a power of
 * two (32 bytes for SHA-256: no padding), each hash block zero-filled.
 * It reads and writes only the descriptor it is given; checking reads
 * against the tree is image_reader.c's.
 */
#include "layer/verity.h"

#include <endian.h>
#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SB_SIGNATURE "verity\0\0"
#define SB_ALGORITHM "sha256"
#define FOOTER_VERSION 1u
/* Data is hashed in chunks of this size while building. */
#define BUILD_CHUNK (256u * VERITY_BLOCK)

static const EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

/* Fetched once: an implicit fetch per hash would cost more than the hash. */
static void sha256_fetch(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static const EVP_MD *sha256(void)
{
	pthread_once(&sha256_once, sha256_fetch);
	return sha256_md ? sha256_md : EVP_sha256();
}

/* SHA-256 over two buffers; abort()s only if libcrypto cannot allocate a context. */
static void sha256_two(const void *a, size_t alen, const void *b, size_t blen,
		       uint8_t out[VERITY_DIGEST])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned int len = VERITY_DIGEST;
	if (!ctx || !EVP_DigestInit_ex(ctx, sha256(), NULL) || !EVP_DigestUpdate(ctx, a, alen) ||
	    !EVP_DigestUpdate(ctx, b, blen) || !EVP_DigestFinal_ex(ctx, out, &len)) {
		/* only a failed allocation gets here; a wrong hash would be worse than a stop */
		fprintf(stderr, "veneer: BUG: SHA-256 failed in libcrypto\n");
		abort();
	}
	EVP_MD_CTX_free(ctx);
}

void verity_hash(const uint8_t *salt, size_t salt_size, const void *block,
		 uint8_t out[VERITY_DIGEST])
{
	sha256_two(salt, salt_size, block, VERITY_BLOCK, out);
}

int verity_geometry(uint64_t data_blocks, uint64_t hash_offset, struct verity_geometry *g)
{
	unsigned bits = 7;	/* log2(VERITY_PER_BLOCK) */
	memset(g, 0, sizeof(*g));
	if (data_blocks == 0 || hash_offset % VERITY_BLOCK)
		return -EINVAL;
	while (bits * g->levels < 64 && (data_blocks - 1) >> (bits * g->levels))
		g->levels++;
	if (g->levels > VERITY_LEVELS_MAX)
		return -EINVAL;
	uint64_t pos = hash_offset / VERITY_BLOCK + 1;	/* after the superblock */
	for (unsigned i = g->levels; i-- > 0;) {
		unsigned shift = bits * (i + 1);
		g->level_blocks[i] = shift >= 64 ? 1 : (data_blocks + (1ull << shift) - 1) >> shift;
		g->level_start[i] = pos;
		pos += g->level_blocks[i];
	}
	g->tree_end = pos * VERITY_BLOCK;
	return 0;
}

void verity_sb_encode(const struct verity_params *p, uint8_t out[VERITY_BLOCK])
{
	uint32_t u32;
	uint64_t u64;
	uint16_t u16;
	memset(out, 0, VERITY_BLOCK);
	memcpy(out, SB_SIGNATURE, 8);
	u32 = htole32(1);		/* superblock version */
	memcpy(out + 8, &u32, 4);
	u32 = htole32(1);		/* hash type: normal (salt first) */
	memcpy(out + 12, &u32, 4);
	memcpy(out + 16, p->uuid, 16);
	memcpy(out + 32, SB_ALGORITHM, strlen(SB_ALGORITHM));
	u32 = htole32(VERITY_BLOCK);
	memcpy(out + 64, &u32, 4);
	memcpy(out + 68, &u32, 4);
	u64 = htole64(p->data_blocks);
	memcpy(out + 72, &u64, 8);
	u16 = htole16(p->salt_size);
	memcpy(out + 80, &u16, 2);
	memcpy(out + 88, p->salt, p->salt_size);
}

int verity_sb_decode(const uint8_t in[VERITY_BLOCK], struct verity_params *p, const char **why)
{
	uint32_t version, type, dbs, hbs;
	uint64_t blocks;
	uint16_t salt_size;
	char alg[33] = { 0 };
	memcpy(&version, in + 8, 4);
	memcpy(&type, in + 12, 4);
	memcpy(alg, in + 32, 32);
	memcpy(&dbs, in + 64, 4);
	memcpy(&hbs, in + 68, 4);
	memcpy(&blocks, in + 72, 8);
	memcpy(&salt_size, in + 80, 2);
	*why = NULL;
	if (memcmp(in, SB_SIGNATURE, 8))
		*why = "no dm-verity superblock where the footer says";
	else if (le32toh(version) != 1 || le32toh(type) != 1)
		*why = "unsupported dm-verity version or hash type";
	else if (strcmp(alg, SB_ALGORITHM))
		*why = "unsupported hash algorithm (only sha256)";
	else if (le32toh(dbs) != VERITY_BLOCK || le32toh(hbs) != VERITY_BLOCK)
		*why = "unsupported block size (only 4096)";
	else if (le16toh(salt_size) > VERITY_SALT_MAX)
		*why = "salt longer than 256 bytes";
	else if (le64toh(blocks) == 0)
		*why = "no data blocks";
	if (*why)
		return -EINVAL;
	memset(p, 0, sizeof(*p));
	p->data_blocks = le64toh(blocks);
	p->salt_size = le16toh(salt_size);
	memcpy(p->salt, in + 88, p->salt_size);
	memcpy(p->uuid, in + 16, 16);
	return 0;
}

void verity_footer_encode(const struct verity_footer *f, uint8_t out[VERITY_FOOTER_SIZE])
{
	uint64_t u64;
	uint32_t u32;
	memset(out, 0, VERITY_FOOTER_SIZE);
	memcpy(out, f->root, VERITY_DIGEST);
	u64 = htole64(f->hash_offset);
	memcpy(out + 32, &u64, 8);
	u64 = htole64(f->tree_end);
	memcpy(out + 40, &u64, 8);
	u32 = htole32(FOOTER_VERSION);
	memcpy(out + 48, &u32, 4);
	memcpy(out + 56, VERITY_FOOTER_MAGIC, 8);
}

int verity_footer_decode(const uint8_t in[VERITY_FOOTER_SIZE], struct verity_footer *f)
{
	uint32_t version;
	if (memcmp(in + 56, VERITY_FOOTER_MAGIC, 8))
		return -ENODATA;
	memcpy(&version, in + 48, 4);
	if (le32toh(version) != FOOTER_VERSION)
		return -EINVAL;
	memcpy(f->root, in, VERITY_DIGEST);
	memcpy(&f->hash_offset, in + 32, 8);
	memcpy(&f->tree_end, in + 40, 8);
	f->hash_offset = le64toh(f->hash_offset);
	f->tree_end = le64toh(f->tree_end);
	if (f->hash_offset == 0 || f->hash_offset % VERITY_BLOCK || f->tree_end % VERITY_BLOCK ||
	    f->tree_end <= f->hash_offset)
		return -EINVAL;
	return 0;
}

void verity_digest_format(const uint8_t d[VERITY_DIGEST], char *out, size_t outlen)
{
	int n = snprintf(out, outlen, "sha256:");
	for (unsigned i = 0; i < VERITY_DIGEST && n > 0 && (size_t)n + 2 < outlen; i++)
		n += snprintf(out + n, outlen - (size_t)n, "%02x", d[i]);
}

bool verity_digest_parse(const char *s, uint8_t d[VERITY_DIGEST])
{
	static const char prefix[] = "sha256:";
	if (strncmp(s, prefix, sizeof(prefix) - 1))
		return false;
	s += sizeof(prefix) - 1;
	if (strlen(s) != 2 * VERITY_DIGEST)
		return false;
	for (unsigned i = 0; i < VERITY_DIGEST; i++) {
		unsigned v = 0;
		for (unsigned j = 0; j < 2; j++) {
			char c = s[2 * i + j];
			unsigned x = c >= '0' && c <= '9' ? (unsigned)(c - '0') :
				     c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10) :
				     c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10) : 16;
			if (x == 16)
				return false;
			v = v * 16 + x;
		}
		d[i] = (uint8_t)v;
	}
	return true;
}

/* ---- building ---- */

static int read_exact(int fd, void *buf, size_t len, uint64_t off)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;	/* shorter than it said */
		done += (size_t)n;
	}
	return 0;
}

static int write_exact(int fd, const void *buf, size_t len, uint64_t off)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = pwrite(fd, (const char *)buf + done, len - done, (off_t)(off + done));
		if (n < 0)
			return -errno;
		done += (size_t)n;
	}
	return 0;
}

/* The salt: SHA-256 of all the data, so the same image always gets the same tree. */
static int data_salt(int fd, uint64_t data_size, uint8_t *chunk, uint8_t salt[VERITY_DIGEST])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned int len = VERITY_DIGEST;
	int r = 0;
	if (!ctx || !EVP_DigestInit_ex(ctx, sha256(), NULL)) {
		r = -ENOMEM;
		goto out;
	}
	for (uint64_t off = 0; off < data_size && r == 0; off += BUILD_CHUNK) {
		size_t n = data_size - off < BUILD_CHUNK ? (size_t)(data_size - off) : BUILD_CHUNK;
		r = read_exact(fd, chunk, n, off);
		if (r == 0 && !EVP_DigestUpdate(ctx, chunk, n))
			r = -ENOMEM;
	}
	if (r == 0 && !EVP_DigestFinal_ex(ctx, salt, &len))
		r = -ENOMEM;
out:
	EVP_MD_CTX_free(ctx);
	return r;
}

/* Hashes of the data blocks into level (zero-filled, level_blocks[0] blocks). */
static int hash_data(int fd, uint64_t data_blocks, const uint8_t *salt, uint16_t salt_size,
		     uint8_t *chunk, uint8_t *level)
{
	uint64_t data_size = data_blocks * VERITY_BLOCK;
	for (uint64_t off = 0; off < data_size; off += BUILD_CHUNK) {
		size_t n = data_size - off < BUILD_CHUNK ? (size_t)(data_size - off) : BUILD_CHUNK;
		int r = read_exact(fd, chunk, n, off);
		if (r < 0)
			return r;
		for (size_t b = 0; b < n / VERITY_BLOCK; b++)
			verity_hash(salt, salt_size, chunk + b * VERITY_BLOCK,
				    level + (off / VERITY_BLOCK + b) * VERITY_DIGEST);
	}
	return 0;
}

int verity_build_salted(int fd, uint64_t data_size, const uint8_t *salt, uint16_t salt_size,
			const uint8_t uuid[16], uint8_t root[VERITY_DIGEST], char *err,
			size_t errlen)
{
	struct verity_params p = { .data_blocks = data_size / VERITY_BLOCK, .salt_size = salt_size };
	struct verity_geometry g;
	uint8_t *levels[VERITY_LEVELS_MAX] = { NULL };
	uint8_t *chunk = NULL, block[VERITY_BLOCK], foot[VERITY_FOOTER_SIZE];
	int r = -EINVAL;
	if (data_size % VERITY_BLOCK || salt_size > VERITY_SALT_MAX ||
	    verity_geometry(p.data_blocks, data_size, &g) < 0) {
		snprintf(err, errlen, "image size %llu is not a non-zero multiple of 4096",
			 (unsigned long long)data_size);
		return -EINVAL;
	}
	memcpy(p.salt, salt, salt_size);
	memcpy(p.uuid, uuid, 16);
	r = -ENOMEM;
	chunk = malloc(BUILD_CHUNK);
	for (unsigned i = 0; i < g.levels; i++)
		if (!(levels[i] = calloc(g.level_blocks[i], VERITY_BLOCK)))
			goto fail;
	if (!chunk)
		goto fail;
	if (g.levels == 0) {
		/* one data block: the root is its hash */
		r = read_exact(fd, block, VERITY_BLOCK, 0);
		if (r < 0)
			goto fail;
		verity_hash(salt, salt_size, block, root);
	} else {
		r = hash_data(fd, p.data_blocks, salt, salt_size, chunk, levels[0]);
		if (r < 0)
			goto fail;
		for (unsigned i = 1; i < g.levels; i++)
			for (uint64_t b = 0; b < g.level_blocks[i - 1]; b++)
				verity_hash(salt, salt_size, levels[i - 1] + b * VERITY_BLOCK,
					    levels[i] + b * VERITY_DIGEST);
		verity_hash(salt, salt_size, levels[g.levels - 1], root);
	}
	verity_sb_encode(&p, block);
	r = write_exact(fd, block, VERITY_BLOCK, data_size);
	for (unsigned i = 0; i < g.levels && r == 0; i++)
		r = write_exact(fd, levels[i], g.level_blocks[i] * VERITY_BLOCK,
				g.level_start[i] * VERITY_BLOCK);
	struct verity_footer f = { .hash_offset = data_size, .tree_end = g.tree_end };
	memcpy(f.root, root, VERITY_DIGEST);
	verity_footer_encode(&f, foot);
	if (r == 0)
		r = write_exact(fd, foot, sizeof(foot), g.tree_end);
	if (r == 0 && ftruncate(fd, (off_t)(g.tree_end + sizeof(foot))) < 0)
		r = -errno;
fail:
	if (r < 0)
		snprintf(err, errlen, "cannot build the hash tree: %s", strerror(-r));
	for (unsigned i = 0; i < g.levels; i++)
		free(levels[i]);
	free(chunk);
	return r;
}

int verity_build(int fd, uint64_t data_size, uint8_t root[VERITY_DIGEST], char *err,
		 size_t errlen)
{
	static const char uuid_label[] = "veneer verity uuid";
	uint8_t salt[VERITY_DIGEST], uuid[VERITY_DIGEST];
	uint8_t *chunk = malloc(BUILD_CHUNK);
	int r = chunk ? data_salt(fd, data_size, chunk, salt) : -ENOMEM;
	free(chunk);
	if (r < 0) {
		snprintf(err, errlen, "cannot read the image: %s", strerror(-r));
		return r;
	}
	sha256_two(uuid_label, sizeof(uuid_label) - 1, salt, sizeof(salt), uuid);
	uuid[6] = (uint8_t)((uuid[6] & 0x0f) | 0x80);	/* RFC 9562 version 8: custom */
	uuid[8] = (uint8_t)((uuid[8] & 0x3f) | 0x80);	/* variant */
	return verity_build_salted(fd, data_size, salt, sizeof(salt), uuid, root, err, errlen);
}
