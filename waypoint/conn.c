/* Downstream connections (conn.h): one per CONNECT stream on a downstream tunnel. */
#include "conn.h"

#include <errno.h>
#include <string.h>

#include "decide.h"
#include "exch.h"
#include "gammamesh/log.h"
#include "hop.h"
#include "worker.h"

#define IN_SLACK       (64u << 10) /* input cap beyond the stream window */
#define LINGER_MS      5000        /* after our clean shutdown, wait this long for the peer's */
#define H2_PREFACE     "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define H2_PREFACE_LEN 24

static const unsigned state_from[WP_CONN__MAX] = {
    [WP_CONN_SNIFF] = 0,
    [WP_CONN_H1] = 1u << WP_CONN_SNIFF,
    [WP_CONN_H2] = 1u << WP_CONN_SNIFF,
    [WP_CONN_CLOSING] = 1u << WP_CONN_SNIFF | 1u << WP_CONN_H1 | 1u << WP_CONN_H2,
};

static void set_state(struct wp_conn *c, enum wp_conn_state next)
{
    GM_ASSERT(state_from[next] & (1u << c->state));
    c->state = next;
}

/* ---- lifetime ---- */

static void conn_free(struct wp_conn *c)
{
    struct wp_worker *w = c->w;

    if (c->prev)
        c->prev->next = c->next;
    else if (w->conns == c)
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    __atomic_store_n(&w->n_conns, w->n_conns - 1, __ATOMIC_RELAXED);
    wp_bytes_done(&c->in);
    free(c->client_ns);
    free(c->peer_id);
    free(c->src_ip);
    free(c->src_workload);
    free(c->src_namespace);
    free(c);
}

static void on_timer_closed(uv_handle_t *h)
{
    struct wp_conn *c = h->data;

    wp_conn_unref(c);
}

/* In CLOSING: close the timer once the stream is gone; free on the last reference. */
static void maybe_finish(struct wp_conn *c)
{
    if (c->state != WP_CONN_CLOSING || c->stream != NULL)
        return;
    if (c->timer_open) {
        c->timer_open = false;
        uv_close((uv_handle_t *)&c->timer, on_timer_closed); /* holds a reference */
    }
}

void wp_conn_ref(struct wp_conn *c)
{
    c->refs++;
}

void wp_conn_unref(struct wp_conn *c)
{
    GM_ASSERT(c->refs > 0);
    if (--c->refs == 0) {
        GM_ASSERT(c->state == WP_CONN_CLOSING && c->stream == NULL && !c->timer_open);
        conn_free(c);
    }
}

void wp_conn_close(struct wp_conn *c, const char *reason)
{
    if (c->error == NULL && reason)
        c->error = reason;
    if (c->state == WP_CONN_CLOSING)
        return;
    set_state(c, WP_CONN_CLOSING);
    wp_conn_ref(c);
    while (c->exchs)
        wp_exch_detach(c->exchs, c->error ? c->error : "downstream closed");
    if (c->ops && c->ops->free)
        c->ops->free(c);
    c->ops = NULL;
    wp_bytes_done(&c->in);
    if (c->stream && c->error && !c->graceful) {
        gm_hbone_stream_reset(c->stream, 8 /* CANCEL */);
    } else if (c->stream) {
        gm_hbone_stream_shutdown(c->stream);
        wp_conn_timer(c, LINGER_MS);
    }
    maybe_finish(c);
    wp_conn_unref(c);
}

void wp_conn_finish(struct wp_conn *c, const char *reason)
{
    if (c->state != WP_CONN_CLOSING)
        c->graceful = true;
    wp_conn_close(c, reason);
}

void wp_conn_drain(struct wp_conn *c)
{
    c->draining = true;
    if (c->state == WP_CONN_SNIFF && wp_bytes_size(&c->in) == 0)
        wp_conn_close(c, NULL);
    else if (c->ops && c->ops->drain)
        c->ops->drain(c);
}

/* ---- I/O helpers ---- */

int wp_conn_write(struct wp_conn *c, const void *p, size_t n)
{
    if (c->stream == NULL || c->state == WP_CONN_CLOSING)
        return -ENOTCONN;
    return gm_hbone_stream_write(c->stream, p, n);
}

