/* The table-driven field decoder shared by objects*.c: field paths, located diagnostics,
 * strict scalars, maps by field table, bounded sequences, duplicate keys, durations. */
#include "objects_int.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>

/* ---- field paths and diagnostics ---- */

static size_t path_append(struct gm_objdec *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static size_t path_append(struct gm_objdec *d, const char *fmt, ...)
{
    size_t old = d->plen;
    va_list ap;

    va_start(ap, fmt);
    int n = vsnprintf(d->path + old, sizeof(d->path) - old, fmt, ap);
    va_end(ap);
    if (n > 0)
        d->plen += (size_t)n < sizeof(d->path) - old ? (size_t)n : sizeof(d->path) - old - 1;
    return old;
}

size_t gm_objects_push(struct gm_objdec *d, const char *key)
{
    return path_append(d, "%s%s", d->plen ? "." : "", key);
}

size_t gm_objects_push_index(struct gm_objdec *d, size_t i)
{
    return path_append(d, "[%zu]", i);
}

struct gm_loc gm_objects_loc(const struct gm_objdec *d, const struct gm_ynode *node)
{
    struct gm_loc loc = node->loc;

    loc.file = d->file;
    return loc;
}

void gm_objects_pop(struct gm_objdec *d, size_t old)
{
    d->plen = old;
    d->path[old] = '\0';
}

static void vreport(struct gm_objdec *d, enum gm_diag_severity sev, const struct gm_ynode *node,
                    const char *sub, const char *fmt, va_list ap)
    __attribute__((format(printf, 5, 0)));

static void vreport(struct gm_objdec *d, enum gm_diag_severity sev, const struct gm_ynode *node,
                    const char *sub, const char *fmt, va_list ap)
{
    char reason[512];
    size_t old = sub ? gm_objects_push(d, sub) : d->plen;

    vsnprintf(reason, sizeof(reason), fmt, ap);
    gm_diags_add(d->diags, sev, node ? &node->loc : NULL, d->label, d->plen ? d->path : NULL, "%s",
                 reason);
    gm_objects_pop(d, old);
    if (sev == GM_DIAG_ERROR)
        d->errors++;
}

void gm_objects_error(struct gm_objdec *d, const struct gm_ynode *node, const char *sub,
                      const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vreport(d, GM_DIAG_ERROR, node, sub, fmt, ap);
    va_end(ap);
}

void gm_objects_warn(struct gm_objdec *d, const struct gm_ynode *node, const char *sub,
                     const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vreport(d, GM_DIAG_WARNING, node, sub, fmt, ap);
    va_end(ap);
}

/* ---- scalars ---- */

const char *gm_objects_node_kind(const struct gm_ynode *n)
{
    switch (n->type) {
    case GM_YNODE_MAP:
        return "a mapping";
    case GM_YNODE_SEQ:
        return "a sequence";
    default:
        return n->plain ? "a scalar" : "a quoted string";
    }
}

int gm_objects_str(struct gm_objdec *d, const struct gm_ynode *n, char **out)
{
    if (gm_ynode_is_null(n))
        return 1;
    if (n->type != GM_YNODE_SCALAR) {
        gm_objects_error(d, n, NULL, "expected a string, got %s", gm_objects_node_kind(n));
        return -EINVAL;
    }
    if (strlen(n->str) != n->len) {
        gm_objects_error(d, n, NULL, "string contains a NUL character");
        return -EINVAL;
    }
    *out = gm_arena_strndup(d->a, n->str, n->len);
    return 0;
}

/* Strict decimal: optional sign, no leading zeros, no overflow. */
int gm_objects_parse_int(const char *s, int64_t *out)
{
    bool neg = *s == '-';
    uint64_t v = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;

    if (*s == '-' || *s == '+')
        s++;
    if (*s < '0' || *s > '9' || (s[0] == '0' && s[1] != '\0'))
        return -EINVAL;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -EINVAL;
        unsigned dig = (unsigned)(*s - '0');
        if (v > (lim - dig) / 10)
            return -ERANGE;
        v = v * 10 + dig;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

int gm_objects_int(struct gm_objdec *d, const struct gm_ynode *n, int64_t min, int64_t max,
                   int64_t *out)
{
    int64_t v;

    if (gm_ynode_is_null(n))
        return 1;
    if (n->type != GM_YNODE_SCALAR || !n->plain) {
        if (n->type == GM_YNODE_SCALAR)
            gm_objects_error(d, n, NULL, "expected an integer, got the string \"%s\"", n->str);
        else
            gm_objects_error(d, n, NULL, "expected an integer, got %s", gm_objects_node_kind(n));
        return -EINVAL;
    }
    int rc = gm_objects_parse_int(n->str, &v);
    if (rc == -ERANGE || (rc == 0 && (v < min || v > max))) {
        gm_objects_error(d, n, NULL, "%s is out of range %lld..%lld", n->str, (long long)min,
                         (long long)max);
        return -EINVAL;
    }
    if (rc < 0) {
        gm_objects_error(d, n, NULL, "\"%s\" is not a decimal integer", n->str);
        return -EINVAL;
    }
    *out = v;
    return 0;
}

static int decode_bool(struct gm_objdec *d, const struct gm_ynode *n, bool *out)
{
    static const char *const yes[] = {"true", "True", "TRUE"};
    static const char *const no[] = {"false", "False", "FALSE"};

    if (gm_ynode_is_null(n))
        return 1;
    for (size_t i = 0; n->type == GM_YNODE_SCALAR && n->plain && i < GM_ARRAY_LEN(yes); i++) {
        if (strcmp(n->str, yes[i]) == 0 || strcmp(n->str, no[i]) == 0) {
            *out = strcmp(n->str, yes[i]) == 0;
            return 0;
        }
    }
    if (n->type == GM_YNODE_SCALAR)
        gm_objects_error(d, n, NULL, "expected true or false, got \"%s\"", n->str);
    else
        gm_objects_error(d, n, NULL, "expected true or false, got %s", gm_objects_node_kind(n));
    return -EINVAL;
}

/* ---- durations (GEP-2257) ---- */

int gm_duration_parse(const char *s, int64_t *ms)
{
    int64_t total = 0;
    int parts = 0;

    if (s == NULL || *s == '\0')
        return -EINVAL;
    while (*s) {
        int64_t v = 0, unit;
        int digits = 0;

        if (parts == 4)
            return -EINVAL;
        for (; *s >= '0' && *s <= '9'; s++) {
            if (++digits > 5)
                return -EINVAL;
            v = v * 10 + (*s - '0');
        }
        if (digits == 0)
            return -EINVAL;
        if (s[0] == 'h') {
            unit = 3600000;
            s++;
        } else if (s[0] == 'm' && s[1] == 's') {
            unit = 1;
            s += 2;
        } else if (s[0] == 'm' || s[0] == 's') {
            unit = s[0] == 'm' ? 60000 : 1000;
            s++;
        } else {
            return -EINVAL;
        }
        total += v * unit;
        parts++;
    }
    *ms = total;
    return 0;
}

/* ---- field tables ---- */

static void *member(void *base, const struct gm_field *f)
{
    return (char *)base + f->off;
}

static void decode_str_field(struct gm_objdec *d, const struct gm_field *f,
                             const struct gm_ynode *v, void *base)
{
    char *s;

    if (gm_objects_str(d, v, &s) != 0)
        return;
    const char *why = f->check ? f->check(s) : NULL;
    if (why)
        gm_objects_error(d, v, NULL, "\"%s\": %s", s, why);
    *(char **)member(base, f) = s;
}

static void decode_strs(struct gm_objdec *d, const struct gm_field *f, const struct gm_ynode *v,
                        struct gm_strs *out)
{
    size_t n;

    if (v->type != GM_YNODE_SEQ) {
        gm_objects_error(d, v, NULL, "expected a sequence of strings, got %s",
                         gm_objects_node_kind(v));
        return;
    }
    n = v->n;
    if (f->max > 0 && n > (uint64_t)f->max) {
        gm_objects_error(d, v, NULL, "%zu entries; at most %lld allowed", n, (long long)f->max);
        n = (size_t)f->max;
    }
    out->v = GM_ARENA_ARRAY(d->a, char *, n ? n : 1);
    out->n = 0; /* a duplicate key decodes again: start over */
    for (size_t i = 0; i < n; i++) {
        size_t old = gm_objects_push_index(d, i);
        char *s = NULL;
        int rc = gm_objects_str(d, v->items[i], &s);
        if (rc == 1)
            gm_objects_error(d, v->items[i], NULL, "expected a string, got null");
        const char *why = rc == 0 && f->check ? f->check(s) : NULL;
        if (why)
            gm_objects_error(d, v->items[i], NULL, "\"%s\": %s", s, why);
        if (rc == 0)
            out->v[out->n++] = s;
        gm_objects_pop(d, old);
    }
}

void gm_objects_kvs(struct gm_objdec *d, const struct gm_ynode *v, struct gm_kvs *out)
{
    if (v->type != GM_YNODE_MAP) {
        gm_objects_error(d, v, NULL, "expected a mapping of strings, got %s",
                         gm_objects_node_kind(v));
        return;
    }
    out->v = GM_ARENA_ARRAY(d->a, struct gm_kv, v->n ? v->n : 1);
    out->n = 0; /* a duplicate key decodes again: start over */
    for (size_t i = 0; i < v->n; i++) {
        const struct gm_ynode *k = v->pairs[i].key;
        struct gm_kv *kv = &out->v[out->n];
        if (gm_objects_str(d, k, &kv->key) != 0)
            continue;
        size_t old = gm_objects_push(d, kv->key);
        int rc = gm_objects_str(d, v->pairs[i].value, &kv->value);
        if (rc == 1)
            kv->value = gm_arena_strdup(d->a, "");
        if (rc >= 0)
            out->n++;
        gm_objects_pop(d, old);
    }
}

static void decode_int_field(struct gm_objdec *d, const struct gm_field *f,
                             const struct gm_ynode *v, void *base)
{
    int64_t x;

    if (gm_objects_int(d, v, f->min, f->max, &x) != 0)
        return;
    if (f->type == GM_FT_INT)
        *(int *)member(base, f) = (int)x;
    else
        *(int64_t *)member(base, f) = x;
}

static void decode_duration(struct gm_objdec *d, const struct gm_field *f, const struct gm_ynode *v,
                            void *base)
{
    int64_t ms;

    if (v->type != GM_YNODE_SCALAR) {
        gm_objects_error(d, v, NULL, "expected a duration, got %s", gm_objects_node_kind(v));
        return;
    }
    if (gm_duration_parse(v->str, &ms) < 0) {
        gm_objects_error(d, v, NULL,
                         "invalid duration \"%s\": want 1 to 4 of <1-5 digits><h|m|s|ms>, "
                         "e.g. 1h30m or 500ms",
                         v->str);
        return;
    }
    *(int64_t *)member(base, f) = ms;
}

static void decode_field(struct gm_objdec *d, const struct gm_field *f, const struct gm_ynode *v,
                         void *base)
{
    switch (f->type) {
    case GM_FT_STR:
        decode_str_field(d, f, v, base);
        break;
    case GM_FT_INT:
    case GM_FT_INT64:
        decode_int_field(d, f, v, base);
        break;
    case GM_FT_BOOL:
        decode_bool(d, v, (bool *)member(base, f));
        break;
    case GM_FT_STRS:
        decode_strs(d, f, v, (struct gm_strs *)member(base, f));
        break;
    case GM_FT_KVS:
        gm_objects_kvs(d, v, (struct gm_kvs *)member(base, f));
        break;
    case GM_FT_DURATION:
        decode_duration(d, f, v, base);
        break;
    case GM_FT_NODE:
        *(const struct gm_ynode **)member(base, f) = v;
        break;
    case GM_FT_FUNC:
        f->fn(d, v, base);
        break;
    case GM_FT_WARN:
        gm_objects_warn(d, v, NULL, "not supported; ignored");
        break;
    default:
        break;
    }
}

static const struct gm_field *field_find(const struct gm_field *f, size_t nf, const char *key)
{
    for (size_t i = 0; i < nf; i++)
        if (strcmp(f[i].name, key) == 0)
            return &f[i];
    return NULL;
}

int gm_objects_map(struct gm_objdec *d, const struct gm_ynode *n, const struct gm_field *f,
                   size_t nf, bool strict, void *base)
{
    uint64_t present = 0;

    GM_ASSERT(nf <= 64);
    if (n->type != GM_YNODE_MAP) {
        gm_objects_error(d, n, NULL, "expected a mapping, got %s", gm_objects_node_kind(n));
        return -EINVAL;
    }
    for (size_t i = 0; i < n->n; i++) {
        const struct gm_ynode *k = n->pairs[i].key, *v = n->pairs[i].value;
        const struct gm_field *fd = k->type == GM_YNODE_SCALAR ? field_find(f, nf, k->str) : NULL;
        if (fd == NULL) {
            if (strict)
                gm_objects_error(d, k, k->type == GM_YNODE_SCALAR ? k->str : NULL, "unknown field");
            continue;
        }
        present |= 1ull << (fd - f);
        if (gm_ynode_is_null(v)) { /* null is absent */
            if (fd->flags & GM_F_REQUIRED)
                gm_objects_error(d, v, fd->name, "required field is null");
            continue;
        }
        size_t old = gm_objects_push(d, fd->name);
        decode_field(d, fd, v, base);
        gm_objects_pop(d, old);
    }
    for (size_t i = 0; i < nf; i++)
        if ((f[i].flags & GM_F_REQUIRED) && !(present & (1ull << i)))
            gm_objects_error(d, n, f[i].name, "missing required field");
    return 0;
}

int gm_objects_seq(struct gm_objdec *d, const struct gm_ynode *n, size_t max, size_t elem_size,
                   void **out, size_t *count, gm_item_fn fn)
{
    size_t k;

    *out = NULL;
    *count = 0;
    if (gm_ynode_is_null(n))
        return 0;
    if (n->type != GM_YNODE_SEQ) {
        gm_objects_error(d, n, NULL, "expected a sequence, got %s", gm_objects_node_kind(n));
        return -EINVAL;
    }
    k = n->n;
    if (k > max) {
        gm_objects_error(d, n, NULL, "%zu entries; at most %zu allowed", k, max);
        k = max;
    }
    char *arr = gm_arena_alloc(d->a, elem_size * (k ? k : 1));
    for (size_t i = 0; i < k; i++) {
        size_t old = gm_objects_push_index(d, i);
        fn(d, n->items[i], arr + i * elem_size);
        gm_objects_pop(d, old);
    }
    *out = arr;
    *count = k;
    return 0;
}

/* ---- shared checks ---- */

static bool is_lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* IANA service name (Kubernetes named ports). */
const char *gm_objects_check_port_name(const char *s)
{
    size_t n = strlen(s);
    bool letter = false;

    if (n == 0 || n > 15)
        return "a port name must have 1 to 15 characters";
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '-' && (i == 0 || i == n - 1 || s[i - 1] == '-'))
            return "a port name may not start or end with '-' nor contain \"--\"";
        if (s[i] != '-' && !is_lower_alnum(s[i]))
            return "a port name may contain only a-z, 0-9 and '-'";
        letter |= s[i] >= 'a' && s[i] <= 'z';
    }
    return letter ? NULL : "a port name must contain at least one letter";
}

