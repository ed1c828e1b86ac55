/* Upstream HTTP connections (upstream.h): lifecycle, the HBONE stream under them, and the
 * worker's idle list. The protocols are in up_h1.c and up_h2.c. */
#include "upstream.h"

#include <errno.h>
#include <string.h>

#include "decide.h"
#include "exch.h"
#include "gammamesh/log.h"
#include "worker.h"

static const unsigned state_from[WP_UCONN__MAX] = {
    [WP_UCONN_OPENING] = 0,
    [WP_UCONN_ACTIVE] = 1u << WP_UCONN_OPENING | 1u << WP_UCONN_IDLE,
    [WP_UCONN_IDLE] = 1u << WP_UCONN_ACTIVE,
    [WP_UCONN_CLOSING] = 1u << WP_UCONN_OPENING | 1u << WP_UCONN_ACTIVE | 1u << WP_UCONN_IDLE,
};

static void set_state(struct wp_uconn *u, enum wp_uconn_state next)
{
    GM_ASSERT(state_from[next] & (1u << u->state));
    u->state = next;
}

/* ---- lifetime ---- */

void wp_uconn_ref(struct wp_uconn *u)
{
    u->refs++;
}

void wp_uconn_unref(struct wp_uconn *u)
{
    GM_ASSERT(u->refs > 0);
    if (--u->refs > 0)
        return;
    if (u->h2)
        wp_up_h2_done(u);
    else
        wp_up_h1_done(u);
    free(u->identity);
    free(u);
}

static void idle_unlink(struct wp_uconn *u)
{
    struct wp_worker *w = u->w;

    if (u->prev)
        u->prev->next = u->next;
    else if (w->idle == u)
        w->idle = u->next;
    if (u->next)
        u->next->prev = u->prev;
    u->prev = u->next = NULL;
    __atomic_store_n(&w->n_idle, w->n_idle - 1, __ATOMIC_RELAXED);
}

static void idle_link(struct wp_uconn *u)
{
    struct wp_worker *w = u->w;

    u->prev = NULL;
    u->next = w->idle;
    if (w->idle)
        w->idle->prev = u;
    w->idle = u;
    __atomic_store_n(&w->n_idle, w->n_idle + 1, __ATOMIC_RELAXED);
}

void wp_uconn_close(struct wp_uconn *u, const char *reason)
{
    if (u->state == WP_UCONN_CLOSING)
        return;
    if (u->error == NULL)
        u->error = reason;
    if (u->state == WP_UCONN_IDLE)
        idle_unlink(u);
    set_state(u, WP_UCONN_CLOSING);
    u->x = NULL;
    if (u->stream)
        gm_hbone_stream_reset(u->stream, reason ? 8 /* CANCEL */ : 0);
}

/* Give back the window of body bytes the exchange will never report. */
static void consume_held(struct wp_uconn *u)
{
    if (u->held)
        wp_uconn_consumed(u, u->held);
}

static bool reusable(const struct wp_uconn *u)
{
    const struct wp_worker *w = u->w;

    if (u->state != WP_UCONN_ACTIVE || u->stream == NULL || u->peer_ended || !u->resp_done ||
        !u->req_done || w->draining || w->n_idle >= (unsigned)w->wp->set.max_idle_upstreams)
        return false;
    if (u->h2)
        return !u->goaway && u->h2s && nghttp2_session_want_read(u->h2s);
    return u->keep_alive;
}

void wp_uconn_release(struct wp_uconn *u)
{
    if (u->state == WP_UCONN_CLOSING)
        return;
    consume_held(u);
    if (u->parsing) {
        /* Inside llhttp or nghttp2: the parser must not be reset for another exchange now. */
        u->x = NULL;
        u->release_due = true;
        return;
    }
    u->release_due = false;
    if (!reusable(u)) {
        wp_uconn_close(u, u->resp_done && u->req_done ? NULL : "released mid-exchange");
        return;
    }
    u->x = NULL;
    set_state(u, WP_UCONN_IDLE);
    u->idle_since = uv_now(wp_worker_loop(u->w));
    idle_link(u);
}

