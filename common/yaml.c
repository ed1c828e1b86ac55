/* Located YAML trees on top of libyaml's event parser.
 *
 * Events are folded into gm_ynode trees in the caller's arena. Open collections live on a
 * bounded stack of frames whose child lists are heap vectors; a closed collection is copied
 * into the arena at its exact size. Anchors are registered when their node is complete, so an
 * alias can never create a cycle. Aliases share their target and count its whole subtree
 * against the node limit, which defuses "billion laughs" documents for every tree walker.
 * Duplicate keys are kept in document order (gm_ynode_get finds the first); the object decoder
 * rejects documents that have them, so that a broken object keeps its last good version. */
#include "gammamesh/yaml.h"

#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <string.h>
#include <yaml.h>

#include "gammamesh/util.h"

#define YAML_MAX_DEPTH 64
#define YAML_MAX_NODES 100000
#define YAML_MAX_BYTES (64u << 20)

struct frame {
    struct gm_ynode *node;  /* the MAP or SEQ being built */
    struct gm_ynode **kids; /* heap; items, or keys and values alternating */
    size_t n, cap;
    char *anchor;      /* heap copy of the collection's anchor, or NULL */
    size_t nodes_open; /* node count when the collection opened */
};

struct anchor {
    char *name; /* heap; NULL marks an empty slot */
    struct gm_ynode *node;
    size_t size; /* nodes in the subtree, alias expansions included */
};

struct builder {
    struct gm_arena *a;
    const char *file; /* arena copy */
    struct gm_diags *diags;
    struct frame stack[YAML_MAX_DEPTH];
    int depth;
    size_t nodes;
    struct anchor *anchors; /* open-addressing hash table, per document */
    size_t n_anchors, cap_anchors;
    struct gm_ynode *root;
    struct gm_ynode **docs;
    size_t n_docs, cap_docs;
};

static struct gm_loc mark_loc(const struct builder *b, yaml_mark_t m)
{
    struct gm_loc loc = {b->file, (int)m.line + 1, (int)m.column + 1};
    return loc;
}

static int fail_at(struct builder *b, yaml_mark_t m, const char *reason)
{
    struct gm_loc loc = mark_loc(b, m);

    gm_diags_add(b->diags, GM_DIAG_ERROR, &loc, NULL, NULL, "%s", reason);
    return -EINVAL;
}

/* ---- anchors ---- */

static void anchors_clear(struct builder *b)
{
    for (size_t i = 0; i < b->cap_anchors; i++)
        free(b->anchors[i].name);
    free(b->anchors);
    b->anchors = NULL;
    b->n_anchors = b->cap_anchors = 0;
}

static struct anchor *anchor_slot(struct anchor *tab, size_t cap, const char *name)
{
    size_t i = (size_t)gm_hash_str(name) & (cap - 1);

    while (tab[i].name && strcmp(tab[i].name, name) != 0)
        i = (i + 1) & (cap - 1);
    return &tab[i];
}

static void anchors_grow(struct builder *b)
{
    size_t cap = b->cap_anchors ? b->cap_anchors * 2 : 64;
    struct anchor *tab = gm_xcalloc(cap, sizeof(*tab));

    for (size_t i = 0; i < b->cap_anchors; i++)
        if (b->anchors[i].name)
            *anchor_slot(tab, cap, b->anchors[i].name) = b->anchors[i];
    free(b->anchors);
    b->anchors = tab;
    b->cap_anchors = cap;
}

/* Register (or redefine: YAML lets a later anchor of the same name win). Takes `name`. */
static void anchor_set(struct builder *b, char *name, struct gm_ynode *node, size_t size)
{
    if (2 * (b->n_anchors + 1) > b->cap_anchors)
        anchors_grow(b);
    struct anchor *s = anchor_slot(b->anchors, b->cap_anchors, name);
    if (s->name) {
        free(name);
    } else {
        s->name = name;
        b->n_anchors++;
    }
    s->node = node;
    s->size = size;
}

static const struct anchor *anchor_get(const struct builder *b, const char *name)
{
    if (b->cap_anchors == 0)
        return NULL;
    const struct anchor *s = anchor_slot(b->anchors, b->cap_anchors, name);
    return s->name ? s : NULL;
}

/* ---- the tree ---- */

