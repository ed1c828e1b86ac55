/* Worker-side proxy: adopts pods' listener sockets, dispatches accepted connections to the
 * flows, tracks open connections, and drains. Runs on a worker thread. */
#include "proxy.h"

#include <errno.h>
#include <unistd.h>

#include "gammamesh/log.h"
#include "gammamesh/tls.h"
#include "netns.h"

static struct zt_worker *zw(struct gm_worker *gw)
{
    return gw->user;
}

uv_loop_t *zt_proxy_loop(struct zt_worker *w)
{
    return &w->gw->loop;
}

const struct zt_settings *zt_proxy_settings(struct zt_worker *w)
{
    return &w->zt->set;
}

const struct gm_snapshot *zt_proxy_snapshot(struct zt_worker *w)
{
    return w->gw->snap;
}

uint32_t zt_proxy_random(struct zt_worker *w)
{
    /* xorshift32: per-connection load balancing needs spread, not secrecy. */
    uint32_t x = w->rnd;

    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    w->rnd = x;
    return x;
}

void zt_proxy_conn_added(struct zt_worker *w, struct zt_conn *c)
{
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    w->n_conns++;
}

void zt_proxy_conn_done(struct zt_worker *w, struct zt_conn *c)
{
    zt_telemetry_conn_closed(w, c);
    if (c->prev)
        c->prev->next = c->next;
    else if (w->conns == c)
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    w->n_conns--;
}

unsigned zt_proxy_open_conns(const struct gm_worker *gw)
{
    const struct zt_worker *w = gw->user;

    return w ? __atomic_load_n(&w->n_conns, __ATOMIC_RELAXED) : 0;
}

struct zt_wpod *zt_proxy_find_pod(struct zt_worker *w, const char *uid)
{
    for (struct zt_wpod *p = w->pods; p; p = p->next)
        if (!p->released && strcmp(p->uid, uid) == 0)
            return p;
    return NULL;
}

int zt_proxy_pod_socket(struct zt_worker *w, struct zt_wpod *pod, int family)
{
    return zt_netns_socket(pod->nsfd, w->gw->self_netns, family, ZT_MARK);
}

int zt_proxy_app_socket(struct zt_worker *w, struct zt_wpod *pod, const struct gm_ip *src,
                        uint16_t avoid_port, const struct gm_ip *dst)
{
    int fd = zt_proxy_pod_socket(w, pod, dst->family);

    if (fd < 0 || !pod->keep_source || src->family != AF_INET || dst->family != AF_INET ||
        gm_ip_equal(src, dst))
        return fd;
    struct sockaddr_in sin = {.sin_family = AF_INET};
    memcpy(&sin.sin_addr, src->addr, 4);
    int rc = zt_netns_bind_source(fd, &sin, avoid_port);
    if (rc == -ENOPROTOOPT && avoid_port) {
        /* A kernel before 6.3 cannot keep the captured connection's port out of the choice:
         * plaintext inbound connections come from the pod's own address there. */
        static bool told;
        if (!__atomic_exchange_n(&told, true, __ATOMIC_RELAXED))
            GM_LOG_WARN("proxy",
                        "no IP_LOCAL_PORT_RANGE: inbound plaintext keeps the pod's address",
                        "pod=%s", pod->uid);
    } else if (rc < 0) {
        GM_LOG_WARN("proxy", "cannot keep the client's source address: using the pod's",
                    "pod=%s error=%s", pod->uid, strerror(-rc));
        pod->keep_source = false;
    }
    return fd;
}

void zt_baggage(const struct gm_workload *wl, char *buf, size_t len)
{
    const struct gm_kvs *l = &wl->obj->meta.labels;
    const char *app = gm_kvs_get(l, "app.kubernetes.io/name");
    const char *version = gm_kvs_get(l, "app.kubernetes.io/version");

    app = app ? app : gm_kvs_get(l, "app");
    version = version ? version : gm_kvs_get(l, "version");
    const char *parts[] = {"k8s.namespace.name=", wl->namespace,
                           ",k8s.pod.name=",      wl->name,
                           ",service.name=",      app ? app : wl->name,
                           ",service.version=",   version ? version : "latest"};

    if (len > 0)
        gm_str_join(buf, len, parts, GM_ARRAY_LEN(parts));
}

/* ---- listeners ---- */