/* ---- the stream ---- */

static void tell_error(struct wp_uconn *u, const char *reason)
{
    struct wp_exch *x = u->x;

    wp_uconn_close(u, reason);
    if (x)
        wp_exch_up_error(x, reason);
}

/* A new exchange on u: 0, or -EIO (the caller closes). */
static int begin(struct wp_uconn *u)
{
    u->head_written = u->req_done = u->resp_done = u->keep_alive = false;
    u->tunnel = u->raw = u->raw_shut = false;
    u->held = 0;
    u->uses++;
    if (u->h2)
        return wp_up_h2_begin(u) < 0 ? -EIO : 0;
    wp_up_h1_begin(u);
    return 0;
}

static void on_response(struct gm_hbone_stream *s, int status, void *ctx)
{
    struct wp_uconn *u = ctx;

    if (u->state != WP_UCONN_OPENING)
        return;
    if (status / 100 != 2) {
        GM_LOG_DEBUG("upstream", "tunnel refused", "authority=%s status=%d", u->authority, status);
        tell_error(u, status == 401 ? "denied by the destination" : "tunnel refused");
        return;
    }
    set_state(u, WP_UCONN_ACTIVE);
    wp_uconn_ref(u);
    if (begin(u) < 0)
        tell_error(u, "cannot start the upstream request");
    else if (u->state == WP_UCONN_ACTIVE && u->x)
        wp_exch_up_ready(u->x);
    wp_uconn_unref(u);
}

static void on_data(struct gm_hbone_stream *s, const uint8_t *p, size_t n, void *ctx)
{
    struct wp_uconn *u = ctx;

    if (u->state != WP_UCONN_ACTIVE) {
        gm_hbone_stream_consumed(s, n);
        if (u->state == WP_UCONN_IDLE)
            wp_uconn_close(u, "data on an idle connection");
        return;
    }
    wp_uconn_ref(u);
    u->parsing = true;
    if (u->h2)
        wp_up_h2_input(u, p, n);
    else
        wp_up_h1_input(u, p, n);
    u->parsing = false;
    if (u->release_due)
        wp_uconn_release(u);
    wp_uconn_unref(u);
}

static void on_end(struct gm_hbone_stream *s, void *ctx)
{
    struct wp_uconn *u = ctx;

    u->peer_ended = true;
    if (u->state == WP_UCONN_IDLE) {
        wp_uconn_close(u, NULL);
        return;
    }
    if (u->state != WP_UCONN_ACTIVE)
        return;
    wp_uconn_ref(u);
    u->parsing = true;
    if (u->h2)
        tell_error(u, "upstream ended the connection");
    else
        wp_up_h1_eof(u);
    u->parsing = false;
    if (u->release_due)
        wp_uconn_release(u);
    wp_uconn_unref(u);
}

static void on_writable(struct gm_hbone_stream *s, void *ctx)
{
    struct wp_uconn *u = ctx;

    if (u->state == WP_UCONN_ACTIVE && u->x)
        wp_uconn_send(u);
}

static void on_close(struct gm_hbone_stream *s, enum gm_hbone_reason reason, void *ctx)
{
    struct wp_uconn *u = ctx;

    u->stream = NULL;
    if (u->state == WP_UCONN_ACTIVE && u->tunnel && reason == GM_HBONE_REASON_OK && u->resp_done &&
        u->req_done && u->x) {
        /* A tunnel whose two directions both ended: what it brought is in the exchange. */
        struct wp_exch *x = u->x;
        wp_uconn_close(u, NULL);
        x->up = NULL;
    } else if (u->state != WP_UCONN_CLOSING) {
        const char *why = reason == GM_HBONE_REASON_REJECTED ? "tunnel refused"
                          : u->state == WP_UCONN_OPENING     ? "upstream tunnel failed"
                                                             : "upstream connection closed";
        tell_error(u, why);
    }
    wp_uconn_unref(u); /* the stream's reference */
}

