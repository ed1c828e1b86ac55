/* The conformance echo server (a C stand-in for Istio's echo "app"): types shared by its
 * modules. echo_knobs.c parses the query knobs (pure), echo_req.c holds one request and renders
 * the reply (pure apart from the delay timer), echo_conn.c owns a connection's socket, TLS and
 * protocol sniffing, echo_h1.c and echo_h2.c speak HTTP/1.x (llhttp) and HTTP/2 (nghttp2), and
 * echo_server.c parses arguments and runs the loop. Single-threaded: one libuv loop. */
#ifndef GAMMAMESH_ECHO_H
#define GAMMAMESH_ECHO_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <llhttp.h>
#include <nghttp2/nghttp2.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <uv.h>

#include "gammamesh/util.h"

#define ECHO_MAX_HEADER_BYTES (64 * 1024) /* request line/pseudo-headers + header fields */
#define ECHO_MAX_HEADERS      1024        /* header fields per request */
#define ECHO_MAX_DELAY_MS     (300 * 1000)
#define ECHO_MAX_CODES        32 /* entries in ?codes= */
#define ECHO_MAX_RESP_HEADERS 32 /* entries in ?headers= */
#define ECHO_MAX_CONNS        4096
#define ECHO_MAX_COUNTERS     4096 /* distinct ?codes= / ?key= values remembered */
#define ECHO_READ_CHUNK       16384
#define ECHO_WQ_HIGH          (1024 * 1024) /* stop reading above this many queued bytes */
#define ECHO_WQ_LOW           (256 * 1024)  /* resume below this */

/* ---- knobs (echo_knobs.c): what the query string asks of the reply ---- */

struct echo_code {
    int code;        /* HTTP status, 200..599 */
    unsigned weight; /* how many consecutive requests get it, >= 1 */
};

struct echo_knobs {
    uint64_t delay_ms; /* ?delay=, rounded up to milliseconds */
    char *codes;       /* owned; raw decoded ?codes= value, NULL when absent */
    struct echo_code code_v[ECHO_MAX_CODES];
    size_t ncodes;
    long fail_first;                        /* ?fail_first=, -1 when absent */
    char *key;                              /* owned; ?key=, "" when absent */
    char *hdr_name[ECHO_MAX_RESP_HEADERS];  /* owned; ?headers= names */
    char *hdr_value[ECHO_MAX_RESP_HEADERS]; /* owned; ?headers= values */
    size_t nhdrs;
};

/* Counters that live as long as the server process, keyed by a string. */
struct echo_counter {
    char *key; /* owned */
    uint64_t n;
};

struct echo_counters {
    struct echo_counter *v;
    size_t n, cap;
};

void echo_knobs_init(struct echo_knobs *k);
void echo_knobs_done(struct echo_knobs *k);
/* Parse a query string (without '?'; need not be NUL-terminated). Unknown parameters are
 * ignored. Returns 0, or -EINVAL with a reason in err (a NUL-terminated message). */
int echo_knobs_parse(struct echo_knobs *k, const char *query, size_t len, char *err, size_t errlen);
/* Go-style duration ("500ms", "1.5s", "1m30s") to milliseconds, rounded up. 0 or -EINVAL. */
int echo_knobs_duration(const char *s, uint64_t *ms);
/* The status for this request: fail_first, then the codes cycle, else 200. Advances counters. */
int echo_knobs_status(const struct echo_knobs *k, struct echo_counters *codes,
                      struct echo_counters *fails);
/* Return the counter's value for key, then increment it. */
uint64_t echo_counters_next(struct echo_counters *t, const char *key);
void echo_counters_done(struct echo_counters *t);

/* ---- one request (echo_req.c) ---- */

struct echo_conn;

struct echo_hdr {
    uint32_t name, name_len;   /* offsets into the request's arena */
    uint32_t value, value_len; /* offsets into the request's arena */
};

/* Where the request's text fields live in its arena. */
struct echo_span {
    uint32_t off, len;
};

enum echo_req_field {
    ECHO_FIELD_NONE = 0, /* between fields */
    ECHO_FIELD_URL,      /* receiving the request target */
    ECHO_FIELD_NAME,     /* receiving a header name */
    ECHO_FIELD_VALUE,    /* receiving a header value */
    ECHO_FIELD__MAX
};

