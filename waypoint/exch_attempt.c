/* Exchanges (exch.h), second half: the route decision, attempts upstream, per-request and
 * per-attempt timeouts, retries with backoff, and the upstream connection's events. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "exch_int.h"
#include "gammamesh/authz.h"
#include "gammamesh/log.h"
#include "retry.h"
#include "upstream.h"
#include "worker.h"

static void attempt_start(struct wp_exch *x);

/* ---- timers ---- */

static void attempt_timer(struct wp_exch *x, enum wp_timer_kind kind, uint64_t ms, uv_timer_cb cb)
{
    x->timer_kind = kind;
    if (x->timers_open)
        uv_timer_start(&x->attempt, cb, ms, 0);
}

void wp_exch_attempt_stop(struct wp_exch *x)
{
    x->timer_kind = WP_TIMER_NONE;
    if (x->timers_open)
        uv_timer_stop(&x->attempt);
}

/* The response already started downstream: the only thing left is to cut it. */
static void abort_downstream(struct wp_exch *x, const char *reason, const char *flags)
{
    if (x->error == NULL)
        x->error = reason;
    x->flags = flags;
    if (x->conn && x->conn->ops)
        x->conn->ops->abort(x->conn, x);
    wp_exch_finish(x, reason);
}

static void drop_upstream(struct wp_exch *x, const char *reason)
{
    if (x->up) {
        wp_uconn_close(x->up, reason);
        x->up = NULL;
    }
}

static void on_deadline(uv_timer_t *t)
{
    struct wp_exch *x = t->data;
    const char *why = x->idle_deadline ? "stream idle timeout" : "request timeout";

    if (x->state == WP_EXCH_DONE)
        return;
    if (x->state == WP_EXCH_RESPOND) {
        abort_downstream(x, why, "UT");
        return;
    }
    drop_upstream(x, why);
    wp_exch_answer(x, 504, x->idle_deadline ? "stream idle timeout\n" : "request timeout\n", NULL,
                   "UT");
}

/* The deadline counts idleness: no byte either way for idle-timeout (when set) ends x. */
static void idle_deadline_start(struct wp_exch *x)
{
    const struct wp_settings *set = wp_worker_settings(x->w);

    x->idle_deadline = set->idle_timeout_ms > 0;
    if (x->idle_deadline)
        uv_timer_start(&x->deadline, on_deadline, set->idle_timeout_ms, set->idle_timeout_ms);
}

/* timeouts.request (else default-request-timeout); without either, the idle-timeout applies to
 * the request as a whole: no byte either way for that long ends it. */
void wp_exch_deadline_start(struct wp_exch *x)
{
    const struct wp_settings *set = wp_worker_settings(x->w);
    int64_t ms = x->d.timeouts.request_ms;

    if (!x->timers_open)
        return;
    if (ms < 0)
        ms = (int64_t)set->default_timeout_ms;
    if (ms > 0)
        uv_timer_start(&x->deadline, on_deadline, (uint64_t)ms, 0);
    else
        idle_deadline_start(x);
}

void wp_exch_touch(struct wp_exch *x)
{
    if (x->idle_deadline && x->timers_open)
        uv_timer_again(&x->deadline);
}

/* ---- attempts ---- */

static void on_backoff(uv_timer_t *t)
{
    struct wp_exch *x = t->data;

    x->timer_kind = WP_TIMER_NONE;
    if (x->state == WP_EXCH_BACKOFF)
        attempt_start(x);
}

static void retry(struct wp_exch *x, const char *why)
{
    uint64_t wait = wp_retry_backoff_ms(x->d.retry);

    drop_upstream(x, why);
    x->retries++;
    GM_LOG_DEBUG("exch", "retrying", "request_id=%s retry=%d reason=%s backoff_ms=%llu",
                 x->request_id, x->retries, why, (unsigned long long)wait);
    wp_exch_resp_reset(x);
    x->sent = 0;
    wp_exch_set_state(x, WP_EXCH_BACKOFF);
    attempt_timer(x, WP_TIMER_BACKOFF, wait, on_backoff);
}

