/*
 * Which opens of real files the kernel serves itself (FUSE passthrough);
 * see passthrough.c.  Called by the open, create and release paths.
 */
#ifndef VENEER_PASSTHROUGH_H
#define VENEER_PASSTHROUGH_H

#include <stdbool.h>

#include "core/objects.h"

enum { PT_NONE, PT_CACHED, PT_PASSTHROUGH };

/* Before an OPEN or CREATE reply: decides f's mode and counts it on its node. */
void passthrough_choose(struct vn_file *f);

/* The keep_cache an ordinary open's reply may carry (false after passthrough writes). */
bool passthrough_keep_cache(struct vn_file *f, bool keep);

/* After the reply: sent says whether it reached the kernel. */
void passthrough_reply_sent(struct vn_file *f, bool sent);

/* When the open file goes away: uncounts it, and closes the backing id after the last. */
void passthrough_release(struct vn_file *f);

/* The open mode and passthrough state for `veneer status` (a JSON member or a text line). */
int passthrough_status(bool json, char **ret_text);
/* The same in the Prometheus text format. */
int passthrough_metrics(char **ret_text);

#endif
