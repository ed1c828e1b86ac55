/* The route compiler: HTTPRoutes attached to Services (GAMMA parentRefs) become one route table
 * per Service port and client group (producer routes, and consumer routes per client namespace),
 * each sorted by Gateway API precedence. A route whose regex does not compile is rejected whole;
 * an unresolvable backend stays in its rule and answers 500 for its share. */
#include <errno.h>
#include <strings.h>

#include "gammamesh/route.h"
#include "gammamesh/snapshot.h"
#include "snapshot_int.h"

#define GW_GROUP "gateway.networking.k8s.io"

/* Matches collected for one table while routes are compiled. */
struct table_builder {
    const char *consumer_ns; /* NULL: the producer table */
    struct gm_cmatch **v;
    size_t n, cap;
    const struct gm_object *last_route; /* avoids adding a route twice via two parentRefs */
};

struct port_builder {
    struct table_builder *tables;
    size_t n, cap;
};

struct compile_ctx {
    struct gm_snapshot *s;
    const struct gm_object *route;
    char label[300];
    int errors;
    const char *first_error;             /* "field: reason" of the route's first error */
    const struct gm_ctarget *unresolved; /* the route's first weighted backend that fails */
    struct port_builder **ports;         /* [service index][port index] */
};

static void warn(struct compile_ctx *c, const struct gm_loc *loc, const char *field,
                 const char *reason)
{
    gm_diags_add(&c->s->diags, GM_DIAG_WARNING, loc, c->label, field, "%s", reason);
}

static void fail(struct compile_ctx *c, const struct gm_loc *loc, const char *field,
                 const char *reason)
{
    gm_diags_add(&c->s->diags, GM_DIAG_ERROR, loc, c->label, field, "%s", reason);
    if (c->errors++ == 0)
        c->first_error = gm_arena_printf(&c->s->arena, "%s: %s", field ? field : "spec", reason);
}

static gm_regex *compile_regex(struct compile_ctx *c, const char *pattern, const struct gm_loc *loc,
                               const char *field)
{
    char err[256], msg[400];
    gm_regex *re = gm_regex_compile(pattern, err, sizeof(err));

    if (re == NULL) {
        snprintf(msg, sizeof(msg), "invalid regular expression: %s", err);
        fail(c, loc, field, msg);
        return NULL;
    }
    GM_VEC_PUSH(c->s->regexes, c->s->n_regexes, c->s->cap_regexes);
    c->s->regexes[c->s->n_regexes - 1] = re;
    return re;
}

/* ---- targets, filters, backends ---- */

static void resolve_target(struct compile_ctx *c, const struct gm_backend_obj_ref *ref,
                           struct gm_ctarget *t)
{
    struct gm_arena *a = &c->s->arena;

    t->name = ref->name;
    t->namespace = ref->namespace ? ref->namespace : c->route->meta.namespace;
    t->port = ref->port;
    t->svc_port = -1;
    if (strcmp(ref->group ? ref->group : "", "") != 0 ||
        strcmp(ref->kind ? ref->kind : "Service", "Service") != 0) {
        t->invalid = gm_arena_printf(a, "unsupported backend kind %s/%s (InvalidKind)", ref->group,
                                     ref->kind);
        t->invalid_reason = "InvalidKind";
        return;
    }
    t->invalid_reason = "BackendNotFound"; /* for each failure below */
    const struct gm_svc *svc = gm_snapshot_service(c->s, t->namespace, t->name);
    if (svc == NULL) {
        t->invalid = gm_arena_printf(a, "backend Service %s/%s not found (BackendNotFound)",
                                     t->namespace, t->name);
        return;
    }
    if (ref->port < 0) {
        t->invalid =
            gm_arena_printf(a, "backend Service %s/%s needs a port", t->namespace, t->name);
        return;
    }
    int idx = gm_svc_port_index(svc, ref->port);
    if (idx < 0) {
        t->invalid = gm_arena_printf(a, "backend Service %s/%s has no port %d", t->namespace,
                                     t->name, ref->port);
        return;
    }
    t->svc = svc;
    t->svc_port = idx;
    t->invalid_reason = NULL;
}

