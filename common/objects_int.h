/* Private to objects*.c: the table-driven decoder that turns located YAML nodes into object
 * structs while collecting every error with its location, object label and field path. */
#ifndef GAMMAMESH_OBJECTS_INT_H
#define GAMMAMESH_OBJECTS_INT_H

#include <stddef.h>
#include <stdint.h>

#include "gammamesh/objects.h"

#define GM_OBJ_PATH_MAX 512

/* Decoding state of one object. */
struct gm_objdec {
    struct gm_arena *a;
    struct gm_diags *diags;
    const char *label;          /* "HTTPRoute ns/name"; NULL before metadata is known */
    const char *ns;             /* the object's namespace, for defaults */
    const char *file;           /* the document's file name, copied into the arena */
    char path[GM_OBJ_PATH_MAX]; /* dotted field path of the node being decoded */
    size_t plen;
    unsigned errors;
};

enum gm_field_type {
    GM_FT_STR = 0,  /* char *: any non-null scalar, optionally checked */
    GM_FT_INT,      /* int in [min, max] */
    GM_FT_INT64,    /* int64_t in [min, max] */
    GM_FT_BOOL,     /* bool: true or false */
    GM_FT_STRS,     /* struct gm_strs: a sequence of at most max scalars, each checked */
    GM_FT_KVS,      /* struct gm_kvs: a map of scalars */
    GM_FT_DURATION, /* int64_t milliseconds (GEP-2257) */
    GM_FT_NODE,     /* const struct gm_ynode *: kept for the caller to interpret */
    GM_FT_FUNC,     /* fn(d, node, base) */
    GM_FT_IGNORE,   /* known and not needed */
    GM_FT_WARN,     /* known and unsupported: a warning, then ignored */
    GM_FT__MAX
};

#define GM_F_REQUIRED 1u /* a missing or null value is an error */

/* Returns NULL when s is acceptable, else the reason it is not. */
typedef const char *(*gm_check_fn)(const char *s);
typedef int (*gm_field_fn)(struct gm_objdec *d, const struct gm_ynode *v, void *base);
typedef int (*gm_item_fn)(struct gm_objdec *d, const struct gm_ynode *item, void *elem);

struct gm_field {
    const char *name;
    enum gm_field_type type;
    size_t off; /* of the member in the base struct */
    int64_t min, max;
    gm_check_fn check;
    gm_field_fn fn;
    unsigned flags;
};

/* Table entries. */
#define GM_FIELD_STR(st, key, m, chk, fl)                                                          \
    {                                                                                              \
        .name = key, .type = GM_FT_STR, .off = offsetof(st, m), .check = chk, .flags = fl          \
    }
#define GM_FIELD_INT(st, key, m, lo, hi, fl)                                                       \
    {                                                                                              \
        .name = key, .type = GM_FT_INT, .off = offsetof(st, m), .min = lo, .max = hi, .flags = fl  \
    }
#define GM_FIELD_INT64(st, key, m, lo, hi)                                                         \
    {                                                                                              \
        .name = key, .type = GM_FT_INT64, .off = offsetof(st, m), .min = lo, .max = hi             \
    }
#define GM_FIELD_BOOL(st, key, m)                                                                  \
    {                                                                                              \
        .name = key, .type = GM_FT_BOOL, .off = offsetof(st, m)                                    \
    }
#define GM_FIELD_STRS(st, key, m, n, chk)                                                          \
    {                                                                                              \
        .name = key, .type = GM_FT_STRS, .off = offsetof(st, m), .max = n, .check = chk            \
    }
#define GM_FIELD_KVS(st, key, m)                                                                   \
    {                                                                                              \
        .name = key, .type = GM_FT_KVS, .off = offsetof(st, m)                                     \
    }
#define GM_FIELD_DURATION(st, key, m)                                                              \
    {                                                                                              \
        .name = key, .type = GM_FT_DURATION, .off = offsetof(st, m)                                \
    }
#define GM_FIELD_NODE(st, key, m, fl)                                                              \
    {                                                                                              \
        .name = key, .type = GM_FT_NODE, .off = offsetof(st, m), .flags = fl                       \
    }
#define GM_FIELD_FUNC(key, f, fl)                                                                  \
    {                                                                                              \
        .name = key, .type = GM_FT_FUNC, .fn = f, .flags = fl                                      \
    }
#define GM_FIELD_IGNORE(key)                                                                       \
    {                                                                                              \
        .name = key, .type = GM_FT_IGNORE                                                          \
    }
#define GM_FIELD_WARN(key)                                                                         \
    {                                                                                              \
        .name = key, .type = GM_FT_WARN                                                            \
    }

#define GM_NO_LIMIT SIZE_MAX

/* Field path: push returns the old length for pop. */
size_t gm_objects_push(struct gm_objdec *d, const char *key);
size_t gm_objects_push_index(struct gm_objdec *d, size_t i);
void gm_objects_pop(struct gm_objdec *d, size_t old);

