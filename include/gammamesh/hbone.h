/*
 * hbone.h: HBONE, the mesh tunnel: HTTP/2 CONNECT streams over mutual TLS (DESIGN.md §6),
 * wire-compatible with Istio ztunnel. One TLS connection carries many streams; each stream
 * tunnels one TCP connection.
 *
 * Client (outbound side, used by the connection pool):
 *
 *     gm_hbone_conn_new_client(loop, ssl, &settings, &conn_cbs, pool, &c);
 *     gm_hbone_conn_connect(c, (struct sockaddr *)&peer_15008);  // or uv_tcp_open + _start
 *     gm_hbone_stream_open(c, "10.0.0.7:8080", hdrs, 2, &stream_cbs, relay, &s);
 *     ... on_response(s, 200): relay bytes with gm_hbone_stream_write() / on_data ...
 *
 * Server (inbound side, port 15008):
 *
 *     gm_hbone_conn_new_server(loop, ssl, &settings, &conn_cbs, proxy, &c);
 *     uv_accept(listener, (uv_stream_t *)gm_hbone_conn_tcp(c));
 *     gm_hbone_conn_start(c);
 *     ... on_handshake(c): check the peer identity; on_request(c, s, req): connect upstream,
 *         then gm_hbone_stream_respond(s, 200 or 503, ...) ...
 *
 * Flow control is tied to back-pressure in both directions:
 * - Receiving: bytes handed to on_data() stay charged to the HTTP/2 windows (4 MiB per stream,
 *   16 MiB per connection) until the owner reports them written to the other socket with
 *   gm_hbone_stream_consumed(). A slow destination thus pauses the sender.
 * - Sending: gm_hbone_stream_write() copies into a per-stream queue capped at stream_queue_max;
 *   past stream_queue_high gm_hbone_stream_writable() turns false and the owner should stop
 *   reading its socket until on_writable() (queue below stream_queue_low).
 *
 * Lifetimes: a connection lives until its on_close(); a stream until its on_close(). Both fire
 * exactly once, and the object is freed right after the callback returns. Callbacks never free
 * anything: a close requested from inside a callback is carried out after it returns. No
 * callback runs from inside a gm_hbone_* call made by the owner, except where a function says
 * so; they run from the event loop (socket reads, timers, a deferred-work idle handle).
 *
 * Threads: a connection and its streams live on the loop they were created on. The process
 * must ignore SIGPIPE (libuv writes with write(2)): a peer's RST must not kill it.
 */
#ifndef GAMMAMESH_HBONE_H
#define GAMMAMESH_HBONE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>
#include <uv.h>

#include "gammamesh/util.h"

#define GM_HBONE_PORT 15008

/* Why a connection or a stream closed; the first reason recorded wins. */
enum gm_hbone_reason {
    GM_HBONE_REASON_OK = 0,            /* stream: both directions ended; conn: closed by owner */
    GM_HBONE_REASON_GOAWAY,            /* conn: drained after a GOAWAY (sent or received) */
    GM_HBONE_REASON_IDLE,              /* conn: no stream for idle_timeout_ms */
    GM_HBONE_REASON_PEER_CLOSED,       /* conn: the peer closed TLS or TCP */
    GM_HBONE_REASON_CONNECT_FAILED,    /* conn: TCP connect failed */
    GM_HBONE_REASON_TLS_FAILED,        /* conn: TLS handshake failed, or ALPN is not h2 */
    GM_HBONE_REASON_HANDSHAKE_TIMEOUT, /* conn: TCP + TLS + peer SETTINGS not done in time */
    GM_HBONE_REASON_REJECTED,          /* conn: on_handshake refused the peer; stream: non-2xx */
    GM_HBONE_REASON_PROTOCOL,          /* HTTP/2 or TLS protocol error */
    GM_HBONE_REASON_PING_TIMEOUT,      /* conn: nothing received for ping_timeout_ms */
    GM_HBONE_REASON_IO,                /* conn: socket error */
    GM_HBONE_REASON_OVERFLOW,          /* a cap was exceeded */
    GM_HBONE_REASON_BAD_REQUEST,       /* stream: malformed CONNECT, answered 400 */
    GM_HBONE_REASON_REFUSED,           /* stream: refused (REFUSED_STREAM, GOAWAY) */
    GM_HBONE_REASON_PEER_RESET,        /* stream: the peer sent RST_STREAM */
    GM_HBONE_REASON_LOCAL_RESET,       /* stream: reset here (owner or protocol error) */
    GM_HBONE_REASON_CONN_CLOSED,       /* stream: its connection was closed by the owner */
    GM_HBONE_REASON__MAX
};

