/* JSON views of a snapshot and of diagnostics, for /config_dump and tools. */
#ifndef GAMMAMESH_SNAPSHOT_JSON_H
#define GAMMAMESH_SNAPSHOT_JSON_H

#include <jansson.h>

#include "gammamesh/diag.h"
#include "gammamesh/snapshot.h"

/* A new JSON object (caller owns it) describing the snapshot: namespaces, workloads, services
 * with ports, endpoints and attached routes, waypoints, policies and build diagnostics. */
json_t *gm_snapshot_to_json(const struct gm_snapshot *s);
/* A new JSON array of diagnostic objects {file, line, col, object, field, reason, severity}. */
json_t *gm_diags_to_json(const struct gm_diags *d);

#endif
