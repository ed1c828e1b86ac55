/* Upstream HTTP connections: HTTP/1.1 or HTTP/2 (prior knowledge) inside an HBONE CONNECT stream
 * to an endpoint's podIP:15008 (`:authority podIP:targetPort`), presenting the waypoint identity
 * and expecting the endpoint's. A connection carries one exchange at a time; after a complete,
 * keep-alive response it goes to the worker's idle list and is reused for the same endpoint.
 *
 * The exchange owns the request and response buffers; the connection writes the request from
 * x->req / x->body (from x->sent) and fills x->resp, calling the wp_exch_up_* functions. Those
 * may release or close the connection from inside the callback: a reference is held across
 * every llhttp and nghttp2 call. */
#ifndef WP_UPSTREAM_H
#define WP_UPSTREAM_H

#include <llhttp.h>
#include <nghttp2/nghttp2.h>
#include <stdbool.h>
#include <stdint.h>

#include "gammamesh/hbone.h"
#include "gammamesh/snapshot.h"
#include "gammamesh/util.h"

struct wp_worker;
struct wp_exch;

enum wp_uconn_state {
    WP_UCONN_OPENING = 0, /* tunnel requested: waiting for its 2xx */
    WP_UCONN_ACTIVE,      /* open, carrying an exchange */
    WP_UCONN_IDLE,        /* open, in the worker's idle list */
    WP_UCONN_CLOSING,     /* the stream is ending; freed at its on_close */
    WP_UCONN__MAX
};

struct wp_uconn {
    struct wp_worker *w;
    enum wp_uconn_state state;
    int refs;
    const char *error;
    bool h2;
    struct gm_hbone_stream *stream; /* NULL after its on_close */
    struct gm_ip ip;
    int port;            /* the target port */
    char authority[64];  /* "podIP:targetPort" */
    char *identity;      /* the endpoint's SPIFFE ID */
    struct wp_exch *x;   /* ACTIVE: the exchange */
    uint64_t idle_since; /* IDLE: loop time when it became idle */
    uint64_t uses;       /* exchanges carried */
    size_t held;         /* response body bytes handed to x, not yet consumed */
    bool sending;        /* inside wp_uconn_send: do not recurse */
    bool parsing;        /* inside the codec's input: a release waits until it returns */
    bool release_due;    /* released while parsing */
    bool goaway;         /* HTTP/2: the upstream sent GOAWAY */
    bool head_written;   /* this exchange's request head is queued */
    bool req_done;       /* the whole request is queued */
    bool resp_done;      /* the whole response arrived */
    bool keep_alive;     /* HTTP/1: the response allows reuse */
    bool peer_ended;     /* END_STREAM from the upstream */
    bool tunnel;         /* HTTP/1.1: answered 101 to an upgrade; never reused */
    bool raw;            /* tunnel: the response head is parsed, input is raw bytes */
    bool raw_shut;       /* tunnel: the client's end went upstream */
    /* HTTP/1.1 */
    llhttp_t parser;
    struct gm_buf fname, fvalue; /* the response field being parsed */
    size_t resp_head_bytes;
    /* HTTP/2 */
    nghttp2_session *h2s;
    int32_t sid;                  /* the current request's stream */
    struct wp_uconn *prev, *next; /* the worker's idle list */
};

/*
 * An upstream connection for x to endpoint ep's target port, over HTTP/2 when h2: an idle one
 * to the same endpoint, else a new tunnel from the worker's HBONE pool. Binds it to x (x->up).
 * 0; or a negative errno (no certificate, the pool refused). When the connection is already
 * open the caller sends at once (wp_uconn_send); otherwise wp_exch_up_ready() follows.
 */
int wp_uconn_acquire(struct wp_worker *w, struct wp_exch *x, const struct gm_workload *ep, int port,
                     bool h2, struct wp_uconn **out);
bool wp_uconn_open(const struct wp_uconn *u);
/* Write what can be written of x's request (head, then body from x->sent). */
void wp_uconn_send(struct wp_uconn *u);
/* x's codec took n response body bytes: open the flow-control windows. */
void wp_uconn_consumed(struct wp_uconn *u, size_t n);
/* Unbind from x: keep it idle when reusable, else close it. */
void wp_uconn_release(struct wp_uconn *u);
/* Idempotent; reason static. The exchange, if any, is unbound first (not told). */
void wp_uconn_close(struct wp_uconn *u, const char *reason);
/* Close idle connections older than max_idle_ms, or beyond max_idle in number (worker sweep). */
void wp_uconn_sweep(struct wp_worker *w, uint64_t max_idle_ms, unsigned max_idle);
/* Close every idle connection (drain, stop). */
void wp_uconn_close_idle(struct wp_worker *w);

/* The codecs over the stream (up_h1.c, up_h2.c): set up, feed input, write the request. */
void wp_up_h1_init(struct wp_uconn *u);
void wp_up_h1_done(struct wp_uconn *u);
void wp_up_h1_begin(struct wp_uconn *u); /* a new exchange */
void wp_up_h1_input(struct wp_uconn *u, const uint8_t *p, size_t n);
void wp_up_h1_eof(struct wp_uconn *u);
void wp_up_h1_send(struct wp_uconn *u);
int wp_up_h2_init(struct wp_uconn *u);
void wp_up_h2_done(struct wp_uconn *u);
int wp_up_h2_begin(struct wp_uconn *u);
void wp_up_h2_input(struct wp_uconn *u, const uint8_t *p, size_t n);
void wp_up_h2_send(struct wp_uconn *u);
void wp_up_h2_consumed(struct wp_uconn *u, size_t n);

void wp_uconn_ref(struct wp_uconn *u);
void wp_uconn_unref(struct wp_uconn *u);

#endif
