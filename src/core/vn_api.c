/* The small helpers of the public filter API: listings, read data. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <veneer/filter.h>

#include "core/objects.h"

int vn_dirlist_add(struct vn_dirlist *list, const char *name, ino_t ino, mode_t type)
{
	if (list->count == list->capacity) {
		size_t cap = list->capacity ? list->capacity * 2 : 64;
		struct vn_dirent *e = realloc(list->entries, cap * sizeof(*e));
		if (!e)
			return -ENOMEM;
		list->entries = e;
		list->capacity = cap;
	}
	char *copy = strdup(name);
	if (!copy)
		return -ENOMEM;
	list->entries[list->count++] = (struct vn_dirent){ copy, ino, type & S_IFMT };
	return 0;
}

void dirlist_free(struct vn_dirlist *list)
{
	if (!list)
		return;
	for (size_t i = 0; i < list->count; i++)
		free(list->entries[i].name);
	free(list->entries);
	free(list);
}

void vn_dirlist_remove(struct vn_dirlist *list, size_t index)
{
	if (index >= list->count)
		return;
	free(list->entries[index].name);
	memmove(&list->entries[index], &list->entries[index + 1],
		(list->count - index - 1) * sizeof(list->entries[0]));
	list->count--;
}

ssize_t vn_dirlist_find(const struct vn_dirlist *list, const char *name)
{
	for (size_t i = 0; i < list->count; i++)
		if (!strcmp(list->entries[i].name, name))
			return (ssize_t)i;
	return -1;
}

int vn_read_data_load(struct vn_read_data *d)
{
	if (d->buf || d->fd < 0 || d->size == 0) {
		d->fd = -1;
		return 0;
	}
	char *buf = malloc(d->size);
	if (!buf)
		return -ENOMEM;
	size_t got = 0;
	while (got < d->size) {
		ssize_t n = pread(d->fd, buf + got, d->size - got, d->fd_offset + (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			free(buf);
			return -e;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	d->buf = buf;
	d->size = got;
	d->fd = -1;
	return 0;
}
