/* Per-worker waypoint state: the adopted listener, downstream tunnels and connections, the
 * upstream HBONE pool and idle HTTP connections, drain and stop. Runs on a worker thread. */
#include "worker.h"

#include <errno.h>
#include <sys/random.h>
#include <unistd.h>

#include "conn.h"
#include "exch.h"
#include "gammamesh/log.h"
#include "inbound.h"
#include "upstream.h"

#define SWEEP_MS 1000 /* idle upstream connections are checked this often */

/* HBONE settings of both sides. The stream window is smaller than ztunnel's 4 MiB: bytes held
 * for a slow peer are bounded by it, per stream, and a waypoint holds many. */
static void hbone_settings(struct gm_hbone_settings *s, bool server, const struct wp_settings *set)
{
    gm_hbone_settings_init(s, server);
    s->stream_window = 256u << 10;
    s->conn_window = 16u << 20;
    s->stream_queue_max = 1u << 20;
    s->handshake_timeout_ms = (uint32_t)set->connect_timeout_ms;
}

static struct wp_worker *ww(const struct gm_worker *gw)
{
    return gw->user;
}

uv_loop_t *wp_worker_loop(struct wp_worker *w)
{
    return &w->gw->loop;
}

const struct wp_settings *wp_worker_settings(const struct wp_worker *w)
{
    return &w->wp->set;
}

struct gm_snapshot *wp_worker_snapshot(struct wp_worker *w)
{
    return w->gw->snap;
}

uint64_t wp_worker_random(struct wp_worker *w)
{
    uint64_t x = w->rnd;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    w->rnd = x;
    return x * 0x2545f4914f6cdd1dULL;
}

/* ---- the upstream pool's factories ---- */

static SSL *pool_make_ssl(void *ctx, const char *src_identity, const char *dst_identity)
{
    struct wp_worker *w = ctx;

    return gm_identity_rt_client_ssl(w->wp->idrt, src_identity, dst_identity);
}

/* The waypoint is not captured: a plain non-blocking socket in its own namespace. */
static int pool_make_socket(void *ctx, const char *scope, int family)
{
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    return fd < 0 ? -errno : fd;
}

static const struct gm_hbone_pool_ops pool_ops = {
    .make_ssl = pool_make_ssl,
    .make_socket = pool_make_socket,
};

/* ---- listener ---- */

static void on_accept(uv_stream_t *l, int status)
{
    struct wp_worker *w = l->data;

    if (status < 0)
        return;
    wp_inbound_accept(w, l);
}

static void on_sweep(uv_timer_t *t)
{
    struct wp_worker *w = t->data;
    const struct wp_settings *set = wp_worker_settings(w);

    wp_uconn_sweep(w, set->upstream_idle_ms, (unsigned)set->max_idle_upstreams);
}

void wp_worker_init(struct gm_worker *gw, void *ctx)
{
    struct wp *wp = ctx;
    struct wp_worker *w = &wp->wws[gw->index]; /* allocated by the control loop, zeroed */
    struct gm_hbone_settings hs;

    w->gw = gw;
    w->wp = wp;
    if (getrandom(&w->rnd, sizeof(w->rnd), 0) != sizeof(w->rnd))
        w->rnd = uv_hrtime() ^ ((uint64_t)gw->index << 32);
    w->rnd |= 1;
    snprintf(w->identity, sizeof(w->identity), "%s", wp->identity);
    hbone_settings(&hs, false, &wp->set);
    gm_hbone_pool_init(&w->pool, &gw->loop, &pool_ops, w, &hs);
    hbone_settings(&w->server_settings, true, &wp->set);
    uv_timer_init(&gw->loop, &w->sweep);
    w->sweep.data = w;
    uv_timer_start(&w->sweep, on_sweep, SWEEP_MS, SWEEP_MS);
    gw->user = w;
    uv_tcp_init(&gw->loop, &w->listener);
    w->listener.data = w;
    if (gw->index < wp->n_listen && uv_tcp_open(&w->listener, wp->listen_fds[gw->index]) == 0 &&
        uv_listen((uv_stream_t *)&w->listener, 1024, on_accept) == 0) {
        wp->listen_fds[gw->index] = -1; /* the handle owns it now */
        w->listening = true;
    } else {
        GM_LOG_ERROR("waypoint", "worker cannot listen", "worker=%u", gw->index);
    }
}

