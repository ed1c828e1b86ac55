/* HTTPRoute filters (rule- and backend-level): the seven filter types with their configuration
 * blocks, CRD validation and defaults, and the per-list rules (most types at most once,
 * RequestRedirect excludes URLRewrite). */
#include "objects_int.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

#define MAX_FILTERS     16
#define MAX_HEADER_MODS 16 /* set, add, remove per header filter */
#define MAX_CORS_LIST   64

#define TYPE_INVALID GM_FILTER__MAX /* marks a filter whose type was rejected */

static const struct filter_def {
    const char *type; /* value of `type` */
    const char *key;  /* the field holding its configuration */
} filter_defs[GM_FILTER__MAX] = {
    [GM_FILTER_REQUEST_HEADER] = {"RequestHeaderModifier", "requestHeaderModifier"},
    [GM_FILTER_RESPONSE_HEADER] = {"ResponseHeaderModifier", "responseHeaderModifier"},
    [GM_FILTER_REDIRECT] = {"RequestRedirect", "requestRedirect"},
    [GM_FILTER_REWRITE] = {"URLRewrite", "urlRewrite"},
    [GM_FILTER_MIRROR] = {"RequestMirror", "requestMirror"},
    [GM_FILTER_CORS] = {"CORS", "cors"},
    [GM_FILTER_EXTENSION_REF] = {"ExtensionRef", "extensionRef"},
};

const char *gm_filter_type_name(enum gm_filter_type t)
{
    return (unsigned)t < GM_FILTER__MAX ? filter_defs[t].type : "Unknown";
}

/* ---- checks ---- */

static const char *check_cors_method(const char *s)
{
    return strcmp(s, "*") == 0 ? NULL : gm_objects_check_method(s);
}

static const char *check_cors_header(const char *s)
{
    return strcmp(s, "*") == 0 ? NULL : gm_objects_check_header_name(s);
}

static const char *check_precise_hostname(const char *s)
{
    return gm_check_dns_subdomain(s) ? "must be a lower-case DNS name without wildcard" : NULL;
}

static const char *check_scheme(const char *s)
{
    return strcmp(s, "http") == 0 || strcmp(s, "https") == 0 ? NULL
                                                             : "scheme must be http or https";
}

/* ---- filters ---- */

static int decode_header_kv(struct gm_objdec *d, const struct gm_ynode *item, void *elem)
{
    static const struct gm_field fields[] = {
        GM_FIELD_STR(struct gm_kv, "name", key, gm_objects_check_header_name, GM_F_REQUIRED),
        GM_FIELD_STR(struct gm_kv, "value", value, NULL, GM_F_REQUIRED),
    };
    struct gm_kv *kv = elem;

    gm_objects_map(d, item, fields, GM_ARRAY_LEN(fields), true, kv);
    if (kv->value && strlen(kv->value) > 4096)
        gm_objects_error(d, gm_ynode_get(item, "value"), "value",
                         "must have at most 4096 characters");
    return 0;
}

/* set/add: at most one entry per header name (case-insensitive). */
static int decode_header_kvs(struct gm_objdec *d, const struct gm_ynode *v, struct gm_kvs *out)
{
    int rc = gm_objects_seq(d, v, MAX_HEADER_MODS, sizeof(*out->v), (void **)&out->v, &out->n,
                            decode_header_kv);

    for (size_t i = 0; i < out->n; i++) {
        for (size_t j = 0; j < i && out->v[i].key; j++) {
            if (out->v[j].key && gm_str_ieq(out->v[i].key, out->v[j].key)) {
                size_t old = gm_objects_push_index(d, i);
                gm_objects_error(d, gm_ynode_get(gm_objects_item(v, i), "name"), "name",
                                 "header \"%s\" is listed twice", out->v[i].key);
                gm_objects_pop(d, old);
                break;
            }
        }
    }
    return rc;
}

static int decode_header_set(struct gm_objdec *d, const struct gm_ynode *v, void *base)
{
    return decode_header_kvs(d, v, &((struct gm_header_mod *)base)->set);
}