static void on_accept(uv_stream_t *l, int status)
{
    struct zt_wpod *pod = l->data;
    struct zt_worker *w = pod->w;
    int k = (int)((uv_tcp_t *)l - pod->listeners);

    if (status < 0)
        return;
    if (w->n_conns >= (unsigned)w->zt->set.max_conns) {
        GM_LOG_WARN_LIMITED("proxy", "max-conns reached: refusing a connection", "worker=%u",
                            w->gw->index);
        uv_tcp_t *tmp = gm_xmalloc(sizeof(*tmp));
        uv_tcp_init(l->loop, tmp);
        uv_accept(l, (uv_stream_t *)tmp);
        uv_close((uv_handle_t *)tmp, (uv_close_cb)free);
        return;
    }
    switch (k) {
    case ZT_LISTEN_OUTBOUND:
        zt_outbound_accept(w, pod, l);
        break;
    case ZT_LISTEN_INBOUND_PLAIN:
        zt_inbound_plain_accept(w, pod, l);
        break;
    default:
        zt_inbound_hbone_accept(w, pod, l);
        break;
    }
}

void zt_proxy_adopt(struct gm_worker *gw, void *arg)
{
    struct zt_adopt *a = arg;
    struct zt_worker *w = zw(gw);
    struct zt_wpod *pod = gm_xcalloc(1, sizeof(*pod));

    pod->w = w;
    pod->uid = a->uid;
    pod->nsfd = a->nsfd;
    for (int k = 0; k < ZT_LISTEN__MAX; k++) {
        uv_tcp_init(&gw->loop, &pod->listeners[k]);
        pod->listeners[k].data = pod;
        if (uv_tcp_open(&pod->listeners[k], a->fds[k]) < 0 ||
            uv_listen((uv_stream_t *)&pod->listeners[k], 511, on_accept) < 0) {
            GM_LOG_ERROR("proxy", "cannot listen on an adopted socket", "pod=%s port=%d", pod->uid,
                         zt_listener_ports[k]);
            continue;
        }
        pod->listening[k] = true;
    }
    pod->next = w->pods;
    w->pods = pod;
    free(a);
}

static void on_listener_closed(uv_handle_t *h)
{
    struct zt_wpod *pod = h->data;
    struct zt_worker *w = pod->w;

    if (--pod->pending_closes > 0)
        return;
    for (struct zt_wpod **pp = &w->pods; *pp; pp = &(*pp)->next) {
        if (*pp == pod) {
            *pp = pod->next;
            break;
        }
    }
    if (pod->nsfd >= 0)
        close(pod->nsfd);
    free(pod->uid);
    free(pod);
}

static void close_pod(struct zt_wpod *pod)
{
    if (pod->released)
        return;
    pod->released = true;
    for (int k = 0; k < ZT_LISTEN__MAX; k++) {
        pod->pending_closes++;
        uv_close((uv_handle_t *)&pod->listeners[k], on_listener_closed);
    }
}

void zt_proxy_release(struct gm_worker *gw, void *arg)
{
    char *uid = arg;
    struct zt_wpod *pod = zt_proxy_find_pod(zw(gw), uid);

    if (pod)
        close_pod(pod);
    free(uid);
}

void zt_proxy_source_ready(struct gm_worker *gw, void *arg)
{
    char *uid = arg;
    struct zt_wpod *pod = zt_proxy_find_pod(zw(gw), uid);

    if (pod)
        pod->keep_source = true;
    free(uid);
}

void zt_proxy_recheck(struct gm_worker *gw, void *unused)
{
    zt_inbound_recheck(zw(gw));
}

/* ---- the outbound pool's factories ---- */

static SSL *pool_make_ssl(void *ctx, const char *src_identity, const char *dst_identity)
{
    struct zt_worker *w = ctx;

    return zt_identity_client_ssl(w->zt, src_identity, dst_identity);
}

/* The scope is the source pod's uid: its tunnels are made inside its netns. */
static int pool_make_socket(void *ctx, const char *scope, int family)
{
    struct zt_worker *w = ctx;
    struct zt_wpod *pod = zt_proxy_find_pod(w, scope);

    return pod ? zt_proxy_pod_socket(w, pod, family) : -ENOENT;
}

struct probe_msg {
    struct gm_ip ip;
    int port;
};