struct echo_req {
    struct echo_conn *conn; /* owner; outlives the request */
    struct echo_req *next;  /* HTTP/2: the connection's list of open streams */
    int32_t stream_id;      /* HTTP/2 stream id; 0 for HTTP/1.x */
    uv_timer_t timer;       /* ?delay=; its close callback frees the request */
    struct gm_buf arena;    /* capped at ECHO_MAX_HEADER_BYTES */
    struct echo_hdr *hdrs;
    size_t nhdrs, hdrs_cap;
    struct echo_span method, url, authority;
    enum echo_req_field field; /* HTTP/1.x: which field the parser is in */
    int major, minor;          /* HTTP version */
    bool has_body;             /* framing announced a body (or DATA arrived) */
    bool too_large;            /* a cap was hit while receiving */
    bool keep_alive;           /* HTTP/1.x: the connection may carry another request */
    bool closing;              /* echo_req_close() was called */
    bool responded;            /* the reply was handed to the protocol */
    EVP_MD_CTX *sha;           /* body hash; NULL until the first body byte */
    uint64_t body_len;
    char body_sha[2 * 32 + 1]; /* hex SHA-256 of the body, set by echo_req_done() */
    struct echo_knobs knobs;
    int status;
    struct gm_buf body; /* the rendered reply body */
    size_t body_off;    /* HTTP/2: bytes of body handed to nghttp2 */
};

/* Everything about the server a reply needs; owned by the server. */
struct echo_info {
    const char *version;       /* ServiceVersion */
    const char *cluster;       /* Cluster */
    const char *istio_version; /* IstioVersion */
    const char *hostname;      /* Hostname */
};

/* A new request on c (stream_id 0 for HTTP/1.x). Never NULL. */
struct echo_req *echo_req_new(struct echo_conn *c, int32_t stream_id);
/* Start asynchronous teardown: the delay timer is closed and the request freed from its close
 * callback. Idempotent; the caller must already have unlinked it from the connection. */
void echo_req_close(struct echo_req *r);
/* Append bytes to the current field (field selects URL, header name or value); a new header
 * starts whenever the field switches to NAME. 0 or -ENOBUFS (too_large is set). */
int echo_req_append(struct echo_req *r, enum echo_req_field field, const char *p, size_t n);
/* Store a whole span (method, authority, ...). 0 or -ENOBUFS. */
int echo_req_set(struct echo_req *r, struct echo_span *span, const char *p, size_t n);
/* Add one header (name, value); 0 or -ENOBUFS. */
int echo_req_header(struct echo_req *r, const char *name, size_t nlen, const char *value,
                    size_t vlen);
/* Feed body bytes to the hash. */
void echo_req_body(struct echo_req *r, const char *p, size_t n);
/* The request is complete: apply the knobs, then reply now or after ?delay=. The reply is
 * handed to the connection's protocol (echo_h1_emit / echo_h2_emit) possibly before this
 * returns. */
void echo_req_done(struct echo_req *r);
/* Render the reply body for r into out (pure; used by tests). 0 or -ENOBUFS. */
int echo_req_render(const struct echo_req *r, const struct echo_info *info, int port,
                    const char *peer_ip, const char *alpn, struct gm_buf *out);
/* A span's bytes (not NUL-terminated). */
static inline const char *echo_req_str(const struct echo_req *r, struct echo_span s)
{
    return r->arena.data ? r->arena.data + s.off : "";
}

/* ---- connections (echo_conn.c) ---- */

enum echo_port_kind {
    ECHO_PORT_HTTP = 0, /* --port: HTTP/1.1 plus h2c by prior knowledge */
    ECHO_PORT_GRPC,     /* --grpc: same handler (h2c) */
    ECHO_PORT_TLS,      /* --tls: HTTP over TLS when a certificate is usable */
    ECHO_PORT_TCP,      /* --tcp: raw echo */
    ECHO_PORT__MAX
};

enum echo_mode {
    ECHO_MODE_SNIFF = 0, /* telling HTTP/1.x from the HTTP/2 preface */
    ECHO_MODE_H1,        /* HTTP/1.x through llhttp */
    ECHO_MODE_H2,        /* HTTP/2 through nghttp2 */
    ECHO_MODE_TCP,       /* raw echo */
    ECHO_MODE_LINGER,    /* write side shut down; discarding input until EOF or timeout */
    ECHO_MODE__MAX
};

struct echo_server;

struct echo_listener {
    uv_tcp_t tcp;
    struct echo_server *srv;
    struct echo_listener *next;
    int port;
    enum echo_port_kind kind;
    bool tls; /* kind is TLS and the server has a certificate */
};

