/*
 * HBONE transport tests: a real HBONE server and client on 127.0.0.1 over mutual TLS (the
 * local signer's certificates), one libuv loop, a TCP echo "upstream" behind the server and a
 * relay in between, the way ztunnel's inbound side will use the API.
 *
 * Environment: HBONE_TEST_BIG_MIB sets the size of the flow-control transfer (default 64);
 * HBONE_TEST_LOG sets a log level spec ("debug", "hbone=trace").
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <nghttp2/nghttp2.h>

#include "gammamesh/hbone.h"
#include "gammamesh/identity.h"
#include "gammamesh/log.h"
#include "gammamesh/tls.h"
#include "gammamesh/tls_stream.h"
#include "test.h"

#define TD        "cluster.local"
#define SERVER_ID "spiffe://cluster.local/ns/default/sa/server"
#define CLIENT_ID "spiffe://cluster.local/ns/default/sa/client"

#define REFUSE_PORT 1 /* the server's owner refuses by policy: 503 */
#define SINK_PORT   9 /* the server's owner is itself a slow reader */

static uv_loop_t loop;
static uv_timer_t tick; /* keeps RUN_UNTIL waking up */
static SSL_CTX *srv_ctx, *cli_ctx;
static struct gm_cert *srv_cert, *cli_cert;

/* Runs the loop until cond holds or ms pass. */
#define RUN_UNTIL(cond, ms)                                                                        \
    do {                                                                                           \
        uint64_t until_ = uv_now(&loop) + (ms);                                                    \
        while (!(cond) && uv_now(&loop) < until_)                                                  \
            uv_run(&loop, UV_RUN_ONCE);                                                            \
    } while (0)

static void on_tick(uv_timer_t *t)
{
}

static void on_handle_free(uv_handle_t *h)
{
    free(h);
}

static void on_handle_noop(uv_handle_t *h)
{
}

/* Test data: a pattern that differs per stream and per offset. */
static uint8_t pattern(uint64_t i, unsigned seed)
{
    return (uint8_t)((i * 131u + (i >> 13) + seed * 29u) & 0xff);
}

static int listen_on(uv_tcp_t *srv, uv_connection_cb cb)
{
    struct sockaddr_in a;
    struct sockaddr_storage got;
    int len = sizeof(got);

    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_init(&loop, srv);
    if (uv_tcp_bind(srv, (struct sockaddr *)&a, 0) < 0 || uv_listen((uv_stream_t *)srv, 64, cb) < 0)
        return -1;
    uv_tcp_getsockname(srv, (struct sockaddr *)&got, &len);
    return ntohs(((struct sockaddr_in *)&got)->sin_port);
}

/* ---- TLS material ------------------------------------------------------------------------- */

static int tls_setup(void)
{
    struct gm_signer *signer;
    size_t len;

    if (gm_signer_new_self_signed(TD, &signer) < 0)
        return -1;
    char *roots = gm_identity_roots_pem(gm_signer_provider(signer), &len);
    srv_ctx = gm_tls_ctx_new(GM_TLS_SERVER);
    cli_ctx = gm_tls_ctx_new(GM_TLS_CLIENT);
    int rc = gm_tls_ctx_set_roots(srv_ctx, roots, len) | gm_tls_ctx_set_roots(cli_ctx, roots, len) |
             gm_signer_issue(signer, SERVER_ID, 0, &srv_cert) |
             gm_signer_issue(signer, CLIENT_ID, 0, &cli_cert);
    free(roots);
    gm_signer_free(signer);
    return rc;
}

static SSL *server_ssl(void)
{
    SSL *ssl = SSL_new(srv_ctx);

    gm_tls_set_identity(ssl, srv_cert);
    gm_tls_set_peer_policy(ssl, NULL, 0, TD);
    return ssl;
}

static SSL *client_ssl(const char *expected)
{
    SSL *ssl = SSL_new(cli_ctx);

    gm_tls_set_identity(ssl, cli_cert);
    gm_tls_set_peer_policy(ssl, &expected, 1, NULL);
    return ssl;
}

/* ---- upstream servers: echo and greeter ----------------------------------------------------- */

enum up_kind {
    UP_ECHO = 1, /* echoes; at EOF writes "<EOF>" and shuts down */
    UP_GREETER,  /* writes "hello", shuts down at once, counts what it reads until EOF */
    UP_SILENT,   /* never writes; counts what it reads until EOF, then closes */
};

struct upstream {
    uv_tcp_t srv;
    enum up_kind kind;
    int port;
    size_t greeter_received;
    int greeter_eofs;
};

struct up_conn {
    uv_tcp_t tcp;
    struct upstream *up;
    uv_shutdown_t sreq;
    char buf[65536];
};

struct wreq {
    uv_write_t req;
    char data[];
};

static void on_wreq_done(uv_write_t *req, int status)
{
    free(container_of(req, struct wreq, req));
}

static void tcp_send(uv_tcp_t *tcp, const void *p, size_t n)
{
    struct wreq *w = malloc(sizeof(*w) + n);

    memcpy(w->data, p, n);
    uv_buf_t b = uv_buf_init(w->data, (unsigned)n);
    if (uv_write(&w->req, (uv_stream_t *)tcp, &b, 1, on_wreq_done) < 0)
        free(w);
}

static void up_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct up_conn *u = container_of((uv_tcp_t *)h, struct up_conn, tcp);

    *buf = uv_buf_init(u->buf, sizeof(u->buf));
}

static void on_up_shutdown(uv_shutdown_t *req, int status)
{
    struct up_conn *u = container_of(req, struct up_conn, sreq);

    if (u->up->kind == UP_ECHO && !uv_is_closing((uv_handle_t *)&u->tcp))
        uv_close((uv_handle_t *)&u->tcp, on_handle_free);
}

static void on_up_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct up_conn *u = container_of((uv_tcp_t *)s, struct up_conn, tcp);

    if (nread > 0) {
        if (u->up->kind == UP_ECHO)
            tcp_send(&u->tcp, buf->base, (size_t)nread);
        else
            u->up->greeter_received += (size_t)nread;
        return;
    }
    if (nread == 0)
        return;
    uv_read_stop(s);
    if (nread == UV_EOF && u->up->kind == UP_ECHO) {
        tcp_send(&u->tcp, "<EOF>", 5);
        uv_shutdown(&u->sreq, s, on_up_shutdown);
        return;
    }
    if (nread == UV_EOF)
        u->up->greeter_eofs++;
    uv_close((uv_handle_t *)&u->tcp, on_handle_free);
}

static void on_up_connection(uv_stream_t *srv, int status)
{
    struct upstream *up = container_of((uv_tcp_t *)srv, struct upstream, srv);
    struct up_conn *u = calloc(1, sizeof(*u));

    u->up = up;
    uv_tcp_init(&loop, &u->tcp);
    uv_accept(srv, (uv_stream_t *)&u->tcp);
    uv_read_start((uv_stream_t *)&u->tcp, up_alloc, on_up_read);
    if (up->kind == UP_GREETER) {
        tcp_send(&u->tcp, "hello", 5);
        uv_shutdown(&u->sreq, (uv_stream_t *)&u->tcp, on_up_shutdown);
    }
}

static struct upstream echo_up = {.kind = UP_ECHO}, greeter_up = {.kind = UP_GREETER},
                       silent_up = {.kind = UP_SILENT};

/* ---- server side: the relay between an HBONE stream and an upstream socket ------------------ */

struct srv_state {
    int accepted;
    int handshakes;
    int requests;
    int closes;
    bool reject_handshake;
    enum gm_hbone_reason reason;
    struct gm_hbone_conn *last;
    char forwarded[128];
    char traceparent[128];
};

static struct srv_state srv;
static struct gm_hbone_settings srv_settings;

struct relay {
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_shutdown_t sreq;
    struct gm_hbone_stream *s; /* NULL once the stream closed */
    bool tcp_closing;
    char buf[16384];
};

struct relay_write {
    uv_write_t req;
    struct relay *r;
    size_t n;
    char data[];
};

static void relay_close_tcp(struct relay *r)
{
    if (!r->tcp_closing) {
        r->tcp_closing = true;
        uv_close((uv_handle_t *)&r->tcp, on_handle_free);
    }
}

