/* One accepted connection of the echo server: reads, optional TLS over memory BIOs, the
 * HTTP/1.x-or-HTTP/2 sniff, raw TCP echo, writes with back-pressure, graceful and immediate
 * close. */
#include "echo.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>

#define HANDSHAKE_TIMEOUT_MS (10 * 1000)
#define IDLE_TIMEOUT_MS      (600 * 1000)
#define TCP_IDLE_TIMEOUT_MS  (3600 * 1000)
#define LINGER_TIMEOUT_MS    (2 * 1000)

static const char h2_preface[24] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

struct wreq {
    uv_write_t req;
    struct echo_conn *c;
    bool notify; /* run the protocol's "sent" hook once written */
    size_t len;
    char data[];
};

static void pump(struct echo_conn *c);

/* The only place a connection's mode changes: SNIFF becomes H1 or H2 once, and any mode but
 * LINGER may end in LINGER. */
static void set_mode(struct echo_conn *c, enum echo_mode to)
{
    bool ok = to == ECHO_MODE_LINGER
                  ? c->mode != ECHO_MODE_LINGER
                  : c->mode == ECHO_MODE_SNIFF && (to == ECHO_MODE_H1 || to == ECHO_MODE_H2);

    GM_ASSERT(ok);
    c->mode = to;
}

static void on_handle_closed(uv_handle_t *h)
{
    echo_conn_handle_closed(h->data);
}

static void conn_free(struct echo_conn *c)
{
    struct echo_server *srv = c->srv;

    SSL_free(c->ssl);
    nghttp2_session_del(c->h2);
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    srv->nconns--;
    free(c);
}

void echo_conn_handle_closed(struct echo_conn *c)
{
    GM_ASSERT(c->handles > 0);
    if (--c->handles == 0)
        conn_free(c);
}

void echo_conn_close(struct echo_conn *c, const char *reason)
{
    if (c->closing)
        return;
    c->closing = true;
    if (reason)
        fprintf(stderr, "echo-server: %s port=%d: closing: %s\n", c->peer_ip, c->port, reason);
    echo_h1_done(c);
    echo_h2_done(c);
    uv_close((uv_handle_t *)&c->idle, on_handle_closed);
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

static bool want_read(const struct echo_conn *c)
{
    if (c->closing || c->eof)
        return false;
    if (c->mode == ECHO_MODE_LINGER)
        return true;
    return !c->h1_busy && !c->wq_full && !c->finishing;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct echo_conn *c = h->data;

    buf->base = c->rbuf;
    buf->len = sizeof(c->rbuf);
}

static void update_reading(struct echo_conn *c)
{
    bool want = want_read(c);

    if (want && !c->reading) {
        int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
        if (rc < 0) {
            echo_conn_close(c, uv_strerror(rc));
            return;
        }
        c->reading = true;
    } else if (!want && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
}

static void on_idle(uv_timer_t *t)
{
    struct echo_conn *c = t->data;

    echo_conn_close(c, c->mode == ECHO_MODE_LINGER ? NULL : "idle timeout");
}

static void idle_reset(struct echo_conn *c)
{
    uint64_t ms = IDLE_TIMEOUT_MS;

    if (c->closing)
        return;
    if (c->ssl && !SSL_is_init_finished(c->ssl))
        ms = HANDSHAKE_TIMEOUT_MS;
    else if (c->mode == ECHO_MODE_LINGER)
        ms = LINGER_TIMEOUT_MS;
    else if (c->mode == ECHO_MODE_TCP)
        ms = TCP_IDLE_TIMEOUT_MS;
    int rc = uv_timer_start(&c->idle, on_idle, ms, 0);
    GM_ASSERT(rc == 0);
}

static void on_write(uv_write_t *req, int status)
{
    struct wreq *w = container_of(req, struct wreq, req);
    struct echo_conn *c = w->c;
    bool notify = w->notify;

    free(w);
    if (c->closing)
        return;
    if (status < 0) {
        echo_conn_close(c, uv_strerror(status));
        return;
    }
    idle_reset(c);
    if (notify)
        echo_h1_sent(c);
    if (!c->closing && c->wq_full &&
        uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) < ECHO_WQ_LOW) {
        c->wq_full = false;
        echo_conn_resume(c);
    }
}

static int raw_write(struct echo_conn *c, struct wreq *w)
{
    uv_buf_t b = uv_buf_init(w->data, (unsigned int)w->len);

    w->c = c;
    int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write);
    if (rc < 0) {
        free(w);
        echo_conn_close(c, uv_strerror(rc));
        return rc;
    }
    if (uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) > ECHO_WQ_HIGH) {
        c->wq_full = true;
        update_reading(c);
    }
    return 0;
}

static struct wreq *wreq_new(size_t n)
{
    struct wreq *w = gm_xmalloc(sizeof(*w) + n);

    memset(w, 0, sizeof(*w));
    w->len = n;
    return w;
}

