/*
 * Unit test of the hash tree (verity.c) and the verity reader
 * (image_reader.c): trees built for small buffers are compared byte for
 * byte with what `veritysetup format` writes for the same data, salt and
 * UUID, `veritysetup verify` must accept veneer's images, and the reader
 * must refuse exactly the blocks that were damaged.  veritysetup is the
 * reference, so the test fails without it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "layer/image_reader.h"
#include "layer/verity.h"

#include "../tests/unit.h"

static char tmp[1024];

static void write_data(const char *path, uint64_t blocks, unsigned seed)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	CHECK(fd >= 0);
	unsigned char buf[VERITY_BLOCK];
	uint32_t x = seed * 2654435761u + 1;
	for (uint64_t b = 0; b < blocks; b++) {
		for (size_t i = 0; i < sizeof(buf); i++) {
			x ^= x << 13, x ^= x >> 17, x ^= x << 5;
			buf[i] = (unsigned char)x;
		}
		if (write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
			CHECK(!"write");
	}
	close(fd);
}

static void flip_byte(const char *path, uint64_t off)
{
	int fd = open(path, O_RDWR);
	unsigned char c;
	CHECK(fd >= 0 && pread(fd, &c, 1, (off_t)off) == 1);
	c ^= 0x40;
	CHECK(pwrite(fd, &c, 1, (off_t)off) == 1);
	close(fd);
}

static const uint8_t salt[32] = { 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa,
				  0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab,
				  0xcd, 0xef, 0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10 };
static const uint8_t uuid[16] = { 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0x4d, 0xef,
				  0x81, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef };
#define UUID_TEXT "12345678-9abc-4def-8123-456789abcdef"

static void hex(const uint8_t *d, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", d[i]);
}

/* Whether a file's bytes [0, len) equal img's [off, off+len). */
static bool same_bytes(const char *a, const char *img, uint64_t off, uint64_t len)
{
	int fa = open(a, O_RDONLY), fb = open(img, O_RDONLY);
	bool same = fa >= 0 && fb >= 0;
	unsigned char x[VERITY_BLOCK], y[VERITY_BLOCK];
	for (uint64_t p = 0; same && p < len; p += VERITY_BLOCK) {
		size_t n = len - p < VERITY_BLOCK ? (size_t)(len - p) : VERITY_BLOCK;
		same = pread(fa, x, n, (off_t)p) == (ssize_t)n &&
		       pread(fb, y, n, (off_t)(off + p)) == (ssize_t)n && !memcmp(x, y, n);
	}
	close(fa);
	close(fb);
	return same;
}

/* veneer's tree for `blocks` blocks equals veritysetup's; returns the root. */
static void compare_with_veritysetup(uint64_t blocks, uint8_t root[VERITY_DIGEST])
{
	char data[1100], img[1100], hash[1100], out[1100], salthex[65], roothex[65], line[256];
	char err[256];
	snprintf(data, sizeof(data), "%s/data%llu", tmp, (unsigned long long)blocks);
	snprintf(img, sizeof(img), "%s/img%llu", tmp, (unsigned long long)blocks);
	snprintf(hash, sizeof(hash), "%s/hash%llu", tmp, (unsigned long long)blocks);
	snprintf(out, sizeof(out), "%s/out%llu", tmp, (unsigned long long)blocks);
	write_data(data, blocks, (unsigned)blocks);
	sh("cp %s %s", data, img);
	int fd = open(img, O_RDWR);
	CHECK(fd >= 0);
	CHECK(verity_build_salted(fd, blocks * VERITY_BLOCK, salt, sizeof(salt), uuid, root, err,
				  sizeof(err)) == 0);
	close(fd);
	hex(salt, sizeof(salt), salthex);
	hex(root, VERITY_DIGEST, roothex);
	sh("veritysetup format %s %s --hash=sha256 --data-block-size=4096 --hash-block-size=4096 "
	   "--salt=%s --uuid=" UUID_TEXT " > %s", data, hash, salthex, out);
	FILE *f = fopen(out, "r");
	bool found = false;
	CHECK(f != NULL);
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "Root hash:", 10)) {
			found = true;
			printf("# %llu blocks: veritysetup %s", (unsigned long long)blocks, line);
			CHECK(strstr(line, roothex) != NULL);
		}
	fclose(f);
	CHECK(found);
	struct verity_geometry g;
	CHECK(verity_geometry(blocks, blocks * VERITY_BLOCK, &g) == 0);
	CHECK(same_bytes(hash, img, blocks * VERITY_BLOCK, g.tree_end - blocks * VERITY_BLOCK));
	sh("veritysetup verify %s %s %s --hash-offset=%llu", img, img, roothex,
	   (unsigned long long)(blocks * VERITY_BLOCK));
}

