/*
 * test_wp_harness: stand-ins for the two ztunnels around a waypoint, on loopback, so the
 * waypoint's data path can be tested without root or network namespaces.
 *
 *   test_wp_harness ca DIR
 *       writes DIR/ca.crt and DIR/ca.key (a fresh CA for trust domain cluster.local)
 *   test_wp_harness run --ca-cert F --ca-key F [--out SPEC]... [--in SPEC]...
 *       --out LISTEN,WAYPOINT,AUTHORITY,CLIENT_ID,WAYPOINT_ID
 *           the client side: accepts TCP on LISTEN ("ip:port") and tunnels each connection over
 *           HBONE to WAYPOINT ("ip:port") presenting CLIENT_ID, requiring WAYPOINT_ID, with
 *           `:authority` AUTHORITY and `forwarded: for="<client ip:port>"`
 *       --in LISTEN,ID
 *           the destination side: HBONE server on LISTEN presenting ID (any peer of the trust
 *           domain); each CONNECT is connected to its authority over TCP, then answered 200
 *   Prints "ready" once every listener is up; runs until SIGTERM or SIGINT.
 */
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gammamesh/hbone.h"
#include "gammamesh/identity.h"
#include "gammamesh/log.h"
#include "gammamesh/tls.h"
#include "gammamesh/util.h"

#define TD "cluster.local"

static uv_loop_t *loop;
static struct gm_signer *signer;
static SSL_CTX *client_ctx, *server_ctx;

/* ---- one relay: a TCP socket and an HBONE stream ---- */

struct relay {
    uv_tcp_t tcp;
    uv_connect_t creq;
    struct gm_hbone_stream *s;
    struct gm_hbone_conn *conn; /* client side: the tunnel it owns */
    bool tcp_open, tcp_eof, stream_end, closing;
    int pending;
};

struct wreq {
    uv_write_t req;
    struct relay *r;
    size_t n;
    char data[];
};

static void relay_maybe_free(struct relay *r)
{
    if (r->closing && !r->tcp_open && r->s == NULL && r->conn == NULL && r->pending == 0)
        free(r);
}

static void on_tcp_closed(uv_handle_t *h)
{
    struct relay *r = h->data;

    r->pending--;
    relay_maybe_free(r);
}

static void relay_close(struct relay *r)
{
    if (r->closing)
        return;
    r->closing = true;
    if (r->tcp_open) {
        r->tcp_open = false;
        r->pending++;
        uv_close((uv_handle_t *)&r->tcp, on_tcp_closed);
    }
    if (r->s)
        gm_hbone_stream_reset(r->s, 0);
    if (r->conn)
        gm_hbone_conn_close(r->conn, GM_HBONE_REASON_OK);
    relay_maybe_free(r);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    static char buf[16384];

    *b = uv_buf_init(buf, sizeof(buf));
}

static void on_tcp_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    struct relay *r = st->data;

    if (n > 0 && r->s) {
        gm_hbone_stream_write(r->s, b->base, (size_t)n);
        if (!gm_hbone_stream_writable(r->s))
            uv_read_stop(st);
    } else if (n == UV_EOF) {
        r->tcp_eof = true;
        uv_read_stop(st);
        if (r->s)
            gm_hbone_stream_shutdown(r->s);
    } else if (n < 0) {
        relay_close(r);
    }
}

static void on_written(uv_write_t *req, int status)
{
    struct wreq *w = container_of(req, struct wreq, req);
    struct relay *r = w->r;

    r->pending--;
    if (r->s && status == 0)
        gm_hbone_stream_consumed(r->s, w->n);
    free(w);
    if (status < 0)
        relay_close(r);
    relay_maybe_free(r);
}