/* Move whatever TLS produced to the socket; the last write carries notify. */
static int tls_flush(struct echo_conn *c, bool notify)
{
    size_t pending;

    while ((pending = BIO_ctrl_pending(c->wbio)) > 0) {
        struct wreq *w = wreq_new(pending);
        int n = BIO_read(c->wbio, w->data, (int)pending);
        if (n <= 0) {
            free(w);
            echo_conn_close(c, "tls: BIO_read failed");
            return -EIO;
        }
        w->len = (size_t)n;
        w->notify = notify && BIO_ctrl_pending(c->wbio) == 0;
        int rc = raw_write(c, w);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int echo_conn_send(struct echo_conn *c, const void *p, size_t n, bool notify)
{
    if (c->closing || c->finishing)
        return -EPIPE;
    GM_ASSERT(n > 0 || !notify);
    if (n == 0)
        return 0;
    if (c->ssl) {
        size_t written = 0;
        ERR_clear_error();
        if (SSL_write_ex(c->ssl, p, n, &written) != 1 || written != n) {
            echo_conn_close(c, "tls: write failed");
            return -EIO;
        }
        GM_ASSERT(BIO_ctrl_pending(c->wbio) > 0);
        return tls_flush(c, notify);
    }
    struct wreq *w = wreq_new(n);
    memcpy(w->data, p, n);
    w->notify = notify;
    return raw_write(c, w);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct echo_conn *c = req->data;

    if (c->closing)
        return;
    if (status < 0 || c->eof) {
        echo_conn_close(c, NULL);
        return;
    }
    /* Read and drop until the peer's EOF so unread input cannot turn our close into a RST
     * that destroys the reply in flight. */
    set_mode(c, ECHO_MODE_LINGER);
    idle_reset(c);
    update_reading(c);
}

void echo_conn_finish(struct echo_conn *c)
{
    if (c->closing || c->finishing)
        return;
    if (c->ssl && SSL_is_init_finished(c->ssl)) {
        ERR_clear_error();
        SSL_shutdown(c->ssl);
        if (tls_flush(c, false) < 0)
            return;
    }
    c->finishing = true;
    c->shutdown.data = c;
    int rc = uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, on_shutdown);
    if (rc < 0) {
        echo_conn_close(c, uv_strerror(rc));
        return;
    }
    update_reading(c);
}

/* Decide between HTTP/1.x and the HTTP/2 client preface, byte by byte. */
static void sniff(struct echo_conn *c, const char *p, size_t n)
{
    size_t i = 0;

    while (i < n && c->sniff_len < sizeof(h2_preface) && p[i] == h2_preface[c->sniff_len])
        c->sniff[c->sniff_len++] = p[i++];
    c->in_off += i;
    if (c->sniff_len == sizeof(h2_preface)) {
        set_mode(c, ECHO_MODE_H2);
        if (echo_h2_init(c) < 0 || echo_h2_feed(c, c->sniff, c->sniff_len) < 0) {
            echo_conn_close(c, "http2: session setup failed");
            return;
        }
        echo_h2_flush(c);
        return;
    }
    if (i == n)
        return; /* a prefix of the preface so far: wait for more */
    set_mode(c, ECHO_MODE_H1);
    echo_h1_init(c);
    if (c->sniff_len == 0)
        return;
    size_t used = 0;
    if (echo_h1_feed(c, c->sniff, c->sniff_len, &used) == 0 && used < c->sniff_len)
        echo_conn_close(c, "http: request inside the h2 preface");
}

static void deliver(struct echo_conn *c)
{
    const char *p = c->in + c->in_off;
    size_t n = c->in_len - c->in_off, used = 0;

    switch (c->mode) {
    case ECHO_MODE_SNIFF:
        sniff(c, p, n);
        return;
    case ECHO_MODE_H1:
        if (echo_h1_feed(c, p, n, &used) < 0)
            used = n;
        c->in_off += used;
        return;
    case ECHO_MODE_H2:
        c->in_off = c->in_len;
        if (echo_h2_feed(c, p, n) < 0) {
            echo_conn_close(c, "http2: protocol error");
            return;
        }
        echo_h2_flush(c);
        return;
    case ECHO_MODE_TCP:
        c->in_off = c->in_len;
        echo_conn_send(c, p, n, false);
        return;
    default:
        c->in_off = c->in_len;
        return;
    }
}

static void tls_handshaken(struct echo_conn *c)
{
    const unsigned char *alpn = NULL;
    unsigned int len = 0;

    SSL_get0_alpn_selected(c->ssl, &alpn, &len);
    if (alpn && len < sizeof(c->alpn)) {
        memcpy(c->alpn, alpn, len);
        c->alpn[len] = '\0';
    }
    idle_reset(c);
}

/* Decrypt the next plaintext into pbuf. 1 when there is some, 0 when TLS needs more input,
 * -1 when the connection is closing. */
static int tls_read(struct echo_conn *c)
{
    int r, err;

    ERR_clear_error();
    if (!SSL_is_init_finished(c->ssl)) {
        r = SSL_do_handshake(c->ssl);
        if (tls_flush(c, false) < 0)
            return -1;
        if (r != 1) {
            err = SSL_get_error(c->ssl, r);
            if (err == SSL_ERROR_WANT_READ)
                return 0;
            echo_conn_close(c, "tls: handshake failed");
            return -1;
        }
        tls_handshaken(c);
    }
    r = SSL_read(c->ssl, c->pbuf, sizeof(c->pbuf));
    if (r > 0) {
        c->in = c->pbuf;
        c->in_len = (size_t)r;
        c->in_off = 0;
        return 1;
    }
    err = SSL_get_error(c->ssl, r);
    if (err == SSL_ERROR_WANT_READ)
        return 0;
    if (err == SSL_ERROR_ZERO_RETURN) {
        c->eof = true;
        return 0;
    }
    echo_conn_close(c, "tls: read failed");
    return -1;
}

static bool paused(const struct echo_conn *c)
{
    return c->closing || c->finishing || c->h1_busy || c->wq_full;
}

static void on_eof(struct echo_conn *c)
{
    switch (c->mode) {
    case ECHO_MODE_H1:
        echo_h1_eof(c);
        return;
    case ECHO_MODE_H2:
        echo_h2_eof(c);
        return;
    case ECHO_MODE_TCP:
        echo_conn_finish(c);
        return;
    default:
        echo_conn_close(c, NULL);
        return;
    }
}

/* Hand buffered input to the protocol until it is consumed or the protocol pauses. */
static void pump(struct echo_conn *c)
{
    if (c->pumping || c->closing)
        return;
    c->pumping = true;
    while (!paused(c)) {
        if (c->in_off < c->in_len) {
            deliver(c);
            continue;
        }
        if (!c->ssl || tls_read(c) <= 0)
            break;
    }
    if (c->ssl && !c->closing)
        tls_flush(c, false);
    c->pumping = false;
    if (c->closing)
        return;
    if (c->eof && !paused(c) && c->in_off == c->in_len)
        on_eof(c);
    update_reading(c);
}

void echo_conn_resume(struct echo_conn *c)
{
    pump(c);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct echo_conn *c = s->data;

    if (nread == 0 || c->closing)
        return;
    if (nread < 0) {
        if (nread != UV_EOF) {
            echo_conn_close(c, uv_strerror((int)nread));
            return;
        }
        c->eof = true;
        if (c->mode == ECHO_MODE_LINGER)
            echo_conn_close(c, NULL);
        else
            pump(c);
        return;
    }
    idle_reset(c);
    if (c->mode == ECHO_MODE_LINGER)
        return;
    if (c->ssl) {
        if (BIO_write(c->rbio, buf->base, (int)nread) != (int)nread) {
            echo_conn_close(c, "tls: BIO_write failed");
            return;
        }
    } else {
        c->in = buf->base;
        c->in_len = (size_t)nread;
        c->in_off = 0;
    }
    pump(c);
}

static int tls_setup(struct echo_conn *c)
{
    c->ssl = SSL_new(c->srv->ssl_ctx);
    if (c->ssl == NULL)
        return -ENOMEM;
    c->rbio = BIO_new(BIO_s_mem());
    c->wbio = BIO_new(BIO_s_mem());
    if (c->rbio == NULL || c->wbio == NULL) {
        BIO_free(c->rbio);
        BIO_free(c->wbio);
        return -ENOMEM;
    }
    SSL_set_bio(c->ssl, c->rbio, c->wbio);
    SSL_set_accept_state(c->ssl);
    return 0;
}

static void peer_name(struct echo_conn *c)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);

    snprintf(c->peer_ip, sizeof(c->peer_ip), "?");
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) < 0)
        return;
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &sin->sin_addr, c->peer_ip, sizeof(c->peer_ip));
        c->peer_port = ntohs(sin->sin_port);
    } else if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &sin6->sin6_addr, c->peer_ip, sizeof(c->peer_ip));
        c->peer_port = ntohs(sin6->sin6_port);
    }
}