static void compile_filters(struct compile_ctx *c, const struct gm_filter *f, size_t n,
                            struct gm_cfilters *out, const char *field)
{
    size_t n_mirrors = 0;

    for (size_t i = 0; i < n; i++)
        n_mirrors += f[i].type == GM_FILTER_MIRROR;
    out->mirrors = GM_ARENA_ARRAY(&c->s->arena, struct gm_cmirror, n_mirrors + 1);
    for (size_t i = 0; i < n; i++) {
        switch (f[i].type) {
        case GM_FILTER_REQUEST_HEADER:
            out->request_header = &f[i].header;
            break;
        case GM_FILTER_RESPONSE_HEADER:
            out->response_header = &f[i].header;
            break;
        case GM_FILTER_REDIRECT:
            out->redirect = &f[i].redirect;
            break;
        case GM_FILTER_REWRITE:
            out->rewrite = &f[i].rewrite;
            break;
        case GM_FILTER_CORS:
            out->cors = &f[i].cors;
            break;
        case GM_FILTER_MIRROR: {
            struct gm_cmirror *m = &out->mirrors[out->n_mirrors++];
            resolve_target(c, &f[i].mirror.backend, &m->target);
            m->percent = f[i].mirror.percent;
            m->fraction_num = f[i].mirror.fraction_num;
            m->fraction_den = f[i].mirror.fraction_den;
            if (m->target.invalid) {
                char fld[200];
                snprintf(fld, sizeof(fld), "%s[%zu].requestMirror.backendRef", field, i);
                warn(c, &f[i].loc, fld, m->target.invalid);
            }
            break;
        }
        case GM_FILTER_EXTENSION_REF:
            out->unresolvable =
                gm_arena_printf(&c->s->arena, "ExtensionRef %s/%s %s cannot be resolved",
                                f[i].ext.group, f[i].ext.kind, f[i].ext.name);
            break;
        default:
            break;
        }
    }
}

static void compile_backends(struct compile_ctx *c, const struct gm_route_rule *r, size_t ri,
                             struct gm_crule *cr)
{
    char field[200];

    cr->n_backends = r->n_backends;
    cr->backends = GM_ARENA_ARRAY(&c->s->arena, struct gm_cbackend, r->n_backends + 1);
    for (size_t b = 0; b < r->n_backends; b++) {
        struct gm_cbackend *cb = &cr->backends[b];
        const struct gm_backend_ref *br = &r->backends[b];
        snprintf(field, sizeof(field), "spec.rules[%zu].backendRefs[%zu]", ri, b);
        resolve_target(c, &br->ref, &cb->target);
        cb->weight = (uint32_t)br->weight;
        cr->total_weight += cb->weight;
        /* A weight-0 backend is never chosen, so its absence is harmless. */
        if (cb->target.invalid && cb->weight > 0) {
            warn(c, &br->loc, field, cb->target.invalid);
            if (c->unresolved == NULL)
                c->unresolved = &cb->target;
        }
        snprintf(field, sizeof(field), "spec.rules[%zu].backendRefs[%zu].filters", ri, b);
        compile_filters(c, br->filters, br->n_filters, &cb->filters, field);
    }
}

/* ---- matches ---- */

