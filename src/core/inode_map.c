/* Mapping of (device, inode) to st_ino unique within the mount; see inode_map.h. */
#include "core/inode_map.h"

#include <pthread.h>
#include <stdlib.h>

#define XINO_SHIFT 47
#define XINO_MAX_DEVS ((1u << 15) - 1)
#define XINO_BIT (1ULL << 63)
#define FALLBACK_BIT (1ULL << 62)
#define SOURCE_BASE (1u << 14)		/* first device index of layer sources */

struct fallback_entry {
	dev_t dev;
	ino_t ino;
	uint64_t number;
	struct fallback_entry *next;
};

struct inode_map {
	dev_t root_dev;
	pthread_mutex_t lock;		/* protects everything below; leaf lock */
	dev_t *devs;
	unsigned int ndevs;
	uint64_t *source_keys;		/* SOURCE_BASE entries; 0: free */
	struct fallback_entry **buckets;
	size_t nbuckets;
	size_t nentries;
	uint64_t next_number;
};

struct inode_map *inode_map_new(dev_t root_dev)
{
	struct inode_map *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->root_dev = root_dev;
	pthread_mutex_init(&m->lock, NULL);
	return m;
}

void inode_map_free(struct inode_map *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->nbuckets; i++) {
		struct fallback_entry *e = m->buckets[i];
		while (e) {
			struct fallback_entry *next = e->next;
			free(e);
			e = next;
		}
	}
	free(m->buckets);
	free(m->devs);
	free(m->source_keys);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

/* Index of dev, adding it; -1 when the table is full or memory is short. */
static int device_index(struct inode_map *m, dev_t dev)
{
	for (unsigned int i = 0; i < m->ndevs; i++)
		if (m->devs[i] == dev)
			return (int)i;
	if (m->ndevs >= SOURCE_BASE - 1)
		return -1;
	dev_t *devs = realloc(m->devs, (m->ndevs + 1) * sizeof(*devs));
	if (!devs)
		return -1;
	m->devs = devs;
	m->devs[m->ndevs] = dev;
	return (int)m->ndevs++;
}

static size_t bucket_of(dev_t dev, ino_t ino, size_t n)
{
	uint64_t h = (uint64_t)ino * 0x9E3779B97F4A7C15ULL ^ (uint64_t)dev * 0xC2B2AE3D27D4EB4FULL;
	return (size_t)(h >> 17) & (n - 1);
}

static int fallback_grow(struct inode_map *m)
{
	size_t n = m->nbuckets ? m->nbuckets * 2 : 1024;
	struct fallback_entry **b = calloc(n, sizeof(*b));
	if (!b)
		return -1;
	for (size_t i = 0; i < m->nbuckets; i++) {
		struct fallback_entry *e = m->buckets[i];
		while (e) {
			struct fallback_entry *next = e->next;
			size_t k = bucket_of(e->dev, e->ino, n);
			e->next = b[k];
			b[k] = e;
			e = next;
		}
	}
	free(m->buckets);
	m->buckets = b;
	m->nbuckets = n;
	return 0;
}

static uint64_t fallback_number(struct inode_map *m, dev_t dev, ino_t ino)
{
	if (m->nbuckets) {
		for (struct fallback_entry *e = m->buckets[bucket_of(dev, ino, m->nbuckets)]; e;
		     e = e->next)
			if (e->dev == dev && e->ino == ino)
				return e->number;
	}
	if (m->nentries >= m->nbuckets && fallback_grow(m) < 0)
		return XINO_BIT | FALLBACK_BIT;	/* out of memory: uniqueness lost, logged by nobody */
	struct fallback_entry *e = malloc(sizeof(*e));
	if (!e)
		return XINO_BIT | FALLBACK_BIT;
	e->dev = dev;
	e->ino = ino;
	e->number = XINO_BIT | FALLBACK_BIT | ++m->next_number;
	size_t k = bucket_of(dev, ino, m->nbuckets);
	e->next = m->buckets[k];
	m->buckets[k] = e;
	m->nentries++;
	return e->number;
}

uint64_t inode_map_get(struct inode_map *m, dev_t dev, ino_t ino)
{
	if (dev == m->root_dev && !((uint64_t)ino & XINO_BIT))
		return ino;
	uint64_t number;
	pthread_mutex_lock(&m->lock);
	int idx = dev == m->root_dev ? -1 : device_index(m, dev);
	if (idx >= 0 && (uint64_t)ino < (1ULL << XINO_SHIFT))
		number = XINO_BIT | ((uint64_t)(idx + 1) << XINO_SHIFT) | (uint64_t)ino;
	else
		number = fallback_number(m, dev, ino);
	pthread_mutex_unlock(&m->lock);
	return number;
}

/* Index of a source's key (probing from its preferred slot); -1 when full. */
static int source_index(struct inode_map *m, uint64_t key)
{
	if (!m->source_keys && !(m->source_keys = calloc(SOURCE_BASE, sizeof(uint64_t))))
		return -1;
	key |= 1;	/* 0 marks a free slot */
	unsigned int slots = XINO_MAX_DEVS - SOURCE_BASE;
	unsigned int start = (unsigned int)((key * 0x9E3779B97F4A7C15ULL) >> 40) % slots;
	for (unsigned int i = 0; i < slots; i++) {
		unsigned int k = (start + i) % slots;
		if (m->source_keys[k] == key)
			return (int)(SOURCE_BASE + k);
		if (m->source_keys[k] == 0) {
			m->source_keys[k] = key;
			return (int)(SOURCE_BASE + k);
		}
	}
	return -1;
}

uint64_t inode_map_get_source(struct inode_map *m, uint64_t key, uint64_t ino)
{
	uint64_t number;
	pthread_mutex_lock(&m->lock);
	int idx = source_index(m, key);
	if (idx >= 0 && ino < (1ULL << XINO_SHIFT))
		number = XINO_BIT | ((uint64_t)idx << XINO_SHIFT) | ino;
	else
		/* real dev_t values never have bit 63 */
		number = fallback_number(m, (dev_t)(key | 1ULL << 63), (ino_t)ino);
	pthread_mutex_unlock(&m->lock);
	return number;
}
