/* Downstream HBONE tunnels on the waypoint's 15008: mTLS with the waypoint's identity (a client
 * certificate of our trust domain required), then each CONNECT stream becomes a downstream
 * connection (conn.h). */
#ifndef WP_INBOUND_H
#define WP_INBOUND_H

#include <uv.h>

#include "gammamesh/hbone.h"
#include "gammamesh/spiffe.h"

struct wp_worker;

struct wp_tunnel {
    struct wp_worker *w;
    struct gm_hbone_conn *conn;
    char peer_id[GM_SPIFFE_ID_MAX]; /* verified SPIFFE ID of the peer */
    char peer_ns[256];              /* its namespace */
    struct gm_ip peer_ip;
    struct wp_tunnel *prev, *next;
};

/* A connection is waiting on listener l: accept it (or refuse it without an identity). */
void wp_inbound_accept(struct wp_worker *w, uv_stream_t *l);
/* GOAWAY every tunnel: open streams finish, no new ones. */
void wp_inbound_drain(struct wp_worker *w);
/* Close every tunnel now. */
void wp_inbound_close_all(struct wp_worker *w);

#endif