static void on_stream_data(struct gm_hbone_stream *s, const uint8_t *p, size_t n, void *ctx)
{
    struct relay *r = ctx;
    struct wreq *w;

    if (!r->tcp_open)
        return;
    w = gm_xmalloc(sizeof(*w) + n);
    w->r = r;
    w->n = n;
    memcpy(w->data, p, n);
    uv_buf_t b = uv_buf_init(w->data, (unsigned)n);
    r->pending++;
    if (uv_write(&w->req, (uv_stream_t *)&r->tcp, &b, 1, on_written) < 0) {
        r->pending--;
        free(w);
        relay_close(r);
    }
}

static void on_shut(uv_shutdown_t *req, int status)
{
    struct relay *r = req->data;

    free(req);
    r->pending--;
    if (r->tcp_eof)
        relay_close(r);
    relay_maybe_free(r);
}

static void on_stream_end(struct gm_hbone_stream *s, void *ctx)
{
    struct relay *r = ctx;
    uv_shutdown_t *req;

    r->stream_end = true;
    if (!r->tcp_open)
        return;
    req = gm_xmalloc(sizeof(*req));
    req->data = r;
    r->pending++;
    if (uv_shutdown(req, (uv_stream_t *)&r->tcp, on_shut) < 0) {
        r->pending--;
        free(req);
        relay_close(r);
    }
}

static void on_stream_writable(struct gm_hbone_stream *s, void *ctx)
{
    struct relay *r = ctx;

    if (r->tcp_open && !r->tcp_eof)
        uv_read_start((uv_stream_t *)&r->tcp, on_alloc, on_tcp_read);
}

static void on_stream_close(struct gm_hbone_stream *s, enum gm_hbone_reason reason, void *ctx)
{
    struct relay *r = ctx;

    r->s = NULL;
    relay_close(r);
    relay_maybe_free(r);
}

static void on_stream_response(struct gm_hbone_stream *s, int status, void *ctx)
{
    struct relay *r = ctx;

    if (status != 200) {
        fprintf(stderr, "harness: tunnel refused: %d\n", status);
        return;
    }
    uv_read_start((uv_stream_t *)&r->tcp, on_alloc, on_tcp_read);
}

static const struct gm_hbone_stream_cbs relay_cbs = {
    .on_response = on_stream_response,
    .on_data = on_stream_data,
    .on_end = on_stream_end,
    .on_writable = on_stream_writable,
    .on_close = on_stream_close,
};

/* ---- identities ---- */

static SSL *make_ssl(bool server, const char *id, const char *peer)
{
    struct gm_cert *cert = NULL;
    SSL *ssl;

    if (gm_signer_issue(signer, id, 0, &cert) < 0)
        return NULL;
    ssl = SSL_new(server ? server_ctx : client_ctx);
    gm_tls_set_identity(ssl, cert);
    if (server)
        gm_tls_set_peer_policy(ssl, NULL, 0, TD);
    else
        gm_tls_set_peer_policy(ssl, &peer, 1, NULL);
    gm_cert_unref(cert);
    return ssl;
}

/* ---- the client side (--out) ---- */

struct out {
    uv_tcp_t listener;
    struct sockaddr_storage waypoint;
    char *authority, *client_id, *waypoint_id;
};

static void on_out_conn_close(struct gm_hbone_conn *c, enum gm_hbone_reason reason, void *ctx)
{
    struct relay *r = ctx;

    r->conn = NULL;
    relay_close(r);
    relay_maybe_free(r);
}

static void on_in_conn_close(struct gm_hbone_conn *c, enum gm_hbone_reason reason, void *ctx)
{
}

static const struct gm_hbone_conn_cbs out_conn_cbs = {.on_close = on_out_conn_close};