static int count_nodes(struct builder *b, size_t n, yaml_mark_t m)
{
    if (n > YAML_MAX_NODES || b->nodes > YAML_MAX_NODES - n) {
        b->nodes = YAML_MAX_NODES + 1;
        return fail_at(b, m,
                       "document too large: more than 100000 nodes "
                       "(aliases count their whole target)");
    }
    b->nodes += n;
    return 0;
}

/* Hand a finished node to the open collection, or make it the document root. */
static void attach(struct builder *b, struct gm_ynode *node)
{
    if (b->depth == 0) {
        b->root = node;
        return;
    }
    struct frame *f = &b->stack[b->depth - 1];
    GM_VEC_PUSH(f->kids, f->n, f->cap);
    f->kids[f->n - 1] = node;
}

static struct gm_ynode *node_new(struct builder *b, enum gm_ynode_type type, yaml_mark_t m)
{
    struct gm_ynode *n = GM_ARENA_NEW(b->a, struct gm_ynode);

    n->type = type;
    n->loc = mark_loc(b, m);
    return n;
}

static int on_scalar(struct builder *b, const yaml_event_t *ev)
{
    int rc = count_nodes(b, 1, ev->start_mark);
    if (rc < 0)
        return rc;
    struct gm_ynode *n = node_new(b, GM_YNODE_SCALAR, ev->start_mark);
    n->str = gm_arena_strndup(b->a, (const char *)ev->data.scalar.value, ev->data.scalar.length);
    n->len = ev->data.scalar.length;
    n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && ev->data.scalar.tag == NULL;
    if (ev->data.scalar.anchor)
        anchor_set(b, gm_xstrdup((const char *)ev->data.scalar.anchor), n, 1);
    attach(b, n);
    return 0;
}

static int on_alias(struct builder *b, const yaml_event_t *ev)
{
    const char *name = (const char *)ev->data.alias.anchor;
    const struct anchor *s = anchor_get(b, name);

    if (s == NULL) {
        char reason[160];
        snprintf(reason, sizeof(reason), "alias *%.100s refers to no complete anchor", name);
        return fail_at(b, ev->start_mark, reason);
    }
    int rc = count_nodes(b, s->size, ev->start_mark);
    if (rc < 0)
        return rc;
    attach(b, s->node);
    return 0;
}

static int on_open(struct builder *b, const yaml_event_t *ev, enum gm_ynode_type type,
                   const yaml_char_t *anchor)
{
    if (b->depth >= YAML_MAX_DEPTH)
        return fail_at(b, ev->start_mark, "nesting deeper than 64 levels");
    int rc = count_nodes(b, 1, ev->start_mark);
    if (rc < 0)
        return rc;
    struct frame *f = &b->stack[b->depth++];
    memset(f, 0, sizeof(*f));
    f->node = node_new(b, type, ev->start_mark);
    f->anchor = anchor ? gm_xstrdup((const char *)anchor) : NULL;
    f->nodes_open = b->nodes - 1;
    return 0;
}

static void build_map(struct builder *b, struct frame *f)
{
    struct gm_ynode *n = f->node;

    n->n = f->n / 2;
    n->pairs = GM_ARENA_ARRAY(b->a, struct gm_ypair, n->n ? n->n : 1);
    for (size_t i = 0; i < n->n; i++) {
        n->pairs[i].key = f->kids[2 * i];
        n->pairs[i].value = f->kids[2 * i + 1];
    }
}

static void build_seq(struct builder *b, struct frame *f)
{
    struct gm_ynode *n = f->node;

    n->n = f->n;
    n->items = GM_ARENA_ARRAY(b->a, struct gm_ynode *, n->n ? n->n : 1);
    if (n->n)
        memcpy(n->items, f->kids, n->n * sizeof(*n->items));
}

static void frame_free(struct frame *f)
{
    free(f->kids);
    free(f->anchor);
    f->kids = NULL;
    f->anchor = NULL;
}

static int on_close(struct builder *b)
{
    struct frame *f = &b->stack[b->depth - 1];

    if (f->node->type == GM_YNODE_MAP) {
        build_map(b, f);
    } else {
        build_seq(b, f);
    }
    if (f->anchor) {
        anchor_set(b, f->anchor, f->node, b->nodes - f->nodes_open);
        f->anchor = NULL;
    }
    struct gm_ynode *node = f->node;
    frame_free(f);
    b->depth--;
    attach(b, node);
    return 0;
}

