/* HTTPRoute spec (gateway.networking.k8s.io/v1, plus the experimental `retry`): parentRefs,
 * matches, backendRefs, timeouts, retry and rules, with CRD validation (patterns, enums, list
 * limits, the rule-level CEL rules) and defaults. Filters are in objects_filter.c. Unknown
 * fields are errors so that a typo never passes silently. */
#include "objects_int.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

#define MAX_PARENTS       32
#define MAX_HOSTNAMES     16
#define MAX_RULES         16
#define MAX_MATCHES       64
#define MAX_MATCHES_TOTAL 128
#define MAX_BACKENDS      16
#define MAX_MATCH_CONDS   16 /* headers, queryParams per match */
#define MAX_RETRY_CODES   64
#define MAX_WEIGHT        1000000

/* ---- checks ---- */

/* Gateway API Hostname: an RFC 1123 subdomain, optionally prefixed by "*.". */
static const char *check_hostname(const char *s)
{
    if (s[0] == '*' && s[1] == '.')
        s += 2;
    return gm_check_dns_subdomain(s)
               ? "must be a lower-case DNS name, optionally prefixed by \"*.\""
               : NULL;
}

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);

    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Exact and PathPrefix values: the CRD's pattern and CEL rules. */
static const char *check_path_value(const char *s)
{
    static const char *const bad[] = {"//", "/./", "/../", "%2f", "%2F", "#"};

    if (s[0] != '/')
        return "must start with '/'";
    if (strlen(s) > GM_OBJ_MAX_PATH)
        return "must have at most 1024 characters";
    for (size_t i = 0; i < GM_ARRAY_LEN(bad); i++)
        if (strstr(s, bad[i]))
            return "must not contain \"//\", \"/./\", \"/../\", \"%2f\", \"%2F\" or \"#\"";
    if (ends_with(s, "/.") || ends_with(s, "/.."))
        return "must not end with \"/.\" or \"/..\"";
    for (const char *p = s; *p; p++) {
        if (*p == '%') {
            if (!is_hex(p[1]) || !is_hex(p[2]))
                return "'%' must start a %XX escape";
            p += 2;
        } else if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                     (*p >= '0' && *p <= '9') || strchr("-/._~!$&'()*+,;=:@", *p))) {
            return "may contain only RFC 3986 path characters";
        }
    }
    return NULL;
}

/* ---- matches ---- */

struct node_pair {
    const struct gm_ynode *type;
    const struct gm_ynode *value;
};

static const struct gm_field path_match_fields[] = {
    GM_FIELD_NODE(struct node_pair, "type", type, 0),
    GM_FIELD_NODE(struct node_pair, "value", value, 0),
};

static const char *const path_types[GM_PATH__MAX] = {[GM_PATH_PREFIX] = "PathPrefix",
                                                     [GM_PATH_EXACT] = "Exact",
                                                     [GM_PATH_REGEX] = "RegularExpression"};

static void path_value(struct gm_objdec *d, const struct gm_ynode *v, struct gm_http_match *m)
{
    if (gm_objects_str(d, v, &m->path) != 0) {
        m->path = "/";
        return;
    }
    if (m->path_type == GM_PATH_REGEX)
        return; /* the route compiler owns the dialect and reports bad patterns */
    const char *why = check_path_value(m->path);
    if (why)
        gm_objects_error(d, v, NULL, "\"%s\": %s", m->path, why);
}

static int decode_path_match(struct gm_objdec *d, const struct gm_ynode *v, void *base)
{
    struct gm_http_match *m = base;
    struct node_pair t = {0};

    m->path_loc = gm_objects_loc(d, v);
    if (gm_objects_map(d, v, path_match_fields, GM_ARRAY_LEN(path_match_fields), true, &t) < 0)
        return -EINVAL;
    if (t.type) {
        size_t old = gm_objects_push(d, "type");
        int type = gm_objects_enum(d, t.type, "path match type", path_types, GM_PATH__MAX);
        m->path_type = type < 0 ? GM_PATH_PREFIX : (enum gm_path_match)type;
        gm_objects_pop(d, old);
    }
    if (t.value) {
        size_t old = gm_objects_push(d, "value");
        path_value(d, t.value, m);
        gm_objects_pop(d, old);
    }
    return 0;
}