static int decode_header_add(struct gm_objdec *d, const struct gm_ynode *v, void *base)
{
    return decode_header_kvs(d, v, &((struct gm_header_mod *)base)->add);
}

static const struct gm_field header_mod_fields[] = {
    GM_FIELD_FUNC("set", decode_header_set, 0),
    GM_FIELD_FUNC("add", decode_header_add, 0),
    GM_FIELD_STRS(struct gm_header_mod, "remove", remove, MAX_HEADER_MODS,
                  gm_objects_check_header_name),
};

struct path_mod_tmp {
    const struct gm_ynode *type;
    char *full;
    char *prefix;
};

static const struct gm_field path_mod_fields[] = {
    GM_FIELD_NODE(struct path_mod_tmp, "type", type, GM_F_REQUIRED),
    GM_FIELD_STR(struct path_mod_tmp, "replaceFullPath", full, NULL, 0),
    GM_FIELD_STR(struct path_mod_tmp, "replacePrefixMatch", prefix, NULL, 0),
};

static const char *const path_mod_types[GM_PATHMOD__MAX] = {
    [GM_PATHMOD_FULL] = "ReplaceFullPath", [GM_PATHMOD_PREFIX] = "ReplacePrefixMatch"};
static const char *const path_mod_keys[GM_PATHMOD__MAX] = {
    [GM_PATHMOD_FULL] = "replaceFullPath", [GM_PATHMOD_PREFIX] = "replacePrefixMatch"};

static void path_mod_value(struct gm_objdec *d, const struct gm_ynode *v, struct gm_path_mod *pm,
                           const struct path_mod_tmp *t)
{
    char *vals[GM_PATHMOD__MAX] = {[GM_PATHMOD_FULL] = t->full, [GM_PATHMOD_PREFIX] = t->prefix};
    int other = pm->type == GM_PATHMOD_FULL ? GM_PATHMOD_PREFIX : GM_PATHMOD_FULL;
    const char *key = path_mod_keys[pm->type];

    if (vals[other])
        gm_objects_error(d, v, path_mod_keys[other], "must not be set when type is %s",
                         path_mod_types[pm->type]);
    pm->value = vals[pm->type];
    if (pm->value == NULL)
        gm_objects_error(d, v, key, "required when type is %s", path_mod_types[pm->type]);
    else if (pm->value[0] == '\0' && pm->type == GM_PATHMOD_FULL)
        gm_objects_error(d, gm_ynode_get(v, key), key, "must not be empty");
    else if (pm->value[0] != '\0' && pm->value[0] != '/')
        gm_objects_error(d, gm_ynode_get(v, key), key, "\"%s\": must start with '/'", pm->value);
    else if (strlen(pm->value) > GM_OBJ_MAX_PATH)
        gm_objects_error(d, gm_ynode_get(v, key), key, "must have at most 1024 characters");
}

static int decode_path_mod(struct gm_objdec *d, const struct gm_ynode *v, struct gm_path_mod *pm)
{
    struct path_mod_tmp t = {0};

    if (gm_objects_map(d, v, path_mod_fields, GM_ARRAY_LEN(path_mod_fields), true, &t) < 0)
        return -EINVAL;
    if (t.type == NULL)
        return -EINVAL;
    size_t old = gm_objects_push(d, "type");
    int type = gm_objects_enum(d, t.type, "path modifier type", path_mod_types, GM_PATHMOD__MAX);
    gm_objects_pop(d, old);
    if (type < 0)
        return -EINVAL;
    pm->set = true;
    pm->type = (enum gm_path_mod_type)type;
    path_mod_value(d, v, pm, &t);
    return 0;
}

static int decode_redirect_path(struct gm_objdec *d, const struct gm_ynode *v, void *base)
{
    return decode_path_mod(d, v, &((struct gm_redirect *)base)->path);
}

static int decode_rewrite_path(struct gm_objdec *d, const struct gm_ynode *v, void *base)
{
    return decode_path_mod(d, v, &((struct gm_rewrite *)base)->path);
}

