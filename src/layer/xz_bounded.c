#include "layer/xz_bounded.h"

#include <errno.h>
#include <lzma.h>
#include <stdint.h>

int xz_bounded_decode(const void *in, size_t insz, void *out, size_t *outsz)
{
	uint64_t memlimit = XZ_BOUNDED_MEMLIMIT;
	size_t inpos = 0, outpos = 0;
	lzma_ret r = lzma_stream_buffer_decode(&memlimit, 0, NULL, in, &inpos, insz, out,
					       &outpos, *outsz);
	switch (r) {
	case LZMA_OK:		/* the whole stream, as libsquashfuse's own xz call wants */
		*outsz = outpos;
		return 0;
	case LZMA_MEM_ERROR:
		return -ENOMEM;
	case LZMA_BUF_ERROR:
		/* the input ended early or the output is full: either way not a block of ours */
		return outpos == *outsz ? -ENOSPC : -EUCLEAN;
	default:	/* LZMA_MEMLIMIT_ERROR, LZMA_FORMAT_ERROR, LZMA_DATA_ERROR, ... */
		return -EUCLEAN;
	}
}
