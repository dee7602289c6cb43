/*
 * The HTTP(S) image reader (http_reader.h).
 *
 * A read is served chunk by chunk: chunks in the cache are read from it,
 * and each run of missing chunks is fetched with one Range request, then
 * stored.  A response is used only when it is exactly the range asked
 * for (206, matching Content-Range, the image's size, the same validator
 * as at open, the full body): anything else fails the read.
 */
#include "layer/http_reader.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/log.h"
#include "layer/chunk_cache.h"

/* Longest run of missing chunks one request fetches (1 MiB). */
#define RUN_MAX 16u
/*
 * Sequential reads.  A read that starts where an earlier one ended
 * (within STREAM_GAP chunks: the kernel's read-ahead sends a file's reads
 * from several threads, a little out of order, and up to AHEAD_MIN chunks
 * behind) continues a stream.  The cached chunks ahead of it are then read
 * from disk in the background (chunk_cache_advise), as the kernel reads
 * ahead in a local image: a window as long as the stream has read so far,
 * from AHEAD_MIN (2 MiB) up to AHEAD_MAX (8 MiB, as far as the kernel reads
 * a local image ahead here), each chunk advised once (the stream remembers
 * how far it advised).  The missing chunks right behind the read are fetched
 * with it, one for every FETCH_AHEAD_PER chunks the stream has read, up to
 * a request of RUN_MAX: nothing for a file under 1 MiB, so that a cold
 * workload still fetches about the chunks it touches (at most 1/16 more),
 * and 1 MiB requests from 16 MiB on, for fewer round trips.
 */
#define STREAM_GAP 4u
/* Streams followed at once: a file's data, and the hash blocks the verity
   reader reads in between (more: readers of other files). */
#define STREAMS 4u
#define AHEAD_MIN 32u
#define AHEAD_MAX 128u
#define FETCH_AHEAD_PER 16u
/* Fetch failures logged at warning level per image; later ones at debug. */
#define LOGGED_MAX 32u
#define VALIDATOR_MAX 256u
/* Chunks being fetched that other readers wait for instead of fetching them too. */
#define INFLIGHT_MAX (HTTP_FETCHES_MAX * RUN_MAX)
/* Attempts after a failed fetch that may pass on a second try (a reset, a
   refused connection, a timeout, a 5xx status), with a pause before each
   that starts at RETRY_PAUSE_MS and doubles. */
#define FETCH_RETRIES 2u
#define RETRY_PAUSE_MS 100u

struct http_reader {
	struct image_reader base;
	char *url;			/* owned */
	char *shown;			/* owned: url without its query (http_url_redact) */
	char *cacert;			/* owned, or NULL */
	unsigned timeout_ms;
	char validator[VALIDATOR_MAX];	/* ETag, else Last-Modified, at open; "" if none */
	struct chunk_cache *cache;	/* owned */
	pthread_mutex_t lock;		/* leaf lock over busy[] and inflight[]; never held
					   across a fetch */
	pthread_cond_t handle_free;
	pthread_cond_t chunks_done;	/* chunks left inflight[] */
	CURL *handles[HTTP_FETCHES_MAX];	/* created on first use */
	bool busy[HTTP_FETCHES_MAX];		/* protected by lock */
	uint64_t inflight[INFLIGHT_MAX];	/* protected by lock: chunks being fetched */
	unsigned ninflight;
	struct stream {
		uint64_t end;			/* last chunk read + 1; 0: none */
		uint64_t streak;		/* chunks the stream read so far */
		uint64_t advised;		/* chunks before it advised (or missing) */
		uint64_t born;			/* clock at its start: which stream it is */
		uint64_t used;			/* clock of its last read, for replacing */
	} streams[STREAMS];			/* protected by lock */
	uint64_t stream_clock;			/* protected by lock */
	atomic_uint_least64_t requests, bytes_fetched, hits, misses, failures;
	atomic_uint logged;
	/*
	 * The fetch-ahead thread: fetches the chunks a stream will read next
	 * while its reads go on.  A read posts what it wants fetched
	 * (ahead_from, ahead_n: a later post replaces one not yet taken);
	 * the thread claims the missing ones in inflight[] like a read, so
	 * reads wait for them instead of fetching them too.
	 */
	pthread_t ahead_thread;
	bool ahead_started;
	pthread_cond_t ahead_wake;		/* a post, or stopping */
	uint64_t ahead_from;			/* protected by lock */
	unsigned ahead_n;			/* protected by lock; 0: nothing posted */
	atomic_bool stopping;			/* set under lock: the thread ends, its
						   fetch is aborted */
};