static void conn_link(struct echo_server *srv, struct echo_conn *c)
{
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->nconns++;
}

void echo_conn_accept(struct echo_listener *l)
{
    struct echo_server *srv = l->srv;
    struct echo_conn *c = gm_xcalloc(1, sizeof(*c));
    int rc = uv_tcp_init(srv->loop, &c->tcp);

    if (rc < 0) {
        fprintf(stderr, "echo-server: port %d: %s\n", l->port, uv_strerror(rc));
        free(c);
        return;
    }
    rc = uv_timer_init(srv->loop, &c->idle);
    GM_ASSERT(rc == 0);
    c->tcp.data = c;
    c->idle.data = c;
    c->handles = 2;
    c->srv = srv;
    c->port = l->port;
    c->mode = l->kind == ECHO_PORT_TCP ? ECHO_MODE_TCP : ECHO_MODE_SNIFF;
    conn_link(srv, c);
    rc = uv_accept((uv_stream_t *)&l->tcp, (uv_stream_t *)&c->tcp);
    if (rc < 0) {
        echo_conn_close(c, uv_strerror(rc));
        return;
    }
    peer_name(c);
    if (srv->nconns > ECHO_MAX_CONNS || srv->stopping) {
        echo_conn_close(c, "too many connections");
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    if (l->tls && tls_setup(c) < 0) {
        echo_conn_close(c, "tls: setup failed");
        return;
    }
    idle_reset(c);
    update_reading(c);
}