struct cond_tmp {
    const struct gm_ynode *type;
    char *name;
    const struct gm_ynode *value;
};

static const struct gm_field cond_fields[] = {
    GM_FIELD_NODE(struct cond_tmp, "type", type, 0),
    GM_FIELD_STR(struct cond_tmp, "name", name, gm_objects_check_header_name, GM_F_REQUIRED),
    GM_FIELD_NODE(struct cond_tmp, "value", value, GM_F_REQUIRED),
};

static const char *const value_types[GM_VALUE__MAX] = {
    [GM_VALUE_EXACT] = "Exact", [GM_VALUE_REGEX] = "RegularExpression"};

static void cond_value(struct gm_objdec *d, const struct gm_ynode *v, struct gm_header_match *h,
                       size_t max_len)
{
    if (gm_objects_str(d, v, &h->value) != 0)
        return;
    size_t n = strlen(h->value);
    if (n == 0 || n > max_len)
        gm_objects_error(d, v, NULL, "must have 1 to %zu characters", max_len);
}

/* A header or query parameter condition. */
static int decode_cond(struct gm_objdec *d, const struct gm_ynode *item, void *elem, size_t max_len)
{
    struct gm_header_match *h = elem;
    struct cond_tmp t = {0};

    h->loc = gm_objects_loc(d, item);
    if (gm_objects_map(d, item, cond_fields, GM_ARRAY_LEN(cond_fields), true, &t) < 0)
        return -EINVAL;
    h->name = t.name;
    if (t.type) {
        size_t old = gm_objects_push(d, "type");
        int type = gm_objects_enum(d, t.type, "match type", value_types, GM_VALUE__MAX);
        h->type = type < 0 ? GM_VALUE_EXACT : (enum gm_value_match)type;
        gm_objects_pop(d, old);
    }
    if (t.value) {
        size_t old = gm_objects_push(d, "value");
        cond_value(d, t.value, h, max_len);
        gm_objects_pop(d, old);
    }
    return 0;
}

static int decode_header_cond(struct gm_objdec *d, const struct gm_ynode *item, void *elem)
{
    return decode_cond(d, item, elem, 4096);
}

static int decode_query_cond(struct gm_objdec *d, const struct gm_ynode *item, void *elem)
{
    return decode_cond(d, item, elem, 1024);
}

static int decode_match_headers(struct gm_objdec *d, const struct gm_ynode *v, void *base)
{
    struct gm_http_match *m = base;

    return gm_objects_seq(d, v, MAX_MATCH_CONDS, sizeof(*m->headers), (void **)&m->headers,
                          &m->n_headers, decode_header_cond);
}

static int decode_match_queries(struct gm_objdec *d, const struct gm_ynode *v, void *base)
{
    struct gm_http_match *m = base;

    return gm_objects_seq(d, v, MAX_MATCH_CONDS, sizeof(*m->queries), (void **)&m->queries,
                          &m->n_queries, decode_query_cond);
}

static const struct gm_field match_fields[] = {
    GM_FIELD_FUNC("path", decode_path_match, 0),
    GM_FIELD_FUNC("headers", decode_match_headers, 0),
    GM_FIELD_FUNC("queryParams", decode_match_queries, 0),
    GM_FIELD_STR(struct gm_http_match, "method", method, gm_objects_check_method, 0),
};

static void match_init(struct gm_http_match *m, struct gm_loc loc)
{
    m->path_type = GM_PATH_PREFIX;
    m->path = "/";
    m->path_loc = loc;
    m->loc = loc;
}

static int decode_match(struct gm_objdec *d, const struct gm_ynode *item, void *elem)
{
    struct gm_http_match *m = elem;

    match_init(m, gm_objects_loc(d, item));
    return gm_objects_map(d, item, match_fields, GM_ARRAY_LEN(match_fields), true, m);
}

/* ---- backendRefs ---- */

static int decode_backend_filters(struct gm_objdec *d, const struct gm_ynode *v, void *base)
{
    struct gm_backend_ref *b = base;

    return gm_objects_filters_decode(d, v, &b->filters, &b->n_filters);
}

