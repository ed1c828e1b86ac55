/*
 * tls_stream.h: TLS over a libuv TCP handle, with OpenSSL working on memory BIOs.
 *
 * OpenSSL never touches the socket: ciphertext read by libuv (in 16 KiB chunks) is written into
 * the SSL's read BIO, and ciphertext the SSL produces is taken from its write BIO and handed to
 * uv_write(). That keeps TLS on the event loop, and lets the owner see every byte that is queued.
 *
 *     struct gm_tls_stream *ts;
 *     gm_tls_stream_new(loop, ssl, false, &settings, &cbs, ctx, &ts);  // ssl: from caller
 *     uv_accept(listener, (uv_stream_t *)gm_tls_stream_tcp(ts));      // or uv_tcp_open()
 *     gm_tls_stream_start(ts);                                        // or _connect(ts, addr)
 *     ... cbs.on_handshake(ts, 0), cbs.on_read(ts, p, n), gm_tls_stream_write(ts, p, n) ...
 *     gm_tls_stream_close(ts, GM_TLS_REASON_OK);                      // close_notify, FIN
 *     ... cbs.on_close(ts, reason): the last callback; ts is freed when it returns.
 *
 * Back-pressure: gm_tls_stream_write() encrypts at once and queues the ciphertext. Past the high
 * watermark gm_tls_stream_writable() turns false, and the owner should stop producing (for
 * example stop reading the other side); on_writable fires once the queue drains below the low
 * watermark. A write that would take the queue past the hard cap fails with -ENOBUFS.
 *
 * Lifetime: the stream is owned by its creator until it calls gm_tls_stream_close() or the
 * stream closes itself (I/O error, peer close, handshake failure or deadline); either way
 * on_close() fires exactly once, from a libuv close callback (never from inside another call
 * into this module), and the stream is freed right after it returns. Callbacks never free the
 * stream; a close requested inside one is carried out after it returns.
 *
 * Threads: a stream lives on the loop it was created on; nothing here is thread-safe.
 */
#ifndef GAMMAMESH_TLS_STREAM_H
#define GAMMAMESH_TLS_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>
#include <uv.h>

/* Size of one read chunk (one maximal TLS record of plaintext). */
#define GM_TLS_CHUNK 16384

/* Why a stream closed: the first reason recorded wins. */
enum gm_tls_reason {
    GM_TLS_REASON_OK = 0,            /* the owner closed it (graceful: close_notify, then FIN) */
    GM_TLS_REASON_ABORT,             /* the owner aborted it (no close_notify, pending data lost) */
    GM_TLS_REASON_PEER_CLOSED,       /* the peer sent close_notify */
    GM_TLS_REASON_EOF,               /* the peer closed TCP without close_notify */
    GM_TLS_REASON_CONNECT_FAILED,    /* TCP connect failed */
    GM_TLS_REASON_HANDSHAKE_FAILED,  /* TLS handshake failed (alert, bad certificate, ...) */
    GM_TLS_REASON_HANDSHAKE_TIMEOUT, /* connect + handshake did not finish before the deadline */
    GM_TLS_REASON_PROTOCOL,          /* TLS error after the handshake (bad record, ...) */
    GM_TLS_REASON_IO,                /* socket read or write error */
    GM_TLS_REASON_OVERFLOW,          /* the write queue would have passed its hard cap */
    GM_TLS_REASON__MAX
};

/* Lifecycle of a stream; transitions go through one set_state() that checks them. */
enum gm_tls_state {
    GM_TLS_STATE_NEW = 0,    /* created; TCP handle has no connected socket yet */
    GM_TLS_STATE_CONNECTING, /* uv_tcp_connect() in flight */
    GM_TLS_STATE_HANDSHAKE,  /* TLS handshake in progress */
    GM_TLS_STATE_OPEN,       /* handshake done: application data flows */
    GM_TLS_STATE_SHUTDOWN,   /* close_notify queued; waiting for queued writes and FIN */
    GM_TLS_STATE_CLOSING,    /* handles closing; on_close() follows */
    GM_TLS_STATE__MAX
};

/* Limits; gm_tls_settings_init() fills the defaults noted below. */
struct gm_tls_settings {
    uint32_t handshake_timeout_ms; /* connect + handshake deadline; 0 = none (10000) */
    uint32_t linger_ms;            /* graceful close: wait this long for queued writes (2000) */
    size_t write_high;             /* queued ciphertext above which writable() is false (256 KiB) */
    size_t write_low;              /* on_writable fires when the queue drains below this (64 KiB) */
    size_t write_max;              /* hard cap on queued ciphertext: -ENOBUFS past it (4 MiB) */
};

struct gm_tls_stream;