/* The attempt ended without a usable response. */
static void attempt_failed(struct wp_exch *x, const char *why, enum wp_retry_cause cause)
{
    wp_exch_attempt_stop(x);
    drop_upstream(x, why);
    if (wp_retry_should(x->d.retry, x->retries, cause, 0, wp_exch_replayable(x))) {
        retry(x, why);
        return;
    }
    if (cause == WP_RETRY_TIMEOUT)
        wp_exch_answer(x, 504, "upstream request timeout\n", NULL, x->retries ? "URX" : "UT");
    else
        wp_exch_answer(x, 503, "upstream connect error or disconnect\n", NULL,
                       x->retries ? "URX" : "UF");
    if (x->error == NULL)
        x->error = why;
}

static void on_attempt_timer(uv_timer_t *t)
{
    struct wp_exch *x = t->data;
    enum wp_timer_kind kind = x->timer_kind;

    x->timer_kind = WP_TIMER_NONE;
    if (x->state == WP_EXCH_DONE)
        return;
    if (kind == WP_TIMER_HEAD) {
        if (x->state == WP_EXCH_HEAD && x->conn)
            wp_conn_close(x->conn, "request head timeout");
        return;
    }
    if (x->state == WP_EXCH_RESPOND) {
        abort_downstream(x, "upstream request timeout", "UT");
        return;
    }
    if (kind == WP_TIMER_CONNECT)
        attempt_failed(x, "upstream connect timeout", WP_RETRY_CONNECT);
    else
        attempt_failed(x, "upstream request timeout", WP_RETRY_TIMEOUT);
}

/* Should the upstream speak HTTP/2? The port's appProtocol, or gRPC from an HTTP/2 client. */
static bool upstream_h2(const struct wp_exch *x)
{
    return wp_decide_port_h2(x->d.svc, x->d.port_index) ||
           (x->h2_downstream && wp_req_is_grpc(&x->req));
}

void wp_exch_forward(struct wp_exch *x)
{
    wp_exch_deadline_start(x);
    attempt_start(x);
}

static void attempt_start(struct wp_exch *x)
{
    const struct gm_svc *svc = x->d.svc;
    int64_t backend_ms = x->d.timeouts.backend_request_ms;
    int i = wp_decide_endpoint(svc, x->d.port_index, wp_worker_random(x->w));

    if (i < 0) {
        wp_exch_answer(x, 503, "no healthy upstream\n", NULL, "UH");
        return;
    }
    x->ep = svc->endpoints[i].w;
    x->ep_port = svc->endpoints[i].target_ports[x->d.port_index];
    x->up_h2 = upstream_h2(x);
    gm_ipport_format(&x->ep->ip, x->ep_port, x->upstream, sizeof(x->upstream));
    wp_exch_set_state(x, WP_EXCH_CONNECT);
    x->attempt_start_ms = uv_now(wp_worker_loop(x->w));
    if (backend_ms > 0)
        attempt_timer(x, WP_TIMER_BACKEND, (uint64_t)backend_ms, on_attempt_timer);
    else
        attempt_timer(x, WP_TIMER_CONNECT, wp_worker_settings(x->w)->connect_timeout_ms,
                      on_attempt_timer);
    if (wp_uconn_acquire(x->w, x, x->ep, x->ep_port, x->up_h2, &x->up) < 0) {
        x->up = NULL;
        attempt_failed(x, "no upstream tunnel", WP_RETRY_CONNECT);
        return;
    }
    x->up_reused = x->up->uses > 1;
    if (wp_uconn_open(x->up))
        wp_exch_up_ready(x);
}

/* ---- the decision ---- */

/* Hop-by-hop fields out; Host, x-request-id and x-forwarded-for in. */
static int prepare_headers(struct wp_exch *x)
{
    struct wp_req *r = &x->req;
    const char *host = wp_req_host(r);
    int rc = 0;

    wp_hop_strip(&r->headers, true);
    if (host == NULL && x->origin)
        rc = gm_hlist_add(&r->headers, "host", x->origin->authority);
    host = wp_req_host(r);
    x->authority = host ? gm_xstrdup(host) : NULL;
    if (rc == 0)
        rc = wp_hop_request_id(&r->headers, wp_worker_random(x->w), wp_worker_random(x->w),
                               x->request_id);
    if (rc == 0 && x->origin && x->origin->src_ip)
        rc = wp_hop_xff(&r->headers, x->origin->src_ip);
    return rc;
}