static void on_out_accept(uv_stream_t *l, int status)
{
    struct out *o = l->data;
    struct relay *r = gm_xcalloc(1, sizeof(*r));
    struct sockaddr_storage peer;
    int plen = sizeof(peer);
    char fwd[96], addr[64];

    uv_tcp_init(loop, &r->tcp);
    r->tcp.data = r;
    r->tcp_open = true;
    if (status < 0 || uv_accept(l, (uv_stream_t *)&r->tcp) < 0) {
        relay_close(r);
        return;
    }
    uv_tcp_getpeername(&r->tcp, (struct sockaddr *)&peer, &plen);
    gm_hbone_authority_format((struct sockaddr *)&peer, addr, sizeof(addr));
    snprintf(fwd, sizeof(fwd), "for=\"%s\"", addr);
    SSL *ssl = make_ssl(false, o->client_id, o->waypoint_id);
    struct gm_hbone_header hdrs[] = {{"forwarded", 0, fwd, 0}};
    if (ssl == NULL || gm_hbone_conn_new_client(loop, ssl, NULL, &out_conn_cbs, r, &r->conn) < 0 ||
        gm_hbone_conn_connect(r->conn, (struct sockaddr *)&o->waypoint) < 0 ||
        gm_hbone_stream_open(r->conn, o->authority, hdrs, 1, &relay_cbs, r, &r->s) < 0) {
        fprintf(stderr, "harness: cannot open a tunnel\n");
        relay_close(r);
    }
}

/* ---- the destination side (--in) ---- */

static void on_app_connected(uv_connect_t *req, int status)
{
    struct relay *r = req->data;

    if (r->s == NULL)
        return;
    if (status < 0) {
        gm_hbone_stream_respond(r->s, 503, NULL, 0);
        return;
    }
    gm_hbone_stream_respond(r->s, 200, NULL, 0);
    uv_read_start((uv_stream_t *)&r->tcp, on_alloc, on_tcp_read);
}

static void on_in_request(struct gm_hbone_conn *c, struct gm_hbone_stream *s,
                          const struct gm_hbone_request *req, void *ctx)
{
    struct relay *r = gm_xcalloc(1, sizeof(*r));
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(req->port)};

    memcpy(&sin.sin_addr, req->ip.addr, 4);
    r->s = s;
    gm_hbone_stream_set_cbs(s, &relay_cbs, r);
    uv_tcp_init(loop, &r->tcp);
    r->tcp.data = r;
    r->tcp_open = true;
    r->creq.data = r;
    if (uv_tcp_connect(&r->creq, &r->tcp, (struct sockaddr *)&sin, on_app_connected) < 0)
        gm_hbone_stream_respond(s, 503, NULL, 0);
}

static const struct gm_hbone_conn_cbs in_conn_cbs = {
    .on_request = on_in_request,
    .on_close = on_in_conn_close,
};

static void on_in_accept(uv_stream_t *l, int status)
{
    const char *id = l->data;
    struct gm_hbone_conn *c;
    SSL *ssl = make_ssl(true, id, NULL);

    if (status < 0 || ssl == NULL ||
        gm_hbone_conn_new_server(loop, ssl, NULL, &in_conn_cbs, NULL, &c) < 0)
        return;
    if (uv_accept(l, (uv_stream_t *)gm_hbone_conn_tcp(c)) < 0 || gm_hbone_conn_start(c) < 0)
        gm_hbone_conn_close(c, GM_HBONE_REASON_IO);
}

/* ---- setup ---- */

static int parse_addr(const char *s, struct sockaddr_storage *ss)
{
    struct gm_ip ip;
    int port;
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;

    if (gm_ipport_parse(s, &ip, &port) < 0 || ip.family != AF_INET)
        return -EINVAL;
    memset(ss, 0, sizeof(*ss));
    sin->sin_family = AF_INET;
    sin->sin_port = htons((uint16_t)port);
    memcpy(&sin->sin_addr, ip.addr, 4);
    return 0;
}

static int listen_on(uv_tcp_t *l, const char *addr, uv_connection_cb cb, void *data)
{
    struct sockaddr_storage ss;

    if (parse_addr(addr, &ss) < 0)
        return -EINVAL;
    uv_tcp_init(loop, l);
    l->data = data;
    int rc = uv_tcp_bind(l, (struct sockaddr *)&ss, 0);
    return rc < 0 ? rc : uv_listen((uv_stream_t *)l, 128, cb);
}