/* ---- documents ---- */

static bool root_is_empty(const struct gm_ynode *n)
{
    return n == NULL || (n->type == GM_YNODE_SCALAR && gm_ynode_is_null(n));
}

static void on_doc_end(struct builder *b)
{
    if (!root_is_empty(b->root)) {
        GM_VEC_PUSH(b->docs, b->n_docs, b->cap_docs);
        b->docs[b->n_docs - 1] = b->root;
    }
    b->root = NULL;
    anchors_clear(b);
}

static int on_event(struct builder *b, const yaml_event_t *ev)
{
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        return on_scalar(b, ev);
    case YAML_ALIAS_EVENT:
        return on_alias(b, ev);
    case YAML_SEQUENCE_START_EVENT:
        return on_open(b, ev, GM_YNODE_SEQ, ev->data.sequence_start.anchor);
    case YAML_MAPPING_START_EVENT:
        return on_open(b, ev, GM_YNODE_MAP, ev->data.mapping_start.anchor);
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        return on_close(b);
    case YAML_DOCUMENT_START_EVENT:
        b->root = NULL;
        return 0;
    case YAML_DOCUMENT_END_EVENT:
        on_doc_end(b);
        return 0;
    default:
        return 0;
    }
}

/* 1-based line and column of a byte offset (for reader errors, which carry only an offset). */
static struct gm_loc offset_loc(const struct builder *b, const char *buf, size_t len, size_t off)
{
    struct gm_loc loc = {b->file, 1, 1};

    for (size_t i = 0; i < off && i < len; i++) {
        if (buf[i] == '\n') {
            loc.line++;
            loc.col = 1;
        } else if (((unsigned char)buf[i] & 0xc0) != 0x80) {
            loc.col++;
        }
    }
    return loc;
}

static int syntax_error(struct builder *b, const yaml_parser_t *p, const char *buf, size_t len)
{
    const char *problem = p->problem ? p->problem : "malformed YAML";
    struct gm_loc loc;

    if (p->error == YAML_MEMORY_ERROR)
        gm_panic(__FILE__, __LINE__, "libyaml: out of memory");
    if (p->error == YAML_READER_ERROR)
        loc = offset_loc(b, buf, len, p->problem_offset);
    else
        loc = mark_loc(b, p->problem_mark);
    if (p->context)
        gm_diags_add(b->diags, GM_DIAG_ERROR, &loc, NULL, NULL,
                     "YAML syntax error: %s %s starting at line %zu, column %zu", problem,
                     p->context, p->context_mark.line + 1, p->context_mark.column + 1);
    else
        gm_diags_add(b->diags, GM_DIAG_ERROR, &loc, NULL, NULL, "YAML syntax error: %s", problem);
    return -EINVAL;
}

static void builder_done(struct builder *b)
{
    while (b->depth > 0)
        frame_free(&b->stack[--b->depth]);
    anchors_clear(b);
    free(b->docs);
}

static int run_parser(struct builder *b, const char *buf, size_t len)
{
    yaml_parser_t p;
    int rc = 0;

    if (!yaml_parser_initialize(&p))
        gm_panic(__FILE__, __LINE__, "libyaml: out of memory");
    yaml_parser_set_input_string(&p, (const unsigned char *)buf, len);
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            rc = syntax_error(b, &p, buf, len);
            break;
        }
        rc = on_event(b, &ev);
        bool end = ev.type == YAML_STREAM_END_EVENT;
        yaml_event_delete(&ev);
        if (rc < 0 || end)
            break;
    }
    yaml_parser_delete(&p);
    return rc;
}

int gm_yaml_parse(struct gm_arena *a, const char *file, const char *buf, size_t len,
                  struct gm_ydocs *out, struct gm_diags *diags)
{
    struct builder b;

    memset(&b, 0, sizeof(b));
    b.a = a;
    b.file = gm_arena_strdup(a, file ? file : "<input>");
    b.diags = diags;
    out->docs = NULL;
    out->n = 0;
    if (len > YAML_MAX_BYTES) {
        struct gm_loc loc = {b.file, 0, 0};
        gm_diags_add(diags, GM_DIAG_ERROR, &loc, NULL, NULL,
                     "file too large: %zu bytes (at most 64 MiB)", len);
        return -EINVAL;
    }
    int rc = run_parser(&b, buf, len);
    if (rc == 0 && b.n_docs) {
        out->docs = GM_ARENA_ARRAY(a, struct gm_ynode *, b.n_docs);
        memcpy(out->docs, b.docs, b.n_docs * sizeof(*out->docs));
        out->n = b.n_docs;
    }
    builder_done(&b);
    return rc;
}

