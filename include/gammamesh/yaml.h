/* A located YAML tree built with libyaml: every node knows its file, line and column so the
 * object decoder can point at the exact field that is wrong. Anchors and aliases are resolved
 * (an alias shares its target node); merge keys are not supported. */
#ifndef GAMMAMESH_YAML_H
#define GAMMAMESH_YAML_H

#include <stdbool.h>
#include <stddef.h>

#include "gammamesh/arena.h"
#include "gammamesh/diag.h"

enum gm_ynode_type {
    GM_YNODE_SCALAR = 0, /* a string, number, bool or null in textual form */
    GM_YNODE_MAP,        /* key/value pairs in document order */
    GM_YNODE_SEQ,        /* items in document order */
    GM_YNODE__MAX
};

struct gm_ynode;

struct gm_ypair {
    struct gm_ynode *key;
    struct gm_ynode *value;
};

struct gm_ynode {
    enum gm_ynode_type type;
    struct gm_loc loc;
    bool plain; /* scalar was unquoted (so `null`, `~`, `true`, numbers are special) */
    char *str;  /* scalar text, NUL-terminated */
    size_t len; /* scalar length */
    union {
        struct gm_ypair *pairs;  /* MAP */
        struct gm_ynode **items; /* SEQ */
    };
    size_t n; /* pairs or items */
};

/* Parsed documents of one file; every node lives in the caller's arena. */
struct gm_ydocs {
    struct gm_ynode **docs; /* NULL entries for empty documents are skipped */
    size_t n;
};

/* Parse a buffer as a multi-document YAML stream. `file` is copied into the arena and used in
 * locations. Returns 0, or -EINVAL after adding one located diagnostic (a syntax error stops the
 * whole stream: libyaml cannot resynchronise). Limits: depth 64, 100000 nodes, 64 MiB. */
int gm_yaml_parse(struct gm_arena *a, const char *file, const char *buf, size_t len,
                  struct gm_ydocs *out, struct gm_diags *diags);

/* The same tree from a JSON value (an object from the Kubernetes API): strings become quoted
 * scalars, numbers, booleans and null plain ones; every node is located at `file` with no line.
 * NULL when the value nests deeper than 64 levels or has more than 100000 nodes. */
struct json_t;
struct gm_ynode *gm_ynode_from_json(struct gm_arena *a, const char *file, const struct json_t *v);

/* Lookups over a node; NULL when absent or when n is not a map. */
struct gm_ynode *gm_ynode_get(const struct gm_ynode *map, const char *key);
bool gm_ynode_is_null(const struct gm_ynode *n);

#endif