static int decode_status_code(struct gm_objdec *d, const struct gm_ynode *v, void *base)
{
    struct gm_redirect *r = base;
    int64_t code;

    if (gm_objects_int(d, v, INT_MIN, INT_MAX, &code) != 0)
        return 0;
    if (code != 301 && code != 302 && code != 303 && code != 307 && code != 308) {
        gm_objects_error(d, v, NULL, "%lld is not a redirect status (301, 302, 303, 307, 308)",
                         (long long)code);
        return 0;
    }
    r->status = (int)code;
    return 0;
}

static const struct gm_field redirect_fields[] = {
    GM_FIELD_STR(struct gm_redirect, "scheme", scheme, check_scheme, 0),
    GM_FIELD_STR(struct gm_redirect, "hostname", hostname, check_precise_hostname, 0),
    GM_FIELD_FUNC("path", decode_redirect_path, 0),
    GM_FIELD_INT(struct gm_redirect, "port", port, 1, 65535, 0),
    GM_FIELD_FUNC("statusCode", decode_status_code, 0),
};

static const struct gm_field rewrite_fields[] = {
    GM_FIELD_STR(struct gm_rewrite, "hostname", hostname, check_precise_hostname, 0),
    GM_FIELD_FUNC("path", decode_rewrite_path, 0),
};

void gm_objects_obj_ref_defaults(struct gm_objdec *d, const struct gm_ynode *n,
                                 struct gm_backend_obj_ref *r)
{
    r->loc = gm_objects_loc(d, n);
    if (r->group == NULL)
        r->group = "";
    if (r->kind == NULL)
        r->kind = "Service";
    if (r->namespace == NULL)
        r->namespace = (char *)d->ns;
    if (r->name && r->name[0] == '\0')
        gm_objects_error(d, gm_ynode_get(n, "name"), "name", "must not be empty");
    if (r->group[0] == '\0' && strcmp(r->kind, "Service") == 0 && r->name &&
        gm_ynode_is_null(gm_ynode_get(n, "port")))
        gm_objects_error(d, n, "port", "required when referring to a Service");
}

static const struct gm_field mirror_ref_fields[] = {
    GM_OBJ_REF_FIELDS(struct gm_backend_obj_ref, ),
};

static int decode_mirror_ref(struct gm_objdec *d, const struct gm_ynode *v, void *base)
{
    struct gm_mirror *m = base;

    if (gm_objects_map(d, v, mirror_ref_fields, GM_ARRAY_LEN(mirror_ref_fields), true,
                       &m->backend) == 0)
        gm_objects_obj_ref_defaults(d, v, &m->backend);
    return 0;
}

struct fraction {
    int num, den;
};

static const struct gm_field fraction_fields[] = {
    GM_FIELD_INT(struct fraction, "numerator", num, 0, INT_MAX, GM_F_REQUIRED),
    GM_FIELD_INT(struct fraction, "denominator", den, 1, INT_MAX, 0),
};

static int decode_fraction(struct gm_objdec *d, const struct gm_ynode *v, void *base)
{
    struct gm_mirror *m = base;
    struct fraction f = {-1, 100};

    if (gm_objects_map(d, v, fraction_fields, GM_ARRAY_LEN(fraction_fields), true, &f) < 0)
        return -EINVAL;
    if (f.num > f.den)
        gm_objects_error(d, gm_ynode_get(v, "numerator"), "numerator",
                         "%d exceeds the denominator %d", f.num, f.den);
    m->fraction_num = f.num;
    m->fraction_den = f.den;
    return 0;
}

static const struct gm_field mirror_fields[] = {
    GM_FIELD_FUNC("backendRef", decode_mirror_ref, GM_F_REQUIRED),
    GM_FIELD_INT(struct gm_mirror, "percent", percent, 0, 100, 0),
    GM_FIELD_FUNC("fraction", decode_fraction, 0),
};

