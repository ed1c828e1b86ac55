/* Per-worker proxy state: the pods' listeners on this worker, its open connections, its HBONE
 * pool and metrics handles. Everything here lives on one worker thread. */
#ifndef ZT_PROXY_H
#define ZT_PROXY_H

#include <openssl/ssl.h>

#include "conn.h"
#include "gammamesh/hbone.h"
#include "gammamesh/identity.h"
#include "gammamesh/hbone_pool.h"
#include "ztunnel.h"

/* A pod's listeners on one worker. */
struct zt_wpod {
    struct zt_worker *w;
    char *uid;
    int nsfd; /* the pod's netns, for sockets made on its behalf */
    uv_tcp_t listeners[ZT_LISTEN__MAX];
    bool listening[ZT_LISTEN__MAX];
    int pending_closes;
    bool released;
    bool keep_source; /* inbound connections to the app keep the client's address */
    struct zt_wpod *next;
};

/* An inbound HBONE connection accepted on a pod's 15008 (server side). */
struct zt_inbound_tunnel {
    struct zt_worker *w;
    struct gm_hbone_conn *conn;
    char *pod_uid;           /* the pod whose listener accepted */
    char peer_identity[300]; /* verified SPIFFE ID of the peer */
    char *refused;           /* why the peer was refused after its handshake (owned), or NULL */
    struct gm_ip peer_ip;
    struct zt_inbound_tunnel *prev, *next;
};

struct zt_worker {
    struct gm_worker *gw;
    struct zt *zt;
    struct zt_wpod *pods;
    struct zt_conn *conns;
    unsigned n_conns;
    struct zt_conn *flush;      /* connections with writes held to the end of the iteration */
    uv_check_t flush_check;     /* after I/O callbacks */
    uv_prepare_t flush_prepare; /* after the idle phase (HBONE deferred work), before polling */
    struct zt_inbound_tunnel *tunnels;
    struct gm_hbone_pool pool;
    bool draining;
    uint32_t rnd;
};

uv_loop_t *zt_proxy_loop(struct zt_worker *w);
const struct zt_settings *zt_proxy_settings(struct zt_worker *w);
const struct gm_snapshot *zt_proxy_snapshot(struct zt_worker *w);
void zt_proxy_conn_added(struct zt_worker *w, struct zt_conn *c);
void zt_proxy_conn_done(struct zt_worker *w, struct zt_conn *c);
uint32_t zt_proxy_random(struct zt_worker *w);
struct zt_wpod *zt_proxy_find_pod(struct zt_worker *w, const char *uid);

/* A socket in the pod's netns carrying SO_MARK (fd or -errno). */
int zt_proxy_pod_socket(struct zt_worker *w, struct zt_wpod *pod, int family);
/* A workload's facts as Istio's `baggage` header carries them: the source's on a CONNECT, the
 * destination's on the 200 that answers it. */
void zt_baggage(const struct gm_workload *wl, char *buf, size_t len);
/* A socket in the pod's netns for a connection to its app on behalf of src: bound to src
 * (transparently) when the pod's reply routing allows and src is not the pod itself, with a
 * source port other than avoid_port (0: any). */
int zt_proxy_app_socket(struct zt_worker *w, struct zt_wpod *pod, const struct gm_ip *src,
                        uint16_t avoid_port, const struct gm_ip *dst);

/* Flows (ztunnel/outbound.c, ztunnel/inbound.c). */
void zt_outbound_accept(struct zt_worker *w, struct zt_wpod *pod, uv_stream_t *listener);
/* HBONE settings of the worker's tunnels (client or server), with the keepalive setting. */
void zt_proxy_hbone_settings(struct zt_worker *w, bool server, struct gm_hbone_settings *hs);
/* A held outbound connection whose stream was lost before its 200: plan again (the snapshot may
 * have changed) and open a new stream; closes c when that is not possible. */
void zt_outbound_retry(struct zt_conn *c);
/* Streams an outbound connection may open: the first, and retries of held ones. */
#define ZT_STREAM_ATTEMPTS 3
/* A pooled tunnel that received nothing for this long may be dead: a new stream on it holds
 * the app's bytes until the 200 (keepalive PINGs every 10 s keep live idle tunnels talking). */
#define ZT_QUIET_TUNNEL_MS 1000
void zt_inbound_plain_accept(struct zt_worker *w, struct zt_wpod *pod, uv_stream_t *listener);
void zt_inbound_hbone_accept(struct zt_worker *w, struct zt_wpod *pod, uv_stream_t *listener);
/* Re-check every inbound connection on this worker against the current policies. */
void zt_inbound_recheck(struct zt_worker *w);

/* Access log and metrics for a connection that just closed (ztunnel/telemetry.c). */
void zt_telemetry_conn_opened(struct zt_worker *w, struct zt_conn *c);
void zt_telemetry_conn_closed(struct zt_worker *w, struct zt_conn *c);
/* An inbound tunnel to pod `dst` (NULL: unknown) refused before any stream: its handshake
 * failed or its peer was refused. Counted as a failed connection and logged (rate-limited). */
void zt_telemetry_tunnel_refused(struct zt_worker *w, const struct gm_workload *dst,
                                 const struct gm_ip *peer, const char *reason);

/* Identity (ztunnel/identity.c): SSLs presenting a workload's certificate, a client requiring
 * the peer to prove dst_identity, a server requiring a peer of trust domain td. NULL on failure
 * (logged). Thread-safe. */
SSL *zt_identity_client_ssl(struct zt *zt, const char *src_identity, const char *dst_identity);
SSL *zt_identity_server_ssl(struct zt *zt, const char *identity, const char *td);

#endif
