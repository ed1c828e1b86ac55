/* The outbound HBONE connection pool. */
#include "gammamesh/hbone_pool.h"

#include <errno.h>
#include <netinet/in.h>
#include <unistd.h>

#include "gammamesh/log.h"
#include "gammamesh/tls.h"
#include "gammamesh/util.h"

struct gm_hbone_pool_conn {
    struct gm_hbone_pool *pool;
    char *scope, *src_identity, *dst_identity;
    struct gm_ip ip;
    int port;
    struct gm_hbone_conn *conn;
    struct gm_hbone_pool_conn *prev, *next;
};

void gm_hbone_pool_init(struct gm_hbone_pool *p, uv_loop_t *loop,
                        const struct gm_hbone_pool_ops *ops, void *ctx,
                        const struct gm_hbone_settings *settings)
{
    memset(p, 0, sizeof(*p));
    p->loop = loop;
    p->ops = ops;
    p->ctx = ctx;
    if (settings)
        p->settings = *settings;
    else
        gm_hbone_settings_init(&p->settings, false);
}

static void unlink_conn(struct gm_hbone_pool_conn *pc)
{
    struct gm_hbone_pool *p = pc->pool;

    if (pc->prev)
        pc->prev->next = pc->next;
    else if (p->head == pc)
        p->head = pc->next;
    if (pc->next)
        pc->next->prev = pc->prev;
    pc->prev = pc->next = NULL;
    p->n--;
}

/* Did a connection that had worked die under us (rather than end, fail to start, or drain)? */
static bool lost(const struct gm_hbone_conn *c, enum gm_hbone_reason reason)
{
    struct gm_hbone_conn_stats st;

    gm_hbone_conn_stats(c, &st);
    return st.streams_total > 0 &&
           (reason == GM_HBONE_REASON_IO || reason == GM_HBONE_REASON_PEER_CLOSED ||
            reason == GM_HBONE_REASON_PING_TIMEOUT);
}

static void on_pool_conn_close(struct gm_hbone_conn *c, enum gm_hbone_reason reason, void *ctx)
{
    struct gm_hbone_pool_conn *pc = ctx;
    struct gm_hbone_pool *p = pc->pool;

    GM_LOG_DEBUG("pool", "tunnel closed", "peer=%s reason=%s", pc->dst_identity,
                 gm_hbone_reason_name(reason));
    unlink_conn(pc);
    if (lost(c, reason)) {
        /* Its siblings to the same address (other sources, other loops) likely died too. */
        gm_hbone_pool_probe(p, &pc->ip, pc->port);
        if (p->ops->on_conn_lost)
            p->ops->on_conn_lost(p->ctx, &pc->ip, pc->port);
    }
    free(pc->scope);
    free(pc->src_identity);
    free(pc->dst_identity);
    free(pc);
}

static int on_pool_handshake(struct gm_hbone_conn *c, void *ctx)
{
    struct gm_hbone_pool_conn *pc = ctx;
    const char *expected[] = {pc->dst_identity};
    char why[256];

    if (gm_tls_check_peer(gm_hbone_conn_ssl(c), expected, 1, NULL, why, sizeof(why)) < 0) {
        GM_LOG_WARN("pool", "peer identity refused", "expected=%s reason=%s", pc->dst_identity,
                    why);
        return -EPERM;
    }
    return 0;
}

static const struct gm_hbone_conn_cbs pool_conn_cbs = {
    .on_handshake = on_pool_handshake,
    .on_close = on_pool_conn_close,
};

static bool same_key(const struct gm_hbone_pool_conn *pc, const char *uid, const char *src,
                     const char *dst, const struct gm_ip *ip, int port)
{
    return pc->port == port && gm_ip_equal(&pc->ip, ip) && strcmp(pc->scope, uid) == 0 &&
           strcmp(pc->src_identity, src) == 0 && strcmp(pc->dst_identity, dst) == 0;
}