static const struct gm_field cors_fields[] = {
    GM_FIELD_STRS(struct gm_cors, "allowOrigins", allow_origins, MAX_CORS_LIST, NULL),
    GM_FIELD_BOOL(struct gm_cors, "allowCredentials", allow_credentials),
    GM_FIELD_STRS(struct gm_cors, "allowMethods", allow_methods, 9, check_cors_method),
    GM_FIELD_STRS(struct gm_cors, "allowHeaders", allow_headers, MAX_CORS_LIST, check_cors_header),
    GM_FIELD_STRS(struct gm_cors, "exposeHeaders", expose_headers, MAX_CORS_LIST,
                  check_cors_header),
    GM_FIELD_INT(struct gm_cors, "maxAge", max_age, 1, INT_MAX, 0),
};

static const struct gm_field ext_ref_fields[] = {
    GM_FIELD_STR(struct gm_ext_ref, "group", group, NULL, GM_F_REQUIRED),
    GM_FIELD_STR(struct gm_ext_ref, "kind", kind, NULL, GM_F_REQUIRED),
    GM_FIELD_STR(struct gm_ext_ref, "name", name, NULL, GM_F_REQUIRED),
};

static void mirror_defaults(struct gm_objdec *d, const struct gm_ynode *v, struct gm_mirror *m)
{
    if (m->percent >= 0 && m->fraction_den > 0) {
        gm_objects_error(d, gm_ynode_get(v, "fraction"), "fraction",
                         "only one of percent and fraction may be set");
    } else if (m->fraction_den > 0) {
        m->percent = (int)((int64_t)m->fraction_num * 100 / m->fraction_den); /* approximation */
    } else if (m->percent < 0) {
        m->percent = 100;
    }
}

/* The configuration block of a filter whose type is known. */
static void decode_filter_config(struct gm_objdec *d, const struct gm_ynode *v, struct gm_filter *f)
{
    switch (f->type) {
    case GM_FILTER_REQUEST_HEADER:
    case GM_FILTER_RESPONSE_HEADER:
        gm_objects_map(d, v, header_mod_fields, GM_ARRAY_LEN(header_mod_fields), true, &f->header);
        break;
    case GM_FILTER_REDIRECT:
        f->redirect.port = -1;
        f->redirect.status = 302;
        gm_objects_map(d, v, redirect_fields, GM_ARRAY_LEN(redirect_fields), true, &f->redirect);
        break;
    case GM_FILTER_REWRITE:
        gm_objects_map(d, v, rewrite_fields, GM_ARRAY_LEN(rewrite_fields), true, &f->rewrite);
        break;
    case GM_FILTER_MIRROR:
        f->mirror.percent = f->mirror.fraction_num = f->mirror.fraction_den = -1;
        f->mirror.backend.port = -1;
        if (gm_objects_map(d, v, mirror_fields, GM_ARRAY_LEN(mirror_fields), true, &f->mirror) == 0)
            mirror_defaults(d, v, &f->mirror);
        break;
    case GM_FILTER_CORS:
        f->cors.max_age = 5;
        gm_objects_map(d, v, cors_fields, GM_ARRAY_LEN(cors_fields), true, &f->cors);
        break;
    case GM_FILTER_EXTENSION_REF:
        gm_objects_map(d, v, ext_ref_fields, GM_ARRAY_LEN(ext_ref_fields), true, &f->ext);
        break;
    default:
        break;
    }
}

/* Index of a configuration key in filter_defs, GM_FILTER__MAX for externalAuth, or -1. */
static int filter_key(const struct gm_ynode *k)
{
    if (k->type != GM_YNODE_SCALAR)
        return -1;
    for (int i = 0; i < GM_FILTER__MAX; i++)
        if (strcmp(k->str, filter_defs[i].key) == 0)
            return i;
    return strcmp(k->str, "externalAuth") == 0 ? GM_FILTER__MAX : -1;
}