/* What one response brought. */
struct response {
	uint8_t *buf;
	size_t cap;			/* bytes buf holds */
	size_t got;
	bool overflow;
	bool have_range;
	uint64_t start, end, total;	/* Content-Range */
	char etag[VALIDATOR_MAX], last_modified[VALIDATOR_MAX];
};

static http_fetch_observer *_Atomic fetch_observer;

void http_set_fetch_observer(http_fetch_observer *fn)
{
	atomic_store(&fetch_observer, fn);
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result;

static void curl_init(void)
{
	curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

bool http_is_url(const char *s)
{
	return !strncasecmp(s, "http://", 7) || !strncasecmp(s, "https://", 8);
}

void http_url_redact(const char *url, char *out, size_t outlen)
{
	size_t n = strcspn(url, "?#");
	snprintf(out, outlen, "%.*s%s", (int)n, url, url[n] == '?' ? "?\u2026" : "");
}

static struct http_reader *hr(struct image_reader *r)
{
	return (struct http_reader *)r;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct response *resp = arg;
	size_t n = size * nmemb;
	if (n > resp->cap - resp->got) {
		resp->overflow = true;
		return 0;		/* aborts the transfer */
	}
	memcpy(resp->buf + resp->got, data, n);
	resp->got += n;
	return n;
}

/* Copies a header's value (trimmed) when line is "name: value". */
static bool header_value(const char *line, size_t len, const char *name, char *out, size_t outlen)
{
	size_t nlen = strlen(name);
	if (len <= nlen + 1 || strncasecmp(line, name, nlen) || line[nlen] != ':')
		return false;
	const char *v = line + nlen + 1, *end = line + len;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
		end--;
	snprintf(out, outlen, "%.*s", (int)(end - v), v);
	return true;
}

static size_t on_header(char *line, size_t size, size_t nmemb, void *arg)
{
	struct response *resp = arg;
	size_t len = size * nmemb;
	char value[VALIDATOR_MAX];
	if (len >= 5 && !strncmp(line, "HTTP/", 5)) {
		/* a new response (after a redirect): forget the last one's headers */
		resp->have_range = false;
		resp->etag[0] = resp->last_modified[0] = '\0';
	} else if (header_value(line, len, "Content-Range", value, sizeof(value))) {
		unsigned long long a, b, t;
		resp->have_range = sscanf(value, "bytes %llu-%llu/%llu", &a, &b, &t) == 3 &&
				   a <= b && b < t;
		resp->start = a;
		resp->end = b;
		resp->total = t;
	} else if (!header_value(line, len, "ETag", resp->etag, sizeof(resp->etag))) {
		header_value(line, len, "Last-Modified", resp->last_modified,
			     sizeof(resp->last_modified));
	}
	return len;
}

static const char *validator_of(const struct response *resp)
{
	return resp->etag[0] ? resp->etag : resp->last_modified;
}

/* Now plus the fetch timeout, for pthread_cond_timedwait. */
static struct timespec fetch_deadline(const struct http_reader *h)
{
	struct timespec t;
	clock_gettime(CLOCK_REALTIME, &t);
	t.tv_sec += h->timeout_ms / 1000;
	t.tv_nsec += (long)(h->timeout_ms % 1000) * 1000000L;
	if (t.tv_nsec >= 1000000000L) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000L;
	}
	return t;
}

/* Borrows a curl handle: waits at most the fetch timeout for one. */
static int handle_get(struct http_reader *h, unsigned *slot)
{
	struct timespec deadline = fetch_deadline(h);
	int r = 0;
	pthread_mutex_lock(&h->lock);
	for (;;) {
		unsigned i;
		for (i = 0; i < HTTP_FETCHES_MAX && h->busy[i]; i++)
			;
		if (i < HTTP_FETCHES_MAX) {
			h->busy[i] = true;
			*slot = i;
			break;
		}
		if (pthread_cond_timedwait(&h->handle_free, &h->lock, &deadline) == ETIMEDOUT) {
			r = -ETIMEDOUT;
			break;
		}
	}
	pthread_mutex_unlock(&h->lock);
	if (r == 0 && !h->handles[*slot] && !(h->handles[*slot] = curl_easy_init())) {
		pthread_mutex_lock(&h->lock);
		h->busy[*slot] = false;
		pthread_cond_signal(&h->handle_free);
		pthread_mutex_unlock(&h->lock);
		r = -ENOMEM;
	}
	return r;
}

static void handle_put(struct http_reader *h, unsigned slot)
{
	pthread_mutex_lock(&h->lock);
	h->busy[slot] = false;
	pthread_cond_signal(&h->handle_free);
	pthread_mutex_unlock(&h->lock);
}

/* Aborts a transfer when the reader is being destroyed. */
static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	(void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
	struct http_reader *h = arg;
	return atomic_load(&h->stopping) ? 1 : 0;
}

static void setup(struct http_reader *h, CURL *c, const char *range, struct response *resp,
		  char *curl_err)
{
	curl_easy_setopt(c, CURLOPT_URL, h->url);
	curl_easy_setopt(c, CURLOPT_RANGE, range);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)h->timeout_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)h->timeout_ms);
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "veneer");
	if (h->cacert)		/* else libcurl's default: the system's CA certificates */
		curl_easy_setopt(c, CURLOPT_CAINFO, h->cacert);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, resp);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, resp);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, curl_err);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, h);
}