/* Lifecycle of a connection; transitions go through one set_state() that checks them. */
enum gm_hbone_conn_state {
    GM_HBONE_CONN_NEW = 0,   /* created; socket not started */
    GM_HBONE_CONN_HANDSHAKE, /* TCP connect and TLS handshake in progress */
    GM_HBONE_CONN_OPEN,      /* TLS up, HTTP/2 running: streams may be opened or accepted */
    GM_HBONE_CONN_DRAINING,  /* GOAWAY sent or received: open streams finish, no new ones */
    GM_HBONE_CONN_CLOSING,   /* teardown: streams closed, handles closing; on_close() follows */
    GM_HBONE_CONN__MAX
};

/* Lifecycle of a stream. */
enum gm_hbone_stream_state {
    GM_HBONE_STREAM_OPENING = 0, /* client: CONNECT sent; server: awaiting the owner's respond */
    GM_HBONE_STREAM_OPEN,        /* 2xx exchanged: the tunnel carries data */
    GM_HBONE_STREAM_FAILED,      /* non-2xx response sent or received; closing */
    GM_HBONE_STREAM_CLOSED,      /* on_close() delivered */
    GM_HBONE_STREAM__MAX
};

/*
 * Limits and timers; gm_hbone_settings_init() fills the defaults in parentheses. The HTTP/2
 * values are DESIGN.md §6 (ztunnel's): change them only in tests.
 */
struct gm_hbone_settings {
    uint32_t stream_window;        /* SETTINGS_INITIAL_WINDOW_SIZE (4 MiB) */
    uint32_t conn_window;          /* connection window, via WINDOW_UPDATE on stream 0 (16 MiB) */
    uint32_t max_streams;          /* server: advertised MAX_CONCURRENT_STREAMS (200);
                                      client: streams opened per connection at most (100) */
    uint32_t max_header_bytes;     /* request header block cap, RFC 9113 accounting (16 KiB) */
    uint32_t max_frame_size;       /* SETTINGS_MAX_FRAME_SIZE we accept (16 KiB) */
    uint32_t handshake_timeout_ms; /* TCP connect + TLS + peer SETTINGS (10 s) */
    uint32_t ping_interval_ms;     /* PING every (10 s); 0 = no keepalive */
    uint32_t ping_timeout_ms;      /* close when nothing was received for (20 s) */
    uint32_t idle_timeout_ms;      /* GOAWAY and close after this long without a stream;
                                      0 = never (10 min) */
    uint32_t stream_queue_high;    /* per-stream send queue: writable() false above (256 KiB) */
    uint32_t stream_queue_low;     /* on_writable() once below (64 KiB) */
    uint32_t stream_queue_max;     /* hard cap: gm_hbone_stream_write() fails past it (1 MiB) */
    uint32_t conn_queue_high;      /* TLS output queue: stop producing frames above (256 KiB) */
    uint32_t conn_queue_low;       /* resume below (64 KiB) */
};

struct gm_hbone_conn;
struct gm_hbone_stream;

/* A header: (pointer, length) pairs. For headers passed in, a length of 0 means strlen(). */
struct gm_hbone_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

/* A validated CONNECT request (server side). Strings are NUL-terminated; everything lives as
 * long as the stream (gm_hbone_stream_request()). */
