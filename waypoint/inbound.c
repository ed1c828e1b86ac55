/* Downstream HBONE tunnels (inbound.h): accept, mTLS with the waypoint identity, peer check, and
 * CONNECT streams handed to conn.c. */
#include "inbound.h"

#include <errno.h>
#include <netinet/in.h>

#include "conn.h"
#include "gammamesh/identity_rt.h"
#include "gammamesh/log.h"
#include "gammamesh/spiffe.h"
#include "gammamesh/tls.h"
#include "worker.h"

static void unlink_tunnel(struct wp_tunnel *t)
{
    struct wp_worker *w = t->w;

    if (t->prev)
        t->prev->next = t->next;
    else if (w->tunnels == t)
        w->tunnels = t->next;
    if (t->next)
        t->next->prev = t->prev;
    __atomic_store_n(&w->n_tunnels, w->n_tunnels - 1, __ATOMIC_RELAXED);
}

static void on_tunnel_close(struct gm_hbone_conn *hc, enum gm_hbone_reason reason, void *ctx)
{
    struct wp_tunnel *t = ctx;

    GM_LOG_DEBUG("inbound", "tunnel closed", "peer=%s reason=%s", t->peer_id[0] ? t->peer_id : "-",
                 gm_hbone_reason_name(reason));
    unlink_tunnel(t);
    free(t);
}

/* The peer must hold a SPIFFE ID of our trust domain; it names the client's namespace. */
static int on_tunnel_handshake(struct gm_hbone_conn *hc, void *ctx)
{
    struct wp_tunnel *t = ctx;
    const char *td = wp_worker_settings(t->w)->common.trust_domain;
    struct gm_spiffe_id ids[4];
    SSL *ssl = gm_hbone_conn_ssl(hc);
    char why[256];

    if (gm_tls_check_peer(ssl, NULL, 0, td, why, sizeof(why)) < 0) {
        GM_LOG_WARN_LIMITED("inbound", "peer refused", "reason=%s", why);
        return -EPERM;
    }
    int n = gm_tls_peer_identities(ssl, ids, GM_ARRAY_LEN(ids));
    for (int i = 0; i < n; i++) {
        if (strcmp(ids[i].trust_domain, td) != 0)
            continue;
        gm_spiffe_format(&ids[i], t->peer_id, sizeof(t->peer_id));
        snprintf(t->peer_ns, sizeof(t->peer_ns), "%s", ids[i].ns);
        return 0;
    }
    return -EPERM;
}

static void on_tunnel_request(struct gm_hbone_conn *hc, struct gm_hbone_stream *s,
                              const struct gm_hbone_request *req, void *ctx)
{
    struct wp_tunnel *t = ctx;
    struct wp_conn_peer peer = {.identity = t->peer_id, .namespace = t->peer_ns, .ip = &t->peer_ip};

    wp_conn_accept(t->w, s, req, &peer);
}

static const struct gm_hbone_conn_cbs tunnel_cbs = {
    .on_handshake = on_tunnel_handshake,
    .on_request = on_tunnel_request,
    .on_close = on_tunnel_close,
};

static void refuse(uv_stream_t *l)
{
    uv_tcp_t *tmp = gm_xmalloc(sizeof(*tmp));

    uv_tcp_init(l->loop, tmp);
    uv_accept(l, (uv_stream_t *)tmp);
    uv_close((uv_handle_t *)tmp, (uv_close_cb)free);
}

static void peer_address(struct wp_tunnel *t)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);

    if (uv_tcp_getpeername(gm_hbone_conn_tcp(t->conn), (struct sockaddr *)&ss, &len) < 0)
        return;
    if (ss.ss_family == AF_INET) {
        t->peer_ip.family = AF_INET;
        memcpy(t->peer_ip.addr, &((struct sockaddr_in *)&ss)->sin_addr, 4);
    } else if (ss.ss_family == AF_INET6) {
        t->peer_ip.family = AF_INET6;
        memcpy(t->peer_ip.addr, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
    }
}

void wp_inbound_accept(struct wp_worker *w, uv_stream_t *l)
{
    SSL *ssl = NULL;
    struct wp_tunnel *t;

    if (w->identity[0])
        ssl = gm_identity_rt_server_ssl(w->wp->idrt, w->identity,
                                        wp_worker_settings(w)->common.trust_domain);
    if (ssl == NULL) {
        GM_LOG_WARN("inbound", "no identity or certificate yet: refusing a connection", "");
        refuse(l);
        return;
    }
    t = gm_xcalloc(1, sizeof(*t));
    t->w = w;
    if (gm_hbone_conn_new_server(wp_worker_loop(w), ssl, &w->server_settings, &tunnel_cbs, t,
                                 &t->conn) < 0) {
        free(t);
        refuse(l);
        return;
    }
    t->next = w->tunnels;
    if (w->tunnels)
        w->tunnels->prev = t;
    w->tunnels = t;
    __atomic_store_n(&w->n_tunnels, w->n_tunnels + 1, __ATOMIC_RELAXED);
    if (uv_accept(l, (uv_stream_t *)gm_hbone_conn_tcp(t->conn)) < 0 ||
        gm_hbone_conn_start(t->conn) < 0) {
        gm_hbone_conn_close(t->conn, GM_HBONE_REASON_IO);
        return;
    }
    peer_address(t);
    if (w->draining)
        gm_hbone_conn_goaway(t->conn);
}

void wp_inbound_drain(struct wp_worker *w)
{
    for (struct wp_tunnel *t = w->tunnels; t; t = t->next)
        gm_hbone_conn_goaway(t->conn);
}

void wp_inbound_close_all(struct wp_worker *w)
{
    for (struct wp_tunnel *t = w->tunnels; t; t = t->next)
        gm_hbone_conn_close(t->conn, GM_HBONE_REASON_OK);
}
