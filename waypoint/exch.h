/* One request/response exchange: the route decision, the attempts upstream (with the request and
 * per-attempt timeouts, retries and backoff), mirrors, and the response handed to the
 * downstream codec; one access-log line and the request metrics when it finishes.
 *
 * The downstream codec creates it (wp_exch_new), fills x->req and calls wp_exch_start() when the
 * head is complete, then feeds the body (wp_exch_body, wp_exch_body_end). The exchange calls the
 * codec's `response` op whenever x->resp has news; the codec takes body bytes from x->resp.body
 * and reports them with wp_exch_taken(), and calls wp_exch_sent() once the whole response is
 * out. A downstream that goes away calls wp_exch_detach(). The codec's reference is dropped with
 * wp_exch_release(); the exchange frees itself once finished, released and its timers closed.
 *
 * A mirror is an exchange without a downstream: its response is read and dropped.
 *
 * An HTTP/1.1 request that asks to upgrade (x->req.upgrade, e.g. WebSocket) is sent upstream with
 * its Upgrade and Connection: upgrade; a 101 answer makes the exchange a tunnel (x->tunnel). */
#ifndef WP_EXCH_H
#define WP_EXCH_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "bytes.h"
#include "decide.h"
#include "hop.h"
#include "req.h"

struct wp_worker;
struct wp_conn;
struct wp_uconn;

enum wp_exch_state {
    WP_EXCH_HEAD = 0, /* the request head is being received */
    WP_EXCH_CONNECT,  /* waiting for an upstream connection */
    WP_EXCH_WAIT,     /* request (being) sent: waiting for the response head */
    WP_EXCH_BACKOFF,  /* waiting before a retry */
    WP_EXCH_RESPOND,  /* the response head went to the codec; the body flows */
    WP_EXCH_DONE,     /* finished (complete or failed) */
    WP_EXCH__MAX
};

struct wp_resp {
    int status;
    struct gm_hlist headers;  /* hop-by-hop and framing fields removed */
    struct gm_hlist trailers; /* HTTP/2 trailers to pass on */
    int64_t content_length;   /* -1: unknown */
    bool no_body;             /* HEAD request, 1xx, 204, 304 */
    struct wp_bytes body;     /* waiting for the downstream codec */
    bool end;                 /* the whole body is in body */
    char *upgrade;            /* 101: the protocol switched to (the upstream's Upgrade) */
};

struct wp_exch {
    struct wp_worker *w;
    struct wp_conn *conn;   /* NULL for mirrors and once the downstream left */
    struct wp_conn *origin; /* a reference: who sent it (for logs), even after it left */
    int32_t sid;            /* inner HTTP/2 stream id; 0 for HTTP/1.1 */
    enum wp_exch_state state;
    int refs;
    struct gm_snapshot *snap; /* own reference: decisions point into it */
    struct wp_req req;
    char *authority; /* Host as received, for logs */
    /* request body: body holds the bytes from body_base; sent is this attempt's progress */
    struct wp_bytes body;
    uint64_t body_base, body_total, sent;
    uint64_t acked; /* body bytes reported to the codec as gone upstream */
    bool body_end;
    bool body_streamed; /* passed max-body-buffer: no retry, no mirror */
    struct wp_decision d;
    const struct gm_svc *svc; /* the Service addressed (VIP:port) */
    int port_index;
    /* the current attempt */
    struct wp_uconn *up;
    const struct gm_workload *ep;
    int ep_port;
    bool up_h2;
    bool up_reused;     /* the attempt's connection had carried requests before */
    bool reuse_retried; /* a reused connection failed once already: no free retry again */
    char upstream[64];  /* "ip:port" of the last attempt's endpoint */
    int retries;
    uv_timer_t deadline; /* timeouts.request */
    uv_timer_t attempt;  /* head deadline (HTTP/2), backendRequest, backoff, connect */
    int timers_open;
    int timer_kind;     /* enum wp_timer_kind (exch_int.h) */
    bool idle_deadline; /* the deadline timer counts idleness, not the whole request */
    uint64_t start_ms;
    uint64_t attempt_start_ms;
    struct wp_resp resp;
    bool resp_head_given; /* the codec has the response head */
    /* accounting */
    const char *error;
    const char *flags;
    char request_id[WP_REQUEST_ID_MAX + 1];
    uint64_t bytes_in, bytes_out;
    uint64_t t0_ns;
    bool mirror;
    bool mirrors_due; /* mirrors fire when the body is complete */
    bool released;
    bool h2_downstream;
    /* The upstream switched protocols (101) for an HTTP/1.1 upgrade request (WebSocket): from the
     * 101 on, the client's bytes are the request body and the upstream's the response body, both
     * raw and without framing, each ending with its side's end; no retries, mirrors or request
     * timeout, the idle timeout instead. */
    bool tunnel;
    bool codec_head;             /* for the codec: it submitted the response head */
    int head_error;              /* for the codec: the head was refused with this status */
    struct wp_exch *prev, *next; /* the connection's list, or the worker's mirrors */
};

/* A new exchange of connection c (NULL for a mirror) for inner stream sid; one reference for
 * the codec. */
struct wp_exch *wp_exch_new(struct wp_worker *w, struct wp_conn *c, int32_t sid);
/* HTTP/2: the header block must be complete within ms, else the connection is closed (a
 * header block cannot be abandoned half-way). */
void wp_exch_head_deadline(struct wp_exch *x, uint64_t ms);
/* The head is complete in x->req: decide, and answer or start the first attempt. */
void wp_exch_start(struct wp_exch *x);
/* Request body bytes from the client (copied). */
void wp_exch_body(struct wp_exch *x, const char *p, size_t n);
void wp_exch_body_end(struct wp_exch *x);
/* Bytes of request body received but not yet sent upstream (codec back-pressure). */
size_t wp_exch_unsent(const struct wp_exch *x);
/* The codec took n bytes from x->resp.body. */
void wp_exch_taken(struct wp_exch *x, size_t n);
/* The codec sent the whole response. */
void wp_exch_sent(struct wp_exch *x);
/* The downstream went away (reason static): stop, log, free upstream resources. */
void wp_exch_detach(struct wp_exch *x, const char *reason);
/* The codec drops its reference. */
void wp_exch_release(struct wp_exch *x);
/* Answer locally (the codec refused the request before wp_exch_start: 400, 408, 431...). */
void wp_exch_reply(struct wp_exch *x, int status, const char *reason);

/* The request body written upstream now reaches x->sent: let the downstream send more. */
void wp_exch_progress(struct wp_exch *x);

/* Upstream connection events (upstream.c). */
void wp_exch_up_ready(struct wp_exch *x);
void wp_exch_up_head(struct wp_exch *x);
void wp_exch_up_body(struct wp_exch *x);
void wp_exch_up_end(struct wp_exch *x);
/* The upstream answered 101 to x's upgrade request (x->resp holds the head): become a tunnel. */
void wp_exch_up_switch(struct wp_exch *x);
/* A tunnel's upstream ended its direction. */
void wp_exch_up_eof(struct wp_exch *x);
/* The attempt failed before or during the response (reason static; responded: a response head
 * had arrived). */
void wp_exch_up_error(struct wp_exch *x, const char *reason);

/* Mirrors (mirror.c): fire one copy of x's request per mirror whose sampling says so. */
void wp_mirror_fire(struct wp_exch *x);

#endif