static const struct gm_field backend_fields[] = {
    GM_OBJ_REF_FIELDS(struct gm_backend_ref, ref.),
    GM_FIELD_INT(struct gm_backend_ref, "weight", weight, 0, MAX_WEIGHT, 0),
    GM_FIELD_FUNC("filters", decode_backend_filters, 0),
};

static int decode_backend(struct gm_objdec *d, const struct gm_ynode *item, void *elem)
{
    struct gm_backend_ref *b = elem;

    b->loc = gm_objects_loc(d, item);
    b->weight = 1;
    b->ref.port = -1;
    if (gm_objects_map(d, item, backend_fields, GM_ARRAY_LEN(backend_fields), true, b) < 0)
        return -EINVAL;
    gm_objects_obj_ref_defaults(d, item, &b->ref);
    return 0;
}

/* ---- timeouts and retry ---- */

static const struct gm_field timeout_fields[] = {
    GM_FIELD_DURATION(struct gm_timeouts, "request", request_ms),
    GM_FIELD_DURATION(struct gm_timeouts, "backendRequest", backend_request_ms),
};

static int decode_timeouts(struct gm_objdec *d, const struct gm_ynode *v, void *base)
{
    struct gm_timeouts *t = &((struct gm_route_rule *)base)->timeouts;

    if (gm_objects_map(d, v, timeout_fields, GM_ARRAY_LEN(timeout_fields), true, t) < 0)
        return -EINVAL;
    if (t->request_ms > 0 && t->backend_request_ms > t->request_ms)
        gm_objects_error(d, gm_ynode_get(v, "backendRequest"), "backendRequest",
                         "must not exceed the request timeout");
    return 0;
}

static int decode_retry_code(struct gm_objdec *d, const struct gm_ynode *item, void *elem)
{
    int64_t code;
    int *out = elem;

    if (gm_objects_int(d, item, 400, 599, &code) == 0)
        *out = (int)code;
    else if (gm_ynode_is_null(item))
        gm_objects_error(d, item, NULL, "expected a status code, got null");
    return 0;
}

static int decode_retry_codes(struct gm_objdec *d, const struct gm_ynode *v, void *base)
{
    struct gm_retry *r = base;

    return gm_objects_seq(d, v, MAX_RETRY_CODES, sizeof(*r->codes), (void **)&r->codes, &r->n_codes,
                          decode_retry_code);
}

static const struct gm_field retry_fields[] = {
    GM_FIELD_FUNC("codes", decode_retry_codes, 0),
    GM_FIELD_INT(struct gm_retry, "attempts", attempts, 0, INT_MAX, 0),
    GM_FIELD_DURATION(struct gm_retry, "backoff", backoff_ms),
};

static int decode_retry(struct gm_objdec *d, const struct gm_ynode *v, void *base)
{
    struct gm_retry *r = &((struct gm_route_rule *)base)->retry;

    r->present = true;
    return gm_objects_map(d, v, retry_fields, GM_ARRAY_LEN(retry_fields), true, r);
}

/* ---- rules ---- */

static int decode_rule_matches(struct gm_objdec *d, const struct gm_ynode *v, void *base)
{
    struct gm_route_rule *r = base;

    return gm_objects_seq(d, v, MAX_MATCHES, sizeof(*r->matches), (void **)&r->matches,
                          &r->n_matches, decode_match);
}

static int decode_rule_filters(struct gm_objdec *d, const struct gm_ynode *v, void *base)
{
    struct gm_route_rule *r = base;

    return gm_objects_filters_decode(d, v, &r->filters, &r->n_filters);
}

static int decode_rule_backends(struct gm_objdec *d, const struct gm_ynode *v, void *base)
{
    struct gm_route_rule *r = base;

    return gm_objects_seq(d, v, MAX_BACKENDS, sizeof(*r->backends), (void **)&r->backends,
                          &r->n_backends, decode_backend);
}