static int new_conn(struct gm_hbone_pool *p, const char *scope, const char *src_identity,
                    const char *dst_identity, const struct gm_ip *ip, int port,
                    struct gm_hbone_pool_conn **out)
{
    struct sockaddr_storage ss = {0};
    SSL *ssl = p->ops->make_ssl(p->ctx, src_identity, dst_identity);

    if (ssl == NULL)
        return -EACCES;
    struct gm_hbone_pool_conn *pc = gm_xcalloc(1, sizeof(*pc));
    pc->pool = p;
    pc->scope = gm_xstrdup(scope);
    pc->src_identity = gm_xstrdup(src_identity);
    pc->dst_identity = gm_xstrdup(dst_identity);
    pc->ip = *ip;
    pc->port = port;
    int rc = gm_hbone_conn_new_client(p->loop, ssl, &p->settings, &pool_conn_cbs, pc, &pc->conn);
    if (rc < 0)
        goto fail;
    /* Linked before anything can fail further: on_close unlinks and frees. */
    pc->next = p->head;
    if (p->head)
        p->head->prev = pc;
    p->head = pc;
    p->n++;
    p->handshakes++;
    int fd = p->ops->make_socket(p->ctx, scope, ip->family);
    if (fd < 0 || (rc = uv_tcp_open(gm_hbone_conn_tcp(pc->conn), fd)) < 0) {
        if (fd >= 0)
            close(fd);
        gm_hbone_conn_close(pc->conn, GM_HBONE_REASON_CONNECT_FAILED);
        return fd < 0 ? fd : rc;
    }
    if (ip->family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        memcpy(&sin->sin_addr, ip->addr, 4);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        memcpy(&sin6->sin6_addr, ip->addr, 16);
    }
    rc = gm_hbone_conn_connect(pc->conn, (struct sockaddr *)&ss);
    if (rc < 0) {
        gm_hbone_conn_close(pc->conn, GM_HBONE_REASON_CONNECT_FAILED);
        return rc;
    }
    *out = pc;
    return 0;
fail:
    free(pc->scope);
    free(pc->src_identity);
    free(pc->dst_identity);
    free(pc);
    return rc;
}

int gm_hbone_pool_open_stream(struct gm_hbone_pool *p, const char *scope, const char *src_identity,
                              const char *dst_identity, const struct gm_ip *ip, int port,
                              const char *authority, const struct gm_hbone_header *hdrs,
                              size_t n_hdrs, const struct gm_hbone_stream_cbs *cbs, void *ctx,
                              struct gm_hbone_stream **out)
{
    for (struct gm_hbone_pool_conn *pc = p->head; pc; pc = pc->next) {
        if (!same_key(pc, scope, src_identity, dst_identity, ip, port) ||
            !gm_hbone_conn_available(pc->conn))
            continue;
        if (gm_hbone_stream_open(pc->conn, authority, hdrs, n_hdrs, cbs, ctx, out) == 0)
            return 0;
    }
    struct gm_hbone_pool_conn *pc = NULL;
    int rc = new_conn(p, scope, src_identity, dst_identity, ip, port, &pc);
    if (rc < 0)
        return rc;
    return gm_hbone_stream_open(pc->conn, authority, hdrs, n_hdrs, cbs, ctx, out);
}

void gm_hbone_pool_probe(struct gm_hbone_pool *p, const struct gm_ip *ip, int port)
{
    for (struct gm_hbone_pool_conn *pc = p->head; pc; pc = pc->next)
        if (pc->port == port && gm_ip_equal(&pc->ip, ip))
            gm_hbone_conn_ping(pc->conn);
}

void gm_hbone_pool_drain(struct gm_hbone_pool *p)
{
    for (struct gm_hbone_pool_conn *pc = p->head; pc; pc = pc->next)
        gm_hbone_conn_goaway(pc->conn);
}

void gm_hbone_pool_close(struct gm_hbone_pool *p)
{
    for (struct gm_hbone_pool_conn *pc = p->head; pc; pc = pc->next)
        gm_hbone_conn_close(pc->conn, GM_HBONE_REASON_OK);
}
