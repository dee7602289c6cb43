/* `veneer filter list`: the stack as the daemon runs it, as text or JSON. */
#ifndef VENEER_FILTER_LIST_H
#define VENEER_FILTER_LIST_H

#include <stdbool.h>

/*
 * One entry per filter, highest altitude first: name, altitude, flags,
 * operations handled, ports and their clients, state, when it was loaded (at mount or live)
 * and where it came from.  *ret_text is
 * malloc'd.  0 or -ENOMEM.  On the control thread.
 */
int fm_list(bool json, char **ret_text);

/*
 * The stack in the Prometheus text format (docs/status.md): the number of
 * filters, and one veneer_filter_info sample per filter with its name,
 * altitude, state, when it was loaded and its origin.  *ret_text is
 * malloc'd.  0 or -ENOMEM.  On the control thread.
 */
int fm_metrics(char **ret_text);

#endif