static const struct gm_field rule_fields[] = {
    GM_FIELD_STR(struct gm_route_rule, "name", name, gm_check_dns_subdomain, 0),
    GM_FIELD_FUNC("matches", decode_rule_matches, 0),
    GM_FIELD_FUNC("filters", decode_rule_filters, 0),
    GM_FIELD_FUNC("backendRefs", decode_rule_backends, 0),
    GM_FIELD_FUNC("timeouts", decode_timeouts, 0),
    GM_FIELD_FUNC("retry", decode_retry, 0),
    GM_FIELD_WARN("sessionPersistence"),
};

/* ReplacePrefixMatch needs exactly one match in the rule, and it must be a PathPrefix. */
static void check_prefix_rewrites(struct gm_objdec *d, const struct gm_route_rule *r,
                                  const struct gm_ynode *list, const struct gm_filter *f, size_t n)
{
    bool ok = r->n_matches == 1 && r->matches[0].path_type == GM_PATH_PREFIX;

    for (size_t i = 0; i < n && !ok; i++) {
        const struct gm_path_mod *pm = gm_objects_filter_path_mod(&f[i]);
        if (pm == NULL || !pm->set || pm->type != GM_PATHMOD_PREFIX)
            continue;
        const char *key = gm_objects_filter_key(f[i].type);
        const struct gm_ynode *cfg = gm_ynode_get(gm_objects_item(list, i), key);
        size_t old = gm_objects_push_index(d, i);
        gm_objects_push(d, key);
        gm_objects_error(d, gm_ynode_get(cfg, "path"), "path",
                         "ReplacePrefixMatch needs the rule to have exactly one match, "
                         "and it must be a PathPrefix match");
        gm_objects_pop(d, old);
    }
}

/* The rule-level CEL rules, checked once the whole rule is decoded. */
static void check_rule(struct gm_objdec *d, const struct gm_ynode *item,
                       const struct gm_route_rule *r)
{
    const struct gm_ynode *filters = gm_ynode_get(item, "filters");
    const struct gm_ynode *backends = gm_ynode_get(item, "backendRefs");
    size_t old = gm_objects_push(d, "filters");

    for (size_t i = 0; i < r->n_filters; i++) {
        if (r->filters[i].type != GM_FILTER_REDIRECT || r->n_backends == 0)
            continue;
        size_t o2 = gm_objects_push_index(d, i);
        gm_objects_error(d, gm_objects_item(filters, i), NULL,
                         "RequestRedirect cannot be combined with backendRefs");
        gm_objects_pop(d, o2);
    }
    check_prefix_rewrites(d, r, filters, r->filters, r->n_filters);
    gm_objects_pop(d, old);
    for (size_t j = 0; j < r->n_backends; j++) {
        const struct gm_ynode *b = gm_objects_item(backends, j);
        old = gm_objects_push(d, "backendRefs");
        gm_objects_push_index(d, j);
        gm_objects_push(d, "filters");
        check_prefix_rewrites(d, r, gm_ynode_get(b, "filters"), r->backends[j].filters,
                              r->backends[j].n_filters);
        gm_objects_pop(d, old);
    }
}

static void rule_init(struct gm_route_rule *r, struct gm_loc loc)
{
    r->loc = loc;
    r->timeouts.request_ms = r->timeouts.backend_request_ms = -1;
    r->retry.attempts = -1;
    r->retry.backoff_ms = -1;
}

/* No matches (absent or empty) means one PathPrefix "/" match. */
static void rule_default_match(struct gm_objdec *d, struct gm_route_rule *r)
{
    if (r->n_matches)
        return;
    r->matches = GM_ARENA_NEW(d->a, struct gm_http_match);
    r->n_matches = 1;
    match_init(r->matches, r->loc);
}

static int decode_rule(struct gm_objdec *d, const struct gm_ynode *item, void *elem)
{
    struct gm_route_rule *r = elem;

    rule_init(r, gm_objects_loc(d, item));
    if (gm_objects_map(d, item, rule_fields, GM_ARRAY_LEN(rule_fields), true, r) < 0)
        return -EINVAL;
    rule_default_match(d, r);
    check_rule(d, item, r);
    return 0;
}

