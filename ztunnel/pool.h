/* The outbound HBONE pool of one worker: TLS connections keyed by (source pod, source identity,
 * destination identity, destination address). A new application connection reuses a pooled
 * connection with a free stream, so a TLS handshake is paid per pool entry, not per
 * application connection (DESIGN §6). */
#ifndef ZT_POOL_H
#define ZT_POOL_H

#include "gammamesh/hbone.h"

struct zt_worker;
struct zt_wpod;

struct zt_pool_conn {
    struct zt_pool *pool;
    char *src_uid, *src_identity, *dst_identity;
    struct gm_ip ip;
    int port;
    struct gm_hbone_conn *conn;
    struct zt_pool_conn *prev, *next;
};

struct zt_pool {
    struct zt_worker *w;
    struct zt_pool_conn *head;
    unsigned n;
    uint64_t handshakes; /* connections created over the pool's life */
};

void zt_pool_init(struct zt_pool *p, struct zt_worker *w);
/* Open a CONNECT stream to ip:port (15008) expecting dst_identity, from src_pod presenting
 * src_identity; cbs/ctx as for gm_hbone_stream_open. 0 or -errno. */
int zt_pool_open_stream(struct zt_pool *p, struct zt_wpod *src_pod, const char *src_identity,
                        const char *dst_identity, const struct gm_ip *ip, int port,
                        const char *authority, const struct gm_hbone_header *hdrs, size_t n_hdrs,
                        const struct gm_hbone_stream_cbs *cbs, void *ctx,
                        struct gm_hbone_stream **out);
/* GOAWAY every pooled connection (drain). */
void zt_pool_drain(struct zt_pool *p);
/* Close every pooled connection (stop). */
void zt_pool_close(struct zt_pool *p);

#endif