static void relay_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct relay *r = container_of((uv_tcp_t *)h, struct relay, tcp);

    *buf = uv_buf_init(r->buf, sizeof(r->buf));
}

static void on_relay_tcp_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct relay *r = container_of((uv_tcp_t *)st, struct relay, tcp);

    if (r->s == NULL || nread == 0)
        return;
    if (nread < 0) {
        uv_read_stop(st);
        if (nread == UV_EOF)
            gm_hbone_stream_shutdown(r->s);
        else
            gm_hbone_stream_reset(r->s, NGHTTP2_CANCEL);
        return;
    }
    if (gm_hbone_stream_write(r->s, buf->base, (size_t)nread) < 0)
        gm_hbone_stream_reset(r->s, NGHTTP2_INTERNAL_ERROR);
    else if (!gm_hbone_stream_writable(r->s))
        uv_read_stop(st); /* back-pressure: on_writable resumes */
}

static void on_relay_written(uv_write_t *req, int status)
{
    struct relay_write *w = container_of(req, struct relay_write, req);

    if (w->r->s != NULL && status == 0)
        gm_hbone_stream_consumed(w->r->s, w->n); /* only now re-open the window */
    free(w);
}

static void relay_on_data(struct gm_hbone_stream *s, const uint8_t *p, size_t n, void *ctx)
{
    struct relay *r = ctx;
    struct relay_write *w = malloc(sizeof(*w) + n);

    w->r = r;
    w->n = n;
    memcpy(w->data, p, n);
    uv_buf_t b = uv_buf_init(w->data, (unsigned)n);
    if (uv_write(&w->req, (uv_stream_t *)&r->tcp, &b, 1, on_relay_written) < 0)
        free(w);
}

static void on_relay_tcp_shutdown(uv_shutdown_t *req, int status)
{
}

static void relay_on_end(struct gm_hbone_stream *s, void *ctx)
{
    struct relay *r = ctx;

    uv_shutdown(&r->sreq, (uv_stream_t *)&r->tcp, on_relay_tcp_shutdown);
}

static void relay_on_writable(struct gm_hbone_stream *s, void *ctx)
{
    struct relay *r = ctx;

    uv_read_start((uv_stream_t *)&r->tcp, relay_alloc, on_relay_tcp_read);
}

static void relay_on_close(struct gm_hbone_stream *s, enum gm_hbone_reason reason, void *ctx)
{
    struct relay *r = ctx;

    r->s = NULL;
    relay_close_tcp(r);
}

static const struct gm_hbone_stream_cbs relay_cbs = {
    .on_data = relay_on_data,
    .on_end = relay_on_end,
    .on_writable = relay_on_writable,
    .on_close = relay_on_close,
};

static void on_relay_connected(uv_connect_t *req, int status)
{
    struct relay *r = container_of(req, struct relay, creq);

    if (r->s == NULL)
        return; /* the stream went away meanwhile; the handle is closing */
    if (status < 0) {
        gm_hbone_stream_respond(r->s, 503, NULL, 0); /* upstream connect failed */
        return;
    }
    static const struct gm_hbone_header baggage = {"baggage", 0, "k8s.namespace.name=default", 0};
    gm_hbone_stream_respond(r->s, 200, &baggage, 1);
    uv_read_start((uv_stream_t *)&r->tcp, relay_alloc, on_relay_tcp_read);
}

static void relay_start(struct gm_hbone_stream *s, const struct gm_hbone_request *req)
{
    struct relay *r = calloc(1, sizeof(*r));
    struct sockaddr_in a;

    r->s = s;
    gm_hbone_stream_set_cbs(s, &relay_cbs, r);
    uv_tcp_init(&loop, &r->tcp);
    uv_ip4_addr("127.0.0.1", req->port, &a);
    if (uv_tcp_connect(&r->creq, &r->tcp, (struct sockaddr *)&a, on_relay_connected) < 0)
        gm_hbone_stream_respond(s, 503, NULL, 0);
}

/* ---- server side: the slow in-process reader of SINK_PORT ---------------------------------- */

struct sink {
    struct gm_hbone_stream *s;
    uv_timer_t drain;
    size_t per_tick;   /* bytes consumed per millisecond tick */
    size_t gate;       /* consume nothing until this much is unconsumed (or the end) */
    uint64_t received; /* bytes seen */
    size_t unconsumed; /* seen but not yet consumed */
    size_t max_unconsumed;
    uint64_t bad_bytes; /* pattern mismatches */
    bool ended;
    bool closed;
    enum gm_hbone_reason reason;
};

static struct sink sink;

static void sink_on_data(struct gm_hbone_stream *s, const uint8_t *p, size_t n, void *ctx)
{
    for (size_t i = 0; i < n; i++)
        sink.bad_bytes += p[i] != pattern(sink.received + i, 7);
    sink.received += n;
    sink.unconsumed += n;
    if (sink.unconsumed > sink.max_unconsumed)
        sink.max_unconsumed = sink.unconsumed;
}

static void on_sink_drain(uv_timer_t *t)
{
    size_t k = sink.unconsumed < sink.per_tick ? sink.unconsumed : sink.per_tick;

    if (sink.s == NULL || k == 0 || (sink.unconsumed < sink.gate && !sink.ended))
        return;
    sink.gate = 0;
    sink.unconsumed -= k;
    gm_hbone_stream_consumed(sink.s, k);
}

static void sink_on_end(struct gm_hbone_stream *s, void *ctx)
{
    sink.ended = true;
    gm_hbone_stream_shutdown(s);
}

static void sink_on_close(struct gm_hbone_stream *s, enum gm_hbone_reason reason, void *ctx)
{
    sink.s = NULL;
    sink.closed = true;
    sink.reason = reason;
    uv_timer_stop(&sink.drain);
}

static const struct gm_hbone_stream_cbs sink_cbs = {
    .on_data = sink_on_data,
    .on_end = sink_on_end,
    .on_close = sink_on_close,
};

/* ---- server side: connections --------------------------------------------------------------- */

static void copy_header(char *dst, size_t len, const struct gm_hbone_request *req, const char *name)
{
    const struct gm_hbone_header *h = gm_hbone_request_header(req, name);

    snprintf(dst, len, "%.*s", h ? (int)h->value_len : 0, h ? h->value : "");
}

static void srv_on_request(struct gm_hbone_conn *c, struct gm_hbone_stream *s,
                           const struct gm_hbone_request *req, void *ctx)
{
    srv.requests++;
    copy_header(srv.forwarded, sizeof(srv.forwarded), req, "forwarded");
    copy_header(srv.traceparent, sizeof(srv.traceparent), req, "traceparent");
    if (req->port == REFUSE_PORT) {
        gm_hbone_stream_respond(s, 503, NULL, 0); /* "no such workload" */
    } else if (req->port == SINK_PORT) {
        sink.s = s;
        gm_hbone_stream_set_cbs(s, &sink_cbs, NULL);
        gm_hbone_stream_respond(s, 200, NULL, 0);
        uv_timer_start(&sink.drain, on_sink_drain, 1, 1);
    } else {
        relay_start(s, req);
    }
}

static bool small_sockbufs; /* flow test: make the TLS output queue fill up */

static void shrink_sockbufs(struct gm_hbone_conn *c)
{
    int v = 16384;

    if (small_sockbufs) {
        uv_send_buffer_size((uv_handle_t *)gm_hbone_conn_tcp(c), &v);
        uv_recv_buffer_size((uv_handle_t *)gm_hbone_conn_tcp(c), &v);
    }
}

static int srv_on_handshake(struct gm_hbone_conn *c, void *ctx)
{
    shrink_sockbufs(c);
    srv.handshakes++;
    srv.last = c;
    return srv.reject_handshake ? -EACCES : 0;
}

static void srv_on_close(struct gm_hbone_conn *c, enum gm_hbone_reason reason, void *ctx)
{
    srv.closes++;
    srv.reason = reason;
    if (srv.last == c)
        srv.last = NULL;
}

static const struct gm_hbone_conn_cbs srv_cbs = {
    .on_handshake = srv_on_handshake,
    .on_request = srv_on_request,
    .on_close = srv_on_close,
};

