/* A pool of outbound HBONE connections on one loop, keyed by (scope, source identity,
 * destination identity, destination address): a new tunnelled connection reuses a pooled TLS
 * connection with a free stream, so a handshake is paid per pool entry, not per application
 * connection (DESIGN §6). The scope separates sources that must not share a connection (the
 * ztunnel passes the source pod's uid: its sockets live in that pod's netns). */
#ifndef GAMMAMESH_HBONE_POOL_H
#define GAMMAMESH_HBONE_POOL_H

#include <openssl/ssl.h>

#include "gammamesh/hbone.h"

/* How the pool makes what it needs; ctx is the pool's. */
struct gm_hbone_pool_ops {
    /* A client SSL presenting src_identity and requiring dst_identity; NULL on failure. */
    SSL *(*make_ssl)(void *ctx, const char *src_identity, const char *dst_identity);
    /* A non-blocking TCP socket for scope (SO_MARK, netns, ...); fd or -errno. */
    int (*make_socket)(void *ctx, const char *scope, int family);
    /* Optional: a pooled connection to ip:port died under it (reset, EOF, silence) after it
     * had worked. The pool has probed its own other connections to that address; the owner
     * may have the pools of its other loops probe theirs (gm_hbone_pool_probe()). */
    void (*on_conn_lost)(void *ctx, const struct gm_ip *ip, int port);
};

struct gm_hbone_pool_conn;

struct gm_hbone_pool {
    uv_loop_t *loop;
    const struct gm_hbone_pool_ops *ops;
    void *ctx;
    struct gm_hbone_settings settings;
    struct gm_hbone_pool_conn *head;
    unsigned n;          /* pooled connections */
    uint64_t handshakes; /* connections created over the pool's life */
};

/* settings may be NULL (client defaults). */
void gm_hbone_pool_init(struct gm_hbone_pool *p, uv_loop_t *loop,
                        const struct gm_hbone_pool_ops *ops, void *ctx,
                        const struct gm_hbone_settings *settings);
/* Open a CONNECT stream to ip:port (the peer's 15008); cbs/ctx as for gm_hbone_stream_open.
 * 0 or -errno; no callback runs before it returns. */
int gm_hbone_pool_open_stream(struct gm_hbone_pool *p, const char *scope, const char *src_identity,
                              const char *dst_identity, const struct gm_ip *ip, int port,
                              const char *authority, const struct gm_hbone_header *hdrs,
                              size_t n_hdrs, const struct gm_hbone_stream_cbs *cbs, void *ctx,
                              struct gm_hbone_stream **out);
/* PING every pooled connection to ip:port now: ones whose peer is gone (it restarted, its
 * netns was replaced under the same address) are reset and leave the pool before another
 * stream is put on them. Healthy ones just answer. */
void gm_hbone_pool_probe(struct gm_hbone_pool *p, const struct gm_ip *ip, int port);
/* GOAWAY every pooled connection (drain); open streams finish. */
void gm_hbone_pool_drain(struct gm_hbone_pool *p);
/* Close every pooled connection now (stop). */
void gm_hbone_pool_close(struct gm_hbone_pool *p);

#endif
