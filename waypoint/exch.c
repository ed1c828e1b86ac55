/* Exchanges (exch.h), first half: lifecycle, the request body, local answers, handing the
 * response to the downstream codec, finishing with the access log and metrics. */
#include <errno.h>
#include <string.h>

#include "conn.h"
#include "exch_int.h"
#include "gammamesh/log.h"
#include "telemetry.h"
#include "upstream.h"
#include "worker.h"

static const unsigned state_from[WP_EXCH__MAX] = {
    [WP_EXCH_HEAD] = 0,
    [WP_EXCH_CONNECT] = 1u << WP_EXCH_HEAD | 1u << WP_EXCH_BACKOFF,
    [WP_EXCH_WAIT] = 1u << WP_EXCH_CONNECT,
    [WP_EXCH_BACKOFF] = 1u << WP_EXCH_HEAD | 1u << WP_EXCH_CONNECT | 1u << WP_EXCH_WAIT,
    [WP_EXCH_RESPOND] =
        1u << WP_EXCH_HEAD | 1u << WP_EXCH_CONNECT | 1u << WP_EXCH_WAIT | 1u << WP_EXCH_BACKOFF,
    [WP_EXCH_DONE] = 1u << WP_EXCH_HEAD | 1u << WP_EXCH_CONNECT | 1u << WP_EXCH_WAIT |
                     1u << WP_EXCH_BACKOFF | 1u << WP_EXCH_RESPOND,
};

void wp_exch_set_state(struct wp_exch *x, enum wp_exch_state next)
{
    GM_ASSERT(state_from[next] & (1u << x->state));
    x->state = next;
}

/* ---- lifetime ---- */

static void link_mirror(struct wp_exch *x)
{
    struct wp_worker *w = x->w;

    x->next = w->mirrors;
    if (w->mirrors)
        w->mirrors->prev = x;
    w->mirrors = x;
    __atomic_store_n(&w->n_mirrors, w->n_mirrors + 1, __ATOMIC_RELAXED);
}

static void unlink_mirror(struct wp_exch *x)
{
    struct wp_worker *w = x->w;

    if (x->prev)
        x->prev->next = x->next;
    else if (w->mirrors == x)
        w->mirrors = x->next;
    if (x->next)
        x->next->prev = x->prev;
    x->prev = x->next = NULL;
    __atomic_store_n(&w->n_mirrors, w->n_mirrors - 1, __ATOMIC_RELAXED);
}

static void exch_free(struct wp_exch *x)
{
    wp_req_done(&x->req);
    wp_bytes_done(&x->body);
    gm_hlist_done(&x->resp.headers);
    gm_hlist_done(&x->resp.trailers);
    wp_bytes_done(&x->resp.body);
    free(x->resp.upgrade);
    wp_decision_done(&x->d);
    gm_snapshot_unref(x->snap);
    if (x->origin)
        wp_conn_unref(x->origin);
    free(x->authority);
    free(x);
}

static void unref(struct wp_exch *x)
{
    GM_ASSERT(x->refs > 0);
    if (--x->refs == 0)
        exch_free(x);
}

static void on_timer_closed(uv_handle_t *h)
{
    unref(h->data);
}

struct wp_exch *wp_exch_new(struct wp_worker *w, struct wp_conn *c, int32_t sid)
{
    struct wp_exch *x = gm_xcalloc(1, sizeof(*x));
    size_t cap = (size_t)wp_worker_settings(w)->max_head_bytes * 2;

    x->w = w;
    x->sid = sid;
    x->refs = 3; /* the codec, and the two timers */
    x->flags = "-";
    x->t0_ns = uv_hrtime();
    x->start_ms = uv_now(wp_worker_loop(w));
    wp_req_init(&x->req, cap);
    wp_bytes_init(&x->body, 0);
    gm_hlist_init(&x->resp.headers, cap);
    gm_hlist_init(&x->resp.trailers, cap);
    wp_bytes_init(&x->resp.body, 0);
    x->resp.content_length = -1;
    uv_timer_init(wp_worker_loop(w), &x->deadline);
    uv_timer_init(wp_worker_loop(w), &x->attempt);
    x->deadline.data = x->attempt.data = x;
    x->timers_open = 2;
    if (wp_worker_snapshot(w))
        x->snap = gm_snapshot_ref(wp_worker_snapshot(w));
    if (c) {
        x->conn = x->origin = c;
        wp_conn_ref(c);
        wp_conn_link(c, x);
        x->h2_downstream = c->state == WP_CONN_H2;
    } else {
        x->mirror = true;
        link_mirror(x);
    }
    return x;
}