struct gm_hbone_request {
    const char *authority;                 /* "10.0.0.7:8080", "[fd00::7]:8080" */
    size_t authority_len;                  /* strlen(authority) */
    struct gm_ip ip;                       /* parsed authority address */
    uint16_t port;                         /* parsed authority port, 1..65535 */
    const struct gm_hbone_header *headers; /* regular (non-pseudo) headers, in wire order */
    size_t n_headers;
};

/* Per-stream counters, for access logs and metrics. */
struct gm_hbone_stream_stats {
    uint64_t bytes_in;  /* DATA payload received from the peer */
    uint64_t bytes_out; /* DATA payload sent to the peer */
    int status;         /* response status (0 before one) */
    uint32_t h2_error;  /* RST_STREAM error code sent or received (0 = NO_ERROR / none) */
};

/* Per-connection counters. */
struct gm_hbone_conn_stats {
    uint64_t bytes_in;       /* HTTP/2 bytes received (decrypted) */
    uint64_t bytes_out;      /* HTTP/2 bytes sent (before encryption) */
    uint32_t streams_total;  /* streams opened or accepted so far */
    uint32_t streams_active; /* streams not yet closed */
    size_t out_queued;       /* ciphertext queued to the socket, not yet written */
    size_t out_queued_max;   /* high-water mark of out_queued */
};

/* Connection callbacks; ctx is the pointer given at creation. Any may be NULL. */
struct gm_hbone_conn_cbs {
    /* TLS finished with ALPN h2 (both roles): check the peer (gm_hbone_conn_ssl()); return 0 to
     * go on or a negative errno to close the connection with GM_HBONE_REASON_REJECTED. */
    int (*on_handshake)(struct gm_hbone_conn *c, void *ctx);
    /* Server: a valid CONNECT arrived. The owner sets the stream's callbacks
     * (gm_hbone_stream_set_cbs()) and answers with gm_hbone_stream_respond(), now or later.
     * Without on_request every request is answered 503. */
    void (*on_request)(struct gm_hbone_conn *c, struct gm_hbone_stream *s,
                       const struct gm_hbone_request *req, void *ctx);
    /* The peer sent GOAWAY: no new stream may be opened; open ones may finish. */
    void (*on_goaway)(struct gm_hbone_conn *c, void *ctx);
    /* Last callback: every stream got its on_close() before; c is freed when this returns. */
    void (*on_close)(struct gm_hbone_conn *c, enum gm_hbone_reason reason, void *ctx);
};

/* Stream callbacks; ctx is the pointer given to gm_hbone_stream_open() / _set_cbs(). */
struct gm_hbone_stream_cbs {
    /* Client: the response HEADERS arrived. On 2xx the tunnel is open; otherwise the stream is
     * reset and on_close(GM_HBONE_REASON_REJECTED) follows. */
    void (*on_response)(struct gm_hbone_stream *s, int status, void *ctx);
    /* Tunnel bytes from the peer, valid during the call only. They keep counting against the
     * flow-control windows until gm_hbone_stream_consumed(). Server side, bytes that arrive
     * before the 2xx is sent are held and delivered after it. */
    void (*on_data)(struct gm_hbone_stream *s, const uint8_t *p, size_t n, void *ctx);
    /* The peer ended its direction (END_STREAM): shutdown(SHUT_WR) the socket. */
    void (*on_end)(struct gm_hbone_stream *s, void *ctx);
    /* The send queue drained below stream_queue_low after writable() had turned false. */
    void (*on_writable)(struct gm_hbone_stream *s, void *ctx);
    /* Last callback: s is freed when it returns. */
    void (*on_close)(struct gm_hbone_stream *s, enum gm_hbone_reason reason, void *ctx);
};

/* Fills *s with the defaults; server selects max_streams 200 (else 100). */
void gm_hbone_settings_init(struct gm_hbone_settings *s, bool server);