static void probe_pool(struct gm_worker *gw, void *arg)
{
    struct probe_msg *m = arg;
    struct zt_worker *w = zw(gw);

    if (w != NULL)
        gm_hbone_pool_probe(&w->pool, &m->ip, m->port);
    free(m);
}

/* A tunnel to ip:port died under this worker: the other workers' tunnels to the same peer
 * (each pools its own) are probed too, before they fail a connection each. */
static void pool_conn_lost(void *ctx, const struct gm_ip *ip, int port)
{
    struct zt_worker *w = ctx;
    struct gm_workers *all = &w->zt->workers;

    for (unsigned i = 0; i < all->n; i++) {
        if (&all->v[i] == w->gw)
            continue;
        struct probe_msg *m = gm_xmalloc(sizeof(*m));
        m->ip = *ip;
        m->port = port;
        gm_workers_post(&all->v[i], probe_pool, m);
    }
}

static const struct gm_hbone_pool_ops pool_ops = {
    .make_ssl = pool_make_ssl,
    .make_socket = pool_make_socket,
    .on_conn_lost = pool_conn_lost,
};

/* ---- lifecycle ---- */

void zt_proxy_hbone_settings(struct zt_worker *w, bool server, struct gm_hbone_settings *hs)
{
    gm_hbone_settings_init(hs, server);
    hs->ping_interval_ms = w->zt->set.hbone_keepalive_ms;
    hs->ping_timeout_ms = 2 * w->zt->set.hbone_keepalive_ms;
}

void zt_proxy_worker_init(struct gm_worker *gw, void *ctx)
{
    struct zt_worker *w = gm_xcalloc(1, sizeof(*w));

    w->gw = gw;
    w->zt = ctx;
    w->rnd = 2463534242u ^ (gw->index * 2654435761u) ^ (uint32_t)uv_hrtime();
    if (w->rnd == 0)
        w->rnd = 1;
    struct gm_hbone_settings hs;
    zt_proxy_hbone_settings(w, false, &hs);
    gm_hbone_pool_init(&w->pool, &gw->loop, &pool_ops, w, &hs);
    uv_check_init(&gw->loop, &w->flush_check);
    w->flush_check.data = w;
    uv_prepare_init(&gw->loop, &w->flush_prepare);
    w->flush_prepare.data = w;
    gw->user = w;
}

void zt_proxy_drain(struct gm_worker *gw, void *unused)
{
    struct zt_worker *w = zw(gw);

    w->draining = true;
    /* Stop accepting: closing the listeners leaves another ztunnel's REUSEPORT sockets (a
     * rolling upgrade) as the only ones, so new connections go there. */
    for (struct zt_wpod *p = w->pods; p; p = p->next)
        close_pod(p);
    for (struct zt_inbound_tunnel *t = w->tunnels; t; t = t->next)
        gm_hbone_conn_goaway(t->conn);
    gm_hbone_pool_drain(&w->pool);
}

void zt_proxy_retire_tunnels(struct gm_worker *gw, void *unused)
{
    struct zt_worker *w = zw(gw);

    /* The CA was reloaded: tunnels authenticated under the old bundle take no new streams; the
     * next connection makes (or, for inbound, makes the peer make) a fresh handshake. */
    for (struct zt_inbound_tunnel *t = w->tunnels; t; t = t->next)
        gm_hbone_conn_goaway(t->conn);
    gm_hbone_pool_drain(&w->pool);
}

void zt_proxy_worker_stop(struct gm_worker *gw, void *ctx)
{
    struct zt_worker *w = zw(gw);

    if (w == NULL)
        return;
    for (struct zt_wpod *p = w->pods; p; p = p->next)
        close_pod(p);
    for (struct zt_conn *c = w->conns, *next; c; c = next) {
        next = c->next;
        zt_conn_close(c, "shutdown");
    }
    for (struct zt_inbound_tunnel *t = w->tunnels; t; t = t->next)
        gm_hbone_conn_close(t->conn, GM_HBONE_REASON_OK);
    gm_hbone_pool_close(&w->pool);
    uv_close((uv_handle_t *)&w->flush_check, NULL);
    uv_close((uv_handle_t *)&w->flush_prepare, NULL);
}

void zt_proxy_worker_exit(struct gm_worker *gw, void *ctx)
{
    free(gw->user);
    gw->user = NULL;
}