void wp_exch_release(struct wp_exch *x)
{
    if (x == NULL || x->released)
        return;
    x->released = true;
    unref(x);
}

/* ---- the request body ---- */

bool wp_exch_replayable(const struct wp_exch *x)
{
    return !x->body_streamed && x->body_base == 0;
}

size_t wp_exch_unsent(const struct wp_exch *x)
{
    return (size_t)(x->body_total - (x->sent > x->body_base ? x->sent : x->body_base));
}

/* Bytes already written upstream are dropped once the body can no longer be replayed. */
static void trim(struct wp_exch *x)
{
    if (!x->body_streamed || x->sent <= x->body_base)
        return;
    wp_bytes_consume(&x->body, (size_t)(x->sent - x->body_base));
    x->body_base = x->sent;
}

void wp_exch_progress(struct wp_exch *x)
{
    size_t n;

    trim(x);
    if (x->sent <= x->acked)
        return;
    n = (size_t)(x->sent - x->acked);
    x->acked = x->sent;
    if (x->conn && x->conn->ops && x->conn->ops->drained)
        x->conn->ops->drained(x->conn, x, n);
}

/* Nobody will send these bytes upstream: let the client go on. */
static void discard_body(struct wp_exch *x)
{
    x->sent = x->body_total;
    x->body_streamed = true;
    wp_exch_progress(x);
}

void wp_exch_body(struct wp_exch *x, const char *p, size_t n)
{
    wp_exch_touch(x);
    x->bytes_in += n;
    x->body_total += n;
    if (x->state == WP_EXCH_DONE || x->mirror) {
        discard_body(x);
        return;
    }
    wp_bytes_append(&x->body, p, n);
    if (!x->body_streamed && x->body_total > (uint64_t)wp_worker_settings(x->w)->max_body_buffer) {
        x->body_streamed = true; /* from now on: no retry, no mirror */
        x->mirrors_due = false;
    }
    trim(x);
    if (x->up && (x->state == WP_EXCH_WAIT || x->tunnel))
        wp_uconn_send(x->up);
}

void wp_exch_body_end(struct wp_exch *x)
{
    x->body_end = true;
    if (x->state == WP_EXCH_DONE)
        return;
    if (x->mirrors_due) {
        x->mirrors_due = false;
        wp_mirror_fire(x);
    }
    if (x->up && (x->state == WP_EXCH_WAIT || x->tunnel))
        wp_uconn_send(x->up);
}

/* ---- the response ---- */

void wp_exch_resp_reset(struct wp_exch *x)
{
    struct wp_resp *r = &x->resp;

    r->status = 0;
    gm_hlist_done(&r->headers);
    gm_hlist_init(&r->headers, x->req.headers.max_bytes);
    gm_hlist_done(&r->trailers);
    gm_hlist_init(&r->trailers, x->req.headers.max_bytes);
    wp_bytes_clear(&r->body);
    free(r->upgrade);
    r->upgrade = NULL;
    r->content_length = -1;
    r->no_body = r->end = false;
}

void wp_exch_give(struct wp_exch *x)
{
    if (x->state != WP_EXCH_RESPOND)
        return;
    if (x->conn && x->conn->ops) {
        x->resp_head_given = true;
        x->conn->ops->response(x->conn, x);
        return;
    }
    /* No downstream (a mirror): read and drop. */
    wp_exch_taken(x, wp_bytes_size(&x->resp.body));
    if (x->resp.end)
        wp_exch_finish(x, NULL);
}

void wp_exch_taken(struct wp_exch *x, size_t n)
{
    if (n)
        wp_exch_touch(x);
    wp_bytes_consume(&x->resp.body, n);
    x->bytes_out += n;
    if (x->up)
        wp_uconn_consumed(x->up, n);
}

void wp_exch_sent(struct wp_exch *x)
{
    wp_exch_finish(x, NULL);
}