struct echo_server {
    uv_loop_t *loop;
    struct echo_info info;
    SSL_CTX *ssl_ctx; /* NULL without a usable certificate */
    struct echo_listener *listeners;
    struct echo_conn *conns; /* every open connection */
    size_t nconns;
    struct echo_counters codes; /* ?codes= cycles */
    struct echo_counters fails; /* ?fail_first= counts per ?key= */
    uv_signal_t sigterm, sigint;
    bool stopping;
};

struct echo_conn {
    uv_tcp_t tcp;
    uv_timer_t idle;
    uv_shutdown_t shutdown;
    struct echo_server *srv;
    struct echo_conn *prev, *next;
    enum echo_mode mode;
    int port;                           /* the local port it arrived on */
    char peer_ip[INET6_ADDRSTRLEN + 1]; /* printable peer address */
    int peer_port;
    int handles;    /* open libuv handles, requests' timers included */
    bool closing;   /* echo_conn_close() was called */
    bool finishing; /* echo_conn_finish() was called */
    bool reading;   /* uv_read_start is in effect */
    bool eof;       /* the peer shut down its write side */
    bool pumping;   /* inside pump(); stops re-entry */
    bool wq_full;   /* paused for write back-pressure */
    /* TLS (NULL on plain connections) */
    SSL *ssl;
    BIO *rbio, *wbio; /* owned by ssl */
    char alpn[32];
    /* input not yet consumed by the protocol: points into rbuf or pbuf */
    const char *in;
    size_t in_len, in_off;
    char sniff[24];
    size_t sniff_len;
    /* HTTP/1.x */
    llhttp_t parser;
    struct echo_req *req; /* the request being received or answered */
    bool h1_busy;         /* a reply is outstanding; the parser is paused */
    bool h1_close;        /* close once the outstanding reply is written */
    /* HTTP/2 */
    nghttp2_session *h2;
    struct echo_req *streams;   /* open streams' requests */
    bool in_h2_recv;            /* inside nghttp2_session_mem_recv() */
    char rbuf[ECHO_READ_CHUNK]; /* socket reads */
    char pbuf[ECHO_READ_CHUNK]; /* TLS plaintext */
};

/* Accept one connection from l; errors are logged and the listener keeps going. */
void echo_conn_accept(struct echo_listener *l);
/* Queue bytes for the peer (encrypting on TLS). With notify, the protocol's "sent" hook
 * (echo_h1_sent) runs once they are written. 0 or a negative errno (the connection is then
 * closing). */
int echo_conn_send(struct echo_conn *c, const void *p, size_t n, bool notify);
/* Graceful close: flush, shut down the write side, linger for the peer's EOF, close. */
void echo_conn_finish(struct echo_conn *c);
/* Immediate close of every handle; frees on the last close callback. Idempotent. */
void echo_conn_close(struct echo_conn *c, const char *reason);
/* The protocol can take input again: process what is buffered, then read more. */
void echo_conn_resume(struct echo_conn *c);
/* A request's timer handle closed (called by echo_req.c). */
void echo_conn_handle_closed(struct echo_conn *c);

/* ---- HTTP/1.x (echo_h1.c) ---- */

void echo_h1_init(struct echo_conn *c);
/* Parse n bytes; *used is how many were consumed. Returns 0 (all consumed, or paused with
 * h1_busy set) or a negative errno after answering 400/431 and arranging the close. */
int echo_h1_feed(struct echo_conn *c, const char *p, size_t n, size_t *used);
/* The peer sent EOF while no reply is outstanding. */
void echo_h1_eof(struct echo_conn *c);
void echo_h1_emit(struct echo_req *r);
void echo_h1_sent(struct echo_conn *c);
void echo_h1_done(struct echo_conn *c);

/* ---- HTTP/2 (echo_h2.c) ---- */

/* Start a server session; 0 or -ENOMEM. */
int echo_h2_init(struct echo_conn *c);
/* Feed bytes; 0, or a negative errno after which the caller closes. */
int echo_h2_feed(struct echo_conn *c, const char *p, size_t n);
/* Write whatever nghttp2 has queued; finishes the connection once the session is over. */
void echo_h2_flush(struct echo_conn *c);
void echo_h2_eof(struct echo_conn *c);
void echo_h2_emit(struct echo_req *r);
/* Close every stream's request and delete the session (at connection close). */
void echo_h2_done(struct echo_conn *c);

#endif