/* Why the response to a request for [off, off+len) cannot be used, or NULL. */
static const char *response_problem(struct http_reader *h, const struct response *resp,
				    long status, uint64_t off, size_t len, char *why, size_t whylen)
{
	if (status == 200)
		return "the server ignored the byte range (it must serve HTTP range requests)";
	if (status != 206) {
		snprintf(why, whylen, "HTTP status %ld", status);
		return why;
	}
	if (!resp->have_range || resp->start != off)
		return "bad Content-Range in the response";
	uint64_t total = h->base.size ? h->base.size : resp->total;
	if (resp->total != total || resp->end + 1 != (off + len < total ? off + len : total)) {
		snprintf(why, whylen, "the file changed on the server (its size is now %" PRIu64
			 ")", resp->total);
		return why;
	}
	if (h->validator[0] && validator_of(resp)[0] && strcmp(h->validator, validator_of(resp)))
		return "the file changed on the server (its validator differs)";
	if (resp->overflow || resp->got != resp->end - resp->start + 1)
		return "the body does not match the range (truncated or too long)";
	return NULL;
}

/* Whether a failed attempt may pass when tried again. */
static bool transient(CURLcode cc, long status)
{
	switch (cc) {
	case CURLE_OK:
		return status >= 500;
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return true;
	default:
		return false;
	}
}

/*
 * One request for the range into resp: NULL, or why its response cannot
 * be used (in why or static), with *again telling whether to try again.
 */
static const char *attempt(struct http_reader *h, const char *range, uint64_t off, size_t len,
			   struct response *resp, bool *again, char *why, size_t whylen)
{
	char curl_err[CURL_ERROR_SIZE] = "";
	unsigned slot;
	uint8_t *buf = resp->buf;
	struct timespec t0, t1;
	memset(resp, 0, sizeof(*resp));
	resp->buf = buf;
	resp->cap = len;
	*again = false;
	if (handle_get(h, &slot) < 0)
		return "no connection free within the timeout";
	CURL *c = h->handles[slot];
	long status = 0;
	const char *problem;
	setup(h, c, range, resp, curl_err);
	atomic_fetch_add(&h->requests, 1);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	CURLcode cc = curl_easy_perform(c);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
	handle_put(h, slot);
	atomic_fetch_add(&h->bytes_fetched, resp->got);
	*again = transient(cc, status);
	if (cc != CURLE_OK && !(cc == CURLE_WRITE_ERROR && resp->overflow)) {
		snprintf(why, whylen, "%s", curl_err[0] ? curl_err : curl_easy_strerror(cc));
		problem = why;
	} else {
		problem = response_problem(h, resp, status, off, len, why, whylen);
	}
	http_fetch_observer *observe = atomic_load(&fetch_observer);
	if (observe)
		observe(h->shown, off, len, resp->got,
			(uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec)),
			problem ? -EIO : 0);
	return problem;
}

static void pause_ms(unsigned ms)
{
	struct timespec t = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
	while (nanosleep(&t, &t) < 0 && errno == EINTR)
		;
}

/*
 * Fetches [off, off+len) (shorter at the end of the file) into buf,
 * trying a transient failure again FETCH_RETRIES times (no lock is held
 * here).  Returns the bytes received or -EIO (with the reason logged and
 * in err).
 */
