/* Inbound flows into a local pod: HBONE on 15008 (mTLS with the pod's certificate, CONNECT,
 * L4 authorization, connect to the application from inside the pod, then 200) and plaintext on
 * 15006 (authorization without a peer identity). */
#include <errno.h>
#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80 /* linux/netfilter_ipv4.h, which clashes with netinet/in.h */
#endif
#include <netinet/in.h>
#include <unistd.h>

#include "authz.h"
#include "gammamesh/log.h"
#include "gammamesh/spiffe.h"
#include "gammamesh/tls.h"
#include "outbound_plan.h"
#include "proxy.h"

void zt_sockaddr_of(const struct gm_ip *ip, int port, struct sockaddr_storage *ss);

static const struct gm_workload *local_workload(struct zt_worker *w, const char *uid)
{
    const struct gm_snapshot *s = zt_proxy_snapshot(w);

    return s ? gm_snapshot_workload_by_uid(s, uid) : NULL;
}

static int authorize(struct zt_conn *c, const struct gm_workload *dst, char *why, size_t len)
{
    struct zt_authz_conn a = {
        .src_identity = c->src_identity, .src_ip = c->src_ip, .dst_port = c->dst_port};

    return zt_authz_check(dst, &a, why, len);
}

static void describe_dst(struct zt_conn *c, const struct gm_workload *dst, int port)
{
    char buf[64];

    zt_conn_set_str(&c->dst_workload, dst->name);
    zt_conn_set_str(&c->dst_namespace, dst->namespace);
    zt_conn_set_str(&c->dst_identity, dst->identity);
    zt_conn_set_str(&c->dst_uid, dst->uid);
    gm_ipport_format(&dst->ip, port, buf, sizeof(buf));
    zt_conn_set_str(&c->dst_addr, buf);
    c->dst_port = port;
}

/* Connect to the application inside the pod netns. */
static int connect_app(struct zt_worker *w, struct zt_conn *c, const struct gm_workload *dst,
                       int port, zt_conn_connected_cb cb)
{
    struct sockaddr_storage ss;
    struct zt_wpod *pod = zt_proxy_find_pod(w, dst->uid);

    if (pod == NULL)
        return -ENOENT;
    int fd = zt_proxy_app_socket(w, pod, &c->src_ip, c->src_port, &dst->ip);
    if (fd < 0)
        return fd;
    zt_sockaddr_of(&dst->ip, port, &ss);
    return zt_conn_connect_tcp(c, fd, (struct sockaddr *)&ss, cb);
}

/* ---- plaintext (15006) ---- */

void zt_inbound_plain_accept(struct zt_worker *w, struct zt_wpod *pod, uv_stream_t *listener)
{
    struct zt_conn *c = zt_conn_new(w, ZT_DIR_INBOUND_PLAIN);
    struct sockaddr_in sin, peer;
    socklen_t len = sizeof(sin);
    int plen = sizeof(peer);
    uv_os_fd_t fd;
    char why[200], buf[64];

    uv_tcp_init(zt_proxy_loop(w), &c->down.tcp);
    zt_conn_accepted(c);
    if (uv_accept(listener, (uv_stream_t *)&c->down.tcp) < 0 ||
        uv_fileno((uv_handle_t *)&c->down.tcp, &fd) < 0 ||
        getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &sin, &len) < 0 ||
        uv_tcp_getpeername(&c->down.tcp, (struct sockaddr *)&peer, &plen) < 0) {
        zt_conn_close(c, "accept failed");
        return;
    }
    c->src_ip.family = AF_INET;
    memcpy(c->src_ip.addr, &peer.sin_addr, 4);
    c->src_port = ntohs(peer.sin_port);
    gm_ipport_format(&c->src_ip, ntohs(peer.sin_port), buf, sizeof(buf));
    zt_conn_set_str(&c->src_addr, buf);
    const struct gm_workload *dst = local_workload(w, pod->uid);
    if (dst == NULL) {
        zt_conn_close(c, "unknown destination workload");
        return;
    }
    describe_dst(c, dst, ntohs(sin.sin_port));
    zt_telemetry_conn_opened(w, c);
    if (authorize(c, dst, why, sizeof(why)) < 0) {
        c->response_flags = "DENY";
        zt_conn_close(c, "denied by policy");
        GM_LOG_DEBUG("authz", "plaintext connection denied", "dst=%s reason=%s", c->dst_addr, why);
        return;
    }
    if (connect_app(w, c, dst, c->dst_port, NULL) < 0)
        zt_conn_close(c, "upstream setup failed");
}

/* ---- HBONE (15008) ---- */

static void unlink_tunnel(struct zt_inbound_tunnel *t)
{
    struct zt_worker *w = t->w;

    if (t->prev)
        t->prev->next = t->next;
    else if (w->tunnels == t)
        w->tunnels = t->next;
    if (t->next)
        t->next->prev = t->prev;
}

