/* `waypoint --explain`: resolve the addressed Service port, pick the route table for the
 * client's namespace, select the match and apply the chosen rule's filters exactly as the data
 * path will, and describe the outcome as JSON. See explain.h.
 *
 * Choices the data path shares: the request filters of a rule run RequestHeaderModifier first,
 * then URLRewrite (hostname, then path); backend-level filters run after the rule's, on a copy,
 * for each backend (explain lists every backend with its weight instead of drawing one). A rule
 * answers 500 when it names an ExtensionRef, has no backendRefs, has only weight-0 backendRefs,
 * or when every backendRef with a weight is invalid; a RequestRedirect answers before any
 * backend is considered. */
#include "explain.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "gammamesh/config.h"
#include "gammamesh/route_filter.h"
#include "gammamesh/util.h"

#include "decide.h"

#define HEADER_BYTES_MAX (256 * 1024)
#define HOST_MAX         256

/* ---- JSON helpers ---- */

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

/* A Gateway API duration in canonical form ("1h30m", "1s500ms", "0s"); null when unset. */
static json_t *duration_json(int64_t ms)
{
    static const struct {
        const char *unit;
        int64_t ms;
    } units[] = {{"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1}};
    char buf[64] = "";
    size_t len = 0;

    if (ms < 0)
        return json_null();
    if (ms == 0)
        return json_string("0s");
    for (size_t i = 0; i < GM_ARRAY_LEN(units); i++) {
        int64_t n = ms / units[i].ms;
        ms %= units[i].ms;
        if (n > 0)
            len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%lld%s", (long long)n,
                                    units[i].unit);
    }
    return json_string(buf);
}

/* Header map: lower-cased names, every value of a name joined with ",", in list order. */
static json_t *headers_json(const struct gm_hlist *h)
{
    json_t *o = json_object();

    for (size_t i = 0; i < h->n; i++) {
        char name[256];
        size_t n = h->v[i].name_len < sizeof(name) - 1 ? h->v[i].name_len : sizeof(name) - 1;
        for (size_t k = 0; k < n; k++)
            name[k] = (char)tolower((unsigned char)h->v[i].name[k]);
        name[n] = '\0';
        if (json_object_get(o, name))
            continue;
        char *joined = gm_hlist_get(h, name);
        json_object_set_new(o, name, json_string(joined));
        free(joined);
    }
    return o;
}

static json_t *strs_json(const struct gm_strs *s)
{
    json_t *a = json_array();

    for (size_t i = 0; i < s->n; i++)
        json_array_append_new(a, json_string(s->v[i]));
    return a;
}

static json_t *target_json(const struct gm_ctarget *t)
{
    json_t *o = json_pack("{s:o, s:o, s:i}", "service", str_or_null(t->name), "namespace",
                          str_or_null(t->namespace), "port", t->port);

    if (t->invalid)
        json_object_set_new(o, "invalid", json_string(t->invalid));
    return o;
}

static json_t *error_json(bool *resolved, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static json_t *error_json(bool *resolved, const char *fmt, ...)
{
    va_list ap;
    char msg[1024];

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    *resolved = false;
    return json_pack("{s:s}", "error", msg);
}

/* ---- the target ---- */

/* Split HOST[:PORT] ("[v6]:port" for IPv6; a bare IPv6 address has no port). Port 80 when
 * absent. 0 or -EINVAL. */
static int parse_to(const char *to, char *host, size_t hostlen, int *port)
{
    const char *h = to, *p = NULL;
    size_t hl;

    if (to[0] == '[') {
        const char *end = strchr(to, ']');
        if (end == NULL || (end[1] != '\0' && end[1] != ':'))
            return -EINVAL;
        h = to + 1;
        hl = (size_t)(end - h);
        p = end[1] == ':' ? end + 2 : NULL;
    } else {
        const char *colon = strchr(to, ':');
        bool one = colon && strchr(colon + 1, ':') == NULL;
        hl = one ? (size_t)(colon - to) : strlen(to);
        p = one ? colon + 1 : NULL;
    }
    while (hl > 0 && h[hl - 1] == '.')
        hl--; /* a fully qualified "name.ns.svc.cluster.local." */
    if (hl == 0 || hl >= hostlen)
        return -EINVAL;
    for (size_t i = 0; i < hl; i++)
        host[i] = (char)tolower((unsigned char)h[i]);
    host[hl] = '\0';
    *port = 80;
    if (p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (*p == '\0' || *end != '\0' || v < 1 || v > 65535)
            return -EINVAL;
        *port = (int)v;
    }
    return 0;
}

struct target {
    char host[HOST_MAX]; /* lower-cased, no brackets, no port */
    int port;
    struct gm_ip ip; /* family 0 when host is a name */
    const struct gm_svc *svc;
    int port_index;
    const struct gm_workload *pod; /* host is a pod IP */
};

static const struct gm_svc *svc_with_vip(const struct gm_snapshot *s, const struct gm_ip *ip)
{
    for (size_t i = 0; i < s->n_by_vip; i++)
        if (gm_ip_equal(&s->by_vip[i]->vip, ip))
            return s->by_vip[i];
    return NULL;
}

static json_t *resolve_ip(const struct gm_snapshot *s, struct target *t, bool *resolved)
{
    const struct gm_svc *svc;

    t->svc = gm_snapshot_service_by_vip(s, &t->ip, t->port, &t->port_index);
    if (t->svc)
        return NULL;
    if ((svc = svc_with_vip(s, &t->ip)) != NULL)
        return error_json(resolved, "Service %s/%s (VIP %s) has no port %d", svc->namespace,
                          svc->name, t->host, t->port);
    t->pod = gm_snapshot_workload_by_ip(s, &t->ip);
    if (t->pod)
        return NULL;
    return error_json(resolved, "no Service VIP or pod has the address %s", t->host);
}

/* Fill t from req->to; NULL, or an error object (and *resolved false). */
static json_t *resolve(const struct gm_snapshot *s, const struct wp_explain_req *req,
                       struct target *t, bool *resolved)
{
    memset(t, 0, sizeof(*t));
    t->port_index = -1;
    if (req->to == NULL || parse_to(req->to, t->host, sizeof(t->host), &t->port) < 0)
        return error_json(resolved, "bad target \"%s\": want HOST[:PORT]", req->to ? req->to : "");
    if (gm_ip_parse(t->host, &t->ip) == 0)
        return resolve_ip(s, t, resolved);
    t->svc = gm_snapshot_service_by_host(s, t->host, req->from_ns);
    if (t->svc == NULL)
        return error_json(resolved, "no Service \"%s\" (resolved from namespace %s)", t->host,
                          req->from_ns);
    t->port_index = gm_svc_port_index(t->svc, t->port);
    if (t->port_index < 0)
        return error_json(resolved, "Service %s/%s has no port %d", t->svc->namespace, t->svc->name,
                          t->port);
    return NULL;
}

static json_t *service_json(const struct target *t)
{
    const struct gm_svc_port *sp = &t->svc->ports[t->port_index];
    char vip[64];

    return json_pack("{s:s, s:s, s:i, s:o, s:o}", "name", t->svc->name, "namespace",
                     t->svc->namespace, "port", sp->port, "port_name", str_or_null(sp->name), "vip",
                     t->svc->vip.family ? json_string(gm_ip_format(&t->svc->vip, vip, sizeof(vip)))
                                        : json_null());
}

/* ---- the request ---- */

struct request {
    const char *method;
    const char *scheme;
    struct gm_hlist headers;
    char *path;  /* without the query */
    char *query; /* NULL when none */
    struct gm_hdr views[WP_EXPLAIN_MAX_HEADERS + 1];
    struct gm_req_view view;
};

/* Add one "Name: value" option; -EINVAL when malformed. */
static int add_header_opt(struct gm_hlist *h, const char *opt)
{
    const char *colon = strchr(opt, ':');
    const char *v, *end;

    if (colon == NULL || colon == opt)
        return -EINVAL;
    for (const char *c = opt; c < colon; c++)
        if (!isgraph((unsigned char)*c))
            return -EINVAL;
    v = colon + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    end = v + strlen(v);
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    return gm_hlist_addn(h, opt, (size_t)(colon - opt), v, (size_t)(end - v));
}

static void default_host(const struct target *t, char *buf, size_t len)
{
    bool v6 = t->ip.family && strchr(t->host, ':');
    const char *open = v6 ? "[" : "", *close = v6 ? "]" : "";

    if (t->port == 80)
        snprintf(buf, len, "%s%s%s", open, t->host, close);
    else
        snprintf(buf, len, "%s%s%s:%d", open, t->host, close, t->port);
}

static void request_view(struct request *r)
{
    size_t n = gm_hlist_view(&r->headers, r->views, GM_ARRAY_LEN(r->views));

    r->view.method = r->method;
    r->view.path = r->path;
    r->view.path_len = strlen(r->path);
    r->view.query = r->query;
    r->view.query_len = r->query ? strlen(r->query) : 0;
    r->view.headers = r->views;
    r->view.n_headers = n < GM_ARRAY_LEN(r->views) ? n : GM_ARRAY_LEN(r->views);
}

/* Build the request; NULL, or an error object. */
static json_t *request_init(struct request *r, const struct wp_explain_req *req,
                            const struct target *t, bool *resolved)
{
    const char *target = req->target ? req->target : "/";
    const char *q = strchr(target, '?');
    char host[HOST_MAX + 16];

    memset(r, 0, sizeof(*r));
    gm_hlist_init(&r->headers, HEADER_BYTES_MAX);
    r->method = req->method ? req->method : "GET";
    r->scheme = req->scheme ? req->scheme : "http";
    r->path = q ? gm_xstrndup(target, (size_t)(q - target)) : gm_xstrdup(target);
    r->query = q ? gm_xstrdup(q + 1) : NULL;
    for (size_t i = 0; i < req->n_headers && i < WP_EXPLAIN_MAX_HEADERS; i++)
        if (add_header_opt(&r->headers, req->headers[i]) < 0)
            return error_json(resolved, "bad header \"%s\": want 'Name: value'", req->headers[i]);
    if (gm_hlist_count(&r->headers, "host") == 0) {
        default_host(t, host, sizeof(host));
        gm_hlist_add(&r->headers, "Host", host);
    }
    request_view(r);
    return NULL;
}

static void request_done(struct request *r)
{
    gm_hlist_done(&r->headers);
    free(r->path);
    free(r->query);
}

/* Copy headers and path so backend-level filters can run on their own copy. */
static void request_copy(struct request *dst, const struct request *src)
{
    memset(dst, 0, sizeof(*dst));
    dst->method = src->method;
    dst->scheme = src->scheme;
    gm_hlist_init(&dst->headers, src->headers.max_bytes);
    for (size_t i = 0; i < src->headers.n; i++)
        gm_hlist_addn(&dst->headers, src->headers.v[i].name, src->headers.v[i].name_len,
                      src->headers.v[i].value, src->headers.v[i].value_len);
    dst->path = gm_xstrdup(src->path);
    dst->query = src->query ? gm_xstrdup(src->query) : NULL;
    request_view(dst);
}

static json_t *request_target_json(const struct request *r)
{
    return r->query ? json_sprintf("%s?%s", r->path, r->query) : json_string(r->path);
}

static int apply_request_filters(const struct gm_cfilters *f, const struct gm_cmatch *m,
                                 struct request *r)
{
    int rc = gm_request_filters_apply(f, m, &r->headers, &r->path);

    request_view(r);
    return rc;
}

/* ---- pieces of the answer ---- */

static json_t *route_json(const struct gm_cmatch *m)
{
    const struct gm_object *o = m->rule->route;

    return json_pack("{s:s, s:s, s:i, s:o, s:i}", "name", o->meta.name, "namespace",
                     o->meta.namespace, "rule_index", (int)m->rule->index, "rule_name",
                     str_or_null(m->rule->name), "match_index", (int)m->match_index);
}

static json_t *table_json(const struct gm_svc_port *sp, const struct gm_route_table *t,
                          const char *from_ns)
{
    bool producer = t == &sp->producer;

    return json_pack("{s:s, s:o, s:i}", "kind", producer ? "producer" : "consumer",
                     "client_namespace", producer ? json_null() : json_string(from_ns), "matches",
                     (int)t->n);
}

static json_t *mirrors_json(const struct gm_cfilters *f)
{
    json_t *a = json_array();

    for (size_t i = 0; i < f->n_mirrors; i++) {
        const struct gm_cmirror *m = &f->mirrors[i];
        json_t *o = target_json(&m->target);
        if (m->fraction_num >= 0 && m->fraction_den > 0)
            json_object_set_new(o, "fraction",
                                json_sprintf("%d/%d", m->fraction_num, m->fraction_den));
        else
            json_object_set_new(o, "percent", json_integer(m->percent));
        json_array_append_new(a, o);
    }
    return a;
}

/* set/add of a ResponseHeaderModifier, and what it removes. */
static void response_headers_json(json_t *o, const struct gm_header_mod *mod)
{
    struct gm_hlist h;

    gm_hlist_init(&h, HEADER_BYTES_MAX);
    gm_hlist_apply(&h, mod);
    json_object_set_new(o, "response_headers", headers_json(&h));
    if (mod && mod->remove.n)
        json_object_set_new(o, "response_headers_removed", strs_json(&mod->remove));
    gm_hlist_done(&h);
}

static json_t *timeouts_json(const struct gm_timeouts *t)
{
    return json_pack("{s:o, s:o}", "request", duration_json(t->request_ms), "backendRequest",
                     duration_json(t->backend_request_ms));
}

static json_t *retry_json(const struct gm_retry *r)
{
    json_t *codes;

    if (r == NULL)
        return json_null();
    codes = json_array();
    for (size_t i = 0; i < r->n_codes; i++)
        json_array_append_new(codes, json_integer(r->codes[i]));
    return json_pack("{s:o, s:o, s:o}", "attempts",
                     r->attempts >= 0 ? json_integer(r->attempts) : json_null(), "codes", codes,
                     "backoff", duration_json(r->backoff_ms));
}

static json_t *respond(json_t *o, int status, const char *reason)
{
    json_object_set_new(o, "action", json_string("respond"));
    json_object_set_new(o, "status", json_integer(status));
    json_object_set_new(o, "reason", json_string(reason));
    return o;
}

/* ---- decisions ---- */

struct ctx {
    const struct target *t;
    const struct gm_cmatch *m;
    struct request *req;
};

/* A RequestRedirect (rule- or backend-level) into o. */
static void redirect_into(json_t *o, const struct ctx *c, const struct gm_redirect *rd,
                          const struct gm_header_mod *response)
{
    const struct request *r = c->req;
    char *host = gm_hlist_get(&r->headers, "host");
    char *loc = NULL;
    int status = 0;
    struct gm_redirect_in in = {
        .scheme = r->scheme,
        .host = host,
        .port = c->t->port,
        .path = r->path,
        .path_len = strlen(r->path),
        .query = r->query,
        .query_len = r->query ? strlen(r->query) : 0,
    };

    in.match_prefix = gm_cmatch_prefix(c->m, &in.match_prefix_len);
    if (gm_redirect_location(rd, &in, &loc, &status) < 0) {
        respond(o, 500, "redirect without a hostname and without a Host header");
    } else {
        json_object_set_new(o, "action", json_string("redirect"));
        json_object_set_new(o, "status", json_integer(status));
        json_object_set_new(o, "location", json_string(loc));
        if (response)
            response_headers_json(o, response);
    }
    free(loc);
    free(host);
}

/* Does f change the request or the response of one backend? */
static bool has_filters(const struct gm_cfilters *f)
{
    return f->request_header || f->response_header || f->rewrite || f->redirect || f->n_mirrors ||
           f->unresolvable;
}

static json_t *backend_json(const struct ctx *c, const struct gm_cbackend *b)
{
    json_t *o = target_json(&b->target);
    const struct gm_cfilters *f = &b->filters;
    struct request copy;
    struct ctx bc = *c;

    json_object_set_new(o, "weight", json_integer(b->weight));
    if (!has_filters(f))
        return o;
    if (f->unresolvable && !b->target.invalid)
        json_object_set_new(o, "invalid", json_string(f->unresolvable));
    request_copy(&copy, c->req);
    bc.req = &copy;
    if (apply_request_filters(f, c->m, &copy) < 0) {
        json_object_set_new(o, "invalid", json_string("request headers over the cap"));
    } else if (f->redirect) {
        json_t *rd = json_object();
        redirect_into(rd, &bc, f->redirect, f->response_header);
        json_object_set_new(o, "redirect", rd);
    } else {
        json_object_set_new(o, "request_headers", headers_json(&copy.headers));
        json_object_set_new(o, "path", request_target_json(&copy));
        char *host = gm_hlist_get(&copy.headers, "host");
        json_object_set_new(o, "host", str_or_null(host));
        free(host);
        if (f->response_header)
            response_headers_json(o, f->response_header);
    }
    if (f->n_mirrors)
        json_object_set_new(o, "mirrors", mirrors_json(f));
    request_done(&copy);
    return o;
}

static json_t *backends_json(const struct ctx *c)
{
    const struct gm_crule *r = c->m->rule;
    json_t *a = json_array();

    for (size_t i = 0; i < r->n_backends; i++)
        json_array_append_new(a, backend_json(c, &r->backends[i]));
    return a;
}

static json_t *forward(json_t *o, const struct ctx *c)
{
    const struct gm_crule *r = c->m->rule;
    char *host;

    if (apply_request_filters(&r->filters, c->m, c->req) < 0)
        return respond(o, 500, "request headers over the cap after the rule's filters");
    json_object_set_new(o, "action", json_string("forward"));
    json_object_set_new(o, "backends", backends_json(c));
    json_object_set_new(o, "request_headers", headers_json(&c->req->headers));
    json_object_set_new(o, "path", request_target_json(c->req));
    host = gm_hlist_get(&c->req->headers, "host");
    json_object_set_new(o, "host", str_or_null(host));
    free(host);
    response_headers_json(o, r->filters.response_header);
    json_object_set_new(o, "timeouts", timeouts_json(&r->timeouts));
    json_object_set_new(o, "retry", retry_json(r->retry));
    json_object_set_new(o, "mirrors", mirrors_json(&r->filters));
    return o;
}

/* An unresolvable ExtensionRef must not be skipped, so it answers even before a redirect. */
static json_t *decide(json_t *o, const struct ctx *c)
{
    const struct gm_crule *r = c->m->rule;
    const char *why;

    if (r->filters.unresolvable)
        return respond(o, 500, r->filters.unresolvable);
    if (r->filters.redirect) {
        redirect_into(o, c, r->filters.redirect, r->filters.response_header);
        return o;
    }
    if ((why = wp_decide_rule_failure(r)) != NULL) {
        respond(o, 500, why);
        json_object_set_new(o, "backends", backends_json(c));
        return o;
    }
    return forward(o, c);
}

static json_t *explain_pod(const struct target *t)
{
    const struct gm_workload *w = t->pod;

    return json_pack("{s:{s:s, s:s, s:s}, s:n, s:s, s:s}", "workload", "name", w->name, "namespace",
                     w->namespace, "ip", t->host, "route", "action", "passthrough", "reason",
                     "addressed to a pod IP: Service routes do not apply");
}

static json_t *explain_service(const struct target *t, const struct wp_explain_req *req,
                               bool *resolved)
{
    const struct gm_svc_port *sp = &t->svc->ports[t->port_index];
    const struct gm_route_table *table = gm_snapshot_routes(t->svc, t->port_index, req->from_ns);
    json_t *o = json_pack("{s:o}", "service", service_json(t)), *err;
    struct request r;
    char why[200];

    if (table == NULL) {
        json_object_set_new(o, "route", json_null());
        json_object_set_new(o, "action", json_string("passthrough"));
        json_object_set_new(o, "reason",
                            json_string("no route is attached to this Service "
                                        "port: default load balancing"));
        json_object_set_new(o, "endpoints", json_integer((json_int_t)t->svc->n_endpoints));
        return o;
    }
    json_object_set_new(o, "route_table", table_json(sp, table, req->from_ns));
    if ((err = request_init(&r, req, t, resolved)) != NULL) {
        request_done(&r);
        json_decref(o);
        return err;
    }
    struct ctx c = {.t = t, .m = gm_route_select(table, &r.view), .req = &r};
    if (c.m == NULL) {
        json_object_set_new(o, "route", json_null());
        snprintf(why, sizeof(why), "no rule matched the request (%zu matches in the %s table)",
                 table->n, table == &sp->producer ? "producer" : "consumer");
        respond(o, 404, why);
    } else {
        json_object_set_new(o, "route", route_json(c.m));
        decide(o, &c);
    }
    request_done(&r);
    return o;
}

json_t *wp_explain_request(const struct gm_snapshot *s, const struct wp_explain_req *req,
                           bool *resolved)
{
    struct target t;
    json_t *err;

    *resolved = true;
    if (req->from_ns == NULL)
        return error_json(resolved, "no client namespace");
    if ((err = resolve(s, req, &t, resolved)) != NULL)
        return err;
    if (t.pod)
        return explain_pod(&t);
    return explain_service(&t, req, resolved);
}

/* ---- the command line ---- */

static void usage(FILE *f)
{
    fputs("usage: waypoint --explain --config-dir DIR --from-namespace NS --to HOST[:PORT]\n"
          "                [--method M] [--path P[?QUERY]] [-H 'Name: value']...\n"
          "                [--scheme http|https] [--cluster-domain D]\n"
          "HOST: a Service name (name, name.ns, name.ns.svc, name.ns.svc.<domain>), a Service\n"
          "VIP or a pod IP; PORT defaults to 80. Prints the decision as JSON.\n",
          f);
}

enum {
    OPT_EXPLAIN = 256, /* --explain */
    OPT_CONFIG_DIR,    /* --config-dir */
    OPT_FROM_NS,       /* --from-namespace */
    OPT_TO,            /* --to */
    OPT_METHOD,        /* --method */
    OPT_PATH,          /* --path */
    OPT_SCHEME,        /* --scheme */
    OPT_DOMAIN,        /* --cluster-domain */
    OPT_HELP,          /* --help */
    OPT__MAX
};

static const struct option long_opts[] = {
    {"explain", no_argument, NULL, OPT_EXPLAIN},
    {"config-dir", required_argument, NULL, OPT_CONFIG_DIR},
    {"from-namespace", required_argument, NULL, OPT_FROM_NS},
    {"to", required_argument, NULL, OPT_TO},
    {"method", required_argument, NULL, OPT_METHOD},
    {"path", required_argument, NULL, OPT_PATH},
    {"header", required_argument, NULL, 'H'},
    {"scheme", required_argument, NULL, OPT_SCHEME},
    {"cluster-domain", required_argument, NULL, OPT_DOMAIN},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

struct cli {
    struct wp_explain_req req;
    const char *dir;
    const char *cluster_domain;
    bool help;
};

static int take_opt(struct cli *c, int opt, const char *arg, FILE *err)
{
    switch (opt) {
    case OPT_EXPLAIN:
        return 0;
    case OPT_CONFIG_DIR:
        c->dir = arg;
        return 0;
    case OPT_FROM_NS:
        c->req.from_ns = arg;
        return 0;
    case OPT_TO:
        c->req.to = arg;
        return 0;
    case OPT_METHOD:
        c->req.method = arg;
        return 0;
    case OPT_PATH:
        c->req.target = arg;
        return 0;
    case OPT_SCHEME:
        c->req.scheme = arg;
        return 0;
    case OPT_DOMAIN:
        c->cluster_domain = arg;
        return 0;
    case OPT_HELP:
        c->help = true;
        return 0;
    case 'H':
        if (c->req.n_headers == WP_EXPLAIN_MAX_HEADERS) {
            fprintf(err, "waypoint: at most %d -H options\n", WP_EXPLAIN_MAX_HEADERS);
            return -EINVAL;
        }
        c->req.headers[c->req.n_headers++] = arg;
        return 0;
    default:
        return -EINVAL;
    }
}

/* Check what getopt cannot; 0 or -EINVAL after a message. */
static int check_cli(const struct cli *c, FILE *err)
{
    char host[HOST_MAX];
    int port;

    if (c->dir == NULL || c->req.from_ns == NULL || c->req.to == NULL) {
        fputs("waypoint: --explain needs --config-dir, --from-namespace and --to\n", err);
        return -EINVAL;
    }
    if (parse_to(c->req.to, host, sizeof(host), &port) < 0) {
        fprintf(err, "waypoint: --to %s: want HOST[:PORT] ([IPv6]:PORT)\n", c->req.to);
        return -EINVAL;
    }
    if (c->req.scheme && strcmp(c->req.scheme, "http") != 0 &&
        strcmp(c->req.scheme, "https") != 0) {
        fprintf(err, "waypoint: --scheme must be http or https\n");
        return -EINVAL;
    }
    for (size_t i = 0; i < c->req.n_headers; i++) {
        const char *colon = strchr(c->req.headers[i], ':');
        if (colon == NULL || colon == c->req.headers[i]) {
            fprintf(err, "waypoint: -H %s: want 'Name: value'\n", c->req.headers[i]);
            return -EINVAL;
        }
    }
    return 0;
}

static int parse_cli(int argc, char **argv, struct cli *c, FILE *err)
{
    int opt;

    memset(c, 0, sizeof(*c));
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":H:", long_opts, NULL)) != -1) {
        if (opt == '?' || opt == ':') {
            fprintf(err, "waypoint: %s option %s\n", opt == ':' ? "missing value for" : "unknown",
                    argv[optind - 1]);
            return -EINVAL;
        }
        if (take_opt(c, opt, optarg, err) < 0)
            return -EINVAL;
    }
    if (optind < argc) {
        fprintf(err, "waypoint: unexpected argument %s\n", argv[optind]);
        return -EINVAL;
    }
    return c->help ? 0 : check_cli(c, err);
}

static int print_json(FILE *out, json_t *o)
{
    int rc = json_dumpf(o, out, JSON_INDENT(2));

    fputc('\n', out);
    json_decref(o);
    return rc;
}

int wp_explain_main(int argc, char **argv, FILE *out, FILE *err)
{
    struct gm_snapshot_options opts = {0};
    struct gm_snapshot *snap = NULL;
    struct cli c;
    bool resolved = true;

    if (parse_cli(argc, argv, &c, err) < 0) {
        usage(err);
        return 2;
    }
    if (c.help) {
        usage(out);
        return 0;
    }
    opts.cluster_domain = c.cluster_domain;
    int rc = gm_config_check(c.dir, &opts, err, &snap);
    if (rc < 0 || snap == NULL) {
        print_json(out, json_pack("{s:s}", "error", "cannot read the configuration directory"));
        fprintf(err, "waypoint: %s: %s\n", c.dir, strerror(rc < 0 ? -rc : EIO));
        return 1;
    }
    json_t *o = wp_explain_request(snap, &c.req, &resolved);
    gm_snapshot_unref(snap);
    if (print_json(out, o) < 0)
        return 1;
    return resolved ? 0 : 1;
}