bool wp_conn_writable(const struct wp_conn *c)
{
    return c->stream && c->state != WP_CONN_CLOSING && gm_hbone_stream_writable(c->stream);
}

void wp_conn_consume_input(struct wp_conn *c, size_t n)
{
    wp_bytes_consume(&c->in, n);
    if (c->stream)
        gm_hbone_stream_consumed(c->stream, n);
}

void wp_conn_half_close(struct wp_conn *c)
{
    if (c->stream && c->state != WP_CONN_CLOSING)
        gm_hbone_stream_shutdown(c->stream);
}

void wp_conn_shutdown(struct wp_conn *c)
{
    wp_conn_close(c, NULL);
}

static void on_timer(uv_timer_t *t)
{
    struct wp_conn *c = t->data;

    if (c->state == WP_CONN_CLOSING) {
        if (c->stream)
            gm_hbone_stream_reset(c->stream, 0); /* the peer never ended its side */
        return;
    }
    if (c->ops && c->ops->timeout) {
        wp_conn_ref(c);
        c->ops->timeout(c);
        wp_conn_unref(c);
        return;
    }
    wp_conn_close(c, wp_bytes_size(&c->in) ? "head timeout" : NULL);
}

void wp_conn_timer(struct wp_conn *c, uint64_t ms)
{
    if (!c->timer_open)
        return;
    if (ms == 0)
        uv_timer_stop(&c->timer);
    else
        uv_timer_start(&c->timer, on_timer, ms, 0);
}

void wp_conn_link(struct wp_conn *c, struct wp_exch *x)
{
    x->prev = NULL;
    x->next = c->exchs;
    if (c->exchs)
        c->exchs->prev = x;
    c->exchs = x;
    c->n_exchs++;
}

void wp_conn_unlink(struct wp_conn *c, struct wp_exch *x)
{
    if (x->prev)
        x->prev->next = x->next;
    else if (c->exchs == x)
        c->exchs = x->next;
    if (x->next)
        x->next->prev = x->prev;
    x->prev = x->next = NULL;
    c->n_exchs--;
}

/* ---- protocol detection ---- */

static void sniff(struct wp_conn *c)
{
    size_t n = wp_bytes_size(&c->in);
    size_t k = n < H2_PREFACE_LEN ? n : H2_PREFACE_LEN;

    if (n == 0)
        return;
    if (memcmp(wp_bytes_data(&c->in), H2_PREFACE, k) != 0) {
        set_state(c, WP_CONN_H1);
        wp_h1s_start(c);
    } else if (n >= H2_PREFACE_LEN) {
        set_state(c, WP_CONN_H2);
        wp_h2s_start(c);
    }
}

/* ---- stream callbacks ---- */

static void on_data(struct gm_hbone_stream *s, const uint8_t *p, size_t n, void *ctx)
{
    struct wp_conn *c = ctx;

    if (c->state == WP_CONN_CLOSING) {
        gm_hbone_stream_consumed(s, n);
        return;
    }
    if (wp_bytes_append(&c->in, p, n) < 0) {
        wp_conn_close(c, "input over its cap");
        return;
    }
    wp_conn_ref(c);
    if (c->state == WP_CONN_SNIFF)
        sniff(c);
    if (c->ops && c->state != WP_CONN_CLOSING)
        c->ops->input(c);
    wp_conn_unref(c);
}

static void on_end(struct gm_hbone_stream *s, void *ctx)
{
    struct wp_conn *c = ctx;

    c->peer_ended = true;
    if (c->state == WP_CONN_CLOSING)
        return;
    wp_conn_ref(c);
    if (c->ops && c->ops->peer_end)
        c->ops->peer_end(c);
    else
        wp_conn_close(c, NULL);
    wp_conn_unref(c);
}

static void on_writable(struct gm_hbone_stream *s, void *ctx)
{
    struct wp_conn *c = ctx;

    if (c->state == WP_CONN_CLOSING || c->ops == NULL || c->ops->writable == NULL)
        return;
    wp_conn_ref(c);
    c->ops->writable(c);
    wp_conn_unref(c);
}

