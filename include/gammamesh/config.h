/* The local-directory configuration source: every *.yaml / *.yml / *.json file of a directory
 * (not recursive, hidden files ignored), each a multi-document YAML stream, decoded into
 * objects. A file that stops parsing keeps its last good content in effect; an object that fails
 * to decode keeps its last good version from the same file; the errors are kept for
 * /config_dump, `--check` and metrics. Not thread-safe: the control loop owns a store. */
#ifndef GAMMAMESH_CONFIG_H
#define GAMMAMESH_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gammamesh/diag.h"
#include "gammamesh/objects.h"
#include "gammamesh/snapshot.h"

struct gm_config_file; /* one file's current content (refcounted, shared with snapshots) */

struct gm_config_store {
    char *dir;
    struct gm_config_file **files; /* sorted by path */
    size_t n_files, cap_files;
    uint64_t loads_total;       /* scans that changed something */
    uint64_t load_errors_total; /* files or objects rejected, over all scans */
    uint64_t generation;        /* bumped whenever the object set changes */
    size_t max_file_bytes;      /* files larger than this are rejected (default 16 MiB) */
};

int gm_config_store_init(struct gm_config_store *st, const char *dir);
void gm_config_store_done(struct gm_config_store *st);

/* Re-read the directory: new, changed (size, mtime or content) and removed files. Returns 1 when
 * the object set changed, 0 when nothing did, -errno when the directory cannot be read (the
 * previous content stays in effect). */
int gm_config_store_scan(struct gm_config_store *st);

/* Objects that come from elsewhere than the directory (the Kubernetes API): each is an entry of
 * the store named `key` (used as its location in diagnostics) that holds one document. Put
 * decodes doc (a JSON object) and returns 1 when the store's objects changed, 0 when the object
 * failed to decode (its last good version stays, the error is in the diagnostics, and also
 * appended to problems when not NULL). Remove
 * returns 1 when the key held objects. Keep these entries out of a store that is also scanned:
 * a scan drops every entry that is not a file of the directory. */
struct json_t;
int gm_config_store_put(struct gm_config_store *st, const char *key, const struct json_t *doc,
                        struct gm_diags *problems);
int gm_config_store_remove(struct gm_config_store *st, const char *key);

/* Every current diagnostic (files and objects rejected at the last read of each file). */
void gm_config_store_diags(const struct gm_config_store *st, struct gm_diags *out);

/* Build a snapshot of the current objects; the snapshot holds references to the files it uses,
 * so later scans never invalidate it. Build diagnostics are in snap->diags. */
struct gm_snapshot *gm_config_store_snapshot(struct gm_config_store *st,
                                             const struct gm_snapshot_options *opts);

/* Load a directory once, build a snapshot, and print every problem to out as
 * `file:line:col: Kind ns/name: field: reason`. Returns the number of errors (warnings are
 * printed but not counted), or -errno when the directory cannot be read. Used by --check. */
int gm_config_check(const char *dir, const struct gm_snapshot_options *opts, FILE *out,
                    struct gm_snapshot **snap_out);

#endif