static void on_hbone_connection(uv_stream_t *listener, int status)
{
    struct gm_hbone_conn *c;

    srv.accepted++;
    if (gm_hbone_conn_new_server(&loop, server_ssl(), &srv_settings, &srv_cbs, NULL, &c) < 0)
        return;
    if (uv_accept(listener, (uv_stream_t *)gm_hbone_conn_tcp(c)) < 0 || gm_hbone_conn_start(c) < 0)
        gm_hbone_conn_close(c, GM_HBONE_REASON_IO);
}

static uv_tcp_t hbone_listener;
static int hbone_port;

/* ---- client side -------------------------------------------------------------------------------
 */

struct cli_state {
    int handshakes;
    int goaways;
    bool closed;
    enum gm_hbone_reason reason;
};

static int cli_on_handshake(struct gm_hbone_conn *c, void *ctx)
{
    struct cli_state *cs = ctx;

    shrink_sockbufs(c);
    cs->handshakes++;
    return 0;
}

static void cli_on_goaway(struct gm_hbone_conn *c, void *ctx)
{
    struct cli_state *cs = ctx;

    cs->goaways++;
}

static void cli_on_close(struct gm_hbone_conn *c, enum gm_hbone_reason reason, void *ctx)
{
    struct cli_state *cs = ctx;

    cs->closed = true;
    cs->reason = reason;
}

static const struct gm_hbone_conn_cbs cli_cbs = {
    .on_handshake = cli_on_handshake,
    .on_goaway = cli_on_goaway,
    .on_close = cli_on_close,
};

static struct gm_hbone_conn *client_connect(const struct gm_hbone_settings *st, int port,
                                            const char *expected, struct cli_state *cs)
{
    struct gm_hbone_conn *c;
    struct sockaddr_in a;

    memset(cs, 0, sizeof(*cs));
    if (gm_hbone_conn_new_client(&loop, client_ssl(expected), st, &cli_cbs, cs, &c) < 0)
        return NULL;
    uv_ip4_addr("127.0.0.1", port, &a);
    if (gm_hbone_conn_connect(c, (struct sockaddr *)&a) < 0) {
        gm_hbone_conn_close(c, GM_HBONE_REASON_IO);
        return NULL;
    }
    return c;
}

/* One tunnelled "application" connection on the client side. */
struct capp {
    struct gm_hbone_stream *s;
    int status;
    bool ended;
    bool closed;
    enum gm_hbone_reason reason;
    struct gm_hbone_stream_stats stats;
    struct gm_buf rx;
};

static void capp_on_response(struct gm_hbone_stream *s, int status, void *ctx)
{
    struct capp *a = ctx;

    a->status = status;
}

static void capp_on_data(struct gm_hbone_stream *s, const uint8_t *p, size_t n, void *ctx)
{
    struct capp *a = ctx;

    gm_buf_append(&a->rx, p, n);
    gm_hbone_stream_consumed(s, n);
}

static void capp_on_end(struct gm_hbone_stream *s, void *ctx)
{
    struct capp *a = ctx;

    a->ended = true;
}

static void capp_on_close(struct gm_hbone_stream *s, enum gm_hbone_reason reason, void *ctx)
{
    struct capp *a = ctx;

    gm_hbone_stream_stats(s, &a->stats);
    a->s = NULL;
    a->closed = true;
    a->reason = reason;
}

static const struct gm_hbone_stream_cbs capp_cbs = {
    .on_response = capp_on_response,
    .on_data = capp_on_data,
    .on_end = capp_on_end,
    .on_close = capp_on_close,
};