static int open_reader(const char *img, const uint8_t *pin, struct image_reader **ret,
		       int *fd, char *err, size_t errlen)
{
	struct stat st;
	struct image_reader *file;
	/* no CHECK in here: it runs inside the callers' CHECKs */
	*fd = open(img, O_RDONLY);
	if (*fd < 0 || fstat(*fd, &st) < 0)
		return -errno;
	if (image_reader_file_new(*fd, (uint64_t)st.st_size, &file) < 0)
		return -ENOMEM;
	int r = image_reader_verity_open(file, pin, img, ret, NULL, err, errlen);
	if (r < 0) {
		image_reader_free(file);
		close(*fd);
	}
	return r;
}

static void check_reader(uint64_t blocks, const uint8_t root[VERITY_DIGEST])
{
	char data[1100], img[1100], bad[1100], err[256];
	unsigned char want[3 * VERITY_BLOCK], got[3 * VERITY_BLOCK];
	struct image_reader *r;
	int fd, dfd;
	snprintf(data, sizeof(data), "%s/data%llu", tmp, (unsigned long long)blocks);
	snprintf(img, sizeof(img), "%s/img%llu", tmp, (unsigned long long)blocks);
	snprintf(bad, sizeof(bad), "%s/bad%llu", tmp, (unsigned long long)blocks);

	/* unaligned reads across blocks give the data; reads past it give nothing */
	CHECK(open_reader(img, root, &r, &fd, err, sizeof(err)) == 0);
	CHECK(r->size == blocks * VERITY_BLOCK);
	ssize_t n = blocks > 1 ? 2 * VERITY_BLOCK : VERITY_BLOCK - 1000;
	dfd = open(data, O_RDONLY);
	CHECK(pread(dfd, want, (size_t)n, 1000) == n);
	CHECK(image_reader_read(r, got, sizeof(got), 1000) == (blocks > 2 ? (ssize_t)sizeof(got) : n));
	CHECK(!memcmp(want, got, (size_t)n));
	CHECK(image_reader_read(r, got, 10, blocks * VERITY_BLOCK) == 0);
	close(dfd);
	image_reader_free(r);
	close(fd);

	/* a wrong pin is refused naming both digests */
	uint8_t other[VERITY_DIGEST];
	memcpy(other, root, sizeof(other));
	other[0] ^= 1;
	CHECK(open_reader(img, other, &r, &fd, err, sizeof(err)) == -EINVAL);
	printf("# %s\n", err);
	CHECK(strstr(err, "digest mismatch") != NULL);

	/* a flipped data byte: that block fails, its neighbours still read */
	uint64_t victim = blocks / 2;
	sh("cp %s %s", img, bad);
	flip_byte(bad, victim * VERITY_BLOCK + 77);
	if (blocks == 1) {
		/* the single data block is the top of the tree: checked at open */
		CHECK(open_reader(bad, NULL, &r, &fd, err, sizeof(err)) == -EIO);
		return;
	}
	CHECK(open_reader(bad, NULL, &r, &fd, err, sizeof(err)) == 0);
	CHECK(image_reader_read(r, got, 1, victim * VERITY_BLOCK + 4000) == -EIO);
	CHECK(image_reader_read(r, got, 2 * VERITY_BLOCK, victim * VERITY_BLOCK + 10) == -EIO);
	if (victim > 0)
		CHECK(image_reader_read(r, got, VERITY_BLOCK, (victim - 1) * VERITY_BLOCK) ==
		      VERITY_BLOCK);
	if (victim + 1 < blocks)
		CHECK(image_reader_read(r, got, VERITY_BLOCK, (victim + 1) * VERITY_BLOCK) ==
		      VERITY_BLOCK);
	image_reader_free(r);
	close(fd);

	struct verity_geometry g;
	CHECK(verity_geometry(blocks, blocks * VERITY_BLOCK, &g) == 0);
	if (g.levels < 2)
		return;
	/* a flipped byte in a level-0 hash block: the 128 data blocks it covers fail */
	sh("cp %s %s", img, bad);
	flip_byte(bad, g.level_start[0] * VERITY_BLOCK + VERITY_BLOCK + 5);	/* 2nd block */
	CHECK(open_reader(bad, NULL, &r, &fd, err, sizeof(err)) == 0);
	CHECK(image_reader_read(r, got, 1, 0) == 1);
	CHECK(image_reader_read(r, got, 1, VERITY_PER_BLOCK * VERITY_BLOCK) == -EIO);
	CHECK(image_reader_read(r, got, 1, (2 * VERITY_PER_BLOCK - 1) * VERITY_BLOCK) == -EIO);
	image_reader_free(r);
	close(fd);

	/* a flipped byte in the root block: refused at open, naming both roots */
	sh("cp %s %s", img, bad);
	flip_byte(bad, g.level_start[g.levels - 1] * VERITY_BLOCK + 3);
	CHECK(open_reader(bad, NULL, &r, &fd, err, sizeof(err)) == -EIO);
	printf("# %s\n", err);
	CHECK(strstr(err, "hash tree mismatch") != NULL);

	/* a damaged footer or superblock is refused; an image without a tree is told apart */
	sh("cp %s %s", img, bad);
	flip_byte(bad, blocks * VERITY_BLOCK + 72);	/* data_blocks in the superblock */
	CHECK(open_reader(bad, NULL, &r, &fd, err, sizeof(err)) == -EINVAL);
	printf("# %s\n", err);
	CHECK(open_reader(data, NULL, &r, &fd, err, sizeof(err)) == -ENODATA);
}