/* ---- HTTP and Gateway API checks ---- */

static bool is_tchar(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* RFC 7230 token, as the CRD's HTTPHeaderName. */
const char *gm_objects_check_header_name(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 256)
        return "a header name must have 1 to 256 characters";
    for (size_t i = 0; i < n; i++)
        if (!is_tchar(s[i]))
            return "a header name must be an RFC 7230 token";
    return NULL;
}

static const char *const methods[] = {"GET",     "HEAD",    "POST",  "PUT",  "DELETE",
                                      "CONNECT", "OPTIONS", "TRACE", "PATCH"};

const char *gm_objects_check_method(const char *s)
{
    for (size_t i = 0; i < GM_ARRAY_LEN(methods); i++)
        if (strcmp(s, methods[i]) == 0)
            return NULL;
    return "method must be one of GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH";
}

/* Index of s in names[], or -1. */
static int lookup(const char *s, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (names[i] && strcmp(s, names[i]) == 0)
            return (int)i;
    return -1;
}

int gm_objects_enum(struct gm_objdec *d, const struct gm_ynode *n, const char *what,
                    const char *const *names, size_t count)
{
    char *s;

    if (gm_objects_str(d, n, &s) != 0)
        return -1;
    int v = lookup(s, names, count);
    if (v < 0)
        gm_objects_error(d, n, NULL, "unsupported %s \"%s\"", what, s);
    return v;
}