static void compile_values(struct compile_ctx *c, const struct gm_header_match *src, size_t n,
                           bool lower, struct gm_cvalue **out, size_t *n_out, const char *field)
{
    char fld[240];

    *out = GM_ARENA_ARRAY(&c->s->arena, struct gm_cvalue, n + 1);
    *n_out = 0;
    for (size_t i = 0; i < n; i++) {
        bool dup = false;
        for (size_t j = 0; j < *n_out && !dup; j++)
            dup = lower ? strcasecmp((*out)[j].name, src[i].name) == 0
                        : strcmp((*out)[j].name, src[i].name) == 0;
        if (dup)
            continue; /* the first entry for a name wins */
        struct gm_cvalue *v = &(*out)[(*n_out)++];
        char *name = gm_arena_strdup(&c->s->arena, src[i].name);
        if (lower)
            for (char *p = name; *p; p++)
                *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
        v->name = name;
        v->type = src[i].type;
        v->value = src[i].value;
        if (v->type == GM_VALUE_REGEX) {
            snprintf(fld, sizeof(fld), "%s[%zu].value", field, i);
            v->re = compile_regex(c, v->value, &src[i].loc, fld);
        }
    }
}

static void compile_match(struct compile_ctx *c, const struct gm_crule *cr, size_t ri, size_t mi,
                          struct gm_cmatch *m)
{
    const struct gm_http_match *hm = &cr->route->route.rules[ri].matches[mi];
    char field[200];

    m->rule = cr;
    m->match_index = mi;
    m->path_type = hm->path_type;
    m->method = hm->method;
    size_t len = strlen(hm->path);
    if (m->path_type == GM_PATH_PREFIX)
        while (len > 1 && hm->path[len - 1] == '/')
            len--;
    m->path = gm_arena_strndup(&c->s->arena, hm->path, len);
    m->path_len = len;
    if (m->path_type == GM_PATH_REGEX) {
        snprintf(field, sizeof(field), "spec.rules[%zu].matches[%zu].path.value", ri, mi);
        m->path_re = compile_regex(c, hm->path, &hm->path_loc, field);
    }
    snprintf(field, sizeof(field), "spec.rules[%zu].matches[%zu].headers", ri, mi);
    compile_values(c, hm->headers, hm->n_headers, true, &m->headers, &m->n_headers, field);
    snprintf(field, sizeof(field), "spec.rules[%zu].matches[%zu].queryParams", ri, mi);
    compile_values(c, hm->queries, hm->n_queries, false, &m->queries, &m->n_queries, field);
}

/* Compile every rule of the route; returns the matches (in the arena) or NULL on error. */
static struct gm_cmatch *compile_route(struct compile_ctx *c, size_t *n_matches)
{
    const struct gm_httproute *rt = &c->route->route;
    struct gm_arena *a = &c->s->arena;
    size_t total = 0, k = 0;
    char field[100];

    for (size_t ri = 0; ri < rt->n_rules; ri++)
        total += rt->rules[ri].n_matches;
    struct gm_crule *rules = GM_ARENA_ARRAY(a, struct gm_crule, rt->n_rules + 1);
    struct gm_cmatch *matches = GM_ARENA_ARRAY(a, struct gm_cmatch, total + 1);
    for (size_t ri = 0; ri < rt->n_rules; ri++) {
        const struct gm_route_rule *r = &rt->rules[ri];
        struct gm_crule *cr = &rules[ri];
        cr->route = c->route;
        cr->index = ri;
        cr->name = r->name;
        cr->timeouts = r->timeouts;
        cr->retry = r->retry.present ? &r->retry : NULL;
        snprintf(field, sizeof(field), "spec.rules[%zu].filters", ri);
        compile_filters(c, r->filters, r->n_filters, &cr->filters, field);
        compile_backends(c, r, ri, cr);
        for (size_t mi = 0; mi < r->n_matches; mi++)
            compile_match(c, cr, ri, mi, &matches[k++]);
    }
    *n_matches = k;
    return c->errors ? NULL : matches;
}

/* ---- attachment ---- */

