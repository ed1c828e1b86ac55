/* Internal to snapshot construction: the route compiler's entry points. */
#ifndef GAMMAMESH_SNAPSHOT_INT_H
#define GAMMAMESH_SNAPSHOT_INT_H

#include "gammamesh/snapshot.h"

/* Compile every HTTPRoute among objs into the route tables of the service ports they attach
 * to; rejected routes become diagnostics. */
void gm_routes_compile(struct gm_snapshot *s, const struct gm_object *const *objs, size_t n);
/* Free what gm_routes_compile allocated outside the arena (compiled regexes). */
void gm_routes_free(struct gm_snapshot *s);

#endif