static const struct gm_svc *addressed_service(struct wp_exch *x)
{
    const struct wp_conn *c = x->origin;

    if (x->snap == NULL || c == NULL)
        return NULL;
    return gm_snapshot_service_by_vip(x->snap, &c->vip, c->port, &x->port_index);
}

/* Header values handed to the evaluator, freed after it (gm_hlist_get joins repeated fields
 * into a fresh string). */
struct header_lookup {
    const struct wp_req *req;
    char **got;
    size_t n, cap;
};

static const char *request_header(const void *ctx, const char *name)
{
    struct header_lookup *h = (struct header_lookup *)ctx;

    GM_VEC_PUSH(h->got, h->n, h->cap);
    return h->got[h->n - 1] = gm_hlist_get(&h->req->headers, name);
}

/* The AuthorizationPolicies that target the Service (or this waypoint), on the request as it
 * arrived: 0, or -EPERM with why. */
static int authorize(const struct wp_exch *x, char *why, size_t len)
{
    const struct wp_conn *c = x->origin;
    struct header_lookup h = {.req = &x->req};
    struct gm_authz_request r = {
        .src_identity = c->peer_id,
        .dst_port = x->svc->ports[x->port_index].port,
        .method = x->req.method,
        .path = x->req.path,
        .path_len = strlen(x->req.path),
        .host = wp_req_host(&x->req),
        .header = request_header,
        .ctx = &h,
    };

    if (c->src_ip)
        gm_ip_parse(c->src_ip, &r.src_ip);
    int rc = gm_authz_evaluate(x->svc->policies, x->svc->n_policies, &r, why, len);
    for (size_t i = 0; i < h.n; i++)
        free(h.got[i]);
    free(h.got);
    return rc;
}

void wp_exch_decide(struct wp_exch *x)
{
    char why[300];

    x->svc = addressed_service(x);
    if (x->svc && x->svc->n_policies && authorize(x, why, sizeof(why)) < 0) {
        GM_LOG_DEBUG("authz", "request denied", "service=%s/%s reason=%s", x->svc->namespace,
                     x->svc->name, why);
        wp_exch_answer(x, 403, "RBAC: access denied\n", NULL, "DENY");
        return;
    }
    if (prepare_headers(x) < 0) {
        wp_exch_answer(x, 431, "request header fields too large\n", NULL, NULL);
        return;
    }
    if (x->svc == NULL) {
        wp_exch_answer(x, 503, "the addressed Service is gone\n", NULL, "NR");
        return;
    }
    wp_decide(x->svc, x->port_index, x->origin->client_ns, &x->req, wp_worker_random(x->w), &x->d);
    wp_exch_deadline_start(x);
    switch (x->d.action) {
    case WP_ACT_REDIRECT:
        wp_exch_answer(x, x->d.status, NULL, x->d.location, x->d.flags);
        return;
    case WP_ACT_RESPOND: {
        char body[300];
        snprintf(body, sizeof(body), "%s\n", x->d.reason ? x->d.reason : "");
        wp_exch_answer(x, x->d.status, body, NULL, x->d.flags);
        return;
    }
    default:
        break;
    }
    if ((x->d.mirror_from[0] || x->d.mirror_from[1]) && x->req.upgrade == NULL) {
        if (x->body_end || !x->req.has_body)
            wp_mirror_fire(x);
        else
            x->mirrors_due = true;
    }
    attempt_start(x);
}

void wp_exch_head_deadline(struct wp_exch *x, uint64_t ms)
{
    attempt_timer(x, WP_TIMER_HEAD, ms, on_attempt_timer);
}

void wp_exch_start(struct wp_exch *x)
{
    if (x->state != WP_EXCH_HEAD)
        return;
    wp_exch_attempt_stop(x);
    if (x->conn == NULL) {
        wp_exch_finish(x, "downstream closed");
        return;
    }
    wp_exch_decide(x);
}

/* ---- upstream events ---- */