static void on_tunnel_close(struct gm_hbone_conn *hc, enum gm_hbone_reason reason, void *ctx)
{
    struct zt_inbound_tunnel *t = ctx;

    GM_LOG_DEBUG("inbound", "tunnel closed", "peer=%s reason=%s", t->peer_identity,
                 gm_hbone_reason_name(reason));
    /* refused before any stream: counted and logged (a peer closing early is neither) */
    if (t->peer_identity[0] == '\0' &&
        (reason == GM_HBONE_REASON_TLS_FAILED || reason == GM_HBONE_REASON_REJECTED ||
         reason == GM_HBONE_REASON_HANDSHAKE_TIMEOUT))
        zt_telemetry_tunnel_refused(t->w, local_workload(t->w, t->pod_uid), &t->peer_ip,
                                    t->refused ? t->refused : gm_hbone_reason_name(reason));
    unlink_tunnel(t);
    free(t->refused);
    free(t->pod_uid);
    free(t);
}

static int on_tunnel_handshake(struct gm_hbone_conn *hc, void *ctx)
{
    struct zt_inbound_tunnel *t = ctx;
    struct gm_spiffe_id ids[4];
    char why[256];
    SSL *ssl = gm_hbone_conn_ssl(hc);
    const char *td = zt_proxy_settings(t->w)->common.trust_domain;

    if (gm_tls_check_peer(ssl, NULL, 0, td, why, sizeof(why)) < 0) {
        free(t->refused);
        t->refused = gm_xstrdup(why);
        return -EPERM;
    }
    int n = gm_tls_peer_identities(ssl, ids, GM_ARRAY_LEN(ids));
    for (int i = 0; i < n; i++) {
        if (strcmp(ids[i].trust_domain, td) == 0) {
            gm_spiffe_format(&ids[i], t->peer_identity, sizeof(t->peer_identity));
            return 0;
        }
    }
    free(t->refused);
    t->refused = gm_xstrdup("no identity in the trust domain");
    return -EPERM;
}

/* The original client from `forwarded: for="ip:port"`, else the tunnel's peer address; the
 * source workload is looked up by that address. */
static void describe_src(struct zt_worker *w, struct zt_conn *c, const struct gm_hbone_header *fwd,
                         const struct gm_ip *peer)
{
    char buf[96];
    struct gm_ip ip = *peer;
    int port = 0;

    gm_ip_format(peer, buf, sizeof(buf));
    if (fwd && fwd->value_len > 6 && fwd->value_len < sizeof(buf) &&
        strncmp(fwd->value, "for=\"", 5) == 0) {
        memcpy(buf, fwd->value + 5, fwd->value_len - 5);
        buf[fwd->value_len - 5] = '\0';
        char *q = strchr(buf, '"');
        if (q)
            *q = '\0';
        if (gm_ipport_parse(buf, &ip, &port) < 0)
            ip = *peer;
    }
    zt_conn_set_str(&c->src_addr, buf);
    const struct gm_snapshot *s = zt_proxy_snapshot(w);
    const struct gm_workload *src = s ? gm_snapshot_workload_by_ip(s, &ip) : NULL;
    if (src) {
        zt_conn_set_str(&c->src_workload, src->name);
        zt_conn_set_str(&c->src_namespace, src->namespace);
    }
}

static void on_app_connected(struct zt_conn *c, int status)
{
    struct gm_hbone_stream *s = c->down.stream;
    const struct gm_workload *dst = c->dst_uid ? local_workload(c->w, c->dst_uid) : NULL;
    char baggage[512];
    struct gm_hbone_header h = {"baggage", 0, baggage, 0};

    if (s == NULL)
        return;
    if (status < 0) {
        zt_conn_detach_stream(c, &c->down);
        gm_hbone_stream_respond(s, 503, NULL, 0);
        return;
    }
    if (dst)
        zt_baggage(dst, baggage, sizeof(baggage));
    if (gm_hbone_stream_respond(s, 200, &h, dst ? 1 : 0) == 0)
        c->down.connected = true;
}

static int request_status(struct zt_inbound_tunnel *t, const struct gm_hbone_request *req,
                          const struct gm_workload *dst, struct zt_conn *c)
{
    char why[200];

    if (dst == NULL)
        return 503;
    if (!gm_ip_equal(&req->ip, &dst->ip))
        return 400; /* the tunnel must name the pod whose listener accepted it */
    if (authorize(c, dst, why, sizeof(why)) < 0) {
        GM_LOG_DEBUG("authz", "tunnel denied", "peer=%s dst=%s reason=%s", t->peer_identity,
                     req->authority, why);
        return 401;
    }
    return 0;
}