/* node's location, with the file name owned by the object's arena. */
struct gm_loc gm_objects_loc(const struct gm_objdec *d, const struct gm_ynode *node);

/* Diagnostics at node's location, for the current path (plus `sub` when given). */
void gm_objects_error(struct gm_objdec *d, const struct gm_ynode *node, const char *sub,
                      const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void gm_objects_warn(struct gm_objdec *d, const struct gm_ynode *node, const char *sub,
                     const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Decode the map n into base by the table; with `strict`, unknown keys are errors, else they
 * are ignored. Returns 0, or -EINVAL when n is not a map (reported). Field errors are counted in
 * d->errors and do not stop decoding. */
int gm_objects_map(struct gm_objdec *d, const struct gm_ynode *n, const struct gm_field *f,
                   size_t nf, bool strict, void *base);

/* Decode the sequence n into an arena array of elements of elem_size, calling fn on each with
 * the path extended by [i]. Null decodes to zero items. More than max items is an error and only
 * the first max are decoded. Returns 0, or -EINVAL when n is not a sequence (reported). */
int gm_objects_seq(struct gm_objdec *d, const struct gm_ynode *n, size_t max, size_t elem_size,
                   void **out, size_t *count, gm_item_fn fn);

/* Scalars. Each returns 0 with the value, 1 when n is null (nothing reported), or -EINVAL after
 * reporting an error at n for the current path. */
int gm_objects_str(struct gm_objdec *d, const struct gm_ynode *n, char **out);
int gm_objects_int(struct gm_objdec *d, const struct gm_ynode *n, int64_t min, int64_t max,
                   int64_t *out);

/* Strict decimal (optional sign, no leading zeros): 0, -EINVAL, or -ERANGE on overflow. */
int gm_objects_parse_int(const char *s, int64_t *out);
/* A map of strings into kvs (a null value is ""). */
void gm_objects_kvs(struct gm_objdec *d, const struct gm_ynode *v, struct gm_kvs *out);
/* "a mapping", "a sequence", ... for messages. */
const char *gm_objects_node_kind(const struct gm_ynode *n);
/* Report every key that occurs twice in some map under n (YAML keeps duplicates). */
void gm_objects_check_dups(struct gm_objdec *d, const struct gm_ynode *n, int depth);

/* The i-th item of a sequence, or NULL. */
const struct gm_ynode *gm_objects_item(const struct gm_ynode *seq, size_t i);
/* An enum-valued scalar: its index in names[count], or -1 (an error is reported unless the
 * node is null). */
int gm_objects_enum(struct gm_objdec *d, const struct gm_ynode *n, const char *what,
                    const char *const *names, size_t count);

/* Shared checks (gm_check_fn). */
const char *gm_objects_check_port_name(const char *s);   /* IANA service name */
const char *gm_objects_check_header_name(const char *s); /* RFC 7230 token, <= 256 */
const char *gm_objects_check_method(const char *s);      /* the HTTPRoute method enum */

#define GM_OBJ_MAX_PATH 1024 /* path values and path modifier values */

/* Object reference fields shared by backendRefs and the mirror's backendRef; prefix is the
 * member path to the struct gm_backend_obj_ref inside st ("ref." or empty). */
#define GM_OBJ_REF_FIELDS(st, prefix)                                                              \
    GM_FIELD_STR(st, "group", prefix group, NULL, 0),                                              \
        GM_FIELD_STR(st, "kind", prefix kind, NULL, 0),                                            \
        GM_FIELD_STR(st, "name", prefix name, NULL, GM_F_REQUIRED),                                \
        GM_FIELD_STR(st, "namespace", prefix namespace, NULL, 0),                                  \
        GM_FIELD_INT(st, "port", prefix port, 1, 65535, 0)

/* objects_filter.c: defaults (group "", kind Service, the route's namespace) and checks of a
 * decoded object reference at node n. */
void gm_objects_obj_ref_defaults(struct gm_objdec *d, const struct gm_ynode *n,
                                 struct gm_backend_obj_ref *r);
/* A filter list (at most 16) with its per-list rules; as gm_objects_seq. */
int gm_objects_filters_decode(struct gm_objdec *d, const struct gm_ynode *v, struct gm_filter **out,
                              size_t *n);
/* The field that holds a filter type's configuration ("urlRewrite"). */
const char *gm_objects_filter_key(enum gm_filter_type t);
/* The path modifier of a RequestRedirect or URLRewrite filter, else NULL. */
const struct gm_path_mod *gm_objects_filter_path_mod(const struct gm_filter *f);

/* Per-kind spec decoders (objects_route.c, objects_authz.c). */
void gm_objects_route_decode(struct gm_objdec *d, const struct gm_ynode *spec, struct gm_object *o);
void gm_objects_authz_decode(struct gm_objdec *d, const struct gm_ynode *spec, struct gm_object *o);

#endif