/* ---- lookups ---- */

/* ---- from JSON ---- */

static struct gm_ynode *json_scalar(struct gm_arena *a, struct gm_ynode *n, const json_t *v)
{
    char num[40];

    n->type = GM_YNODE_SCALAR;
    n->plain = true;
    switch (json_typeof(v)) {
    case JSON_STRING:
        n->plain = false;
        n->len = json_string_length(v);
        n->str = gm_arena_strndup(a, json_string_value(v), n->len);
        return n;
    case JSON_INTEGER:
        snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        break;
    case JSON_REAL:
        snprintf(num, sizeof(num), "%.17g", json_real_value(v));
        break;
    case JSON_TRUE:
        snprintf(num, sizeof(num), "true");
        break;
    case JSON_FALSE:
        snprintf(num, sizeof(num), "false");
        break;
    default:
        snprintf(num, sizeof(num), "null");
        break;
    }
    n->len = strlen(num);
    n->str = gm_arena_strndup(a, num, n->len);
    return n;
}

static struct gm_ynode *json_node(struct gm_arena *a, struct gm_loc loc, const json_t *v, int depth,
                                  size_t *nodes)
{
    struct gm_ynode *n = GM_ARENA_NEW(a, struct gm_ynode);

    if (depth > YAML_MAX_DEPTH || ++*nodes > YAML_MAX_NODES)
        return NULL;
    n->loc = loc;
    if (json_is_object(v)) {
        const char *key;
        json_t *val;
        size_t i = 0;
        n->type = GM_YNODE_MAP;
        n->n = json_object_size(v);
        n->pairs = GM_ARENA_ARRAY(a, struct gm_ypair, n->n + 1);
        json_object_foreach((json_t *)v, key, val)
        {
            struct gm_ynode *k = GM_ARENA_NEW(a, struct gm_ynode);
            k->type = GM_YNODE_SCALAR;
            k->loc = loc;
            k->len = strlen(key);
            k->str = gm_arena_strndup(a, key, k->len);
            n->pairs[i].key = k;
            n->pairs[i].value = json_node(a, loc, val, depth + 1, nodes);
            if (n->pairs[i++].value == NULL)
                return NULL;
        }
        return n;
    }
    if (json_is_array(v)) {
        n->type = GM_YNODE_SEQ;
        n->n = json_array_size(v);
        n->items = GM_ARENA_ARRAY(a, struct gm_ynode *, n->n + 1);
        for (size_t i = 0; i < n->n; i++)
            if ((n->items[i] = json_node(a, loc, json_array_get(v, i), depth + 1, nodes)) == NULL)
                return NULL;
        return n;
    }
    return json_scalar(a, n, v);
}

struct gm_ynode *gm_ynode_from_json(struct gm_arena *a, const char *file, const struct json_t *v)
{
    struct gm_loc loc = {.file = gm_arena_strdup(a, file)};
    size_t nodes = 0;

    return json_node(a, loc, (const json_t *)v, 1, &nodes);
}

struct gm_ynode *gm_ynode_get(const struct gm_ynode *map, const char *key)
{
    if (map == NULL || map->type != GM_YNODE_MAP)
        return NULL;
    size_t kl = strlen(key);
    for (size_t i = 0; i < map->n; i++) {
        const struct gm_ynode *k = map->pairs[i].key;
        if (k->type == GM_YNODE_SCALAR && k->len == kl && memcmp(k->str, key, kl) == 0)
            return map->pairs[i].value;
    }
    return NULL;
}

bool gm_ynode_is_null(const struct gm_ynode *n)
{
    if (n == NULL)
        return true;
    if (n->type != GM_YNODE_SCALAR || !n->plain)
        return false;
    return n->len == 0 || strcmp(n->str, "~") == 0 || strcmp(n->str, "null") == 0 ||
           strcmp(n->str, "Null") == 0 || strcmp(n->str, "NULL") == 0;
}