static ssize_t fetch(struct http_reader *h, uint8_t *buf, size_t len, uint64_t off,
		     struct response *resp, char *err, size_t errlen)
{
	char range[64], why[CURL_ERROR_SIZE + 64];
	const char *problem;
	bool again;
	unsigned tries = 0;
	struct timespec t0, t1;
	resp->buf = buf;
	snprintf(range, sizeof(range), "%" PRIu64 "-%" PRIu64, off, off + len - 1);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while ((problem = attempt(h, range, off, len, resp, &again, why, sizeof(why))) &&
	       again && tries < FETCH_RETRIES) {
		log_debug("%s: fetching bytes %s: %s; trying again", h->shown, range, problem);
		pause_ms(RETRY_PAUSE_MS << tries++);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	long ms = (long)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000);
	if (!problem) {
		log_debug("%s: fetched bytes %s in %ld ms", h->shown, range, ms);
		return (ssize_t)resp->got;
	}
	atomic_fetch_add(&h->failures, 1);
	snprintf(err, errlen, "fetching bytes %s: %s%s", range, problem,
		 tries ? " (tried again, failed again)" : "");
	/* a fetch ahead aborted at detach is no news */
	int level = atomic_fetch_add(&h->logged, 1) < LOGGED_MAX && !atomic_load(&h->stopping)
			    ? LOG_WARNING
			    : LOG_DEBUG;
	log_msg(level, "%s: offset %" PRIu64 ": %s (after %ld ms)", h->shown, off, err, ms);
	return -EIO;
}

static size_t chunk_len(const struct http_reader *h, uint64_t idx)
{
	uint64_t start = idx * HTTP_CHUNK;
	return h->base.size - start < HTTP_CHUNK ? (size_t)(h->base.size - start) : HTTP_CHUNK;
}

/* Fetches chunks [first, first+n) into buf and stores them. */
static int fetch_run(struct http_reader *h, uint8_t *buf, uint64_t first, unsigned n)
{
	char err[512];
	struct response resp;
	size_t len = (size_t)n * HTTP_CHUNK;
	uint64_t off = first * HTTP_CHUNK;
	if (len > h->base.size - off)
		len = (size_t)(h->base.size - off);
	ssize_t got = fetch(h, buf, len, off, &resp, err, sizeof(err));
	if (got < 0)
		return (int)got;
	for (unsigned i = 0; i < n; i++)
		chunk_cache_put(h->cache, first + i, buf + (size_t)i * HTTP_CHUNK,
				chunk_len(h, first + i));
	atomic_fetch_add(&h->misses, n);
	return 0;
}

/* ---- chunks being fetched ---- */

static int inflight_index(const struct http_reader *h, uint64_t idx)
{
	for (unsigned i = 0; i < h->ninflight; i++)
		if (h->inflight[i] == idx)
			return (int)i;
	return -1;
}

/* What a read does about one chunk it needs. */
enum chunk_plan {
	CHUNK_FETCH,			/* fetch it (table full: unclaimed) */
	CHUNK_HAVE,			/* read from the cache */
	CHUNK_CLAIMED,			/* fetch it; others wait for it */
	CHUNK_WAIT,			/* another read fetches it: wait, then read the cache */
};

static enum chunk_plan claim(struct http_reader *h, uint64_t idx)
{
	enum chunk_plan p = CHUNK_FETCH;
	pthread_mutex_lock(&h->lock);
	if (inflight_index(h, idx) >= 0) {
		p = CHUNK_WAIT;
	} else if (h->ninflight < INFLIGHT_MAX) {
		h->inflight[h->ninflight++] = idx;
		p = CHUNK_CLAIMED;
	}
	pthread_mutex_unlock(&h->lock);
	return p;
}

static void release(struct http_reader *h, uint64_t idx)
{
	pthread_mutex_lock(&h->lock);
	int i = inflight_index(h, idx);
	if (i >= 0)
		h->inflight[i] = h->inflight[--h->ninflight];
	pthread_cond_broadcast(&h->chunks_done);
	pthread_mutex_unlock(&h->lock);
}

/* Waits (at most the fetch timeout) until no read fetches chunk idx. */
static void wait_for(struct http_reader *h, uint64_t idx)
{
	struct timespec deadline = fetch_deadline(h);
	pthread_mutex_lock(&h->lock);
	while (inflight_index(h, idx) >= 0 &&
	       pthread_cond_timedwait(&h->chunks_done, &h->lock, &deadline) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&h->lock);
}

/* Chunks to read ahead of a stream that has read streak of them. */
static uint64_t ahead_window(uint64_t streak)
{
	return streak < AHEAD_MIN ? AHEAD_MIN : streak > AHEAD_MAX ? AHEAD_MAX : streak;
}