int main(void)
{
	uint8_t d[VERITY_DIGEST], e[VERITY_DIGEST], root[VERITY_DIGEST];
	char text[80];
	struct verity_geometry g;

	if (system("command -v veritysetup >/dev/null") != 0) {
		printf("not ok - veritysetup (cryptsetup-bin) is missing: it is the reference\n");
		return 1;
	}
	snprintf(tmp, sizeof(tmp), "/tmp/veneer-verity-test.XXXXXX");
	CHECK(mkdtemp(tmp) != NULL);

	for (unsigned i = 0; i < VERITY_DIGEST; i++)
		d[i] = (uint8_t)(i * 9);
	verity_digest_format(d, text, sizeof(text));
	CHECK(strlen(text) == 7 + 64 && !strncmp(text, "sha256:", 7));
	CHECK(verity_digest_parse(text, e) && !memcmp(d, e, sizeof(d)));
	CHECK(!verity_digest_parse(text + 1, e));
	text[20] = 'g';
	CHECK(!verity_digest_parse(text, e));
	CHECK(!verity_digest_parse("sha256:00", e));

	CHECK(verity_geometry(1, 4096, &g) == 0 && g.levels == 0 && g.tree_end == 8192);
	CHECK(verity_geometry(128, 4096 * 128, &g) == 0 && g.levels == 1 &&
	      g.level_blocks[0] == 1);
	CHECK(verity_geometry(129, 4096 * 129, &g) == 0 && g.levels == 2 &&
	      g.level_blocks[0] == 2 && g.level_blocks[1] == 1 && g.level_start[1] == 130 &&
	      g.level_start[0] == 131);
	CHECK(verity_geometry(0, 0, &g) == -EINVAL);

	static const uint64_t sizes[] = { 1, 5, 128, 300 };
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		compare_with_veritysetup(sizes[i], root);
		check_reader(sizes[i], root);
	}
	sh("rm -rf %s", tmp);
	printf("1..%d\n", unit_count);
	return 0;
}
