/* Route decisions (decide.h). */
#include "decide.h"

#include <errno.h>
#include <stdio.h>
#include <sys/socket.h>
#include <string.h>
#include <strings.h>

#include "gammamesh/route_filter.h"
#include "gammamesh/util.h"

static void respond(struct wp_decision *d, int status, const char *reason, const char *flags)
{
    d->action = WP_ACT_RESPOND;
    d->status = status;
    d->reason = reason;
    d->flags = flags;
}

static int apply_request_filters(const struct gm_cfilters *f, const struct gm_cmatch *m,
                                 struct wp_req *r)
{
    return gm_request_filters_apply(f, m, &r->headers, &r->path);
}

static void redirect(struct wp_decision *d, const struct gm_redirect *rd, int port,
                     const struct wp_req *r)
{
    char *host = gm_hlist_get(&r->headers, "host");
    struct gm_redirect_in in = {
        .scheme = r->scheme,
        .host = host,
        .port = port,
        .path = r->path,
        .path_len = strlen(r->path),
        .query = r->query,
        .query_len = r->query ? strlen(r->query) : 0,
    };
    int status = 302;

    in.match_prefix = gm_cmatch_prefix(d->match, &in.match_prefix_len);
    if (gm_redirect_location(rd, &in, &d->location, &status) < 0) {
        respond(d, 500, "redirect without a hostname and without a Host header", "-");
    } else {
        d->action = WP_ACT_REDIRECT;
        d->status = status;
    }
    free(host);
}

/* Why the rule's backends cannot take any request (500), or NULL. */
const char *wp_decide_rule_failure(const struct gm_crule *r)
{
    bool any_valid = false;

    if (r->n_backends == 0)
        return "the rule has no backendRefs";
    if (r->total_weight == 0)
        return "every backendRef of the rule has weight 0";
    for (size_t i = 0; i < r->n_backends; i++)
        any_valid |= r->backends[i].weight > 0 && r->backends[i].target.invalid == NULL;
    return any_valid ? NULL : "every backendRef with a weight is invalid";
}

static bool has_endpoint(const struct gm_svc *svc, int port_index)
{
    return wp_decide_endpoint(svc, port_index, 0) >= 0;
}

static void forward(struct wp_decision *d, const struct gm_svc *svc, int port_index)
{
    d->svc = svc;
    d->port_index = port_index;
    if (!has_endpoint(svc, port_index)) {
        respond(d, 503, "no ready endpoint", "UH");
        return;
    }
    d->action = WP_ACT_FORWARD;
    d->flags = "-";
}

/* The drawn backend: its filters, then forward. */
static void to_backend(struct wp_decision *d, const struct gm_cbackend *b, int port,
                       struct wp_req *req)
{
    const struct gm_cfilters *f = &b->filters;

    if (b->target.invalid) {
        respond(d, 500, b->target.invalid, "-");
        return;
    }
    if (f->unresolvable) {
        respond(d, 500, f->unresolvable, "-");
        return;
    }
    if (apply_request_filters(f, d->match, req) < 0) {
        respond(d, 500, "request headers over the cap after the backend's filters", "-");
        return;
    }
    d->resp_mod[1] = f->response_header;
    d->mirror_from[1] = f->n_mirrors ? f : NULL;
    if (f->redirect) {
        redirect(d, f->redirect, port, req);
        return;
    }
    forward(d, b->target.svc, b->target.svc_port);
}

static void matched(struct wp_decision *d, int port, struct wp_req *req, uint64_t rnd)
{
    const struct gm_crule *r = d->match->rule;
    const char *why;

    d->rule = r;
    d->timeouts = r->timeouts;
    d->retry = r->retry;
    d->resp_mod[0] = r->filters.response_header;
    if (r->filters.unresolvable) {
        respond(d, 500, r->filters.unresolvable, "-");
        return;
    }
    if (r->filters.redirect) {
        redirect(d, r->filters.redirect, port, req);
        return;
    }
    if ((why = wp_decide_rule_failure(r)) != NULL) {
        respond(d, 500, why, "-");
        return;
    }
    if (apply_request_filters(&r->filters, d->match, req) < 0) {
        respond(d, 500, "request headers over the cap after the rule's filters", "-");
        return;
    }
    d->mirror_from[0] = r->filters.n_mirrors ? &r->filters : NULL;
    d->backend = gm_crule_pick(r, rnd);
    if (d->backend < 0) {
        respond(d, 500, "every backendRef of the rule has weight 0", "-");
        return;
    }
    to_backend(d, &r->backends[d->backend], port, req);
}

void wp_decide(const struct gm_svc *svc, int port_index, const char *client_ns, struct wp_req *req,
               uint64_t rnd, struct wp_decision *d)
{
    const struct gm_route_table *t = gm_snapshot_routes(svc, port_index, client_ns);
    struct gm_hdr views[WP_REQ_VIEW_MAX];
    struct gm_req_view view;

    memset(d, 0, sizeof(*d));
    d->backend = -1;
    d->port_index = -1;
    d->timeouts.request_ms = d->timeouts.backend_request_ms = -1;
    if (t == NULL) {
        forward(d, svc, port_index);
        return;
    }
    wp_req_view(req, views, GM_ARRAY_LEN(views), &view);
    d->match = gm_route_select(t, &view);
    if (d->match == NULL) {
        respond(d, 404, "no rule matched", "NR");
        return;
    }
    matched(d, svc->ports[port_index].port, req, rnd);
}

void wp_decision_done(struct wp_decision *d)
{
    free(d->location);
    d->location = NULL;
}

static bool endpoint_ok(const struct gm_endpoint *e, int port_index)
{
    return e->w && e->w->ready && e->w->ip.family && e->target_ports &&
           e->target_ports[port_index] > 0;
}

int wp_decide_endpoint(const struct gm_svc *svc, int port_index, uint64_t rnd)
{
    size_t n = 0, pick;

    if (svc == NULL || port_index < 0 || (size_t)port_index >= svc->n_ports)
        return -ENOENT;
    for (size_t i = 0; i < svc->n_endpoints; i++)
        n += endpoint_ok(&svc->endpoints[i], port_index);
    if (n == 0)
        return -ENOENT;
    pick = (size_t)(rnd % n);
    for (size_t i = 0; i < svc->n_endpoints; i++) {
        if (!endpoint_ok(&svc->endpoints[i], port_index))
            continue;
        if (pick-- == 0)
            return (int)i;
    }
    return -ENOENT;
}

bool wp_decide_port_h2(const struct gm_svc *svc, int port_index)
{
    const char *ap;

    if (svc == NULL || port_index < 0 || (size_t)port_index >= svc->n_ports)
        return false;
    ap = svc->ports[port_index].app_protocol;
    return ap && (strcasecmp(ap, "http2") == 0 || strcasecmp(ap, "h2c") == 0 ||
                  strcasecmp(ap, "kubernetes.io/h2c") == 0 || strcasecmp(ap, "grpc") == 0);
}