/* What a read that continues a stream is to read ahead. */
struct ahead {
	unsigned stream;		/* its index in streams[] */
	uint64_t born;			/* and its birth, to find it again */
	uint64_t from, to;		/* chunks [from, to) to advise */
};

/*
 * Whether the read of chunks [first, last] continues a stream; returns
 * how many chunks that stream has read (0: it starts a new one, in place
 * of the stream read least recently), and in *a the chunks ahead of it
 * that it did not advise yet.
 */
static uint64_t stream_follow(struct http_reader *h, uint64_t first, uint64_t last,
			      struct ahead *a)
{
	uint64_t streak = 0;
	pthread_mutex_lock(&h->lock);
	struct stream *s = NULL, *old = &h->streams[0];
	for (unsigned i = 0; i < STREAMS && !s; i++) {
		struct stream *t = &h->streams[i];
		if (t->end && first + AHEAD_MIN >= t->end && first <= t->end + STREAM_GAP)
			s = t;
		else if (t->used < old->used)
			old = t;
	}
	*a = (struct ahead){ 0 };
	if (s) {
		if (last + 1 > s->end) {
			s->streak += last + 1 - s->end;
			s->end = last + 1;
		}
		streak = s->streak;
		a->from = s->advised > last + 1 ? s->advised : last + 1;
		a->to = last + 1 + ahead_window(streak);
		if (a->to > a->from)
			s->advised = a->to;	/* taken: a racing read advises past it */
	} else {
		s = old;
		*s = (struct stream){ .end = last + 1, .streak = last - first + 1,
				      .advised = last + 1, .born = h->stream_clock + 1 };
	}
	s->used = ++h->stream_clock;
	a->stream = (unsigned)(s - h->streams);
	a->born = s->born;
	pthread_mutex_unlock(&h->lock);
	return streak;
}

/* The stream's advice stopped at chunk stop (missing, or being fetched):
 * a later read advises from there again. */
static void stream_advised(struct http_reader *h, const struct ahead *a, uint64_t stop)
{
	pthread_mutex_lock(&h->lock);
	struct stream *s = &h->streams[a->stream];
	if (s->born == a->born && s->advised > stop)
		s->advised = stop;
	pthread_mutex_unlock(&h->lock);
}

static bool is_inflight(struct http_reader *h, uint64_t idx)
{
	pthread_mutex_lock(&h->lock);
	bool r = inflight_index(h, idx) >= 0;
	pthread_mutex_unlock(&h->lock);
	return r;
}

/*
 * Starts disk reads of the cached chunks [a->from, a->to), up to the
 * first missing one, or one being fetched (which a cold stream's next
 * chunk usually is: no failed open for it); the stream advises again from
 * that one.  Returns that chunk, or UINT64_MAX.
 */
static uint64_t advise_ahead(struct http_reader *h, const struct ahead *a)
{
	uint64_t count = (h->base.size + HTTP_CHUNK - 1) / HTTP_CHUNK;
	for (uint64_t idx = a->from; idx < a->to && idx < count; idx++)
		if (is_inflight(h, idx) || chunk_cache_advise(h->cache, idx) < 0) {
			stream_advised(h, a, idx);
			return idx;
		}
	return UINT64_MAX;
}

/*
 * All of the read from the cache, each chunk's part straight into buf:
 * returns n, or the index of the first chunk missing.
 */
static unsigned read_cached(struct http_reader *h, uint8_t *buf, size_t size, uint64_t off,
			    uint64_t first, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		uint64_t start = (first + i) * HTTP_CHUNK;
		uint64_t lo = off > start ? off : start;
		uint64_t hi = start + chunk_len(h, first + i);
		if (hi > off + size)
			hi = off + size;
		if (chunk_cache_read(h->cache, first + i, (size_t)(lo - start), buf + (lo - off),
				     (size_t)(hi - lo)) < 0)
			return i;
	}
	atomic_fetch_add(&h->hits, n);
	return n;
}

/*
 * Claims up to max missing chunks right behind chunk last, to be fetched
 * with the read (plan[k]: CHUNK_CLAIMED); stops at a chunk that is cached
 * or that another read fetches.  Returns how many.
 */
static unsigned claim_ahead(struct http_reader *h, uint64_t last, unsigned max,
			    enum chunk_plan *plan)
{
	uint64_t count = (h->base.size + HTTP_CHUNK - 1) / HTTP_CHUNK;
	unsigned k = 0;
	while (k < max && last + 1 + k < count) {
		uint64_t idx = last + 1 + k;
		if (claim(h, idx) != CHUNK_CLAIMED)
			break;		/* fetched by another read, or the table is full */
		if (chunk_cache_advise(h->cache, idx) == 0) {
			release(h, idx);	/* cached: nothing to fetch */
			break;
		}
		plan[k++] = CHUNK_CLAIMED;
	}
	return k;
}

