/*
 * The image reader of a remote image (an http:// or https:// URL), read
 * lazily through libcurl in aligned chunks of HTTP_CHUNK bytes, each kept
 * in the on-disk chunk cache (chunk_cache.h).  It sits where the file
 * reader sits for a local image: the verity reader above checks every
 * byte it hands out, fetched or cached.
 *
 * Fetches run with no lock held on the calling thread, or, for the chunks
 * a sequential read will need next, on the image's fetch-ahead thread
 * (stopped at destroy, its transfer aborted by libcurl's progress
 * callback, which runs at least about once a second), on one of
 * HTTP_FETCHES_MAX curl handles (each keeps its connection for reuse;
 * HTTP/2 where the server offers it over TLS); a caller beyond that waits
 * for a handle, at most the fetch timeout.  Every fetch is bounded by the
 * timeout: a dead or slow server gives -EIO to the read, with a log line
 * naming the URL and the range, never a hang.  A fetch that failed in a
 * way that may pass on a second try (a reset or refused connection, a
 * timeout, a 5xx status) is tried again twice, after 100 and 200 ms, with
 * no lock held: a persistent failure gives -EIO within three fetch
 * timeouts plus 300 ms (plus each try's bounded wait for a handle).
 */
#ifndef VENEER_HTTP_READER_H
#define VENEER_HTTP_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "layer/image_reader.h"

#define HTTP_CHUNK (64u * 1024)
#define HTTP_FETCHES_MAX 4u
#define HTTP_TIMEOUT_MS_DEFAULT 30000u
#define HTTP_CACHE_SIZE_DEFAULT (4ull << 30)

/* How remote images are fetched and cached; zero/NULL fields take the defaults. */
struct remote_options {
	const char *cacert;		/* CA certificates (PEM) instead of the system's */
	const char *cache_dir;		/* chunk_cache_default_dir() */
	uint64_t cache_size;		/* HTTP_CACHE_SIZE_DEFAULT */
	unsigned timeout_ms;		/* per fetch; HTTP_TIMEOUT_MS_DEFAULT */
};

struct remote_stats {
	uint64_t requests;		/* HTTP requests made */
	uint64_t bytes_fetched;		/* body bytes received */
	uint64_t cache_hits;		/* chunks read from the cache */
	uint64_t cache_misses;		/* chunks fetched */
	uint64_t failures;		/* fetches that failed */
	uint64_t cache_bytes;		/* the cache directory's size (all images) */
};

/* Whether s is an http:// or https:// URL. */
bool http_is_url(const char *s);

/*
 * url as log lines and status show it: a query string (which in a
 * presigned URL carries its signature) becomes "?…".
 */
void http_url_redact(const char *url, char *out, size_t outlen);

/*
 * Opens url: one request for its first chunk learns its size and
 * validator (ETag or Last-Modified).  The cache key is pin (the pinned
 * digest) when given, else a hash of URL, validator and size.  Returns
 * 0 or -errno with a one-line reason in err.
 */
int http_reader_open(const char *url, const struct remote_options *o, const uint8_t *pin,
		     struct image_reader **ret, char *err, size_t errlen);

/*
 * Told of every HTTP request any reader made, when it ended: the URL as
 * shown (http_url_redact), the range asked, the body bytes received, how
 * long it took and 0 or -EIO.  Called on the fetching thread with no lock
 * held; it must not block.
 */
typedef void http_fetch_observer(const char *url, uint64_t offset, uint64_t size,
				 uint64_t bytes, uint64_t latency_ns, int error);
/* Sets the observer (NULL: none); set it before the first reader opens. */
void http_set_fetch_observer(http_fetch_observer *fn);

/* Figures of a reader http_reader_open returned. */
void http_reader_stats(struct image_reader *r, struct remote_stats *st);

#endif