void wp_exch_answer(struct wp_exch *x, int status, const char *body, const char *location,
                    const char *flags)
{
    struct wp_resp *r = &x->resp;
    size_t len = body ? strlen(body) : 0;

    if (x->state == WP_EXCH_DONE)
        return;
    if (x->state == WP_EXCH_RESPOND) {
        /* A response is already on its way: it cannot be replaced, only cut. */
        if (x->conn && x->conn->ops)
            x->conn->ops->abort(x->conn, x);
        wp_exch_finish(x, "answer after the response started");
        return;
    }
    wp_exch_attempt_stop(x);
    if (x->up) {
        wp_uconn_close(x->up, "answered locally");
        x->up = NULL;
    }
    wp_exch_resp_reset(x);
    r->status = status;
    if (flags)
        x->flags = flags;
    if (location)
        gm_hlist_add(&r->headers, "location", location);
    if (len)
        gm_hlist_add(&r->headers, "content-type", "text/plain");
    for (int i = 0; i < 2 && location; i++)
        gm_hlist_apply(&r->headers, x->d.resp_mod[i]);
    r->content_length = (int64_t)len;
    r->no_body = x->req.method && strcmp(x->req.method, "HEAD") == 0;
    if (!r->no_body)
        wp_bytes_append(&r->body, body, len);
    r->end = true;
    wp_exch_set_state(x, WP_EXCH_RESPOND);
    if (!x->body_end)
        discard_body(x);
    wp_exch_give(x);
}

void wp_exch_reply(struct wp_exch *x, int status, const char *reason)
{
    char body[256];

    snprintf(body, sizeof(body), "%s\n", reason ? reason : "");
    wp_exch_answer(x, status, body, NULL, NULL);
}

/* ---- finishing ---- */

static void describe_route(const struct wp_exch *x, struct wp_access *a)
{
    const struct gm_crule *r = x->d.rule;

    a->rule_index = -1;
    if (r == NULL)
        return;
    a->route_ns = r->route->meta.namespace;
    a->route_name = r->route->meta.name;
    a->rule_index = (int)r->index;
    a->rule_name = r->name;
}

static void describe_destination(const struct wp_exch *x, struct wp_access *a)
{
    const struct gm_svc *svc = x->d.svc ? x->d.svc : x->svc;

    if (svc) {
        a->dst_service = svc->hostname;
        a->dst_service_name = svc->name;
        a->dst_service_namespace = svc->namespace;
    }
    if (x->ep) {
        a->dst_workload = x->ep->name;
        a->dst_workload_namespace = x->ep->namespace;
        a->dst_principal = x->ep->identity;
    }
}

static void account(const struct wp_exch *x)
{
    const struct wp_conn *o = x->origin;
    struct wp_access a = {
        .method = x->req.method,
        .authority = x->authority,
        .path = x->req.target,
        .status = x->resp_head_given || x->mirror ? x->resp.status : 0,
        .upstream = x->upstream[0] ? x->upstream : NULL,
        .duration_ms = (double)(uv_hrtime() - x->t0_ns) / 1e6,
        .retries = x->retries,
        .error = x->error,
        .response_flags = x->flags,
        .protocol = x->h2_downstream       ? "HTTP/2"
                    : x->req.version == 10 ? "HTTP/1.0"
                                           : "HTTP/1.1",
        .request_id = x->request_id[0] ? x->request_id : NULL,
        .bytes_in = x->bytes_in,
        .bytes_out = x->bytes_out,
        .mirror = x->mirror,
    };

    if (o) {
        a.src_addr = o->src_ip;
        a.src_workload = o->src_workload;
        a.src_namespace = o->src_namespace;
        a.src_principal = o->peer_id;
    }
    describe_route(x, &a);
    describe_destination(x, &a);
    wp_telemetry_request(x->w->wp->metrics, &a);
}

static void close_timers(struct wp_exch *x)
{
    if (x->timers_open == 0)
        return;
    x->timers_open = 0;
    uv_close((uv_handle_t *)&x->deadline, on_timer_closed);
    uv_close((uv_handle_t *)&x->attempt, on_timer_closed);
}

void wp_exch_finish(struct wp_exch *x, const char *reason)
{
    if (x->state == WP_EXCH_DONE)
        return;
    if (x->error == NULL && reason)
        x->error = reason;
    wp_exch_set_state(x, WP_EXCH_DONE);
    if (x->up) {
        if (reason)
            wp_uconn_close(x->up, reason);
        else
            wp_uconn_release(x->up);
        x->up = NULL;
    }
    if (x->conn) {
        wp_conn_unlink(x->conn, x); /* nothing goes downstream any more */
        x->conn = NULL;
    }
    if (x->req.method)
        account(x);
    close_timers(x);
    if (x->mirror) {
        unlink_mirror(x);
        wp_exch_release(x); /* a mirror is its own codec */
    }
}

void wp_exch_detach(struct wp_exch *x, const char *reason)
{
    if (x->conn) {
        wp_conn_unlink(x->conn, x);
        x->conn = NULL;
    }
    if (x->state == WP_EXCH_DONE)
        return;
    if (strcmp(x->flags, "-") == 0)
        x->flags = "DC";
    wp_exch_finish(x, reason);
}
