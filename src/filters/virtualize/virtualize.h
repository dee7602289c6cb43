/*
 * The virtualization filter, as the daemon drives it: registered like any
 * filter (vz_filter_ops), its load arguments naming the layers of --layer
 * (vz_attach_args), its ports serving veneer attach and detach
 * (vz_ports_open), plus status for the control socket.  These run on the
 * main or control thread, never in a request, and may block.
 */
#ifndef VENEER_VIRTUALIZE_H
#define VENEER_VIRTUALIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <veneer/filter.h>

#include "layer/http_reader.h"

extern const struct vn_filter_ops vz_filter_ops;

/*
 * MOUNTPOINT (absolute) and LOWER_FD (borrowed, an O_PATH descriptor of
 * LOWER): sources named under the mount point are opened through the
 * lower, never through the mount.
 */
void vz_admin_init(const char *mountpoint, int lower_fd);

/* SPEC: a layer id, or an attach path (the newest layer there). */
int vz_detach(const char *spec, char *err, size_t errlen);
/*
 * The layers as text (aligned columns), or as the JSON members
 * "mountpoint":...,"layers":[...] for the caller to put in an object;
 * malloc'd.
 */
int vz_status(bool json, char **ret_text);
/* The layers' figures in the Prometheus text format (docs/status.md). */
int vz_metrics(char **ret_text);

/*
 * SRC[:PATH][#sha256:<hex>] as --layer takes it: a trailing '#' with a
 * digest is taken off first; then the last ':' followed by '/' separates
 * SRC from PATH, except the "://" of a URL scheme at SRC's start.
 * *ret_src and *ret_path malloc'd (PATH "/" by default); *ret_digest
 * malloc'd "sha256:<hex>" as written (unchecked), or NULL.
 */
int vz_layer_spec_parse(const char *spec, char **ret_src, char **ret_path, char **ret_digest);

#endif