void wp_worker_set_identity(struct gm_worker *gw, void *identity)
{
    struct wp_worker *w = ww(gw);

    if (w)
        snprintf(w->identity, sizeof(w->identity), "%s", (char *)identity);
    free(identity);
}

static void stop_listening(struct wp_worker *w)
{
    if (!w->listening)
        return;
    w->listening = false;
    uv_close((uv_handle_t *)&w->listener, NULL);
}

void wp_worker_drain(struct gm_worker *gw, void *unused)
{
    struct wp_worker *w = ww(gw);

    if (w == NULL || w->draining)
        return;
    w->draining = true;
    /* Closing the listener leaves another waypoint's SO_REUSEPORT sockets (a rolling restart)
     * as the only ones, so new connections go there. */
    stop_listening(w);
    wp_inbound_drain(w);
    for (struct wp_conn *c = w->conns, *next; c; c = next) {
        next = c->next;
        wp_conn_drain(c);
    }
    wp_uconn_close_idle(w);
    gm_hbone_pool_drain(&w->pool);
}

void wp_worker_retire_tunnels(struct gm_worker *gw, void *unused)
{
    struct wp_worker *w = ww(gw);

    if (w == NULL)
        return;
    /* The CA was reloaded: tunnels (and idle HTTP connections over them) authenticated under
     * the old bundle take no new requests; busy ones finish. */
    wp_inbound_drain(w);
    wp_uconn_close_idle(w);
    gm_hbone_pool_drain(&w->pool);
}

void wp_worker_stop(struct gm_worker *gw, void *ctx)
{
    struct wp_worker *w = ww(gw);

    if (w == NULL)
        return;
    stop_listening(w);
    uv_close((uv_handle_t *)&w->sweep, NULL);
    for (struct wp_conn *c = w->conns, *next; c; c = next) {
        next = c->next;
        wp_conn_close(c, "shutdown");
    }
    for (struct wp_exch *x = w->mirrors, *next; x; x = next) {
        next = x->next;
        wp_exch_detach(x, "shutdown");
    }
    wp_uconn_close_idle(w);
    wp_inbound_close_all(w);
    gm_hbone_pool_close(&w->pool);
    /* The loop runs once more to deliver close callbacks; the control loop frees the worker
     * states after the threads were joined. */
}

unsigned wp_worker_busy(const struct gm_worker *gw)
{
    const struct wp_worker *w = ww(gw);

    if (w == NULL)
        return 0;
    return __atomic_load_n(&w->n_conns, __ATOMIC_RELAXED) +
           __atomic_load_n(&w->n_mirrors, __ATOMIC_RELAXED);
}

json_t *wp_worker_dump(const struct gm_worker *gw)
{
    const struct wp_worker *w = ww(gw);

    if (w == NULL)
        return json_null();
    return json_pack("{s:i, s:i, s:i, s:i, s:i, s:b, s:b}", "index", (int)gw->index, "conns",
                     (int)__atomic_load_n(&w->n_conns, __ATOMIC_RELAXED), "tunnels",
                     (int)__atomic_load_n(&w->n_tunnels, __ATOMIC_RELAXED), "idle_upstreams",
                     (int)__atomic_load_n(&w->n_idle, __ATOMIC_RELAXED), "mirrors",
                     (int)__atomic_load_n(&w->n_mirrors, __ATOMIC_RELAXED), "listening",
                     w->listening, "draining", w->draining);
}