static int filter_type(struct gm_objdec *d, const struct gm_ynode *item)
{
    const struct gm_ynode *tn = gm_ynode_get(item, "type");
    char *s;
    int t = -1;

    size_t old = gm_objects_push(d, "type");
    int rc = gm_objects_str(d, tn, &s);
    if (rc == 1)
        gm_objects_error(d, item, NULL, "missing required field");
    for (int i = 0; rc == 0 && i < GM_FILTER__MAX; i++)
        if (strcmp(s, filter_defs[i].type) == 0)
            t = i;
    if (rc == 0 && t < 0)
        gm_objects_error(d, tn, NULL, "unsupported filter type \"%s\"", s);
    gm_objects_pop(d, old);
    return t;
}

static int decode_filter(struct gm_objdec *d, const struct gm_ynode *item, void *elem)
{
    struct gm_filter *f = elem;

    f->loc = gm_objects_loc(d, item);
    f->type = TYPE_INVALID;
    if (item->type != GM_YNODE_MAP) {
        gm_objects_error(d, item, NULL, "expected a mapping, got %s", gm_objects_node_kind(item));
        return -EINVAL;
    }
    int t = filter_type(d, item);
    for (size_t i = 0; i < item->n; i++) {
        const struct gm_ynode *k = item->pairs[i].key;
        int ki = filter_key(k);
        if (k->type == GM_YNODE_SCALAR && strcmp(k->str, "type") == 0)
            continue;
        if (ki < 0)
            gm_objects_error(d, k, k->type == GM_YNODE_SCALAR ? k->str : NULL, "unknown field");
        else if (t >= 0 && ki != t && !gm_ynode_is_null(item->pairs[i].value))
            gm_objects_error(d, k, k->str, "must not be set when type is %s", filter_defs[t].type);
    }
    if (t < 0)
        return -EINVAL;
    const struct gm_ynode *cfg = gm_ynode_get(item, filter_defs[t].key);
    size_t old = gm_objects_push(d, filter_defs[t].key);
    if (gm_ynode_is_null(cfg))
        gm_objects_error(d, item, NULL, "required when type is %s", filter_defs[t].type);
    f->type = (enum gm_filter_type)t;
    if (!gm_ynode_is_null(cfg))
        decode_filter_config(d, cfg, f);
    gm_objects_pop(d, old);
    return 0;
}

/* CRD rules over one filter list: most types at most once; redirect excludes rewrite. */
static void check_filter_list(struct gm_objdec *d, const struct gm_ynode *list,
                              const struct gm_filter *f, size_t n)
{
    unsigned seen[GM_FILTER__MAX] = {0};

    for (size_t i = 0; i < n; i++) {
        enum gm_filter_type t = f[i].type;
        if (t >= GM_FILTER__MAX)
            continue;
        size_t old = gm_objects_push_index(d, i);
        bool repeatable = t == GM_FILTER_MIRROR || t == GM_FILTER_EXTENSION_REF;
        const struct gm_ynode *tn = gm_ynode_get(gm_objects_item(list, i), "type");
        if (seen[t]++ && !repeatable)
            gm_objects_error(d, tn, "type", "%s may appear only once in a list",
                             filter_defs[t].type);
        else if ((t == GM_FILTER_REDIRECT && seen[GM_FILTER_REWRITE]) ||
                 (t == GM_FILTER_REWRITE && seen[GM_FILTER_REDIRECT]))
            gm_objects_error(d, tn, "type", "RequestRedirect and URLRewrite cannot be combined");
        gm_objects_pop(d, old);
    }
}

int gm_objects_filters_decode(struct gm_objdec *d, const struct gm_ynode *v, struct gm_filter **out,
                              size_t *n)
{
    int rc = gm_objects_seq(d, v, MAX_FILTERS, sizeof(**out), (void **)out, n, decode_filter);

    if (rc == 0)
        check_filter_list(d, v, *out, *n);
    return rc;
}

const struct gm_path_mod *gm_objects_filter_path_mod(const struct gm_filter *f)
{
    if (f->type == GM_FILTER_REDIRECT)
        return &f->redirect.path;
    if (f->type == GM_FILTER_REWRITE)
        return &f->rewrite.path;
    return NULL;
}

const char *gm_objects_filter_key(enum gm_filter_type t)
{
    return (unsigned)t < GM_FILTER__MAX ? filter_defs[t].key : "";
}