/* Whether chunk idx is missing: neither cached nor being fetched. */
static bool is_missing(struct http_reader *h, uint64_t idx)
{
	return !is_inflight(h, idx) && chunk_cache_advise(h->cache, idx) < 0;
}

/*
 * On the fetch-ahead thread: fetches the run of missing chunks in
 * [from, from+n) that starts at the first missing one, when it is at
 * least min long (a shorter one waits for a later post, for fewer and
 * larger requests).  A failure is not reported: the reads fetch for
 * themselves.
 */
static void fetch_ahead(struct http_reader *h, uint8_t *span, uint64_t from, unsigned n,
			unsigned min)
{
	uint64_t count = (h->base.size + HTTP_CHUNK - 1) / HTTP_CHUNK;
	uint64_t end = from + n < count ? from + n : count, m = from;
	while (m < end && !is_missing(h, m))
		m++;
	if (m >= end || end - m < min)
		return;
	unsigned k = 0;
	while (k < RUN_MAX && m + k < end && claim(h, m + k) == CHUNK_CLAIMED) {
		if (chunk_cache_advise(h->cache, m + k) == 0) {
			release(h, m + k);	/* stored a moment ago by a read */
			break;
		}
		k++;
	}
	if (k)
		fetch_run(h, span, m, k);
	for (unsigned i = 0; i < k; i++)
		release(h, m + i);
}

static void *ahead_main(void *arg)
{
	struct http_reader *h = arg;
	uint8_t *span = malloc((size_t)RUN_MAX * HTTP_CHUNK);
	pthread_mutex_lock(&h->lock);
	while (span) {
		while (!atomic_load(&h->stopping) && !h->ahead_n)
			pthread_cond_wait(&h->ahead_wake, &h->lock);
		if (atomic_load(&h->stopping))
			break;
		uint64_t from = h->ahead_from;
		unsigned n = h->ahead_n;
		h->ahead_n = 0;
		pthread_mutex_unlock(&h->lock);
		fetch_ahead(h, span, from, n, n / 2 ? n / 2 : 1);
		pthread_mutex_lock(&h->lock);
	}
	pthread_mutex_unlock(&h->lock);
	free(span);
	return NULL;
}

/* Asks the fetch-ahead thread for chunks [from, from+n). */
static void ahead_post(struct http_reader *h, uint64_t from, unsigned n)
{
	if (!h->ahead_started)
		return;
	pthread_mutex_lock(&h->lock);
	h->ahead_from = from;
	h->ahead_n = n;
	pthread_cond_signal(&h->ahead_wake);
	pthread_mutex_unlock(&h->lock);
}

/*
 * The read when some chunk is missing (chunk first + missing was, a moment
 * ago): fetched in runs, with up to ahead chunks claimed behind it (the
 * fetch-ahead thread is behind: one request rather than two).
 */
static ssize_t read_fetching(struct http_reader *h, uint8_t *buf, size_t size, uint64_t off,
			     uint64_t first, unsigned n, unsigned missing, unsigned ahead)
{
	uint8_t *span = malloc((size_t)(n + ahead) * HTTP_CHUNK);
	enum chunk_plan *plan = calloc(n + ahead, sizeof(*plan));
	int rc = span && plan ? 0 : -ENOMEM;
	for (unsigned i = 0; i < n && rc == 0; i++) {
		uint8_t *at = span + (size_t)i * HTTP_CHUNK;
		if (i != missing &&
		    chunk_cache_get(h->cache, first + i, at, chunk_len(h, first + i)) == 0) {
			plan[i] = CHUNK_HAVE;
			atomic_fetch_add(&h->hits, 1);
		} else {
			plan[i] = claim(h, first + i);
			/* fetched, stored and released by another read between
			 * the miss above and the claim: it is in the cache now */
			if (plan[i] == CHUNK_CLAIMED &&
			    chunk_cache_get(h->cache, first + i, at, chunk_len(h, first + i)) == 0) {
				release(h, first + i);
				plan[i] = CHUNK_HAVE;
				atomic_fetch_add(&h->hits, 1);
			}
		}
	}
	unsigned total = n;
	if (rc == 0 && ahead)
		total += claim_ahead(h, first + n - 1, ahead, plan + n);
	/* each run of chunks to fetch is one request */
	for (unsigned i = 0; i < total && rc == 0;) {
		unsigned j = i;
		while (j < total && j - i < RUN_MAX &&
		       (plan[j] == CHUNK_FETCH || plan[j] == CHUNK_CLAIMED))
			j++;
		if (j > i)
			rc = fetch_run(h, span + (size_t)i * HTTP_CHUNK, first + i, j - i);
		i = j > i ? j : i + 1;
	}
	for (unsigned i = 0; plan && i < total; i++)
		if (plan[i] == CHUNK_CLAIMED)
			release(h, first + i);
	/* the ones another read fetched: from the cache, or fetched here after all */
	for (unsigned i = 0; i < n && rc == 0; i++) {
		if (plan[i] != CHUNK_WAIT)
			continue;
		uint8_t *at = span + (size_t)i * HTTP_CHUNK;
		wait_for(h, first + i);
		if (chunk_cache_get(h->cache, first + i, at, chunk_len(h, first + i)) == 0)
			atomic_fetch_add(&h->hits, 1);
		else
			rc = fetch_run(h, at, first + i, 1);
	}
	if (rc == 0)
		memcpy(buf, span + (off - first * HTTP_CHUNK), size);
	free(plan);
	free(span);
	return rc < 0 ? rc : (ssize_t)size;
}