static void on_close(struct gm_hbone_stream *s, enum gm_hbone_reason reason, void *ctx)
{
    struct wp_conn *c = ctx;

    c->stream = NULL;
    wp_conn_ref(c);
    if (c->state != WP_CONN_CLOSING)
        wp_conn_close(c, reason == GM_HBONE_REASON_OK ? NULL : gm_hbone_reason_name(reason));
    maybe_finish(c);
    wp_conn_unref(c);
}

static const struct gm_hbone_stream_cbs stream_cbs = {
    .on_data = on_data,
    .on_end = on_end,
    .on_writable = on_writable,
    .on_close = on_close,
};

/* ---- accept ---- */

static void describe_source(struct wp_conn *c, const struct gm_snapshot *snap,
                            const struct gm_hbone_request *req, const struct gm_ip *peer_ip)
{
    const struct gm_hbone_header *fwd = gm_hbone_request_header(req, "forwarded");
    char ip[64];
    struct gm_ip src = *peer_ip;

    if (fwd && wp_hop_forwarded_for(fwd->value, fwd->value_len, ip, sizeof(ip)) == 0)
        gm_ip_parse(ip, &src);
    else
        gm_ip_format(peer_ip, ip, sizeof(ip));
    c->src_ip = gm_xstrdup(ip);
    const struct gm_workload *wl = snap ? gm_snapshot_workload_by_ip(snap, &src) : NULL;
    if (wl) {
        c->src_workload = gm_xstrdup(wl->name);
        c->src_namespace = gm_xstrdup(wl->namespace);
    }
}

static struct wp_conn *conn_new(struct wp_worker *w, struct gm_hbone_stream *s,
                                const struct gm_hbone_request *req, const struct wp_conn_peer *peer)
{
    struct wp_conn *c = gm_xcalloc(1, sizeof(*c));

    c->w = w;
    c->refs = 1; /* dropped when the timer closes */
    c->stream = s;
    c->vip = req->ip;
    c->port = req->port;
    snprintf(c->authority, sizeof(c->authority), "%s", req->authority);
    c->client_ns = gm_xstrdup(peer->namespace);
    c->peer_id = gm_xstrdup(peer->identity);
    wp_bytes_init(&c->in, w->server_settings.stream_window + IN_SLACK);
    uv_timer_init(wp_worker_loop(w), &c->timer);
    c->timer.data = c;
    c->timer_open = true;
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    __atomic_store_n(&w->n_conns, w->n_conns + 1, __ATOMIC_RELAXED);
    return c;
}

void wp_conn_accept(struct wp_worker *w, struct gm_hbone_stream *s,
                    const struct gm_hbone_request *req, const struct wp_conn_peer *peer)
{
    const struct gm_snapshot *snap = wp_worker_snapshot(w);
    const struct gm_svc *svc;
    int pi = -1;

    svc = snap ? gm_snapshot_service_by_vip(snap, &req->ip, req->port, &pi) : NULL;
    if (svc == NULL) {
        GM_LOG_DEBUG("conn", "CONNECT to no known Service VIP:port: refused",
                     "authority=%s peer=%s", req->authority, peer->identity);
        gm_hbone_stream_respond(s, 503, NULL, 0);
        return;
    }
    if (w->n_conns >= (unsigned)wp_worker_settings(w)->max_conns || w->draining) {
        GM_LOG_WARN_LIMITED("conn", "refusing a connection", "reason=%s authority=%s",
                            w->draining ? "draining" : "max-conns", req->authority);
        gm_hbone_stream_respond(s, 503, NULL, 0);
        return;
    }
    struct wp_conn *c = conn_new(w, s, req, peer);
    describe_source(c, snap, req, peer->ip);
    gm_hbone_stream_set_cbs(s, &stream_cbs, c);
    if (gm_hbone_stream_respond(s, 200, NULL, 0) < 0) {
        wp_conn_close(c, "cannot answer the CONNECT");
        return;
    }
    /* The protocol is sniffed even on a port whose appProtocol says HTTP/2: a client speaking
     * HTTP/1.1 there is served rather than cut off. */
    wp_conn_timer(c, wp_worker_settings(w)->idle_timeout_ms);
}