/* 0, or -EINVAL when a value is out of range (windows above 2^31-1, low > high, ...). */
int gm_hbone_settings_check(const struct gm_hbone_settings *s);

/* ---- connections --------------------------------------------------------------------------- */

/*
 * Creates a client or server connection over TLS on a TCP handle of its own. Takes ownership of
 * ssl (fresh from the caller's SSL_CTX, per-connection setup done: the client certificate and
 * the check of the expected peer identity; the SSL_CTX must offer or select ALPN "h2").
 * settings (copied) may be NULL for the defaults; cbs is borrowed and must outlive the
 * connection. Returns 0 and *ret, or -EINVAL (ssl is freed). Nothing happens until
 * gm_hbone_conn_start() or gm_hbone_conn_connect().
 */
int gm_hbone_conn_new_client(uv_loop_t *loop, SSL *ssl, const struct gm_hbone_settings *settings,
                             const struct gm_hbone_conn_cbs *cbs, void *ctx,
                             struct gm_hbone_conn **ret);
int gm_hbone_conn_new_server(uv_loop_t *loop, SSL *ssl, const struct gm_hbone_settings *settings,
                             const struct gm_hbone_conn_cbs *cbs, void *ctx,
                             struct gm_hbone_conn **ret);

/* The connection's TCP handle, for uv_accept() or uv_tcp_open() (a socket made in a pod's
 * netns, with SO_MARK) before start/connect. Never uv_close() it. NULL in memory mode. */
uv_tcp_t *gm_hbone_conn_tcp(struct gm_hbone_conn *c);

/* The socket is connected (accepted, or opened connected): start TLS and the handshake
 * deadline. 0 or a negative errno; on error the caller closes the connection. */
int gm_hbone_conn_start(struct gm_hbone_conn *c);

/* Connects to addr (the peer's :15008; copied), then starts. 0 or a negative errno. */
int gm_hbone_conn_connect(struct gm_hbone_conn *c, const struct sockaddr *addr);

/*
 * Whether gm_hbone_stream_open() may add a stream now: the connection is not draining or
 * closing, the peer did not send GOAWAY, and fewer than min(peer's MAX_CONCURRENT_STREAMS,
 * settings.max_streams) streams are open. True during the handshake (streams queue). For pools.
 */
bool gm_hbone_conn_available(struct gm_hbone_conn *c);

/* How long an open connection has received nothing (ms); 0 unless GM_HBONE_CONN_OPEN. A pooled
 * connection quiet for a while may be dead without knowing it (its peer vanished). */
uint64_t gm_hbone_conn_quiet_ms(const struct gm_hbone_conn *c);
/* Sends a PING now (an open or draining connection; otherwise nothing): a connection whose
 * peer is gone is found at once (the peer's kernel answers with a reset) instead of at the
 * next keepalive. */
void gm_hbone_conn_ping(struct gm_hbone_conn *c);
/* Drain: sends GOAWAY (last stream id processed), refuses new streams, lets open ones finish;
 * the connection closes (GM_HBONE_REASON_GOAWAY) after the last one. Idempotent. */
void gm_hbone_conn_goaway(struct gm_hbone_conn *c);

/*
 * Starts closing; idempotent, the first reason wins. With OK or IDLE a GOAWAY(NO_ERROR) is sent;
 * with OK, IDLE, GOAWAY, PROTOCOL, REJECTED or PEER_CLOSED what nghttp2 still has queued (such
 * as its own GOAWAY after a protocol error) and TLS close_notify go out before the socket
 * closes (bounded by a 2 s linger); any other reason aborts the socket. Open streams get
 * on_close() (with this reason; GM_HBONE_REASON_CONN_CLOSED for OK), then the connection's
 * on_close(), all from the loop after this returns. Draining has no deadline of its own: a
 * drain controller calls this when its deadline passes.
 */
void gm_hbone_conn_close(struct gm_hbone_conn *c, enum gm_hbone_reason reason);

