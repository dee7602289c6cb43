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

#endif