/* Names unique within the route; at most 128 matches over all rules. */
static void check_rules(struct gm_objdec *d, const struct gm_ynode *v,
                        const struct gm_httproute *rt)
{
    size_t total = 0;

    for (size_t i = 0; i < rt->n_rules; i++) {
        total += rt->rules[i].n_matches;
        for (size_t j = 0; j < i && rt->rules[i].name; j++) {
            if (rt->rules[j].name && strcmp(rt->rules[i].name, rt->rules[j].name) == 0) {
                size_t old = gm_objects_push_index(d, i);
                gm_objects_error(d, gm_ynode_get(gm_objects_item(v, i), "name"), "name",
                                 "rule name \"%s\" is used twice", rt->rules[i].name);
                gm_objects_pop(d, old);
                break;
            }
        }
    }
    if (total > MAX_MATCHES_TOTAL)
        gm_objects_error(d, v, NULL, "%zu matches over all rules; at most %d allowed", total,
                         MAX_MATCHES_TOTAL);
}

static int decode_rules(struct gm_objdec *d, const struct gm_ynode *v, void *base)
{
    struct gm_httproute *rt = base;
    int rc = gm_objects_seq(d, v, MAX_RULES, sizeof(*rt->rules), (void **)&rt->rules, &rt->n_rules,
                            decode_rule);

    if (rc == 0)
        check_rules(d, v, rt);
    return rc;
}

/* ---- parentRefs and the spec ---- */

static const struct gm_field parent_fields[] = {
    GM_FIELD_STR(struct gm_parent_ref, "group", group, NULL, 0),
    GM_FIELD_STR(struct gm_parent_ref, "kind", kind, NULL, 0),
    GM_FIELD_STR(struct gm_parent_ref, "namespace", namespace, NULL, 0),
    GM_FIELD_STR(struct gm_parent_ref, "name", name, NULL, GM_F_REQUIRED),
    GM_FIELD_STR(struct gm_parent_ref, "sectionName", section_name, gm_check_dns_subdomain, 0),
    GM_FIELD_INT(struct gm_parent_ref, "port", port, 1, 65535, 0),
};

static int decode_parent(struct gm_objdec *d, const struct gm_ynode *item, void *elem)
{
    struct gm_parent_ref *p = elem;

    p->loc = gm_objects_loc(d, item);
    p->port = -1;
    if (gm_objects_map(d, item, parent_fields, GM_ARRAY_LEN(parent_fields), true, p) < 0)
        return -EINVAL;
    if (p->group == NULL)
        p->group = "gateway.networking.k8s.io";
    if (p->kind == NULL)
        p->kind = "Gateway";
    if (p->namespace == NULL)
        p->namespace = (char *)d->ns;
    if (p->name && p->name[0] == '\0')
        gm_objects_error(d, gm_ynode_get(item, "name"), "name", "must not be empty");
    return 0;
}

static int decode_parents(struct gm_objdec *d, const struct gm_ynode *v, void *base)
{
    struct gm_httproute *rt = base;

    return gm_objects_seq(d, v, MAX_PARENTS, sizeof(*rt->parents), (void **)&rt->parents,
                          &rt->n_parents, decode_parent);
}

static const struct gm_field route_fields[] = {
    GM_FIELD_FUNC("parentRefs", decode_parents, 0),
    GM_FIELD_STRS(struct gm_httproute, "hostnames", hostnames, MAX_HOSTNAMES, check_hostname),
    GM_FIELD_FUNC("rules", decode_rules, 0),
    GM_FIELD_WARN("useDefaultGateways"),
};

/* The CRD default when spec.rules is absent: one rule, one PathPrefix "/" match, no backends. */
static void default_rule(struct gm_objdec *d, const struct gm_ynode *spec, struct gm_httproute *rt)
{
    struct gm_route_rule *r = GM_ARENA_NEW(d->a, struct gm_route_rule);

    rule_init(r, gm_objects_loc(d, spec));
    rule_default_match(d, r);
    rt->rules = r;
    rt->n_rules = 1;
}

void gm_objects_route_decode(struct gm_objdec *d, const struct gm_ynode *spec, struct gm_object *o)
{
    struct gm_httproute *rt = &o->route;

    if (gm_objects_map(d, spec, route_fields, GM_ARRAY_LEN(route_fields), true, rt) < 0)
        return;
    if (gm_ynode_is_null(gm_ynode_get(spec, "rules")))
        default_rule(d, spec, rt);
}