static ssize_t http_read(struct image_reader *r, void *buf, size_t size, uint64_t off)
{
	struct http_reader *h = hr(r);
	if (off >= h->base.size || size == 0)
		return 0;
	if (size > h->base.size - off)
		size = (size_t)(h->base.size - off);
	uint64_t first = off / HTTP_CHUNK, last = (off + size - 1) / HTTP_CHUNK;
	unsigned n = (unsigned)(last - first + 1);
	struct ahead a;
	uint64_t streak = stream_follow(h, first, last, &a), stop = UINT64_MAX;
	if (streak && a.to > a.from)
		stop = advise_ahead(h, &a);
	unsigned ahead = (unsigned)(streak / FETCH_AHEAD_PER < RUN_MAX ? streak / FETCH_AHEAD_PER
								       : RUN_MAX);
	unsigned missing = read_cached(h, buf, size, off, first, n);
	if (missing < n)	/* fetched with the chunks behind it, in one request */
		return read_fetching(h, buf, size, off, first, n, missing, ahead);
	/* a chunk the stream reads soon is not cached: fetched while it reads on */
	if (ahead && stop <= last + ahead)
		ahead_post(h, last + 1, ahead);
	return (ssize_t)size;
}

static void http_invalidate(struct image_reader *r, uint64_t off, uint64_t size)
{
	struct http_reader *h = hr(r);
	if (size == 0 || off >= h->base.size)
		return;
	uint64_t end = off + size < h->base.size ? off + size : h->base.size;
	for (uint64_t idx = off / HTTP_CHUNK; idx <= (end - 1) / HTTP_CHUNK; idx++)
		chunk_cache_drop(h->cache, idx);
}

static void http_prefetch(struct image_reader *r, uint64_t off, size_t size)
{
	uint8_t *buf = malloc(size);
	if (buf)
		http_read(r, buf, size, off);	/* errors: the reads that follow see them */
	free(buf);
}

static void http_destroy(struct image_reader *r)
{
	struct http_reader *h = hr(r);
	if (h->ahead_started) {
		pthread_mutex_lock(&h->lock);
		atomic_store(&h->stopping, true);
		pthread_cond_signal(&h->ahead_wake);
		pthread_mutex_unlock(&h->lock);
		pthread_join(h->ahead_thread, NULL);
	}
	for (unsigned i = 0; i < HTTP_FETCHES_MAX; i++)
		if (h->handles[i])
			curl_easy_cleanup(h->handles[i]);
	chunk_cache_free(h->cache);
	pthread_cond_destroy(&h->ahead_wake);
	pthread_cond_destroy(&h->chunks_done);
	pthread_cond_destroy(&h->handle_free);
	pthread_mutex_destroy(&h->lock);
	free(h->cacert);
	free(h->shown);
	free(h->url);
	free(h);
}

static const struct image_reader_ops http_ops = {
	.read = http_read,
	.destroy = http_destroy,
	.invalidate = http_invalidate,
	.prefetch = http_prefetch,
};