static const struct gm_hbone_stream_cbs stream_cbs = {
    .on_response = on_response,
    .on_data = on_data,
    .on_end = on_end,
    .on_writable = on_writable,
    .on_close = on_close,
};

/* ---- acquire ---- */

static struct wp_uconn *find_idle(struct wp_worker *w, const struct gm_workload *ep, int port,
                                  bool h2)
{
    for (struct wp_uconn *u = w->idle; u; u = u->next)
        if (u->h2 == h2 && u->port == port && gm_ip_equal(&u->ip, &ep->ip) &&
            strcmp(u->identity, ep->identity) == 0)
            return u;
    return NULL;
}

static int open_new(struct wp_worker *w, const struct gm_workload *ep, int port, bool h2,
                    struct wp_uconn **out)
{
    struct wp_uconn *u = gm_xcalloc(1, sizeof(*u));
    int rc;

    u->w = w;
    u->refs = 1; /* the stream's */
    u->h2 = h2;
    u->ip = ep->ip;
    u->port = port;
    u->identity = gm_xstrdup(ep->identity);
    gm_ipport_format(&ep->ip, port, u->authority, sizeof(u->authority));
    rc = h2 ? wp_up_h2_init(u) : (wp_up_h1_init(u), 0);
    if (rc == 0)
        rc = gm_hbone_pool_open_stream(&w->pool, "", w->identity, ep->identity, &ep->ip, WP_PORT,
                                       u->authority, NULL, 0, &stream_cbs, u, &u->stream);
    if (rc < 0) {
        GM_LOG_DEBUG("upstream", "cannot open a tunnel", "authority=%s error=%s", u->authority,
                     strerror(-rc));
        wp_uconn_unref(u);
        return rc;
    }
    *out = u;
    return 0;
}

int wp_uconn_acquire(struct wp_worker *w, struct wp_exch *x, const struct gm_workload *ep, int port,
                     bool h2, struct wp_uconn **out)
{
    struct wp_uconn *u = find_idle(w, ep, port, h2);
    int rc;

    *out = NULL;
    if (w->identity[0] == '\0' || ep->identity == NULL)
        return -EACCES;
    if (u) {
        idle_unlink(u);
        set_state(u, WP_UCONN_ACTIVE);
        u->x = x;
        if (begin(u) < 0) {
            wp_uconn_close(u, "cannot start the upstream request");
            return -EIO;
        }
        *out = u;
        return 0;
    }
    if ((rc = open_new(w, ep, port, h2, &u)) < 0)
        return rc;
    u->x = x;
    *out = u;
    return 0;
}

bool wp_uconn_open(const struct wp_uconn *u)
{
    return u->state == WP_UCONN_ACTIVE;
}

void wp_uconn_send(struct wp_uconn *u)
{
    if (u->state != WP_UCONN_ACTIVE || u->x == NULL || u->stream == NULL || u->sending)
        return;
    u->sending = true;
    wp_uconn_ref(u);
    if (u->h2)
        wp_up_h2_send(u);
    else
        wp_up_h1_send(u);
    u->sending = false;
    wp_uconn_unref(u);
}

void wp_uconn_consumed(struct wp_uconn *u, size_t n)
{
    if (n > u->held)
        n = u->held;
    if (n == 0)
        return;
    u->held -= n;
    if (u->stream == NULL)
        return;
    if (u->h2)
        wp_up_h2_consumed(u, n);
    else
        gm_hbone_stream_consumed(u->stream, n);
}

/* ---- idle connections ---- */

void wp_uconn_sweep(struct wp_worker *w, uint64_t max_idle_ms, unsigned max_idle)
{
    uint64_t now = uv_now(wp_worker_loop(w));
    unsigned kept = 0;

    for (struct wp_uconn *u = w->idle, *next; u; u = next) {
        next = u->next;
        if (kept >= max_idle || (max_idle_ms && now - u->idle_since >= max_idle_ms))
            wp_uconn_close(u, NULL);
        else
            kept++;
    }
}

void wp_uconn_close_idle(struct wp_worker *w)
{
    while (w->idle)
        wp_uconn_close(w->idle, NULL);
}