SSL *gm_hbone_conn_ssl(struct gm_hbone_conn *c); /* NULL in memory mode */
void *gm_hbone_conn_ctx(const struct gm_hbone_conn *c);
bool gm_hbone_conn_is_server(const struct gm_hbone_conn *c);
enum gm_hbone_conn_state gm_hbone_conn_state(const struct gm_hbone_conn *c);
void gm_hbone_conn_stats(const struct gm_hbone_conn *c, struct gm_hbone_conn_stats *out);

/* ---- streams ------------------------------------------------------------------------------- */

/*
 * Client: opens a stream with CONNECT to authority ("ip:port", "[v6]:port"; copied) and extra
 * request headers hdrs (copied: lower-case names, no pseudo-headers or connection-specific
 * ones; e.g. forwarded, traceparent, baggage). cbs is borrowed, ctx is the owner's. Data
 * written before the 2xx response is sent right behind the CONNECT (the server holds it until it
 * answers). Returns 0 and *ret, -ENOTCONN (draining, GOAWAY received, closing), -EBUSY (no free
 * stream slot: see _available()), or -EINVAL (bad authority or header). No callback runs before it
 * returns.
 */
int gm_hbone_stream_open(struct gm_hbone_conn *c, const char *authority,
                         const struct gm_hbone_header *hdrs, size_t n_hdrs,
                         const struct gm_hbone_stream_cbs *cbs, void *ctx,
                         struct gm_hbone_stream **ret);

/* Server: sets the callbacks (borrowed) and ctx of a stream handed over by on_request(). */
void gm_hbone_stream_set_cbs(struct gm_hbone_stream *s, const struct gm_hbone_stream_cbs *cbs,
                             void *ctx);

/*
 * Server: answers the CONNECT. 2xx opens the tunnel (send it only after the upstream connect
 * succeeded); any other status (400, 401, 503) ends the stream: HEADERS with END_STREAM, then
 * RST_STREAM(NO_ERROR) if the client is still sending, and on_close(GM_HBONE_REASON_REJECTED)
 * follows. hdrs (copied) are extra response headers (baggage). Returns 0, -EINVAL (status
 * outside 200..599, bad header), -EALREADY (answered before), -ENOTCONN (stream or connection
 * closing). Held request data is delivered through on_data() from the loop, after this returns.
 */
int gm_hbone_stream_respond(struct gm_hbone_stream *s, int status,
                            const struct gm_hbone_header *hdrs, size_t n_hdrs);

/*
 * Queues n bytes of p (copied) for the peer. Returns 0; -ENOBUFS when the queue would pass
 * stream_queue_max (nothing queued); -EPIPE after gm_hbone_stream_shutdown() or a non-2xx
 * answer; -ENOTCONN when the stream is closing. Check gm_hbone_stream_writable() afterwards.
 */
int gm_hbone_stream_write(struct gm_hbone_stream *s, const void *p, size_t n);

/*
 * gm_hbone_stream_write() without the copy: a buffer at the end of the send queue for up to *len
 * bytes (a socket read goes straight into it), then gm_hbone_stream_commit() of the n bytes
 * filled. A commit of 0 gives the buffer back. reserve() returns NULL, and commit() the errors
 * of gm_hbone_stream_write(), when the stream takes no bytes.
 */
uint8_t *gm_hbone_stream_reserve(struct gm_hbone_stream *s, size_t *len);
int gm_hbone_stream_commit(struct gm_hbone_stream *s, size_t n);

/* False while the send queue is above stream_queue_high (until on_writable()). */
bool gm_hbone_stream_writable(const struct gm_hbone_stream *s);

/* Bytes queued by gm_hbone_stream_write() and not yet framed. */
size_t gm_hbone_stream_queued(const struct gm_hbone_stream *s);

/* Reports n bytes of on_data() written to the other socket, re-opening the flow-control
 * windows (WINDOW_UPDATE when half a window was consumed). Extra bytes are ignored. */