void wp_exch_up_ready(struct wp_exch *x)
{
    if (x->state != WP_EXCH_CONNECT || x->up == NULL)
        return;
    wp_exch_set_state(x, WP_EXCH_WAIT);
    if (x->timer_kind == WP_TIMER_CONNECT)
        wp_exch_attempt_stop(x);
    wp_uconn_send(x->up);
}

static bool retry_code(const struct wp_exch *x, int status)
{
    const struct gm_retry *r = x->d.retry;

    for (size_t i = 0; r && i < r->n_codes; i++)
        if (r->codes[i] == status)
            return true;
    return false;
}

void wp_exch_up_head(struct wp_exch *x)
{
    int status = x->resp.status;

    if (x->state != WP_EXCH_WAIT)
        return;
    if (wp_retry_should(x->d.retry, x->retries, WP_RETRY_STATUS, status, wp_exch_replayable(x))) {
        wp_exch_attempt_stop(x);
        retry(x, "retriable status");
        return;
    }
    if (x->retries && retry_code(x, status))
        x->flags = "URX";
    for (int i = 0; i < 2; i++)
        gm_hlist_apply(&x->resp.headers, x->d.resp_mod[i]);
    if (status == 204 || status == 304)
        x->resp.no_body = true;
    wp_exch_set_state(x, WP_EXCH_RESPOND);
    wp_exch_give(x);
}

void wp_exch_up_switch(struct wp_exch *x)
{
    if (x->state != WP_EXCH_WAIT)
        return;
    wp_exch_attempt_stop(x);
    x->tunnel = true;
    x->body_streamed = true; /* what the client sends from now on is never replayed */
    x->mirrors_due = false;
    x->body_end = false; /* the request had no body: the tunnel's bytes follow its head */
    if (x->timers_open) {
        /* The request was answered: the request timeout is over; idleness ends a tunnel. */
        uv_timer_stop(&x->deadline);
        idle_deadline_start(x);
    }
    for (int i = 0; i < 2; i++)
        gm_hlist_apply(&x->resp.headers, x->d.resp_mod[i]);
    wp_exch_set_state(x, WP_EXCH_RESPOND);
    wp_exch_give(x);
}

void wp_exch_up_eof(struct wp_exch *x)
{
    if (x->state != WP_EXCH_RESPOND || !x->tunnel)
        return;
    x->resp.end = true;
    wp_exch_give(x);
}

void wp_exch_up_body(struct wp_exch *x)
{
    wp_exch_touch(x);
    wp_exch_give(x);
}

void wp_exch_up_end(struct wp_exch *x)
{
    if (x->state != WP_EXCH_RESPOND)
        return;
    x->resp.end = true;
    if (x->timer_kind == WP_TIMER_BACKEND)
        wp_exch_attempt_stop(x);
    if (x->up) {
        wp_uconn_release(x->up); /* the body is all in x->resp.body */
        x->up = NULL;
    }
    wp_exch_give(x);
}

static bool idempotent(const char *m)
{
    static const char *const methods[] = {"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"};

    for (size_t i = 0; i < GM_ARRAY_LEN(methods); i++)
        if (strcmp(m, methods[i]) == 0)
            return true;
    return false;
}

/* A kept-alive connection the upstream closed just as it was reused fails before any response:
 * an idempotent request goes again on a fresh connection, once, without counting as a retry. */
static bool stale_connection(struct wp_exch *x)
{
    if (!x->up_reused || x->reuse_retried || !wp_exch_replayable(x) || x->resp.status != 0 ||
        !idempotent(x->req.method))
        return false;
    x->reuse_retried = true;
    wp_exch_attempt_stop(x);
    wp_exch_resp_reset(x);
    x->sent = 0;
    wp_exch_set_state(x, WP_EXCH_BACKOFF);
    attempt_start(x);
    return true;
}

void wp_exch_up_error(struct wp_exch *x, const char *reason)
{
    x->up = NULL; /* the connection unbound itself */
    switch (x->state) {
    case WP_EXCH_CONNECT:
    case WP_EXCH_WAIT:
        if (!stale_connection(x))
            attempt_failed(x, reason, WP_RETRY_CONNECT);
        break;
    case WP_EXCH_RESPOND:
        abort_downstream(x, reason, "UC"); /* the response is already on its way */
        break;
    default:
        break;
    }
}