static int add_out(char *spec)
{
    struct out *o = gm_xcalloc(1, sizeof(*o));
    char *f[5];

    for (int i = 0; i < 5; i++)
        if ((f[i] = strsep(&spec, ",")) == NULL)
            return -EINVAL;
    if (parse_addr(f[1], &o->waypoint) < 0)
        return -EINVAL;
    o->authority = f[2];
    o->client_id = f[3];
    o->waypoint_id = f[4];
    return listen_on(&o->listener, f[0], on_out_accept, o);
}

static int add_in(char *spec)
{
    uv_tcp_t *l = gm_xcalloc(1, sizeof(*l));
    char *addr = strsep(&spec, ",");

    if (spec == NULL)
        return -EINVAL;
    return listen_on(l, addr, on_in_accept, spec);
}

static int write_file(const char *dir, const char *name, const char *data, size_t len)
{
    char path[4096];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if ((f = fopen(path, "w")) == NULL || fwrite(data, 1, len, f) != len)
        return -errno;
    return fclose(f) == 0 ? 0 : -errno;
}

static int make_ca(const char *dir)
{
    char *cert, *key;
    size_t cl, kl;

    if (gm_signer_new_self_signed(TD, &signer) < 0 ||
        gm_signer_ca_to_pem(signer, &cert, &cl, &key, &kl) < 0)
        return 1;
    int rc = write_file(dir, "ca.crt", cert, cl) || write_file(dir, "ca.key", key, kl);
    free(cert);
    OPENSSL_cleanse(key, kl);
    free(key);
    return rc ? 1 : 0;
}

static void on_signal(uv_signal_t *h, int sig)
{
    uv_stop(loop);
}

int main(int argc, char **argv)
{
    const char *cert = NULL, *key = NULL;
    char err[256];
    uv_signal_t sigterm, sigint;

    if (argc == 3 && strcmp(argv[1], "ca") == 0)
        return make_ca(argv[2]);
    if (argc < 2 || strcmp(argv[1], "run") != 0) {
        fprintf(stderr, "usage: see the comment at the top of test_wp_harness.c\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    gm_log_set_level(getenv("HARNESS_LOG") ? getenv("HARNESS_LOG") : "warn");
    loop = uv_default_loop();
    for (int i = 2; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--ca-cert") == 0)
            cert = argv[i + 1];
        else if (strcmp(argv[i], "--ca-key") == 0)
            key = argv[i + 1];
    }
    if (cert == NULL || key == NULL ||
        gm_signer_new_from_files(cert, key, TD, &signer, err, sizeof(err)) < 0) {
        fprintf(stderr, "harness: no CA\n");
        return 2;
    }
    char *roots;
    size_t rlen;
    roots = gm_identity_roots_pem(gm_signer_provider(signer), &rlen);
    client_ctx = gm_tls_ctx_new(GM_TLS_CLIENT);
    server_ctx = gm_tls_ctx_new(GM_TLS_SERVER);
    gm_tls_ctx_set_roots(client_ctx, roots, rlen);
    gm_tls_ctx_set_roots(server_ctx, roots, rlen);
    free(roots);
    for (int i = 2; i + 1 < argc; i += 2) {
        int rc = 0;
        if (strcmp(argv[i], "--out") == 0)
            rc = add_out(argv[i + 1]);
        else if (strcmp(argv[i], "--in") == 0)
            rc = add_in(argv[i + 1]);
        if (rc < 0) {
            fprintf(stderr, "harness: %s %s: %s\n", argv[i], argv[i + 1], strerror(-rc));
            return 2;
        }
    }
    uv_signal_init(loop, &sigterm);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    uv_signal_init(loop, &sigint);
    uv_signal_start(&sigint, on_signal, SIGINT);
    printf("ready\n");
    fflush(stdout);
    uv_run(loop, UV_RUN_DEFAULT);
    return 0;
}
