/* A downstream connection: one HBONE CONNECT stream whose inner bytes are HTTP/1.1 or HTTP/2,
 * addressed to a Service VIP:port (the CONNECT :authority). It owns the unparsed input, the
 * head/idle timer and the protocol codec; its requests are exchanges (exch.h).
 *
 * Close discipline: wp_conn_close() is idempotent and keeps the first reason; it detaches every
 * exchange, stops the codec, ends the stream (shutdown when clean, reset otherwise) and closes
 * the timer; the connection is freed once the stream's on_close and the timer's close callback
 * have run and no reference is held (codec calls into llhttp/nghttp2 hold one). */
#ifndef WP_CONN_H
#define WP_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "bytes.h"
#include "gammamesh/hbone.h"
#include "gammamesh/snapshot.h"

struct wp_worker;
struct wp_exch;
struct wp_conn;

enum wp_conn_state {
    WP_CONN_SNIFF = 0, /* telling HTTP/1.1 from the HTTP/2 connection preface */
    WP_CONN_H1,        /* HTTP/1.1, one request at a time (pipelined ones wait) */
    WP_CONN_H2,        /* HTTP/2 with prior knowledge */
    WP_CONN_CLOSING,   /* teardown: freed when the stream and the timer are gone */
    WP_CONN__MAX
};

/* What a protocol codec does for its connection. */
struct wp_codec_ops {
    const char *name; /* "HTTP/1.1", "HTTP/2" */
    /* New bytes are in c->in (or room opened up): parse what can be parsed. */
    void (*input)(struct wp_conn *c);
    /* Exchange x has a response head (x->resp), or more of its body, or its end. */
    void (*response)(struct wp_conn *c, struct wp_exch *x);
    /* x failed after its response started: cut it (HTTP/1: close; HTTP/2: RST_STREAM). */
    void (*abort)(struct wp_conn *c, struct wp_exch *x);
    /* n bytes of x's request body went upstream: let the client send more. */
    void (*drained)(struct wp_conn *c, struct wp_exch *x, size_t n);
    /* The stream's send queue fell below its low watermark. */
    void (*writable)(struct wp_conn *c);
    /* The client ended its direction. */
    void (*peer_end)(struct wp_conn *c);
    /* Graceful drain: finish in-flight requests, refuse new ones (GOAWAY / Connection: close). */
    void (*drain)(struct wp_conn *c);
    /* The head or idle deadline passed. */
    void (*timeout)(struct wp_conn *c);
    /* Free the codec state (the connection is closing; exchanges are detached). */
    void (*free)(struct wp_conn *c);
};

struct wp_conn {
    struct wp_worker *w;
    enum wp_conn_state state;
    int refs;
    const char *error;              /* first close reason; NULL = clean */
    struct gm_hbone_stream *stream; /* NULL after its on_close */
    bool peer_ended;                /* END_STREAM from the client */
    uv_timer_t timer;               /* head deadline, idle deadline */
    bool timer_open;
    struct wp_bytes in; /* unparsed input (bounded by the stream's flow-control window) */
    /* addressing */
    struct gm_ip vip;
    int port;
    char authority[64]; /* "vip:port" */
    char *client_ns;    /* from the peer's SPIFFE ID */
    char *peer_id;      /* the peer's SPIFFE ID */
    char *src_ip;       /* the client's address (forwarded for=, else the tunnel peer) */
    char *src_workload, *src_namespace;
    bool draining;
    bool graceful; /* closing: send what is queued even though there is an error */
    /* codec */
    const struct wp_codec_ops *ops;
    void *codec;
    struct wp_exch *exchs; /* live exchanges of this connection */
    unsigned n_exchs;
    struct wp_conn *prev, *next; /* the worker's list */
};

/* What the tunnel knows about the peer of a new stream (borrowed). */
struct wp_conn_peer {
    const char *identity;  /* verified SPIFFE ID */
    const char *namespace; /* its namespace */
    const struct gm_ip *ip;
};

/* A CONNECT arrived on a downstream tunnel: resolve the Service by VIP:port and answer 200, or
 * 503 when there is no such Service or the worker is at max-conns. */
void wp_conn_accept(struct wp_worker *w, struct gm_hbone_stream *s,
                    const struct gm_hbone_request *req, const struct wp_conn_peer *peer);

void wp_conn_close(struct wp_conn *c, const char *reason);
/* Close after the queued bytes (a GOAWAY, an error answer) went out, keeping reason for logs. */
void wp_conn_finish(struct wp_conn *c, const char *reason);
void wp_conn_ref(struct wp_conn *c);
void wp_conn_unref(struct wp_conn *c);
void wp_conn_drain(struct wp_conn *c);

/* Queue bytes to the client: 0, or a negative errno (the caller closes). */
int wp_conn_write(struct wp_conn *c, const void *p, size_t n);
bool wp_conn_writable(const struct wp_conn *c);
/* Drop n bytes from the head of c->in and give the window back to the client. */
void wp_conn_consume_input(struct wp_conn *c, size_t n);
/* End our direction after queued bytes (clean close of the tunnel's inner connection). */
void wp_conn_shutdown(struct wp_conn *c);
/* End our direction only (after queued bytes); the client's bytes still arrive. */
void wp_conn_half_close(struct wp_conn *c);

/* (Re)arm the connection timer; 0 stops it. */
void wp_conn_timer(struct wp_conn *c, uint64_t ms);

/* Exchanges register with their connection. */
void wp_conn_link(struct wp_conn *c, struct wp_exch *x);
void wp_conn_unlink(struct wp_conn *c, struct wp_exch *x);

/* The codecs (h1_server.c, h2_server.c). */
extern const struct wp_codec_ops wp_h1s_ops;
extern const struct wp_codec_ops wp_h2s_ops;
void wp_h1s_start(struct wp_conn *c);
void wp_h2s_start(struct wp_conn *c);

#endif