void gm_hbone_stream_consumed(struct gm_hbone_stream *s, size_t n);

/* Half-close: DATA with END_STREAM after the queued data. Idempotent. 0 or -ENOTCONN. */
int gm_hbone_stream_shutdown(struct gm_hbone_stream *s);

/* Abort: RST_STREAM with h2_error (an HTTP/2 error code, e.g. 8 = CANCEL); on_close() with
 * GM_HBONE_REASON_LOCAL_RESET follows. Idempotent. */
void gm_hbone_stream_reset(struct gm_hbone_stream *s, uint32_t h2_error);

struct gm_hbone_conn *gm_hbone_stream_conn(const struct gm_hbone_stream *s);
void *gm_hbone_stream_ctx(const struct gm_hbone_stream *s);
int32_t gm_hbone_stream_id(const struct gm_hbone_stream *s);
enum gm_hbone_stream_state gm_hbone_stream_state(const struct gm_hbone_stream *s);
/* Server: the request as validated; NULL on the client side. */
const struct gm_hbone_request *gm_hbone_stream_request(const struct gm_hbone_stream *s);
void gm_hbone_stream_stats(const struct gm_hbone_stream *s, struct gm_hbone_stream_stats *out);

/* ---- pure helpers -------------------------------------------------------------------------- */

/*
 * Validates a CONNECT request header list as received (pseudo-headers first). Checks: every
 * name is a valid lower-case field name and every value a valid field value; pseudo-headers
 * come first, once each, and are among :method :authority :scheme :path :protocol; :method is
 * CONNECT; there is no :scheme, :path or :protocol; :authority is "ip:port" (IPv6 in brackets,
 * decimal port 1..65535, nothing else); no connection-specific header (connection, keep-alive,
 * proxy-connection, transfer-encoding, upgrade, te). Fills *out (pointing into hdrs) and
 * returns 0, or -EINVAL: the request is answered 400.
 */
int gm_hbone_request_parse(const struct gm_hbone_header *hdrs, size_t n,
                           struct gm_hbone_request *out);

/* Formats addr as an authority ("ip:port", "[v6]:port") into buf; 0 or -ENOSPC/-EAFNOSUPPORT. */
int gm_hbone_authority_format(const struct sockaddr *addr, char *buf, size_t len);

/* First header named name (lower-case, NUL-terminated) in req, or NULL. */
const struct gm_hbone_header *gm_hbone_request_header(const struct gm_hbone_request *req,
                                                      const char *name);

/* "ok", "goaway", "ping_timeout", ...: a static string for access logs; "?" out of range. */
const char *gm_hbone_reason_name(enum gm_hbone_reason reason);

/* ---- memory transport (fuzzing and tests) -------------------------------------------------- */

/* Receives the bytes a memory-mode connection sends, valid during the call only. */
typedef void (*gm_hbone_sink_cb)(void *sink_ctx, const uint8_t *p, size_t n);

/*
 * Creates a connection whose HTTP/2 session runs over memory instead of TLS: output goes to
 * sink (from the loop, or inside gm_hbone_conn_feed()), input comes from gm_hbone_conn_feed().
 * There is no TLS handshake and on_handshake is not called. Timers run on loop as usual. Same
 * lifetime rules as the other connections.
 */
int gm_hbone_conn_new_mem(uv_loop_t *loop, bool server, const struct gm_hbone_settings *settings,
                          const struct gm_hbone_conn_cbs *cbs, void *ctx, gm_hbone_sink_cb sink,
                          void *sink_ctx, struct gm_hbone_conn **ret);

/*
 * Feeds n bytes from the peer (borrowed) to a memory-mode connection and sends what the
 * session then has to send. Callbacks run inside this call. Returns 0, or -ENOTCONN when the
 * connection is closing (possibly because of these bytes).
 */
int gm_hbone_conn_feed(struct gm_hbone_conn *c, const uint8_t *p, size_t n);

#endif