/* Callbacks; ctx is the pointer given to gm_tls_stream_new(). Any may be NULL. */
struct gm_tls_stream_cbs {
    /* The handshake finished (status 0); peer checks go here (gm_tls_stream_ssl()). A failed
     * handshake is reported through on_close() instead. */
    void (*on_handshake)(struct gm_tls_stream *ts, void *ctx);
    /* Decrypted bytes, at most GM_TLS_CHUNK at a time; p is valid during the call only. */
    void (*on_read)(struct gm_tls_stream *ts, const uint8_t *p, size_t n, void *ctx);
    /* The write queue drained below write_low after writable() had turned false. */
    void (*on_writable)(struct gm_tls_stream *ts, void *ctx);
    /* Last callback: the stream is freed when it returns. */
    void (*on_close)(struct gm_tls_stream *ts, enum gm_tls_reason reason, void *ctx);
};

/* Byte counters (ciphertext on the wire). */
struct gm_tls_stats {
    uint64_t bytes_in;  /* read from the socket */
    uint64_t bytes_out; /* handed to the socket */
    size_t queued_max;  /* high-water mark of the write queue */
};

/* Fills *s with the defaults. */
void gm_tls_settings_init(struct gm_tls_settings *s);

/*
 * Creates a stream on loop with an initialised, unconnected TCP handle. Takes ownership of ssl
 * (a fresh SSL from the caller's SSL_CTX, with any per-connection setup already done: client
 * certificate, verify callback, expected peer). server selects the accept or connect side.
 * settings (copied) may be NULL for the defaults; cbs is borrowed and must outlive the stream.
 * Returns 0 and *ret, or -EINVAL (bad settings; ssl is freed). No callback runs before the
 * socket is started with gm_tls_stream_start() or gm_tls_stream_connect().
 */
int gm_tls_stream_new(uv_loop_t *loop, SSL *ssl, bool server,
                      const struct gm_tls_settings *settings, const struct gm_tls_stream_cbs *cbs,
                      void *ctx, struct gm_tls_stream **ret);

/* The embedded TCP handle, for uv_accept(), uv_tcp_open() or socket options before start. It
 * belongs to the stream: never uv_close() it. */
uv_tcp_t *gm_tls_stream_tcp(struct gm_tls_stream *ts);

/*
 * The TCP handle holds a connected socket: start the handshake and the deadline. Returns 0 or a
 * negative errno (-EINVAL in the wrong state; libuv errors pass through). On error the stream is
 * not closed: the caller closes it. Callbacks run later, never before this returns.
 */
int gm_tls_stream_start(struct gm_tls_stream *ts);

/*
 * Connects the TCP handle to addr (copied), then starts the handshake. The deadline covers the
 * connect. Set socket options (SO_MARK, a socket made in another netns via uv_tcp_open()) before
 * calling. Returns 0 or a negative errno as gm_tls_stream_start().
 */
int gm_tls_stream_connect(struct gm_tls_stream *ts, const struct sockaddr *addr);

/*
 * Encrypts n bytes of p (borrowed for the call) and queues them. Returns 0, -ENOTCONN before the
 * handshake finished or after close, -ENOBUFS when the queue would pass write_max (nothing is
 * queued; the caller should close), -EPROTO on a TLS error.
 */
int gm_tls_stream_write(struct gm_tls_stream *ts, const void *p, size_t n);

/*
 * As gm_tls_stream_write(), but the records wait (up to 64 KiB of them) for more, so that what a
 * caller writes in pieces leaves in one write(2); gm_tls_stream_flush() sends them.
 */
int gm_tls_stream_write_more(struct gm_tls_stream *ts, const void *p, size_t n);
int gm_tls_stream_flush(struct gm_tls_stream *ts);

/* False while queued ciphertext is above write_high (until on_writable). */
bool gm_tls_stream_writable(const struct gm_tls_stream *ts);

/* Ciphertext bytes queued to the socket and not yet written. */
size_t gm_tls_stream_queued(const struct gm_tls_stream *ts);

/* Stops and restarts delivery through on_read (back-pressure from the owner). Decrypted data
 * already buffered is delivered after gm_tls_stream_read_start() returns, from the loop. */
void gm_tls_stream_read_stop(struct gm_tls_stream *ts);
void gm_tls_stream_read_start(struct gm_tls_stream *ts);

/*
 * Starts closing; idempotent, the first reason is kept. GM_TLS_REASON_OK (and PEER_CLOSED, the
 * answer to the peer's close_notify) closes gracefully once the handshake is done: queued data,
 * close_notify and FIN go out first, bounded by linger_ms. Any other reason closes at once and
 * drops queued data. on_close() follows from the loop, never from inside this call.
 */
void gm_tls_stream_close(struct gm_tls_stream *ts, enum gm_tls_reason reason);

SSL *gm_tls_stream_ssl(struct gm_tls_stream *ts);
enum gm_tls_state gm_tls_stream_state(const struct gm_tls_stream *ts);
void gm_tls_stream_stats(const struct gm_tls_stream *ts, struct gm_tls_stats *out);

/* "ok", "abort", "peer_closed", ...: a static string for logs; "?" when out of range. */
const char *gm_tls_reason_name(enum gm_tls_reason reason);

#endif