const struct gm_ynode *gm_objects_item(const struct gm_ynode *seq, size_t i)
{
    return seq && seq->type == GM_YNODE_SEQ && i < seq->n ? seq->items[i] : NULL;
}

/* ---- duplicate keys (YAML keeps them; an object that has any is rejected) ---- */

struct keyref {
    const struct gm_ynode *key;
    size_t idx;
};

static int keyref_cmp(const void *pa, const void *pb)
{
    const struct keyref *a = pa, *b = pb;

    if (a->key->len != b->key->len)
        return a->key->len < b->key->len ? -1 : 1;
    int c = memcmp(a->key->str, b->key->str, a->key->len);
    if (c)
        return c;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

static void check_map_dups(struct gm_objdec *d, const struct gm_ynode *n)
{
    struct keyref *keys = gm_xmalloc((n->n + 1) * sizeof(*keys));
    size_t nk = 0;

    for (size_t i = 0; i < n->n; i++) {
        if (n->pairs[i].key->type != GM_YNODE_SCALAR)
            continue;
        keys[nk].key = n->pairs[i].key;
        keys[nk++].idx = i;
    }
    qsort(keys, nk, sizeof(*keys), keyref_cmp);
    for (size_t i = 1; i < nk; i++) {
        const struct gm_ynode *x = keys[i].key, *y = keys[i - 1].key;
        if (x->len == y->len && memcmp(x->str, y->str, x->len) == 0)
            gm_objects_error(d, x, x->str, "duplicate key \"%s\"", x->str);
    }
    free(keys);
}

void gm_objects_check_dups(struct gm_objdec *d, const struct gm_ynode *n, int depth)
{
    if (n == NULL || depth > 64)
        return;
    if (n->type == GM_YNODE_SEQ) {
        for (size_t i = 0; i < n->n; i++) {
            size_t old = gm_objects_push_index(d, i);
            gm_objects_check_dups(d, n->items[i], depth + 1);
            gm_objects_pop(d, old);
        }
    } else if (n->type == GM_YNODE_MAP) {
        check_map_dups(d, n);
        for (size_t i = 0; i < n->n; i++) {
            const struct gm_ynode *k = n->pairs[i].key;
            size_t old = gm_objects_push(d, k->type == GM_YNODE_SCALAR ? k->str : "?");
            gm_objects_check_dups(d, n->pairs[i].value, depth + 1);
            gm_objects_pop(d, old);
        }
    }
}