static struct table_builder *table_for(struct port_builder *pb, const char *consumer_ns)
{
    for (size_t i = 0; i < pb->n; i++) {
        const char *ns = pb->tables[i].consumer_ns;
        if ((ns == NULL && consumer_ns == NULL) || (ns && consumer_ns && !strcmp(ns, consumer_ns)))
            return &pb->tables[i];
    }
    GM_VEC_PUSH(pb->tables, pb->n, pb->cap);
    struct table_builder *tb = &pb->tables[pb->n - 1];
    memset(tb, 0, sizeof(*tb));
    tb->consumer_ns = consumer_ns;
    return tb;
}

static void add_to_table(struct table_builder *tb, const struct gm_object *route,
                         struct gm_cmatch *m, size_t n)
{
    if (tb->last_route == route)
        return;
    tb->last_route = route;
    for (size_t i = 0; i < n; i++) {
        GM_VEC_PUSH(tb->v, tb->n, tb->cap);
        tb->v[tb->n - 1] = &m[i];
    }
}

static bool port_selected(const struct gm_parent_ref *p, const struct gm_svc_port *sp)
{
    if (p->port >= 0 && sp->port != p->port)
        return false;
    if (p->section_name && (sp->name == NULL || strcmp(sp->name, p->section_name) != 0))
        return false;
    return true;
}

static void parent_refused(struct compile_ctx *c, struct gm_parent_status *ps, const char *reason,
                           const char *msg)
{
    ps->accepted = false;
    ps->accepted_reason = reason;
    ps->accepted_message = gm_arena_strdup(&c->s->arena, msg);
}

/* Attach the compiled route (m NULL: rejected) to the ports its parentRefs name, recording what
 * its status says in ps; true when attached anywhere. */
static bool attach_parent(struct compile_ctx *c, size_t pi, struct gm_cmatch *m, size_t n,
                          struct gm_parent_status *ps)
{
    const struct gm_parent_ref *p = &c->route->route.parents[pi];
    char field[64], msg[400];

    ps->ref = p;
    snprintf(field, sizeof(field), "spec.parentRefs[%zu]", pi);
    if (strcmp(p->kind, "Gateway") == 0 && strcmp(p->group, GW_GROUP) == 0)
        return false; /* ingress attachment: not this data plane's job */
    if (strcmp(p->kind, "Service") != 0 || strcmp(p->group, "") != 0) {
        snprintf(msg, sizeof(msg),
                 "parentRef kind %s/%s is not supported (use group \"\", kind "
                 "Service)",
                 p->group, p->kind);
        warn(c, &p->loc, field, msg);
        return false;
    }
    ps->service_parent = true;
    const struct gm_svc *svc = gm_snapshot_service(c->s, p->namespace, p->name);
    if (svc == NULL) {
        snprintf(msg, sizeof(msg), "parent Service %s/%s not found (NoMatchingParent)",
                 p->namespace, p->name);
        warn(c, &p->loc, field, msg);
        parent_refused(c, ps, "NoMatchingParent", msg);
        return false;
    }
    ps->svc = svc;
    if (m == NULL) {
        parent_refused(c, ps, "UnsupportedValue", c->first_error ? c->first_error : "invalid");
        return false;
    }
    size_t si = (size_t)(svc - c->s->services);
    const char *consumer =
        strcmp(c->route->meta.namespace, svc->namespace) == 0 ? NULL : c->route->meta.namespace;
    bool any = false;
    for (size_t k = 0; k < svc->n_ports; k++) {
        if (!port_selected(p, &svc->ports[k]))
            continue;
        add_to_table(table_for(&c->ports[si][k], consumer), c->route, m, n);
        any = true;
    }
    if (!any) {
        snprintf(msg, sizeof(msg),
                 "Service %s/%s has no port matching this parentRef "
                 "(NoMatchingParent)",
                 svc->namespace, svc->name);
        warn(c, &p->loc, field, msg);
        parent_refused(c, ps, "NoMatchingParent", msg);
        return false;
    }
    ps->accepted = true;
    ps->accepted_reason = "Accepted";
    ps->accepted_message = "Route is accepted";
    return true;
}

