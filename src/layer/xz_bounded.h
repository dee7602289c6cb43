/*
 * xz decompression of one squashfs block with a memory limit.
 *
 * libsquashfuse decodes xz blocks with no memory limit, and liblzma
 * allocates the dictionary size the block's header asks for: a hostile
 * image can ask for gigabytes per block (found by fuzzing).  The kernel's
 * squashfs refuses any dictionary larger than the block size, and a block
 * is at most 1 MiB, so nothing valid needs more than XZ_BOUNDED_MEMLIMIT.
 */
#ifndef VENEER_LAYER_XZ_BOUNDED_H
#define VENEER_LAYER_XZ_BOUNDED_H

#include <stddef.h>

/* the largest block (1 MiB), twice: the dictionary plus the decoder's own state */
#define XZ_BOUNDED_MEMLIMIT (2u << 20)

/*
 * Decodes the xz stream in[0..insz) into out; *outsz is the room in out
 * on entry and the decoded size on return.  Returns 0, or -EUCLEAN for a
 * corrupt stream or one that needs more memory than the limit, -ENOSPC
 * when the result does not fit, -ENOMEM.
 */
int xz_bounded_decode(const void *in, size_t insz, void *out, size_t *outsz);

#endif