/* The cache key: the pinned digest, else SHA-256 of URL, validator and size (hex). */
static void cache_key(const struct http_reader *h, const uint8_t *pin, char out[65])
{
	uint8_t d[32];
	if (!pin) {
		char text[4096];
		int n = snprintf(text, sizeof(text), "%s\n%s\n%" PRIu64, h->url, h->validator,
				 h->base.size);
		EVP_Digest(text, (size_t)(n < (int)sizeof(text) ? n : (int)sizeof(text) - 1), d,
			   NULL, EVP_sha256(), NULL);
		pin = d;
	}
	for (unsigned i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", pin[i]);
}

void http_reader_stats(struct image_reader *r, struct remote_stats *st)
{
	struct http_reader *h = hr(r);
	st->requests = atomic_load(&h->requests);
	st->bytes_fetched = atomic_load(&h->bytes_fetched);
	st->cache_hits = atomic_load(&h->hits);
	st->cache_misses = atomic_load(&h->misses);
	st->failures = atomic_load(&h->failures);
	st->cache_bytes = chunk_cache_bytes(h->cache);
}

/*
 * For a pinned image whose server does not answer: its key is known
 * without the server, so an existing cache that recorded the size can
 * stand in.  0, or -ENOENT.
 */
static int open_cached(struct http_reader *h, const char *dir, const uint8_t *pin, uint64_t limit)
{
	char key[65], err[256];
	uint64_t size;
	cache_key(h, pin, key);
	if (chunk_cache_open(dir, key, limit, false, &h->cache, err, sizeof(err)) < 0 ||
	    chunk_cache_get_size(h->cache, &size) < 0)
		return -ENOENT;
	h->base.size = size;
	return 0;
}

int http_reader_open(const char *url, const struct remote_options *o, const uint8_t *pin,
		     struct image_reader **ret, char *err, size_t errlen)
{
	pthread_once(&curl_once, curl_init);
	if (curl_init_result != CURLE_OK) {
		snprintf(err, errlen, "cannot initialize libcurl: %s",
			 curl_easy_strerror(curl_init_result));
		return -EIO;
	}
	struct http_reader *h = calloc(1, sizeof(*h));
	uint8_t *first = malloc(HTTP_CHUNK);
	char shown[PATH_MAX];
	http_url_redact(url, shown, sizeof(shown));
	if (!h || !first || !(h->url = strdup(url)) || !(h->shown = strdup(shown)) ||
	    (o->cacert && !(h->cacert = strdup(o->cacert)))) {
		snprintf(err, errlen, "%s", strerror(ENOMEM));
		if (h) {
			free(h->shown);
			free(h->url);
		}
		free(h);
		free(first);
		return -ENOMEM;
	}
	h->base.ops = &http_ops;
	h->timeout_ms = o->timeout_ms ? o->timeout_ms : HTTP_TIMEOUT_MS_DEFAULT;
	pthread_mutex_init(&h->lock, NULL);
	pthread_cond_init(&h->handle_free, NULL);
	pthread_cond_init(&h->chunks_done, NULL);
	pthread_cond_init(&h->ahead_wake, NULL);
	atomic_init(&h->stopping, false);

	struct response resp;
	char why[512], key[65];
	uint64_t limit = o->cache_size ? o->cache_size : HTTP_CACHE_SIZE_DEFAULT;
	ssize_t got = fetch(h, first, HTTP_CHUNK, 0, &resp, why, sizeof(why));
	int r = 0;
	if (got < 0) {
		if (!pin || open_cached(h, o->cache_dir, pin, limit) < 0) {
			snprintf(err, errlen, "%s", why);
			r = -EIO;
			goto fail;
		}
		log_warn("%s: %s; attaching from the chunk cache (the image is pinned)", shown,
			 why);
	} else {
		h->base.size = resp.total;
		snprintf(h->validator, sizeof(h->validator), "%s", validator_of(&resp));
		cache_key(h, pin, key);
		r = chunk_cache_open(o->cache_dir, key, limit, true, &h->cache, err, errlen);
		if (r < 0)
			goto fail;
		chunk_cache_set_size(h->cache, h->base.size);
		chunk_cache_put(h->cache, 0, first, (size_t)got);
		atomic_fetch_add(&h->misses, 1);
	}
	free(first);
	/* without the thread, a read still fetches ahead with its own chunks */
	int rc = pthread_create(&h->ahead_thread, NULL, ahead_main, h);
	h->ahead_started = rc == 0;
	if (rc)
		log_warn("%s: no fetch-ahead thread: %s", shown, strerror(rc));
	*ret = &h->base;
	return 0;
fail:
	free(first);
	http_destroy(&h->base);
	return r;
}