/* ---- finishing ---- */

static int cmp_match_ptr(const void *a, const void *b)
{
    return gm_cmatch_cmp(*(struct gm_cmatch *const *)a, *(struct gm_cmatch *const *)b);
}

static void finish_table(struct gm_snapshot *s, struct table_builder *tb, struct gm_route_table *t)
{
    if (tb->n > 1)
        qsort(tb->v, tb->n, sizeof(*tb->v), cmp_match_ptr);
    t->v = GM_ARENA_ARRAY(&s->arena, struct gm_cmatch *, tb->n + 1);
    if (tb->n)
        memcpy(t->v, tb->v, tb->n * sizeof(*tb->v));
    t->n = tb->n;
    free(tb->v);
}

static void finish_port(struct gm_snapshot *s, struct port_builder *pb, struct gm_svc_port *sp)
{
    size_t nc = 0;

    sp->consumers = GM_ARENA_ARRAY(&s->arena, struct gm_consumer_routes, pb->n + 1);
    for (size_t i = 0; i < pb->n; i++) {
        struct table_builder *tb = &pb->tables[i];
        if (tb->consumer_ns == NULL) {
            sp->has_producer = true;
            finish_table(s, tb, &sp->producer);
        } else {
            sp->consumers[nc].namespace = tb->consumer_ns;
            finish_table(s, tb, &sp->consumers[nc].table);
            nc++;
        }
    }
    sp->n_consumers = nc;
    free(pb->tables);
}

void gm_routes_compile(struct gm_snapshot *s, const struct gm_object *const *objs, size_t n)
{
    struct compile_ctx c = {.s = s};

    c.ports = gm_xcalloc(s->n_services + 1, sizeof(*c.ports));
    for (size_t i = 0; i < s->n_services; i++)
        c.ports[i] = gm_xcalloc(s->services[i].n_ports + 1, sizeof(**c.ports));
    s->routes = GM_ARENA_ARRAY(&s->arena, const struct gm_object *, n + 1);
    s->route_status = GM_ARENA_ARRAY(&s->arena, struct gm_route_status, n + 1);
    for (size_t i = 0; i < n; i++) {
        if (objs[i]->kind != GM_KIND_HTTPROUTE)
            continue;
        c.route = objs[i];
        c.errors = 0;
        c.first_error = NULL;
        c.unresolved = NULL;
        gm_object_label(objs[i], c.label, sizeof(c.label));
        size_t nm = 0;
        struct gm_cmatch *m = compile_route(&c, &nm); /* NULL: rejected whole (s->diags) */
        struct gm_route_status *rs = &s->route_status[s->n_route_status++];
        rs->route = objs[i];
        rs->resolved = c.unresolved == NULL;
        rs->resolved_reason = c.unresolved ? c.unresolved->invalid_reason : "ResolvedRefs";
        rs->resolved_message = c.unresolved ? c.unresolved->invalid : "All references are resolved";
        rs->n_parents = objs[i]->route.n_parents;
        rs->parents = GM_ARENA_ARRAY(&s->arena, struct gm_parent_status, rs->n_parents + 1);
        bool attached = false;
        for (size_t pi = 0; pi < objs[i]->route.n_parents; pi++)
            attached |= attach_parent(&c, pi, m, nm, &rs->parents[pi]);
        if (attached)
            s->routes[s->n_routes++] = objs[i];
    }
    for (size_t i = 0; i < s->n_services; i++) {
        for (size_t k = 0; k < s->services[i].n_ports; k++)
            finish_port(s, &c.ports[i][k], &s->services[i].ports[k]);
        free(c.ports[i]);
    }
    free(c.ports);
}

void gm_routes_free(struct gm_snapshot *s)
{
    for (size_t i = 0; i < s->n_regexes; i++)
        gm_regex_free(s->regexes[i]);
    free(s->regexes);
    s->regexes = NULL;
    s->n_regexes = 0;
}
