/*
 * Renames of real directories that layers cover, or that come to be
 * covered: a layer sits at its view path (DESIGN section 3), so moving a
 * real ancestor of an attach point changes what every directory below it
 * merges with, in both directions.  The kernel keeps the moved dentries,
 * so their cached listings and names must be invalidated.  This only
 * queues the invalidations: the rename's reply goes first, then the
 * invalidation thread sends them (never from a request, DESIGN section 4).
 */
#include <errno.h>
#include <stdlib.h>

#include "filters/virtualize/vz_internal.h"

static int invalidate_name(void *arg, const char *name, uint64_t ino, mode_t type)
{
	vn_invalidate_entry(arg, name);
	return 0;
}

/* The names and listing the kernel may hold for NODE under stack S. */
static void invalidate_stack(struct vn_node *node, const struct vz_stack *s)
{
	if (s)
		(void)vz_stack_list(s, NULL, invalidate_name, node);
}

void vz_moved(void)
{
	struct vn_node **nodes;
	size_t n;
	if (vz_registry_nodes(&nodes, &n) < 0) {
		vz_gen_bump();	/* the view is right; only warm caches may lag */
		return;
	}
	/*
	 * What each directory's stack was, taken before the bump: a rebuild
	 * of a node further down replaces its ancestors' stacks on the way.
	 */
	struct vz_stack **old = calloc(n ? n : 1, sizeof(*old));
	for (size_t i = 0; old && i < n; i++)
		old[i] = vz_node_cached_stack(nodes[i]);
	vz_gen_bump();
	for (size_t i = 0; i < n; i++) {
		struct vz_stack *now;
		if (old && vz_node_stack(nodes[i], &now) == 0) {
			if (!vz_stack_equal(old[i], now)) {
				invalidate_stack(nodes[i], old[i]);
				invalidate_stack(nodes[i], now);
				vn_invalidate_node(nodes[i]);
			}
			vz_stack_put(now);
		} else {
			vn_invalidate_node(nodes[i]);
		}
		if (old)
			vz_stack_put(old[i]);
		vn_node_unref(nodes[i]);
	}
	free(old);
	free(nodes);
}