static void on_tunnel_request(struct gm_hbone_conn *hc, struct gm_hbone_stream *s,
                              const struct gm_hbone_request *req, void *ctx)
{
    struct zt_inbound_tunnel *t = ctx;
    struct zt_worker *w = t->w;
    const struct gm_workload *dst = local_workload(w, t->pod_uid);
    struct zt_conn *c = zt_conn_new(w, ZT_DIR_INBOUND);

    zt_conn_attach_stream(c, &c->down, s);
    c->src_ip = t->peer_ip;
    zt_conn_set_str(&c->src_identity, t->peer_identity);
    zt_conn_set_str(&c->hbone_addr, req->authority);
    describe_src(w, c, gm_hbone_request_header(req, "forwarded"), &t->peer_ip);
    c->dst_port = req->port;
    if (dst)
        describe_dst(c, dst, req->port);
    zt_telemetry_conn_opened(w, c);
    int status = request_status(t, req, dst, c);
    if (status == 0 && connect_app(w, c, dst, req->port, on_app_connected) < 0)
        status = 503;
    if (status) {
        c->response_flags = status == 401 ? "DENY" : "CONNECT";
        zt_conn_detach_stream(c, &c->down);
        gm_hbone_stream_respond(s, status, NULL, 0);
        zt_conn_close(c, status == 401   ? "denied by policy"
                         : status == 400 ? "destination address mismatch"
                                         : "no such workload or upstream unavailable");
    }
}

static const struct gm_hbone_conn_cbs tunnel_cbs = {
    .on_handshake = on_tunnel_handshake,
    .on_request = on_tunnel_request,
    .on_close = on_tunnel_close,
};

static SSL *server_ssl(struct zt_worker *w, const struct gm_workload *dst)
{
    if (dst == NULL)
        return NULL;
    return zt_identity_server_ssl(w->zt, dst->identity, zt_proxy_settings(w)->common.trust_domain);
}

static void reject_accept(uv_stream_t *listener)
{
    uv_tcp_t *tmp = gm_xmalloc(sizeof(*tmp));

    uv_tcp_init(listener->loop, tmp);
    if (uv_accept(listener, (uv_stream_t *)tmp) < 0) {
        uv_close((uv_handle_t *)tmp, (uv_close_cb)free);
        return;
    }
    uv_close((uv_handle_t *)tmp, (uv_close_cb)free);
}

void zt_inbound_hbone_accept(struct zt_worker *w, struct zt_wpod *pod, uv_stream_t *listener)
{
    const struct gm_workload *dst = local_workload(w, pod->uid);
    SSL *ssl = server_ssl(w, dst);
    struct zt_inbound_tunnel *t;
    struct sockaddr_in peer;
    int plen = sizeof(peer);

    if (ssl == NULL) {
        GM_LOG_WARN_LIMITED("inbound", "no certificate for the pod: refusing", "pod=%s", pod->uid);
        reject_accept(listener);
        return;
    }
    t = gm_xcalloc(1, sizeof(*t));
    t->w = w;
    t->pod_uid = gm_xstrdup(pod->uid);
    struct gm_hbone_settings hs;
    zt_proxy_hbone_settings(w, true, &hs);
    if (gm_hbone_conn_new_server(zt_proxy_loop(w), ssl, &hs, &tunnel_cbs, t, &t->conn) < 0) {
        free(t->pod_uid);
        free(t);
        reject_accept(listener);
        return;
    }
    t->next = w->tunnels;
    if (w->tunnels)
        w->tunnels->prev = t;
    w->tunnels = t;
    if (uv_accept(listener, (uv_stream_t *)gm_hbone_conn_tcp(t->conn)) < 0 ||
        gm_hbone_conn_start(t->conn) < 0) {
        gm_hbone_conn_close(t->conn, GM_HBONE_REASON_IO);
        return;
    }
    if (uv_tcp_getpeername(gm_hbone_conn_tcp(t->conn), (struct sockaddr *)&peer, &plen) == 0 &&
        peer.sin_family == AF_INET) {
        t->peer_ip.family = AF_INET;
        memcpy(t->peer_ip.addr, &peer.sin_addr, 4);
    }
    if (w->draining)
        gm_hbone_conn_goaway(t->conn);
}

void zt_inbound_recheck(struct zt_worker *w)
{
    for (struct zt_conn *c = w->conns, *next; c; c = next) {
        next = c->next;
        if (c->dir == ZT_DIR_OUTBOUND || c->dst_uid == NULL || c->closing)
            continue;
        const struct gm_workload *dst = local_workload(w, c->dst_uid);
        char why[200];
        if (dst && authorize(c, dst, why, sizeof(why)) == 0)
            continue;
        GM_LOG_INFO("authz", "open connection now denied: closing", "src=%s dst=%s reason=%s",
                    c->src_identity ? c->src_identity : "-", c->dst_addr,
                    dst ? why : "workload gone");
        c->response_flags = "DENY";
        zt_conn_close(c, "denied by policy change");
    }
}