static int capp_open(struct capp *a, struct gm_hbone_conn *c, int port)
{
    char authority[64];
    const struct gm_hbone_header hdrs[] = {
        {"forwarded", 0, "for=\"10.1.2.3:40000\"", 0},
        {"traceparent", 0, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", 0},
        {"baggage", 0, "k8s.namespace.name=client-ns", 0},
    };

    memset(a, 0, sizeof(*a));
    gm_buf_init(&a->rx, 8u << 20);
    snprintf(authority, sizeof(authority), "127.0.0.1:%d", port);
    return gm_hbone_stream_open(c, authority, hdrs, 3, &capp_cbs, a, &a->s);
}

static bool rx_equals(const struct capp *a, const uint8_t *want, size_t n)
{
    return a->rx.len == n && memcmp(a->rx.data, want, n) == 0;
}

static void close_client(struct gm_hbone_conn *c, struct cli_state *cs)
{
    if (c != NULL && !cs->closed)
        gm_hbone_conn_close(c, GM_HBONE_REASON_OK);
    RUN_UNTIL(cs->closed, 3000);
    CHECK(cs->closed);
}

/* Every server connection accepted so far has closed (tests end with this). */
static void wait_server_idle(void)
{
    RUN_UNTIL(srv.closes == srv.accepted, 3000);
    CHECK_EQ_INT(srv.closes, srv.accepted);
}

/* ---- tests: pure helpers ----------------------------------------------------------------------
 */

struct parse_case {
    const char *hdrs[8][2]; /* name, value; ends at a NULL name */
    int rc;
    int port;
};

static void test_request_parse(void)
{
    static const struct parse_case cases[] = {
        {{{":method", "CONNECT"}, {":authority", "10.0.0.7:8080"}}, 0, 8080},
        {{{":authority", "[fd00::7]:443"}, {":method", "CONNECT"}, {"forwarded", "for=x"}}, 0, 443},
        {{{":method", "CONNECT"}, {":authority", "10.0.0.7:8080"}, {":path", "/"}}, -EINVAL},
        {{{":method", "CONNECT"}, {":authority", "10.0.0.7:8080"}, {":scheme", "https"}}, -EINVAL},
        {{{":method", "CONNECT"}, {":authority", "10.0.0.7:8080"}, {":protocol", "ws"}}, -EINVAL},
        {{{":method", "GET"}, {":authority", "10.0.0.7:8080"}}, -EINVAL},
        {{{":method", "CONNECT"}}, -EINVAL},
        {{{":method", "CONNECT"}, {":authority", "example.com:80"}}, -EINVAL},
        {{{":method", "CONNECT"}, {":authority", "10.0.0.7"}}, -EINVAL},
        {{{":method", "CONNECT"}, {":authority", "10.0.0.7:0"}}, -EINVAL},
        {{{":method", "CONNECT"}, {":authority", "10.0.0.7:65536"}}, -EINVAL},
        {{{":method", "CONNECT"}, {":authority", "10.0.0.7:+80"}}, -EINVAL},
        {{{":method", "CONNECT"}, {":authority", "10.0.0.7: 80"}}, -EINVAL},
        {{{":method", "CONNECT"}, {":authority", "fd00::7:80"}}, -EINVAL},
        {{{":method", "CONNECT"}, {":authority", "[10.0.0.7]:80"}}, -EINVAL},
        {{{":method", "CONNECT"}, {":authority", "[fd00::7]"}}, -EINVAL},
        {{{":method", "CONNECT"}, {":authority", "[fe80::1%eth0]:80"}}, -EINVAL},
        {{{":method", "CONNECT"}, {":method", "CONNECT"}, {":authority", "1.2.3.4:80"}}, -EINVAL},
        {{{":method", "CONNECT"}, {"x", "y"}, {":authority", "1.2.3.4:80"}}, -EINVAL},
        {{{":method", "CONNECT"}, {":authority", "1.2.3.4:80"}, {"Upper", "y"}}, -EINVAL},
        {{{":method", "CONNECT"}, {":authority", "1.2.3.4:80"}, {"connection", "close"}}, -EINVAL},
        {{{":method", "CONNECT"}, {":authority", "1.2.3.4:80"}, {"te", "gzip"}}, -EINVAL},
        {{{":method", "CONNECT"}, {":authority", "1.2.3.4:80"}, {"te", "trailers"}}, 0, 80},
        {{{":method", "CONNECT"}, {":authority", "1.2.3.4:80"}, {"x", "a\nb"}}, -EINVAL},
        {{{":method", "CONNECT"}, {":status", "200"}, {":authority", "1.2.3.4:80"}}, -EINVAL},
    };

    for (size_t i = 0; i < GM_ARRAY_LEN(cases); i++) {
        struct gm_hbone_header h[8];
        struct gm_hbone_request req;
        size_t n = 0;
        for (; n < 8 && cases[i].hdrs[n][0]; n++)
            h[n] = (struct gm_hbone_header){cases[i].hdrs[n][0], strlen(cases[i].hdrs[n][0]),
                                            cases[i].hdrs[n][1], strlen(cases[i].hdrs[n][1])};
        int rc = gm_hbone_request_parse(h, n, &req);
        if (rc != cases[i].rc)
            fprintf(stderr, "request_parse case %zu\n", i);
        CHECK_EQ_INT(rc, cases[i].rc);
        if (rc == 0)
            CHECK_EQ_INT(req.port, cases[i].port);
    }
}

static void test_helpers(void)
{
    struct sockaddr_in6 a6;
    struct sockaddr_in a4;
    struct gm_hbone_settings st;
    char buf[64];

    uv_ip4_addr("10.0.0.7", 8080, &a4);
    uv_ip6_addr("fd00::7", 443, &a6);
    CHECK_EQ_INT(gm_hbone_authority_format((struct sockaddr *)&a4, buf, sizeof(buf)), 0);
    CHECK_EQ_STR(buf, "10.0.0.7:8080");
    CHECK_EQ_INT(gm_hbone_authority_format((struct sockaddr *)&a6, buf, sizeof(buf)), 0);
    CHECK_EQ_STR(buf, "[fd00::7]:443");
    CHECK_EQ_INT(gm_hbone_authority_format((struct sockaddr *)&a6, buf, 8), -ENOSPC);

    gm_hbone_settings_init(&st, true);
    CHECK_EQ_INT(st.stream_window, 4 << 20);
    CHECK_EQ_INT(st.conn_window, 16 << 20);
    CHECK_EQ_INT(st.max_streams, 200);
    CHECK_EQ_INT(gm_hbone_settings_check(&st), 0);
    st.stream_queue_low = st.stream_queue_high + 1;
    CHECK_EQ_INT(gm_hbone_settings_check(&st), -EINVAL);
    CHECK_EQ_STR(gm_hbone_reason_name(GM_HBONE_REASON_PING_TIMEOUT), "ping_timeout");
    CHECK_EQ_STR(gm_hbone_reason_name(GM_HBONE_REASON__MAX), "?");
}

/* ---- tests: over the wire ---------------------------------------------------------------------
 */

/* Three streams on one TLS connection, data both ways through the echo upstream; the client
 * half-closes first and still receives what the upstream sends after that. */
static void test_three_streams(void)
{
    struct cli_state cs;
    struct capp app[3];
    struct gm_hbone_conn_stats cst;
    static uint8_t payload[3][200000];
    const size_t size[3] = {1, 70000, sizeof(payload[2])};
    int handshakes = srv.handshakes, requests = srv.requests;

    struct gm_hbone_conn *c = client_connect(NULL, hbone_port, SERVER_ID, &cs);
    CHECK(c != NULL);
    if (c == NULL)
        return;
    CHECK(gm_hbone_conn_available(c));
    for (unsigned i = 0; i < 3; i++) {
        for (size_t k = 0; k < size[i]; k++)
            payload[i][k] = pattern(k, i);
        CHECK_EQ_INT(capp_open(&app[i], c, echo_up.port), 0);
        /* Written before the 200: queued, sent once the tunnel is up. */
        CHECK_EQ_INT(gm_hbone_stream_write(app[i].s, payload[i], size[i]), 0);
        CHECK_EQ_INT(gm_hbone_stream_shutdown(app[i].s), 0);
        CHECK_EQ_INT(gm_hbone_stream_write(app[i].s, "x", 1), -EPIPE);
    }
    RUN_UNTIL(app[0].closed && app[1].closed && app[2].closed, 5000);
    for (unsigned i = 0; i < 3; i++) {
        uint8_t *want = malloc(size[i] + 5);
        memcpy(want, payload[i], size[i]);
        memcpy(want + size[i], "<EOF>", 5);
        CHECK(app[i].closed);
        CHECK_EQ_INT(app[i].status, 200);
        CHECK(app[i].ended);
        CHECK_EQ_STR(gm_hbone_reason_name(app[i].reason), "ok");
        CHECK(rx_equals(&app[i], want, size[i] + 5));
        CHECK_EQ_INT(app[i].stats.bytes_out, size[i]);
        CHECK_EQ_INT(app[i].stats.bytes_in, size[i] + 5);
        free(want);
        gm_buf_done(&app[i].rx);
    }
    CHECK_EQ_INT(cs.handshakes, 1);
    CHECK_EQ_INT(srv.handshakes - handshakes, 1); /* one TLS connection carried all three */
    CHECK_EQ_INT(srv.requests - requests, 3);
    CHECK_EQ_STR(srv.forwarded, "for=\"10.1.2.3:40000\"");
    CHECK_EQ_STR(srv.traceparent, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    gm_hbone_conn_stats(c, &cst);
    CHECK_EQ_INT(cst.streams_total, 3);
    CHECK_EQ_INT(cst.streams_active, 0);
    CHECK(gm_hbone_conn_available(c));

    int closes = srv.closes;
    close_client(c, &cs);
    CHECK_EQ_STR(gm_hbone_reason_name(cs.reason), "ok");
    RUN_UNTIL(srv.closes > closes, 3000);
    CHECK_EQ_INT(srv.closes - closes, 1);
    CHECK(srv.reason == GM_HBONE_REASON_GOAWAY || srv.reason == GM_HBONE_REASON_PEER_CLOSED);
}

/* The upstream half-closes first: the client gets END_STREAM, then keeps sending. */
static void test_half_close_from_server(void)
{
    struct cli_state cs;
    struct capp a;
    static uint8_t data[50000];

    struct gm_hbone_conn *c = client_connect(NULL, hbone_port, SERVER_ID, &cs);
    greeter_up.greeter_received = 0;
    CHECK_EQ_INT(capp_open(&a, c, greeter_up.port), 0);
    RUN_UNTIL(a.ended, 3000);
    CHECK(a.ended);
    CHECK(!a.closed);
    CHECK(rx_equals(&a, (const uint8_t *)"hello", 5));
    memset(data, 'd', sizeof(data));
    CHECK_EQ_INT(gm_hbone_stream_write(a.s, data, sizeof(data)), 0);
    CHECK_EQ_INT(gm_hbone_stream_shutdown(a.s), 0);
    RUN_UNTIL(a.closed && greeter_up.greeter_eofs > 0, 3000);
    CHECK(a.closed);
    CHECK_EQ_STR(gm_hbone_reason_name(a.reason), "ok");
    CHECK_EQ_INT(greeter_up.greeter_received, sizeof(data));
    CHECK_EQ_INT(greeter_up.greeter_eofs, 1);
    gm_buf_done(&a.rx);
    close_client(c, &cs);
}

/* Refusals: by the owner's policy (503), upstream connect failure (503), and the API's own
 * argument checks and stream cap. */
static void test_refusals(void)
{
    struct gm_hbone_settings st;
    struct cli_state cs;
    struct capp a, b, extra;
    static uv_tcp_t probe;
    int closed_port;

    /* A port with nothing listening: bind one, note it, close it. */
    closed_port = listen_on(&probe, NULL);
    uv_close((uv_handle_t *)&probe, on_handle_noop);

    gm_hbone_settings_init(&st, false);
    st.max_streams = 2;
    struct gm_hbone_conn *c = client_connect(&st, hbone_port, SERVER_ID, &cs);
    CHECK_EQ_INT(capp_open(&a, c, REFUSE_PORT), 0);
    CHECK_EQ_INT(capp_open(&b, c, closed_port), 0);
    CHECK(!gm_hbone_conn_available(c)); /* max_streams 2 */
    CHECK_EQ_INT(capp_open(&extra, c, echo_up.port), -EBUSY);
    gm_buf_done(&extra.rx);
    RUN_UNTIL(a.closed && b.closed, 3000);
    CHECK_EQ_INT(a.status, 503);
    CHECK_EQ_INT(b.status, 503);
    CHECK_EQ_STR(gm_hbone_reason_name(a.reason), "rejected");
    CHECK_EQ_STR(gm_hbone_reason_name(b.reason), "rejected");
    CHECK(gm_hbone_conn_available(c));

    struct gm_hbone_stream *s;
    const struct gm_hbone_header bad = {"connection", 0, "close", 0};
    CHECK_EQ_INT(gm_hbone_stream_open(c, "example.com:80", NULL, 0, &capp_cbs, &a, &s), -EINVAL);
    CHECK_EQ_INT(gm_hbone_stream_open(c, "1.2.3.4:80", &bad, 1, &capp_cbs, &a, &s), -EINVAL);
    gm_buf_done(&a.rx);
    gm_buf_done(&b.rx);

    /* Streams still open when the connection closes get on_close(conn_closed). */
    CHECK_EQ_INT(capp_open(&a, c, greeter_up.port), 0);
    RUN_UNTIL(a.ended, 3000);
    gm_hbone_conn_close(c, GM_HBONE_REASON_OK);
    RUN_UNTIL(cs.closed, 3000);
    CHECK(a.closed);
    CHECK_EQ_STR(gm_hbone_reason_name(a.reason), "conn_closed");
    gm_buf_done(&a.rx);
}

/* A 64 MiB transfer into a reader slower than the sender: flow control and the send queue's
 * watermarks keep every buffer within its cap. */
struct bulk {
    struct gm_hbone_conn *c;
    struct gm_hbone_stream *s;
    uint64_t total, sent;
    size_t max_queued;
    size_t max_out_queued;
    int blocked;   /* times writable() turned false */
    int writables; /* on_writable() calls */
    bool closed;
    enum gm_hbone_reason reason;
};

static struct bulk bulk;

static void bulk_pump(void)
{
    uint8_t chunk[16384];
    struct gm_hbone_conn_stats cst;

    while (bulk.s && bulk.sent < bulk.total && gm_hbone_stream_writable(bulk.s)) {
        size_t n = bulk.total - bulk.sent < sizeof(chunk) ? bulk.total - bulk.sent : sizeof(chunk);
        for (size_t i = 0; i < n; i++)
            chunk[i] = pattern(bulk.sent + i, 7);
        if (gm_hbone_stream_write(bulk.s, chunk, n) < 0)
            break;
        bulk.sent += n;
        if (gm_hbone_stream_queued(bulk.s) > bulk.max_queued)
            bulk.max_queued = gm_hbone_stream_queued(bulk.s);
        if (!gm_hbone_stream_writable(bulk.s))
            bulk.blocked++;
    }
    gm_hbone_conn_stats(bulk.c, &cst);
    if (cst.out_queued_max > bulk.max_out_queued)
        bulk.max_out_queued = cst.out_queued_max;
    if (bulk.s && bulk.sent == bulk.total)
        gm_hbone_stream_shutdown(bulk.s);
}

static void bulk_on_writable(struct gm_hbone_stream *s, void *ctx)
{
    bulk.writables++;
    bulk_pump();
}

static void bulk_on_close(struct gm_hbone_stream *s, enum gm_hbone_reason reason, void *ctx)
{
    bulk.s = NULL;
    bulk.closed = true;
    bulk.reason = reason;
}

static void bulk_on_response(struct gm_hbone_stream *s, int status, void *ctx)
{
    bulk_pump();
}

static const struct gm_hbone_stream_cbs bulk_cbs = {
    .on_response = bulk_on_response,
    .on_writable = bulk_on_writable,
    .on_close = bulk_on_close,
};

static void on_bulk_sample(uv_timer_t *t)
{
    struct gm_hbone_conn_stats cst;

    if (bulk.c == NULL)
        return;
    gm_hbone_conn_stats(bulk.c, &cst);
    if (cst.out_queued_max > bulk.max_out_queued)
        bulk.max_out_queued = cst.out_queued_max;
}

static void test_flow_control(void)
{
    struct gm_hbone_settings st;
    struct cli_state cs;
    const char *env = getenv("HBONE_TEST_BIG_MIB");
    uint64_t mib = env ? strtoull(env, NULL, 10) : 64;
    static uv_timer_t sample;

    gm_hbone_settings_init(&st, false);
    memset(&bulk, 0, sizeof(bulk));
    memset(&sink, 0, sizeof(sink));
    uv_timer_init(&loop, &sink.drain);
    sink.per_tick = 256 * 1024;   /* at most 256 MiB/s, slower than the sender */
    sink.gate = st.stream_window; /* first let the sender run into the window */
    bulk.total = mib << 20;
    bulk.c = client_connect(&st, hbone_port, SERVER_ID, &cs);
    char authority[32];
    snprintf(authority, sizeof(authority), "127.0.0.1:%d", SINK_PORT);
    CHECK_EQ_INT(gm_hbone_stream_open(bulk.c, authority, NULL, 0, &bulk_cbs, NULL, &bulk.s), 0);
    uv_timer_init(&loop, &sample);
    uv_timer_start(&sample, on_bulk_sample, 1, 1);
    RUN_UNTIL(bulk.closed && sink.closed, 120000);
    uv_timer_stop(&sample);
    uv_close((uv_handle_t *)&sample, on_handle_noop);

    CHECK(bulk.closed);
    CHECK(sink.ended);
    CHECK_EQ_INT(sink.received, bulk.total);
    CHECK_EQ_INT(sink.bad_bytes, 0);
    CHECK_EQ_STR(gm_hbone_reason_name(bulk.reason), "ok");
    CHECK_EQ_STR(gm_hbone_reason_name(sink.reason), "ok");
    /* The receiver never held more than one stream window of unconsumed data, and the sender
     * did run into it while nothing was consumed. */
    CHECK_EQ_INT(sink.max_unconsumed, st.stream_window);
    /* ... the sender was paused and resumed, and its queues stayed under their caps. */
    CHECK(bulk.blocked > 0);
    CHECK(bulk.writables > 0);
    CHECK(bulk.max_queued <= st.stream_queue_max);
    CHECK(bulk.max_queued <= st.stream_queue_high + 16384);
    /* Above the watermark by at most one write batch: 256 KiB of plaintext as records. */
    CHECK(bulk.max_out_queued <= st.conn_queue_high + 16 * (16384 + 64));
    fprintf(stderr,
            "flow: %llu MiB, max unconsumed %zu, max queued %zu, max tls queued %zu, "
            "blocked %d\n",
            (unsigned long long)mib, sink.max_unconsumed, bulk.max_queued, bulk.max_out_queued,
            bulk.blocked);
    uv_close((uv_handle_t *)&sink.drain, on_handle_noop);
    close_client(bulk.c, &cs);
}

/* GOAWAY: the open stream finishes, a stream the server sees after it is refused, and no new
 * stream can be opened; both connections then close. */
static void test_goaway(void)
{
    struct cli_state cs;
    struct capp a, b, c2;
    int closes = srv.closes;

    struct gm_hbone_conn *c = client_connect(NULL, hbone_port, SERVER_ID, &cs);
    CHECK_EQ_INT(capp_open(&a, c, echo_up.port), 0);
    RUN_UNTIL(a.status == 200 && srv.last != NULL, 3000);
    CHECK_EQ_INT(a.status, 200);
    CHECK(srv.last != NULL);
    if (srv.last == NULL)
        return;
    /* Same loop turn: the GOAWAY and stream b's HEADERS cross on the wire. */
    gm_hbone_conn_goaway(srv.last);
    CHECK_EQ_INT(capp_open(&b, c, echo_up.port), 0);
    RUN_UNTIL(b.closed && cs.goaways > 0, 3000);
    CHECK_EQ_INT(cs.goaways, 1);
    CHECK(b.closed);
    CHECK_EQ_STR(gm_hbone_reason_name(b.reason), "refused");
    CHECK_EQ_INT(b.status, 0);
    CHECK(!gm_hbone_conn_available(c));
    CHECK_EQ_INT(capp_open(&c2, c, echo_up.port), -ENOTCONN);
    gm_buf_done(&c2.rx);

    /* Stream a still works after the GOAWAY. */
    CHECK(!a.closed);
    CHECK_EQ_INT(gm_hbone_stream_write(a.s, "after goaway", 12), 0);
    CHECK_EQ_INT(gm_hbone_stream_shutdown(a.s), 0);
    RUN_UNTIL(a.closed && cs.closed && srv.closes > closes, 3000);
    CHECK(rx_equals(&a, (const uint8_t *)"after goaway<EOF>", 17));
    CHECK_EQ_STR(gm_hbone_reason_name(a.reason), "ok");
    CHECK(cs.closed);
    CHECK(cs.reason == GM_HBONE_REASON_GOAWAY || cs.reason == GM_HBONE_REASON_PEER_CLOSED);
    CHECK_EQ_INT(srv.closes - closes, 1);
    CHECK_EQ_STR(gm_hbone_reason_name(srv.reason), "goaway");
    gm_buf_done(&a.rx);
    gm_buf_done(&b.rx);
}

/* TLS failures: the client expects another identity; the server's owner rejects the peer. */
static void test_handshake_failures(void)
{
    struct cli_state cs;
    int closes = srv.closes;

    struct gm_hbone_conn *c =
        client_connect(NULL, hbone_port, "spiffe://cluster.local/ns/other/sa/x", &cs);
    CHECK(c != NULL);
    RUN_UNTIL(cs.closed && srv.closes > closes, 3000);
    CHECK(cs.closed);
    CHECK_EQ_STR(gm_hbone_reason_name(cs.reason), "tls_failed");
    CHECK_EQ_INT(cs.handshakes, 0);

    closes = srv.closes;
    srv.reject_handshake = true;
    c = client_connect(NULL, hbone_port, SERVER_ID, &cs);
    RUN_UNTIL(cs.closed && srv.closes > closes, 3000);
    srv.reject_handshake = false;
    CHECK_EQ_STR(gm_hbone_reason_name(srv.reason), "rejected");
    CHECK(cs.closed);
}

/* A connection without streams closes after idle_timeout_ms. */
static void test_idle(void)
{
    struct gm_hbone_settings st;
    struct cli_state cs;

    gm_hbone_settings_init(&st, false);
    st.idle_timeout_ms = 100;
    struct gm_hbone_conn *c = client_connect(&st, hbone_port, SERVER_ID, &cs);
    CHECK(c != NULL);
    RUN_UNTIL(cs.closed, 3000);
    CHECK_EQ_STR(gm_hbone_reason_name(cs.reason), "idle");
}

/* ---- raw peers: an HTTP/2 client that can send anything, a server that goes silent -------- */

struct raw_resp {
    int status;
    bool closed;
    uint32_t error;
    char body[256];
    size_t body_len;
};

struct raw_client {
    struct gm_tls_stream *ts;
    nghttp2_session *h2;
    bool ready;
    bool closed;
    struct raw_resp resp[16]; /* by (stream id - 1) / 2 */
};

static struct raw_resp *raw_resp_of(struct raw_client *r, int32_t id)
{
    size_t i = (size_t)(id - 1) / 2;

    return i < GM_ARRAY_LEN(r->resp) ? &r->resp[i] : NULL;
}

static void raw_flush(struct raw_client *r)
{
    const uint8_t *p;
    ssize_t n;

    while (r->ready && (n = nghttp2_session_mem_send(r->h2, &p)) > 0)
        gm_tls_stream_write(r->ts, p, (size_t)n);
}

static int raw_on_header(nghttp2_session *h2, const nghttp2_frame *f, const uint8_t *name,
                         size_t nl, const uint8_t *value, size_t vl, uint8_t flags, void *user)
{
    struct raw_resp *rr = raw_resp_of(user, f->hd.stream_id);

    if (rr && nl == 7 && memcmp(name, ":status", 7) == 0)
        rr->status = atoi((const char *)value);
    return 0;
}

static int raw_on_data(nghttp2_session *h2, uint8_t flags, int32_t id, const uint8_t *p, size_t n,
                       void *user)
{
    struct raw_resp *rr = raw_resp_of(user, id);

    if (rr && rr->body_len + n < sizeof(rr->body)) {
        memcpy(rr->body + rr->body_len, p, n);
        rr->body_len += n;
    }
    return 0;
}

static int raw_on_close(nghttp2_session *h2, int32_t id, uint32_t code, void *user)
{
    struct raw_resp *rr = raw_resp_of(user, id);

    if (rr) {
        rr->closed = true;
        rr->error = code;
    }
    return 0;
}

static void raw_on_handshake(struct gm_tls_stream *ts, void *ctx)
{
    struct raw_client *r = ctx;

    r->ready = true;
    raw_flush(r);
}

static void raw_on_read(struct gm_tls_stream *ts, const uint8_t *p, size_t n, void *ctx)
{
    struct raw_client *r = ctx;

    nghttp2_session_mem_recv(r->h2, p, n);
    raw_flush(r);
}

static void raw_on_tls_close(struct gm_tls_stream *ts, enum gm_tls_reason reason, void *ctx)
{
    struct raw_client *r = ctx;

    r->closed = true;
}

static const struct gm_tls_stream_cbs raw_tls_cbs = {
    .on_handshake = raw_on_handshake,
    .on_read = raw_on_read,
    .on_close = raw_on_tls_close,
};

static int raw_client_start(struct raw_client *r, int port)
{
    nghttp2_session_callbacks *cbs;
    struct sockaddr_in a;

    memset(r, 0, sizeof(*r));
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_header_callback(cbs, raw_on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, raw_on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, raw_on_close);
    nghttp2_session_client_new(&r->h2, cbs, r);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_submit_settings(r->h2, NGHTTP2_FLAG_NONE, NULL, 0);
    if (gm_tls_stream_new(&loop, client_ssl(SERVER_ID), false, NULL, &raw_tls_cbs, r, &r->ts) < 0)
        return -1;
    uv_ip4_addr("127.0.0.1", port, &a);
    return gm_tls_stream_connect(r->ts, (struct sockaddr *)&a);
}

#define NV(n, v)                                                                                   \
    {                                                                                              \
        (uint8_t *)(n), (uint8_t *)(v), strlen(n), strlen(v), NGHTTP2_NV_FLAG_NONE                 \
    }

static ssize_t raw_read_early(nghttp2_session *h2, int32_t id, uint8_t *buf, size_t len,
                              uint32_t *flags, nghttp2_data_source *src, void *user)
{
    memcpy(buf, "early", 5);
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    return 5;
}

static ssize_t raw_read_never(nghttp2_session *h2, int32_t id, uint8_t *buf, size_t len,
                              uint32_t *flags, nghttp2_data_source *src, void *user)
{
    return NGHTTP2_ERR_DEFERRED;
}

/* Malformed CONNECTs are answered 400 without reaching the owner; a refusal while the client
 * still sends ends with RST_STREAM(NO_ERROR); data sent before the 200 is held and relayed. */
static void test_malformed_requests(void)
{
    static char big[20000];
    struct raw_client r;
    char echo_auth[32];
    int requests = srv.requests;

    memset(big, 'b', sizeof(big) - 1);
    snprintf(echo_auth, sizeof(echo_auth), "127.0.0.1:%d", echo_up.port);
    CHECK_EQ_INT(raw_client_start(&r, hbone_port), 0);
    const nghttp2_nv with_path[] = {NV(":method", "CONNECT"), NV(":authority", echo_auth),
                                    NV(":path", "/")};
    const nghttp2_nv host_auth[] = {NV(":method", "CONNECT"), NV(":authority", "localhost:80")};
    const nghttp2_nv get[] = {NV(":method", "GET"), NV(":scheme", "https"),
                              NV(":authority", echo_auth), NV(":path", "/")};
    const nghttp2_nv no_auth[] = {NV(":method", "CONNECT")};
    const nghttp2_nv huge[] = {NV(":method", "CONNECT"), NV(":authority", echo_auth),
                               NV("x-big", big)};
    const nghttp2_nv refused[] = {NV(":method", "CONNECT"), NV(":authority", "127.0.0.1:1")};
    const nghttp2_nv good[] = {NV(":method", "CONNECT"), NV(":authority", echo_auth)};
    nghttp2_data_provider never = {.read_callback = raw_read_never};
    nghttp2_data_provider early = {.read_callback = raw_read_early};

    CHECK_EQ_INT(nghttp2_submit_request(r.h2, NULL, with_path, 3, NULL, NULL), 1);
    CHECK_EQ_INT(nghttp2_submit_request(r.h2, NULL, host_auth, 2, NULL, NULL), 3);
    CHECK_EQ_INT(nghttp2_submit_request(r.h2, NULL, get, 4, NULL, NULL), 5);
    CHECK_EQ_INT(nghttp2_submit_request(r.h2, NULL, no_auth, 1, NULL, NULL), 7);
    CHECK_EQ_INT(nghttp2_submit_request(r.h2, NULL, huge, 3, NULL, NULL), 9);
    CHECK_EQ_INT(nghttp2_submit_request(r.h2, NULL, refused, 2, &never, NULL), 11);
    CHECK_EQ_INT(nghttp2_submit_request(r.h2, NULL, good, 2, &early, NULL), 13);
    raw_flush(&r);
    RUN_UNTIL(r.resp[0].closed && r.resp[1].closed && r.resp[2].closed && r.resp[3].closed &&
                  r.resp[4].closed && r.resp[5].closed && r.resp[6].closed,
              3000);
    for (int i = 0; i < 5; i++) {
        CHECK_EQ_INT(r.resp[i].status, 400);
        CHECK(r.resp[i].closed);
    }
    CHECK_EQ_INT(r.resp[5].status, 503);
    CHECK(r.resp[5].closed);
    CHECK_EQ_INT(r.resp[5].error, NGHTTP2_NO_ERROR); /* the server's RST(NO_ERROR) */
    CHECK_EQ_INT(r.resp[6].status, 200);
    CHECK_EQ_INT(r.resp[6].body_len, 10);
    CHECK(memcmp(r.resp[6].body, "early<EOF>", 10) == 0);
    CHECK_EQ_INT(srv.requests - requests, 2); /* only the refused and the good one */
    gm_tls_stream_close(r.ts, GM_TLS_REASON_OK);
    RUN_UNTIL(r.closed, 3000);
    CHECK(r.closed);
    nghttp2_session_del(r.h2);
}

/* A TLS server that sends one SETTINGS frame and then never answers, counting PINGs. With
 * stall set, it grants 16 MiB windows, answers stream 1 with 200 and stops reading. */
struct silent {
    uv_tcp_t listener;
    int port;
    bool stall;
    struct gm_tls_stream *ts;
    uint8_t buf[4096];
    size_t len;
    size_t skipped; /* preface bytes consumed */
    int pings;
    bool closed;
};

static struct silent silent;

static void silent_on_handshake(struct gm_tls_stream *ts, void *ctx)
{
    static const uint8_t settings[9] = {0, 0, 0, 4, 0, 0, 0, 0, 0};
    /* SETTINGS_INITIAL_WINDOW_SIZE 16 MiB, then WINDOW_UPDATE(0, 16 MiB). */
    static const uint8_t big_windows[] = {0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 4, 1, 0, 0,
                                          0, 0, 0, 4, 8, 0, 0, 0, 0, 0, 1, 0, 0, 0};

    if (silent.stall)
        gm_tls_stream_write(ts, big_windows, sizeof(big_windows));
    else
        gm_tls_stream_write(ts, settings, sizeof(settings));
}

/* Stall mode: a frame of the client arrived; answer HEADERS on stream 1 and go deaf. */
static void silent_on_frame(const uint8_t *hd)
{
    /* HEADERS, END_HEADERS, stream 1, HPACK static index 8 = ":status: 200". */
    static const uint8_t ok[] = {0, 0, 1, 1, 4, 0, 0, 0, 1, 0x88};
    uint32_t id = (uint32_t)(hd[5] & 0x7f) << 24 | (uint32_t)hd[6] << 16 | hd[7] << 8 | hd[8];

    if (silent.stall && hd[3] == NGHTTP2_HEADERS && id == 1) {
        gm_tls_stream_write(silent.ts, ok, sizeof(ok));
        gm_tls_stream_read_stop(silent.ts);
    }
}

/* Counts PING frames in the client's byte stream (after its 24-byte preface). */
static void silent_on_read(struct gm_tls_stream *ts, const uint8_t *p, size_t n, void *ctx)
{
    for (; n > 0 && silent.skipped < 24; p++, n--)
        silent.skipped++;
    if (n > sizeof(silent.buf) - silent.len)
        n = sizeof(silent.buf) - silent.len;
    memcpy(silent.buf + silent.len, p, n);
    silent.len += n;
    size_t off = 0;
    while (silent.len - off >= 9) {
        size_t flen =
            (size_t)silent.buf[off] << 16 | (size_t)silent.buf[off + 1] << 8 | silent.buf[off + 2];
        if (silent.len - off < 9 + flen)
            break;
        silent.pings += silent.buf[off + 3] == NGHTTP2_PING && !(silent.buf[off + 4] & 1);
        silent_on_frame(silent.buf + off);
        off += 9 + flen;
    }
    memmove(silent.buf, silent.buf + off, silent.len - off);
    silent.len -= off;
}

static void silent_on_close(struct gm_tls_stream *ts, enum gm_tls_reason reason, void *ctx)
{
    silent.closed = true;
    silent.ts = NULL;
}

static const struct gm_tls_stream_cbs silent_cbs = {
    .on_handshake = silent_on_handshake,
    .on_read = silent_on_read,
    .on_close = silent_on_close,
};

static void on_silent_connection(uv_stream_t *l, int status)
{
    int small = 16384;

    if (gm_tls_stream_new(&loop, server_ssl(), true, NULL, &silent_cbs, NULL, &silent.ts) < 0)
        return;
    uv_accept(l, (uv_stream_t *)gm_tls_stream_tcp(silent.ts));
    if (silent.stall)
        uv_recv_buffer_size((uv_handle_t *)gm_tls_stream_tcp(silent.ts), &small);
    gm_tls_stream_start(silent.ts);
}

static void on_silent_listener_closed(uv_handle_t *h)
{
    silent.port = 0;
}

static void silent_stop(void)
{
    if (silent.ts)
        gm_tls_stream_close(silent.ts, GM_TLS_REASON_ABORT);
    RUN_UNTIL(silent.closed, 3000);
    uv_close((uv_handle_t *)&silent.listener, on_silent_listener_closed);
    RUN_UNTIL(silent.port == 0, 1000);
}

/* PING keepalive: a healthy idle connection outlives the timeout; one whose peer stops
 * answering is closed after ping_timeout_ms. */
static void test_keepalive(void)
{
    struct gm_hbone_settings st;
    struct cli_state cs;
    uint64_t t0;

    gm_hbone_settings_init(&st, false);
    st.ping_interval_ms = 50;
    st.ping_timeout_ms = 200;
    srv_settings.ping_interval_ms = 50;
    srv_settings.ping_timeout_ms = 200;
    struct gm_hbone_conn *c = client_connect(&st, hbone_port, SERVER_ID, &cs);
    RUN_UNTIL(cs.closed, 700);
    CHECK(!cs.closed); /* PING ACKs (and the server's PINGs) kept it up */
    CHECK_EQ_INT(cs.handshakes, 1);
    close_client(c, &cs);
    gm_hbone_settings_init(&srv_settings, true);

    /* gm_hbone_conn_ping(): a PING goes out now, not at the next keepalive */
    gm_hbone_settings_init(&st, false); /* 10 s interval */
    memset(&silent, 0, sizeof(silent));
    silent.port = listen_on(&silent.listener, on_silent_connection);
    c = client_connect(&st, silent.port, SERVER_ID, &cs);
    RUN_UNTIL(cs.handshakes > 0, 3000);
    RUN_UNTIL(false, 100);
    CHECK_EQ_INT(silent.pings, 0);
    gm_hbone_conn_ping(c);
    RUN_UNTIL(silent.pings > 0, 1000);
    CHECK_EQ_INT(silent.pings, 1);
    close_client(c, &cs);
    silent_stop();

    st.ping_interval_ms = 50;
    st.ping_timeout_ms = 200;
    memset(&silent, 0, sizeof(silent));
    silent.port = listen_on(&silent.listener, on_silent_connection);
    c = client_connect(&st, silent.port, SERVER_ID, &cs);
    RUN_UNTIL(cs.handshakes > 0, 3000);
    t0 = uv_now(&loop);
    RUN_UNTIL(cs.closed, 3000);
    CHECK(cs.closed);
    CHECK_EQ_STR(gm_hbone_reason_name(cs.reason), "ping_timeout");
    CHECK(uv_now(&loop) - t0 >= 150);
    CHECK(silent.pings >= 2);
    silent_stop();
}

/* The peer stops reading: the TLS output queue stops at its high watermark, the stream's send
 * queue at its own, and the writer is told to stop; nothing grows past its cap. */
static void test_tls_backpressure(void)
{
    struct gm_hbone_settings st;
    struct cli_state cs;
    static uv_timer_t sample;

    gm_hbone_settings_init(&st, false);
    memset(&silent, 0, sizeof(silent));
    memset(&bulk, 0, sizeof(bulk));
    silent.stall = true;
    silent.port = listen_on(&silent.listener, on_silent_connection);
    small_sockbufs = true;
    bulk.total = 64u << 20;
    bulk.c = client_connect(&st, silent.port, SERVER_ID, &cs);
    CHECK_EQ_INT(gm_hbone_stream_open(bulk.c, "127.0.0.1:80", NULL, 0, &bulk_cbs, NULL, &bulk.s),
                 0);
    uv_timer_init(&loop, &sample);
    uv_timer_start(&sample, on_bulk_sample, 1, 1);
    RUN_UNTIL(bulk.blocked > 0 && bulk.max_out_queued > st.conn_queue_high, 3000);
    uint64_t sent = bulk.sent;
    RUN_UNTIL(false, 200); /* stable: nothing more goes out */
    uv_timer_stop(&sample);
    uv_close((uv_handle_t *)&sample, on_handle_noop);
    CHECK(bulk.blocked > 0);
    CHECK_EQ_INT(bulk.sent, sent);
    CHECK(bulk.sent < 16u << 20); /* stopped well before the peer's window */
    CHECK(bulk.max_out_queued > st.conn_queue_high);
    /* Above the watermark by at most one write batch: 256 KiB of plaintext as records. */
    CHECK(bulk.max_out_queued <= st.conn_queue_high + 16 * (16384 + 64));
    CHECK(bulk.max_queued <= st.stream_queue_high + 16384);
    fprintf(stderr, "stall: sent %llu, max tls queued %zu, max queued %zu\n",
            (unsigned long long)bulk.sent, bulk.max_out_queued, bulk.max_queued);
    small_sockbufs = false;
    gm_hbone_conn_close(bulk.c, GM_HBONE_REASON_IO); /* abort: the peer reads nothing */
    RUN_UNTIL(cs.closed, 3000);
    CHECK(cs.closed);
    CHECK(bulk.closed);
    silent_stop();
}

/* A client that sent data behind its CONNECT gets the 200 with the first upstream bytes; when
 * the upstream stays silent, within HBONE_RESPOND_DEFER_MS (1 ms) anyway. A client that sent
 * nothing gets it at once. */
static void test_deferred_response(void)
{
    struct cli_state cs;
    struct capp echo, early, quiet;

    struct gm_hbone_conn *c = client_connect(NULL, hbone_port, SERVER_ID, &cs);
    CHECK_EQ_INT(capp_open(&echo, c, echo_up.port), 0);
    CHECK_EQ_INT(gm_hbone_stream_write(echo.s, "ping", 4), 0);
    RUN_UNTIL(echo.status != 0 && echo.rx.len >= 4, 3000);
    CHECK_EQ_INT(echo.status, 200);
    CHECK(rx_equals(&echo, (const uint8_t *)"ping", 4));

    size_t before = silent_up.greeter_received;
    CHECK_EQ_INT(capp_open(&early, c, silent_up.port), 0);
    CHECK_EQ_INT(gm_hbone_stream_write(early.s, "early", 5), 0);
    uint64_t t0 = uv_now(&loop);
    RUN_UNTIL(early.status != 0, 3000);
    CHECK_EQ_INT(early.status, 200); /* the deferral ran out: the 200 went alone */
    CHECK(uv_now(&loop) - t0 >= 1);
    RUN_UNTIL(silent_up.greeter_received >= before + 5, 3000);
    CHECK_EQ_INT(silent_up.greeter_received - before, 5);

    CHECK_EQ_INT(capp_open(&quiet, c, silent_up.port), 0);
    RUN_UNTIL(quiet.status != 0, 3000);
    CHECK_EQ_INT(quiet.status, 200);

    gm_hbone_stream_shutdown(echo.s);
    gm_hbone_stream_shutdown(early.s);
    gm_hbone_stream_shutdown(quiet.s);
    RUN_UNTIL(echo.closed && early.closed && quiet.closed, 3000);
    CHECK(echo.closed && early.closed && quiet.closed);
    CHECK_EQ_STR(gm_hbone_reason_name(early.reason), "ok");
    gm_buf_done(&echo.rx);
    gm_buf_done(&early.rx);
    gm_buf_done(&quiet.rx);
    close_client(c, &cs);
}

/* Zero-copy writes: bytes filled in a reserved buffer and committed travel like written ones; a
 * commit of 0 leaves nothing queued; a stream that takes no bytes reserves nothing. */
static void test_reserve_commit(void)
{
    struct cli_state cs;
    struct capp a;
    size_t len = 0;

    struct gm_hbone_conn *c = client_connect(NULL, hbone_port, SERVER_ID, &cs);
    CHECK_EQ_INT(capp_open(&a, c, echo_up.port), 0);
    uint8_t *p = gm_hbone_stream_reserve(a.s, &len);
    CHECK(p != NULL && len >= 4096);
    CHECK_EQ_INT(gm_hbone_stream_commit(a.s, 0), 0);
    CHECK_EQ_INT(gm_hbone_stream_queued(a.s), 0);
    p = gm_hbone_stream_reserve(a.s, &len);
    CHECK(p != NULL && len >= 3);
    memcpy(p, "abc", 3);
    CHECK_EQ_INT(gm_hbone_stream_commit(a.s, 3), 0);
    CHECK_EQ_INT(gm_hbone_stream_write(a.s, "def", 3), 0);
    CHECK_EQ_INT(gm_hbone_stream_queued(a.s), 6);
    CHECK_EQ_INT(gm_hbone_stream_shutdown(a.s), 0);
    CHECK(gm_hbone_stream_reserve(a.s, &len) == NULL);
    RUN_UNTIL(a.closed, 3000);
    CHECK(a.closed);
    CHECK(rx_equals(&a, (const uint8_t *)"abcdef<EOF>", 11));
    gm_buf_done(&a.rx);
    close_client(c, &cs);
}

int main(void)
{
    const char *log = getenv("HBONE_TEST_LOG");

    gm_log_set_level(log ? log : "warn");
    signal(SIGPIPE, SIG_IGN); /* as in the daemons: a peer's RST must not kill the process */
    uv_loop_init(&loop);
    uv_timer_init(&loop, &tick);
    uv_timer_start(&tick, on_tick, 10, 10);
    CHECK_EQ_INT(tls_setup(), 0);
    gm_hbone_settings_init(&srv_settings, true);
    echo_up.port = listen_on(&echo_up.srv, on_up_connection);
    greeter_up.port = listen_on(&greeter_up.srv, on_up_connection);
    silent_up.port = listen_on(&silent_up.srv, on_up_connection);
    hbone_port = listen_on(&hbone_listener, on_hbone_connection);
    CHECK(echo_up.port > 0 && greeter_up.port > 0 && hbone_port > 0);

    test_request_parse();
    test_helpers();
    void (*const wire_tests[])(void) = {
        test_three_streams,
        test_half_close_from_server,
        test_refusals,
        test_malformed_requests,
        test_goaway,
        test_handshake_failures,
        test_idle,
        test_keepalive,
        test_tls_backpressure,
        test_flow_control,
        test_deferred_response,
        test_reserve_commit,
    };
    for (size_t i = 0; i < GM_ARRAY_LEN(wire_tests); i++) {
        wire_tests[i]();
        wait_server_idle();
    }

    uv_close((uv_handle_t *)&hbone_listener, on_handle_noop);
    uv_close((uv_handle_t *)&echo_up.srv, on_handle_noop);
    uv_close((uv_handle_t *)&greeter_up.srv, on_handle_noop);
    uv_close((uv_handle_t *)&silent_up.srv, on_handle_noop);
    uv_close((uv_handle_t *)&tick, on_handle_noop);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
    gm_cert_unref(srv_cert);
    gm_cert_unref(cli_cert);
    SSL_CTX_free(srv_ctx);
    SSL_CTX_free(cli_ctx);
    return TEST_DONE();
}
